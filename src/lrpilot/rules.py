"""Rules of thumb known before any step runs: pure functions, each with its formula, its source
and the range where it holds.

Every rule here is a plain function of numbers (and of an optimizer's family), so it can be
checked against its closed form. :data:`RULES` describes each one as data (:class:`RuleInfo`:
formula, source, where it holds), and :func:`reason` turns a rule and a sentence into the
:class:`Reason` the advisor cites. Sources marked "(recalled)" were not re-read when this was
written: check them before quoting.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from . import _validate as check
from .advice import ADAM_FAMILY, family_of_type, optimizer_family
from .errors import ConfigError

__all__ = [
    "Reason",
    "RuleInfo",
    "RULES",
    "reason",
    "family_of",
    "FAMILY_RANGES",
    "REFERENCE_BATCH",
    "LINEAR_SCALING_LIMIT",
    "LARGE_BATCH",
    "scaling_rule",
    "scale_lr",
    "effective_batch",
    "steps_per_epoch",
    "adam_warmup_steps",
    "sgd_warmup_steps",
    "LAYER_DECAYS",
    "layer_decay",
    "layerwise_lrs",
    "LORA_LR_FACTOR",
    "LORA_SHORT_RUN_FACTOR",
    "LORAPLUS_RATIO",
    "lora_lr",
    "loraplus_lrs",
    "FINETUNE_LRS",
    "RNN_CLIP",
]


@dataclass(frozen=True)
class Reason:
    """One piece of advice and where it comes from.

    Attributes:
        text: what was decided and why, in one sentence.
        source: the paper, guide or code the rule comes from (or "lrpilot" for a choice of
            this library's own, said as such).
        rule: the name of the rule in :data:`RULES` it applies, if any.
    """

    text: str
    source: str
    rule: str = ""

    def to_dict(self) -> dict[str, str]:
        """The reason as plain data."""
        return asdict(self)


@dataclass(frozen=True)
class RuleInfo:
    """A rule of thumb described as data: its formula, its source, and where it holds."""

    name: str
    formula: str
    source: str
    holds: str

    def to_dict(self) -> dict[str, str]:
        """The description as plain data."""
        return asdict(self)


RULES: dict[str, RuleInfo] = {
    info.name: info
    for info in (
        RuleInfo(
            "scale_lr_linear",
            "lr_new = lr_old * B_new / B_old",
            "Goyal et al. 2017 (lr = 0.1 * B / 256 for SGD on ResNet-50)",
            "SGD-family, up to a batch of about 8k, with a gradual warmup (5 epochs)",
        ),
        RuleInfo(
            "scale_lr_sqrt",
            "lr_new = lr_old * sqrt(B_new / B_old)",
            "Malladi et al. 2022 (the SDE square-root rule; Krizhevsky 2014 for the idea)",
            "Adam-family and RMSprop below the critical batch size (McCandlish et al. 2018)",
        ),
        RuleInfo(
            "family_range",
            "lr in the family's usual range",
            "common rules of thumb collected in lrpilot issue 12 (gradient descent 1e-3 to "
            "1e-1, Adam 1e-4 to 1e-2, RMSprop 1e-3 to 5e-2)",
            "training from scratch at ordinary batch sizes; fine-tuning runs lower",
        ),
        RuleInfo(
            "prior_lr",
            "lr = 1e-3 (Adam family), 1e-2 (SGD)",
            "Adam family: Kingma & Ba 2015 and every framework's Adam default (1e-3); SGD: "
            "Keras' SGD default (0.01) and the guides' usual start (lrpilot.advice.PRIOR_LRS)",
            "a safe start, not an optimum: the range test or a search refines it",
        ),
        RuleInfo(
            "adam_warmup",
            "warmup = 2 / (1 - beta2) steps, at most 10 % of the run",
            "Ma & Yarats, AAAI 2021; the 10 % cap from Google's Deep Learning Tuning Playbook",
            "Adam-family with linear warmup; beta2 0.999 -> 2000 steps, 0.99 -> 200, 0.95 -> 40",
        ),
        RuleInfo(
            "sgd_warmup",
            "warmup = 5 epochs of steps, at most 10 % of the run",
            "Goyal et al. 2017 (gradual warmup over 5 epochs); the 10 % cap from Google's "
            "Deep Learning Tuning Playbook",
            "large-batch SGD with linearly scaled LRs",
        ),
        RuleInfo(
            "large_batch_warmup",
            "warm up when the effective batch is >= 1024",
            "Goyal et al. 2017 (large-batch SGD needs gradual warmup); the threshold of 1024 "
            "(4x their reference batch of 256) is lrpilot's own choice",
            "any optimizer whose LR was scaled up for a large batch",
        ),
        RuleInfo(
            "layer_decay",
            "lr_layer(d) = lr * decay**d, d counted down from the top block",
            "ULMFiT (Howard & Ruder 2018): lr / 2.6 per layer; ELECTRA configure_finetuning.py: "
            "0.8 (small/base), 0.9 (large); BEiT: 0.65 (base), 0.75 (large); MAE FINETUNE.md: "
            "0.65 (ViT-B), 0.75 (ViT-L/H)",
            "fine-tuning a pretrained stack of blocks; the more finished the checkpoint, the "
            "closer the decay to 1",
        ),
        RuleInfo(
            "finetune_lr",
            "Adam: 1e-4 (base-size models), 5e-5 (large); SGD: a tenth of its default",
            "ELECTRA configure_finetuning.py (lr 1e-4 base, 5e-5 large); the SGD tenth is "
            "lrpilot's own choice, after the rule that pretrained layers want smaller LRs",
            "full fine-tuning of a pretrained model with a new head",
        ),
        RuleInfo(
            "lora_lr",
            "lr_lora = 10 * lr_full (15 * for runs under 100 steps)",
            "Schulman et al. (Thinking Machines) 2025, 'LoRA Without Regret' (recalled)",
            "LoRA on all layers (MLP too), nearly independent of the rank",
        ),
        RuleInfo(
            "loraplus",
            "lr_B = 16 * lr_A",
            "Hayou et al. 2024 (LoRA+)",
            "LoRA's two matrices (peft.optimizers.create_loraplus_optimizer, loraplus_lr_ratio)",
        ),
        RuleInfo(
            "effective_batch",
            "B_eff = per_device_batch * devices * accumulation_steps",
            "arithmetic of data parallelism; Goyal et al. 2017 use the global batch k*n",
            "synchronous data parallelism (DDP, FSDP) and gradient accumulation",
        ),
        RuleInfo(
            "rnn_clip",
            "clip the global gradient norm at 1.0",
            "Pascanu et al. 2013 (clipping against exploding gradients; recalled); 1.0 is "
            "Hugging Face Trainer's default max_grad_norm (recalled)",
            "recurrent networks (RNN, LSTM, GRU) and transformers",
        ),
        RuleInfo(
            "decay_long_runs",
            "decay the LR over a long run (cosine, linear or step)",
            "Google's Deep Learning Tuning Playbook (decay the LR; linear decay or cosine as "
            "the default: recalled)",
            "runs long enough to reach the noise floor of a constant LR",
        ),
    )
}
"""Every rule of this module, by name."""


def reason(rule: str, text: str) -> Reason:
    """A :class:`Reason` for ``text`` citing the source of rule ``rule`` of :data:`RULES`."""
    return Reason(text=text, source=RULES[rule].source, rule=rule)


# --------------------------------------------------------------------------------------------
# Optimizer families
# --------------------------------------------------------------------------------------------

_FAMILY_ALIASES = {
    "sgd": "sgd",
    "asgd": "sgd",
    "gd": "sgd",
    "adam": "adam",
    "rmsprop": "rmsprop",
    "adagrad": "adagrad",
    "adadelta": "adadelta",
    "lion": "lion",
}

FAMILY_RANGES: dict[str, tuple[float, float]] = {
    "sgd": (1e-3, 1e-1),
    "adam": (1e-4, 1e-2),
    "rmsprop": (1e-3, 5e-2),
}
"""The usual LR range of each family trained from scratch (:data:`RULES` ``"family_range"``)."""


def family_of(optimizer: Any) -> str:
    """The family of ``optimizer``: an instance, an optimizer class, or a family name.

    Instances and classes of the Adam family (:data:`lrpilot.advice.ADAM_FAMILY`) are
    ``"adam"``; other classes give their lower-cased name (``"sgd"``, ``"rmsprop"``). Names
    are lower-cased and looked up among the known families (``"sgd"``, ``"adam"``,
    ``"rmsprop"``, ``"adagrad"``, ``"adadelta"``, ``"lion"``, or an Adam-family class name).

    Raises:
        ConfigError: a name of no known family, or something that is not an optimizer.
    """
    if isinstance(optimizer, str):
        name = optimizer.strip()
        if name in ADAM_FAMILY or name.lower() in {n.lower() for n in ADAM_FAMILY}:
            return "adam"
        family = _FAMILY_ALIASES.get(name.lower())
        if family is None:
            raise check.ArgError(
                "optimizer",
                optimizer,
                "an optimizer, its class, or a family name ("
                + ", ".join(repr(n) for n in sorted(set(_FAMILY_ALIASES.values())))
                + ")",
            )
        return family
    if isinstance(optimizer, type):
        if not issubclass(optimizer, torch.optim.Optimizer):
            raise check.ArgError("optimizer", optimizer, "a torch.optim.Optimizer class")
        return family_of_type(optimizer)
    if hasattr(optimizer, "param_groups") or hasattr(optimizer, "optimizer"):
        return optimizer_family(optimizer)
    raise check.ArgError(
        "optimizer", optimizer, "an optimizer, its class, or a family name ('sgd', 'adam')"
    )


# --------------------------------------------------------------------------------------------
# Batch size
# --------------------------------------------------------------------------------------------

REFERENCE_BATCH = 256
"""The batch size the plain default LRs are taken to hold for (Goyal et al.'s reference)."""

LINEAR_SCALING_LIMIT = 8192
"""The largest batch at which Goyal et al. 2017 found linear scaling (with warmup) to hold."""

LARGE_BATCH = 1024
"""An effective batch this large (4x :data:`REFERENCE_BATCH`) should warm up: lrpilot's
threshold, after Goyal et al. 2017 (:data:`RULES` ``"large_batch_warmup"``)."""

_SQRT_FAMILIES = ("adam", "rmsprop", "adagrad", "adadelta")
_LINEAR_FAMILIES = ("sgd",)


def scaling_rule(optimizer: Any) -> str:
    """``"linear"`` for the SGD family, ``"sqrt"`` for adaptive ones (Adam, RMSprop, ...).

    Raises:
        ConfigError: an optimizer with no known batch-scaling rule (LBFGS, Lion, ...).
    """
    family = family_of(optimizer)
    if family in _LINEAR_FAMILIES:
        return "linear"
    if family in _SQRT_FAMILIES:
        return "sqrt"
    raise ConfigError(
        f"No batch-size scaling rule is known for the {family!r} optimizer family: scale the "
        "LR yourself, or pass optimizer='sgd' (linear) or 'adam' (square root)."
    )


def scale_lr(lr: float, old_batch: int, new_batch: int, optimizer: Any) -> float:
    r"""The LR for batch ``new_batch``, given a good ``lr`` at batch ``old_batch``.

    .. math:: \eta' = \eta \cdot \frac{B'}{B} \text{ (SGD)}, \qquad
        \eta' = \eta \cdot \sqrt{B'/B} \text{ (Adam family, RMSprop)}

    Linear for the SGD family (Goyal et al. 2017; it holds to a batch of about 8k with a
    gradual warmup), square root for adaptive optimizers (Malladi et al. 2022), both below the
    critical batch size past which a larger batch buys no speed (McCandlish et al. 2018).

    >>> scale_lr(0.1, 256, 1024, "sgd")
    0.4
    >>> scale_lr(1e-3, 256, 1024, "adam")
    0.002

    Args:
        lr: the LR known to work at ``old_batch``.
        old_batch, new_batch: effective batch sizes (samples per optimizer step, over all
            devices and accumulated micro-batches: :func:`effective_batch`).
        optimizer: an optimizer instance, its class, or a family name (``"sgd"``, ``"adam"``).

    Raises:
        ConfigError: a non-positive LR or batch, or an optimizer family without a rule.
    """
    lr = check.real("lr", lr, 0.0, open_low=True, open_high=True)
    old = check.whole("old_batch", old_batch, 1)
    new = check.whole("new_batch", new_batch, 1)
    ratio = new / old
    return lr * ratio if scaling_rule(optimizer) == "linear" else lr * math.sqrt(ratio)


def effective_batch(per_device_batch: int, devices: int = 1, accumulation_steps: int = 1) -> int:
    r"""Samples per optimizer step: :math:`B_{eff} = b \cdot n_{devices} \cdot k_{accum}`.

    What changes with it when the device count or the accumulation changes: the LR (by
    :func:`scale_lr` from the batch it was tuned at), the optimizer steps per epoch
    (:func:`steps_per_epoch`: fewer steps for the same data, so a schedule counted in steps
    must be recounted), and the warmup a large batch needs (:data:`LARGE_BATCH`). BatchNorm
    statistics stay per device (per micro-batch under accumulation) unless synchronised.
    """
    return (
        check.whole("per_device_batch", per_device_batch, 1)
        * check.whole("devices", devices, 1)
        * check.whole("accumulation_steps", accumulation_steps, 1)
    )


def steps_per_epoch(dataset_size: int, batch: int) -> int:
    """Optimizer steps in one pass over ``dataset_size`` samples at effective batch ``batch``
    (the last, partial batch counted)."""
    size = check.whole("dataset_size", dataset_size, 1)
    return math.ceil(size / check.whole("batch", batch, 1))


# --------------------------------------------------------------------------------------------
# Warmup
# --------------------------------------------------------------------------------------------

WARMUP_CAP = 0.1
"""The largest fraction of a run a warmup should take (Google's tuning playbook)."""


def _cap(warmup: int, total_steps: int | None) -> int:
    if total_steps is None:
        return warmup
    total = check.whole("total_steps", total_steps, 1)
    return min(warmup, int(WARMUP_CAP * total))


def adam_warmup_steps(beta2: float = 0.999, total_steps: int | None = None) -> int:
    r"""Linear warmup length for the Adam family: :math:`\lceil 2 / (1 - \beta_2) \rceil` steps
    (Ma & Yarats 2021), at most 10 % of ``total_steps`` (Google's tuning playbook).

    >>> adam_warmup_steps(0.999), adam_warmup_steps(0.99), adam_warmup_steps(0.95)
    (2000, 200, 40)
    >>> adam_warmup_steps(0.999, total_steps=5000)
    500
    """
    b2 = check.real("beta2", beta2, 0.0, 1.0, open_high=True)
    # round before ceil: 2 / (1 - 0.999) is 1999.9999999999982 in floating point
    return _cap(math.ceil(round(2.0 / (1.0 - b2), 6)), total_steps)


def sgd_warmup_steps(
    steps_per_epoch: int, total_steps: int | None = None, epochs: float = 5.0
) -> int:
    """Gradual warmup for large-batch SGD: ``epochs`` epochs (5 in Goyal et al. 2017), at most
    10 % of ``total_steps``."""
    per_epoch = check.whole("steps_per_epoch", steps_per_epoch, 1)
    length = check.real("epochs", epochs, 0.0)
    return _cap(math.ceil(per_epoch * length), total_steps)


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------

LAYER_DECAYS: dict[str, float] = {
    "ulmfit": 1 / 2.6,
    "electra-base": 0.8,
    "electra-large": 0.9,
    "beit-base": 0.65,
    "beit-large": 0.75,
    "mae-base": 0.65,
    "mae-large": 0.75,
}
"""Layer-wise LR decay per block in published fine-tuning recipes (:data:`RULES`
``"layer_decay"``): ULMFiT divides by 2.6 per layer; ELECTRA 0.8 / 0.9; BEiT and MAE
0.65 (base) / 0.75 (large) from self-supervised checkpoints."""


def layer_decay(recipe: str) -> float:
    """The layer-wise decay of a published recipe in :data:`LAYER_DECAYS`."""
    return LAYER_DECAYS[check.choice("recipe", recipe, list(LAYER_DECAYS))]


def layerwise_lrs(lr: float, depth: int, decay: float) -> list[float]:
    r"""The LR of each of ``depth`` blocks, bottom first, the top block at ``lr``:
    :math:`\eta_i = \eta \cdot \gamma^{\,depth - 1 - i}`.

    >>> [round(x, 6) for x in layerwise_lrs(1e-3, 3, 0.5)]
    [0.00025, 0.0005, 0.001]
    """
    top = check.real("lr", lr, 0.0, open_low=True, open_high=True)
    n = check.whole("depth", depth, 1)
    gamma = check.real("decay", decay, 0.0, 1.0, open_low=True)
    return [top * gamma ** (n - 1 - i) for i in range(n)]


FINETUNE_LRS: dict[str, dict[str, float]] = {
    "adam": {"base": 1e-4, "large": 5e-5},
    "sgd": {"base": 1e-3, "large": 1e-3},
}
"""Starting LRs for full fine-tuning (:data:`RULES` ``"finetune_lr"``), by family and size."""

LORA_LR_FACTOR = 10.0
"""LoRA's optimal LR over full fine-tuning's ("LoRA Without Regret", 2025; recalled)."""

LORA_SHORT_RUN_FACTOR = 15.0
"""The same factor for runs under 100 steps (same source; recalled)."""

LORAPLUS_RATIO = 16.0
"""LoRA+'s ratio of the B matrix's LR over the A matrix's (Hayou et al. 2024)."""


def lora_lr(full_finetune_lr: float, steps: int | None = None) -> float:
    """The LoRA LR for a run whose full fine-tuning LR is ``full_finetune_lr``: 10x (15x for
    runs under 100 steps), nearly independent of the rank ("LoRA Without Regret", recalled).

    >>> lora_lr(1e-5), lora_lr(1e-5, steps=50)
    (0.0001, 0.00015)
    """
    lr = check.real("full_finetune_lr", full_finetune_lr, 0.0, open_low=True, open_high=True)
    short = steps is not None and check.whole("steps", steps, 1) < 100
    return lr * (LORA_SHORT_RUN_FACTOR if short else LORA_LR_FACTOR)


def loraplus_lrs(lr: float, ratio: float = LORAPLUS_RATIO) -> tuple[float, float]:
    """``(lr_A, lr_B)`` for LoRA+: the B matrices at ``ratio`` (16) times the A matrices."""
    lr_a = check.real("lr", lr, 0.0, open_low=True, open_high=True)
    return lr_a, lr_a * check.real("ratio", ratio, 0.0, open_low=True, open_high=True)


RNN_CLIP = 1.0
"""The gradient-norm threshold advised for recurrent nets and transformers (:data:`RULES`
``"rnn_clip"``)."""
