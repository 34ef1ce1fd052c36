"""Advice before the first step: a starting LR, a range to sweep, a schedule with its warmup,
whether to clip, and param groups for fine-tuning, every piece with its reason and source.

``lrpilot.advise(task)`` reads what a :class:`~lrpilot.Task` holds (its model, optimizer,
loader's batch and dataset size, steps, clipping, accumulation); ``lrpilot.advise(model=...,
optimizer="adam", batch_size=64, steps=10_000, finetune=True)`` works from what is known
without one. The rules are those of :mod:`lrpilot.rules`; where the user's history (the store
of :mod:`lrpilot.history`) holds runs of similar tasks, its recommendation replaces them and
the reasons say so. The result is plain data (:meth:`Advice.to_dict`); the lint findings of
:func:`lrpilot.lint.lint` come with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import _validate as check
from . import rules
from .advice import PRIOR_LRS
from .errors import ConfigError
from .lint import Finding, build_quietly, has_frozen, lint
from .rules import Reason, reason
from .task import Task, _dataset_size, loader_batch_size

__all__ = ["Advice", "ParamGroup", "advise", "finetune_groups", "HISTORY_MIN_CONFIDENCE"]

HISTORY_MIN_CONFIDENCE = 0.3
"""The history's recommendation replaces the rules' LR when its confidence is at least this."""

LARGE_MODEL_PARAMETERS = 200_000_000
"""Fine-tuning a model this large takes ELECTRA-large's LR (5e-5) rather than base's (1e-4)."""

DEEP_STACK = 12
"""Stacks deeper than this take ELECTRA-large's layer decay (0.9) rather than base's (0.8)."""

_KNOWN = (
    "model",
    "optimizer",
    "batch_size",
    "dataset_size",
    "steps",
    "finetune",
    "devices",
    "accumulation_steps",
    "base_lr",
    "base_batch",
    "lr",
    "head",
    "layer_decay",
    "lora",
    "grad_clip",
    "beta2",
    "train_loader",
    "val_loader",
    "history",
)


@dataclass(frozen=True)
class ParamGroup:
    """One param group of the advice: a name, its LR, and the names of its parameters (as in
    ``model.named_parameters()``)."""

    name: str
    lr: float
    params: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The group as plain data."""
        return {"name": self.name, "lr": self.lr, "params": list(self.params)}


@dataclass
class Advice:
    """What lrpilot advises before any step runs.

    Attributes:
        lr: the starting peak LR (for fine-tuning, the new head's).
        range: ``(low, high)`` to sweep or search.
        schedule: a spec :func:`lrpilot.parse_schedule` accepts, warmup included.
        warmup_steps: the warmup's length in steps (0: none; ``None``: a share of a run whose
            length is not known, which the schedule's spec gives, ``warmup(0.05)``, laid out
            when it is attached with ``total_steps``).
        clip: the gradient-norm threshold to clip at, or ``False``.
        family: the optimizer family the advice is for.
        effective_batch: samples per optimizer step (all devices and micro-batches), if known.
        steps: the run's length, if known.
        finetune: whether the advice is for fine-tuning a pretrained model.
        param_groups: for fine-tuning, one group per depth (layer-wise decay) and one for the
            new head; frozen parameters are in none. Empty otherwise.
        reasons: why, each with its source.
        findings: what lint found (:class:`lrpilot.lint.Finding`).
        history: the history's recommendation as plain data, when one was asked for.
        assumed: what was assumed where nothing was said, by fact, in words.
    """

    lr: float
    range: tuple[float, float]
    schedule: str
    warmup_steps: int | None
    clip: bool | float
    family: str
    effective_batch: int | None = None
    steps: int | None = None
    finetune: bool = False
    param_groups: list[ParamGroup] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    history: dict[str, Any] | None = None
    assumed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain, JSON-ready data."""
        return {
            "lr": self.lr,
            "range": list(self.range),
            "schedule": self.schedule,
            "warmup_steps": self.warmup_steps,
            "clip": self.clip,
            "family": self.family,
            "effective_batch": self.effective_batch,
            "steps": self.steps,
            "finetune": self.finetune,
            "param_groups": [g.to_dict() for g in self.param_groups],
            "reasons": [r.to_dict() for r in self.reasons],
            "findings": [f.to_dict() for f in self.findings],
            "history": self.history,
            "assumed": dict(self.assumed),
        }

    def torch_param_groups(
        self, model: nn.Module, lr: float | None = None
    ) -> list[dict[str, Any]]:
        """The param groups as a torch optimizer takes them, for ``model``'s parameters.

        ``lr`` scales every group by ``lr / self.lr`` (their ratios kept), so an
        ``optimizer_fn=lambda model, lr: AdamW(advice.torch_param_groups(model, lr))`` runs
        the advice at whatever peak LR a range test or search tries.
        """
        if not self.param_groups:
            raise ConfigError("This advice has no param groups (they come with finetune=True).")
        factor = (
            1.0
            if lr is None
            else check.real("lr", lr, 0.0, open_low=True, open_high=True) / self.lr
        )
        named = dict(model.named_parameters())
        missing = [n for g in self.param_groups for n in g.params if n not in named]
        if missing:
            raise ConfigError(
                f"The model has no parameter {missing[0]!r} of the advice's groups: pass the "
                "model the advice was made for."
            )
        return [
            {"params": [named[n] for n in g.params], "lr": g.lr * factor, "name": g.name}
            for g in self.param_groups
        ]


# --------------------------------------------------------------------------------------------
# What is known
# --------------------------------------------------------------------------------------------


@dataclass
class _Known:
    model: nn.Module | None = None
    optimizer: Any = None
    family: str = "adam"
    batch_size: int | None = None
    devices: int = 1
    accumulation_steps: int = 1
    dataset_size: int | None = None
    steps: int | None = None
    finetune: bool = False
    grad_clip: float | None = None
    beta2: float | None = None
    task: Task | None = None
    live_optimizer: Any = None
    assumed: dict[str, str] = field(default_factory=dict)

    @property
    def effective_batch(self) -> int | None:
        if self.batch_size is None:
            return None
        return rules.effective_batch(self.batch_size, self.devices, self.accumulation_steps)

    @property
    def parameters(self) -> int | None:
        return None if self.model is None else sum(p.numel() for p in self.model.parameters())


def _split_objects(task_or_objects: Any) -> dict[str, Any]:
    """A Task, a model, an optimizer, or a tuple of them, as known facts."""
    if task_or_objects is None:
        return {}
    if isinstance(task_or_objects, Task):
        return {"task": task_or_objects}
    items = task_or_objects if isinstance(task_or_objects, (tuple, list)) else [task_or_objects]
    out: dict[str, Any] = {}
    for item in items:
        if isinstance(item, nn.Module):
            out["model"] = item
        elif isinstance(item, torch.optim.Optimizer) or hasattr(item, "param_groups"):
            out["optimizer"] = item
        else:
            raise check.ArgError(
                "task_or_objects",
                item,
                "an lrpilot.Task, a model, an optimizer, or a tuple of them",
            )
    return out


def _gather(task_or_objects: Any, known: dict[str, Any]) -> _Known:
    unknown = sorted(set(known) - set(_KNOWN))
    if unknown:
        raise ConfigError(
            f"advise() got unknown fact(s) {unknown}; it knows: {', '.join(_KNOWN)}."
        )
    facts = {**_split_objects(task_or_objects), **{k: v for k, v in known.items()}}
    task: Task | None = facts.get("task")
    out = _Known(task=task)
    given = facts.get("optimizer")
    if given is not None and not isinstance(given, (str, type)):
        facts["live_optimizer"] = given  # its LR is the user's: linted
    if task is not None:
        model, optimizer = build_quietly(task)
        facts.setdefault("model", model)
        facts.setdefault("optimizer", optimizer)
        facts.setdefault("steps", task.steps)
        facts.setdefault("accumulation_steps", task.accumulation_steps)
        facts.setdefault("grad_clip", task.grad_clip)
        facts.setdefault("train_loader", task.train_loader)
    loader = facts.get("train_loader")
    if facts.get("batch_size") is None and loader is not None:
        facts["batch_size"] = loader_batch_size(loader)
    if facts.get("dataset_size") is None and loader is not None:
        facts["dataset_size"] = _dataset_size(loader)
    _fill(out, facts)
    return out


def _fill(out: _Known, facts: dict[str, Any]) -> None:
    model = facts.get("model")
    if model is not None and not isinstance(model, nn.Module):
        raise check.ArgError("model", model, "an nn.Module")
    out.model = model
    out.optimizer = facts.get("optimizer")
    if facts.get("live_optimizer") is not None:
        out.live_optimizer = facts["live_optimizer"]
    if out.optimizer is None:
        out.assumed["optimizer"] = "the Adam family (not told): pass optimizer='sgd' or one"
    else:
        out.family = rules.family_of(out.optimizer)
    for name in ("batch_size", "dataset_size", "steps"):
        if facts.get(name) is not None:
            setattr(out, name, check.whole(name, facts[name], 1))
    out.devices = check.whole("devices", facts.get("devices", 1), 1)
    out.accumulation_steps = check.whole(
        "accumulation_steps", facts.get("accumulation_steps", 1), 1
    )
    out.grad_clip = check.optional_real("grad_clip", facts.get("grad_clip"), 0, open_low=True)
    finetune = facts.get("finetune")
    if finetune is None:
        out.finetune = model is not None and has_frozen(model)
        if out.finetune:
            out.assumed["finetune"] = "fine-tuning, since some parameters are frozen"
    else:
        out.finetune = check.boolean("finetune", finetune)
    out.beta2 = _beta2(facts.get("beta2"), out.optimizer)
    if out.batch_size is None:
        out.assumed["batch_size"] = "unknown: no batch-size scaling applied"


def _beta2(given: Any, optimizer: Any) -> float | None:
    if given is not None:
        return check.real("beta2", given, 0.0, 1.0, open_high=True)
    groups = getattr(optimizer, "param_groups", None) or []
    betas = groups[0].get("betas") if groups else None
    if isinstance(betas, (tuple, list)) and len(betas) == 2:
        return float(betas[1])
    return None


# --------------------------------------------------------------------------------------------
# The advisor
# --------------------------------------------------------------------------------------------


def advise(task_or_objects: Any = None, **known: Any) -> Advice:
    """Advice for a run before any step: LR, range, schedule, warmup, clipping, param groups.

    Args:
        task_or_objects: an :class:`~lrpilot.Task`, a model, an optimizer, a tuple of them,
            or ``None``.
        **known: facts that override or complete it: ``model``, ``optimizer`` (an instance,
            a class or a family name), ``batch_size`` (per device), ``devices``,
            ``accumulation_steps``, ``dataset_size``, ``steps``, ``finetune``, ``base_lr``
            and ``base_batch`` (an LR known to work at another batch: rescaled; with
            ``lora``, the full fine-tuning LR, of which LoRA's is 10x), ``lr`` (an LR
            you mean to use: linted), ``head`` (the new head's module name(s) for
            fine-tuning), ``layer_decay``, ``lora`` (fine-tuning with adapters named
            ``lora_A``/``lora_B``, PEFT's names), ``grad_clip``, ``beta2``,
            ``train_loader``, ``val_loader``, ``history`` (``False`` to ignore it; a
            :class:`~lrpilot.history.History` or URL to read another store).

    Raises:
        ConfigError: an unknown fact, or a fact of the wrong type or range.
    """
    facts = _gather(task_or_objects, known)
    if known.get("lr") is not None:  # an LR the user means to use: linted, so a real one
        check.real("lr", known["lr"], 0.0, open_low=True, open_high=True)
    reasons: list[Reason] = []
    lora = _lora(facts, known, reasons)
    lr = _start_lr(facts, known, reasons)
    if lora:
        full = lr
        lr = rules.lora_lr(lr, facts.steps)
        reasons.append(
            reason(
                "lora_lr",
                f"LoRA: {lr:.3g}, {lr / full:.3g}x the full fine-tuning LR; with LoRA+ run the "
                f"B matrices at {rules.LORAPLUS_RATIO:g}x the A matrices (Hayou et al. 2024).",
            )
        )
    span = (lr / 10, lr * 10)
    span_reason: Reason | None = reason(
        "family_range", f"sweep {span[0]:.2g}-{span[1]:.2g}: a decade either side of the start."
    )
    recommendation = _from_history(facts, known)
    if recommendation is not None:
        used = (
            recommendation.get("lr") is not None
            and recommendation["confidence"] >= HISTORY_MIN_CONFIDENCE
        )
        if used:
            rules_lr, lr = lr, float(recommendation["lr"])
            span = (float(recommendation["low"]), float(recommendation["high"]))
            text = (
                f"{recommendation['reason']} It replaces the rules' start {rules_lr:.3g}; "
                f"sweep {span[0]:.2g}-{span[1]:.2g} (confidence "
                f"{recommendation['confidence']:.2f})."
            )
        else:
            text = (
                f"{recommendation['reason']} Confidence {recommendation['confidence']:.2f} is "
                f"below {HISTORY_MIN_CONFIDENCE}: the rules' LR is kept."
                if recommendation.get("lr") is not None
                else recommendation["reason"]
            )
        reasons.append(Reason(text, recommendation["source"], "history"))
        if used:
            span_reason = None
    if span_reason is not None:
        reasons.append(span_reason)
    warmup = _warmup(facts, reasons)
    schedule = _schedule(facts, warmup, reasons)
    warmup_steps = None if isinstance(warmup, float) else warmup
    clip = _clip(facts, reasons)
    groups = _groups(facts, lr, known, reasons, lora=lora)
    return Advice(
        lr=lr,
        range=span,
        schedule=schedule,
        warmup_steps=warmup_steps,
        clip=clip,
        family=facts.family,
        effective_batch=facts.effective_batch,
        steps=facts.steps,
        finetune=facts.finetune,
        param_groups=groups,
        reasons=reasons,
        findings=_findings(facts, known, schedule),
        history=recommendation,
        assumed=facts.assumed,
    )


def _start_lr(facts: _Known, known: dict[str, Any], reasons: list[Reason]) -> float:
    """The rules' starting LR: a known LR rescaled to this batch, the fine-tuning LR, or the
    family's default (scaled up for batches above the reference)."""
    batch = facts.effective_batch
    if known.get("base_lr") is not None:
        if known.get("base_batch") is None or batch is None:
            raise ConfigError("base_lr needs base_batch and the batch size (batch_size=...).")
        lr = rules.scale_lr(known["base_lr"], known["base_batch"], batch, facts.family)
        rule = "scale_lr_" + rules.scaling_rule(facts.family)
        reasons.append(
            reason(
                rule,
                f"{known['base_lr']:g} at batch {known['base_batch']} -> {lr:.3g} at "
                f"batch {batch} ({rules.RULES[rule].formula}).",
            )
        )
        return lr
    if facts.finetune:
        return _finetune_lr(facts, reasons)
    lr = _family_start(facts.family, reasons)
    if batch is not None and batch > rules.REFERENCE_BATCH:
        try:
            scaled = rules.scale_lr(lr, rules.REFERENCE_BATCH, batch, facts.family)
        except ConfigError:
            return lr
        rule = "scale_lr_" + rules.scaling_rule(facts.family)
        reasons.append(
            reason(
                rule,
                f"effective batch {batch} > {rules.REFERENCE_BATCH}: {lr:g} -> "
                f"{scaled:.3g} ({rules.RULES[rule].formula}); the default is taken to hold "
                f"at {rules.REFERENCE_BATCH} (lrpilot's assumption).",
            )
        )
        if batch > rules.LINEAR_SCALING_LIMIT:
            reasons.append(
                reason(
                    rule,
                    f"batch {batch} is past ~{rules.LINEAR_SCALING_LIMIT}, where "
                    "linear scaling was seen to hold: measure with a range test.",
                )
            )
        lr = scaled
    return lr


def _family_start(family: str, reasons: list[Reason]) -> float:
    """The family's plain default LR where it has one (Adam's, SGD's), else the middle of
    its usual range, each with the source that says so (not a default it does not have)."""
    if family in PRIOR_LRS:
        lr = PRIOR_LRS[family]
        reasons.append(reason("prior_lr", f"{lr:g}: the plain default of the {family} family."))
        return lr
    lr = _range_centre(family)
    if family in rules.FAMILY_RANGES:
        low, high = rules.FAMILY_RANGES[family]
        text = (
            f"{lr:.3g}: the middle (in log) of the {family} family's usual range "
            f"{low:g}-{high:g}; it has no common default."
        )
    else:
        text = (
            f"{lr:.3g}: no usual LR is known for the {family} family; the middle of the Adam "
            "family's range stands in, a guess to check with a range test."
        )
    reasons.append(reason("family_range", text))
    return lr


def _range_centre(family: str) -> float:
    low, high = rules.FAMILY_RANGES.get(family, (1e-4, 1e-2))
    return math.sqrt(low * high)


def _finetune_lr(facts: _Known, reasons: list[Reason]) -> float:
    size = "large" if (facts.parameters or 0) >= LARGE_MODEL_PARAMETERS else "base"
    table = rules.FINETUNE_LRS.get(facts.family)
    lr = table[size] if table else _range_centre(facts.family) / 10
    reasons.append(
        reason(
            "finetune_lr",
            f"{lr:g} for fine-tuning a {size}-size model with the "
            f"{facts.family} family (pretrained layers want a smaller LR).",
        )
    )
    return lr


LARGE_BATCH_WARMUP_SHARE = 0.05
"""The warmup of a large batch, as a share of the run, where no dataset size says what five
epochs are (lrpilot's choice: half the playbook's 10 % cap)."""


def _warmup(facts: _Known, reasons: list[Reason]) -> int | float:
    """The warmup in steps, or as a share of the run (a float) where its length is not known
    and the rule is a share of it."""
    batch = facts.effective_batch
    if facts.family == "adam":
        beta2 = facts.beta2 if facts.beta2 is not None else 0.999
        steps = rules.adam_warmup_steps(beta2, facts.steps)
        cap = f", at most 10 % of {facts.steps} steps" if facts.steps is not None else ""
        reasons.append(
            reason(
                "adam_warmup", f"warm up {steps} steps: 2 / (1 - beta2) with beta2 {beta2:g}{cap}."
            )
        )
        _say_uncapped(facts, steps)
        return steps
    if batch is not None and batch >= rules.LARGE_BATCH:
        if facts.dataset_size is not None:
            per_epoch = rules.steps_per_epoch(facts.dataset_size, batch)
            steps = rules.sgd_warmup_steps(per_epoch, facts.steps)
            cap = ", at most 10 % of the run" if facts.steps is not None else ""
            reasons.append(
                reason(
                    "sgd_warmup",
                    f"warm up {steps} steps: batch {batch} is large; 5 epochs "
                    f"of {per_epoch} steps{cap}.",
                )
            )
            _say_uncapped(facts, steps)
        elif facts.steps:  # rounded as the spec warmup(0.05) rounds it, never to 0
            steps = max(1, math.floor(LARGE_BATCH_WARMUP_SHARE * facts.steps + 0.5))
            reasons.append(
                reason(
                    "large_batch_warmup",
                    f"warm up {steps} steps (5 % of the run, lrpilot's "
                    f"choice without a dataset size): batch {batch} is large.",
                )
            )
        else:
            reasons.append(
                reason(
                    "large_batch_warmup",
                    "warm up 5 % of the run (lrpilot's choice without a dataset size; the "
                    "run's length is not known, so the spec gives the share: warmup(0.05), "
                    f"laid out when attached with total_steps): batch {batch} is large.",
                )
            )
            return LARGE_BATCH_WARMUP_SHARE
        return steps
    return 0


def _say_uncapped(facts: _Known, steps: int) -> None:
    """Where the run's length is not known, say in ``assumed`` that a warmup of ``steps`` was
    not cut to the playbook's 10 % of it."""
    if facts.steps is None:
        facts.assumed["warmup"] = (
            f"{steps} steps, uncapped: the run's length is not known; for a run shorter "
            f"than {10 * steps} steps give steps=N, and the warmup is cut to 10 % of it"
        )


def _schedule(facts: _Known, warmup: int | float, reasons: list[Reason]) -> str:
    if facts.steps is None:
        facts.assumed["steps"] = "unknown: a constant LR; give steps=N for a decaying schedule"
        body = "constant"
    else:
        body = "cosine"
        reasons.append(reason("decay_long_runs", f"decay by cosine over the {facts.steps} steps."))
    return f"warmup({warmup})+{body}" if warmup else body


def _recurrent_or_attention(model: nn.Module) -> list[str]:
    """The recurrent and attention layers' class names: torch's own, and any module whose
    class is named ``...Attention`` (Hugging Face's ``BertSelfAttention``, ``GPT2Attention``,
    ``LlamaAttention`` and kin subclass nothing of torch's)."""
    kinds = (nn.RNNBase, nn.MultiheadAttention, nn.TransformerEncoderLayer)
    return sorted(
        {
            type(m).__name__
            for m in model.modules()
            if isinstance(m, kinds) or type(m).__name__.endswith("Attention")
        }
    )


def _clip(facts: _Known, reasons: list[Reason]) -> bool | float:
    if facts.grad_clip is not None:
        reasons.append(
            Reason(f"clip at {facts.grad_clip:g}, as the recipe does.", "the recipe", "rnn_clip")
        )
        return facts.grad_clip
    kinds = _recurrent_or_attention(facts.model) if facts.model is not None else []
    if not kinds:
        return False
    reasons.append(
        reason(
            "rnn_clip",
            f"clip the gradient norm at {rules.RNN_CLIP:g}: the model has "
            f"{', '.join(kinds)} layers.",
        )
    )
    return rules.RNN_CLIP


def _groups(
    facts: _Known, lr: float, known: dict[str, Any], reasons: list[Reason], *, lora: bool
) -> list[ParamGroup]:
    """The param groups: LoRA's where its rules apply (``lora``, from :func:`_lora`: a model
    with adapters), else fine-tuning's by depth, else none."""
    model = facts.model
    if lora and model is not None:
        if known.get("head") is not None:
            _head_names(model, known["head"])  # checked, as without LoRA
        if known.get("layer_decay") is not None:
            check.real("layer_decay", known["layer_decay"], 0.0, 1.0, open_low=True)
        if known.get("head") is not None or known.get("layer_decay") is not None:
            facts.assumed["lora"] = "head= and layer_decay= are not used: LoRA's one LR"
        return _lora_groups(model, lr, reasons)
    if not facts.finetune or facts.model is None:
        return []
    head = known.get("head")
    decay = known.get("layer_decay")
    groups, used_head, used_decay = finetune_groups(facts.model, lr, head=head, decay=decay)
    tied = _tied_head(facts.model) if head is None else None
    if tied is not None:
        last, earlier = (facts.model.get_submodule(n) for n in tied)
        shared = {id(p) for p in earlier.parameters()}
        frozen = all(not p.requires_grad for p in last.parameters() if id(p) in shared)
        where = "is frozen, in no group" if frozen else f"trains in {tied[1]}'s group"
        facts.assumed["head"] = (
            f"none: {tied[0]} shares a weight with {tied[1]} (tied), so it is pretrained, not "
            f"new; the shared weight {where}, and the top depth trains at the LR: "
            "pass head='name' for a new head"
        )
    elif head is None:
        facts.assumed["head"] = (
            f"the new head is {', '.join(used_head) or 'absent'} (the last child module with "
            "trainable parameters): pass head='name' to say which"
        )
    depth = len(groups) - (1 if used_head else 0)
    where = (
        f"below the head at {lr:.3g}" if used_head else f"the top one at {lr:.3g} (no new head)"
    )
    reasons.append(
        reason(
            "layer_decay",
            f"layer-wise decay {used_decay:g} over {depth} pretrained depth(s), {where}; "
            "frozen parameters left out.",
        )
    )
    return groups


_LORA_A = re.compile(r"lora_(embedding_)?a(\.|$)")
_LORA_B = re.compile(r"lora_(embedding_)?b(\.|$)")
"""PEFT's adapter names, lower-cased: ``lora_A.default.weight``, ``lora_embedding_A.default``."""


def _adapters(model: nn.Module, pattern: re.Pattern[str]) -> tuple[str, ...]:
    """The trainable parameters whose name, lower-cased, matches ``pattern``."""
    return tuple(
        n for n, p in model.named_parameters() if p.requires_grad and pattern.search(n.lower())
    )


def _lora(facts: _Known, known: dict[str, Any], reasons: list[Reason]) -> bool:
    """Whether the LoRA rules apply: ``lora=True`` is fine-tuning (set so), and, with a model
    given, one that holds adapters; without any, the advice is full fine-tuning's, said so."""
    if not known.get("lora"):
        return False
    if not facts.finetune:
        facts.finetune = True
        facts.assumed["finetune"] = "fine-tuning: LoRA adapts a pretrained model"
    model = facts.model
    if model is not None and not (_adapters(model, _LORA_A) or _adapters(model, _LORA_B)):
        reasons.append(
            reason(
                "lora_lr",
                "lora=True, but no trainable parameter is named lora_A or lora_B (PEFT's "
                "names): the advice is full fine-tuning's.",
            )
        )
        return False
    return True


def _lora_groups(model: nn.Module, lr: float, reasons: list[Reason]) -> list[ParamGroup]:
    """LoRA's groups: every adapter at the one LoRA LR, A and B apart so that LoRA+'s ratio
    is one multiplication away, and any other trainable parameter (a new head) at the same
    LR. No layer-wise decay: the adapters are new, not pretrained weights, and the LoRA rule
    is one LR for all of them, nearly independent of the rank."""
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    a, b = _adapters(model, _LORA_A), _adapters(model, _LORA_B)
    rest = tuple(n for n in trainable if n not in a and n not in b)
    groups = [
        ParamGroup(name, lr, names)
        for name, names in (("lora_A", a), ("lora_B", b), ("other", rest))
        if names
    ]
    if a or b:
        reasons.append(
            reason(
                "lora_lr",
                f"LoRA groups: the adapters at {lr:.3g} with no layer-wise decay (they are "
                "new, not pretrained), A and B apart: for LoRA+ multiply lora_B's LR by "
                f"{rules.LORAPLUS_RATIO:g}"
                + (
                    f"; the other trainable parameters ({len(rest)}) at the same LR."
                    if rest
                    else "."
                ),
            )
        )
    return groups


# --------------------------------------------------------------------------------------------
# Fine-tuning param groups
# --------------------------------------------------------------------------------------------


def finetune_groups(
    model: nn.Module,
    lr: float,
    *,
    head: str | Iterable[str] | None = None,
    decay: float | None = None,
) -> tuple[list[ParamGroup], list[str], float]:
    """Param groups for fine-tuning ``model``: the new head at ``lr``, the pretrained body by
    depth at ``lr * decay**k`` (``k = 1`` for the block just below the head), frozen
    parameters in no group.

    The body's depth comes from its longest stack of blocks (a ``ModuleList`` or
    ``Sequential`` of modules with parameters, like a transformer's ``encoder.layer``):
    parameters before it (embeddings) are the bottom, each block one level, and parameters
    after it (a final norm, a pooler) the top. A body without such a stack takes its
    top-level children as levels.

    Returns:
        ``(groups, head names, decay)``: the groups (head last), the head's module names, and
        the decay used (by default ELECTRA's: 0.8 for 12 levels or fewer, else 0.9).
    """
    top = check.real("lr", lr, 0.0, open_low=True, open_high=True)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError("The model has no trainable parameters: nothing to fine-tune.")
    heads = _head_names(model, head)
    # by identity, not by name: a weight the head shares with an earlier module (a tied output
    # layer) is listed once, under the earlier module's name
    shared = {id(p) for h in heads for p in model.get_submodule(h).parameters()}
    in_head = [n for n, p in trainable if id(p) in shared]
    body = [n for n, p in trainable if id(p) not in shared]
    levels = _levels(model, body, heads)
    count = max(levels.values(), default=-1) + 1
    gamma = decay
    if gamma is None:
        gamma = rules.LAYER_DECAYS["electra-base" if count <= DEEP_STACK else "electra-large"]
    gamma = check.real("layer_decay", gamma, 0.0, 1.0, open_low=True)
    groups = []
    below = 0 if in_head else 1  # without a new head, the top depth trains at ``lr`` itself
    for level in range(count):
        names = tuple(n for n in body if levels[n] == level)
        if names:
            lr_level = top * gamma ** (count - level - below)
            groups.append(ParamGroup(_group_name(names, level), lr_level, names))
    if in_head:
        groups.append(ParamGroup("head", top, tuple(in_head)))
    return groups, heads, gamma


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _head_names(model: nn.Module, head: str | Iterable[str] | None) -> list[str]:
    if head is not None:
        names = [head] if isinstance(head, str) else list(head)
        modules = dict(model.named_modules())
        for name in names:
            if name not in modules or name == "":
                raise check.ArgError("head", head, "names of the model's modules")
        return names
    # the last child holding parameters, when it trains: counted among every child with
    # parameters, frozen ones included, so that a linear probe (a frozen backbone, one
    # trainable head) gets its head at the full LR rather than a decayed one
    with_params = [n for n, m in model.named_children() if any(True for _ in m.parameters())]
    if len(with_params) < 2 or _tied_head(model) is not None:
        return []
    last = model.get_submodule(with_params[-1])
    return with_params[-1:] if any(p.requires_grad for p in last.parameters()) else []


def _tied_head(model: nn.Module) -> tuple[str, str] | None:
    """``(last child, earlier child)`` when the last child with parameters shares a weight
    with an earlier child (a language model's output layer tied to its embedding, BERT's
    masked-LM head with its own transform and bias around the tied decoder): pretrained, not
    a new head."""
    children = [(n, m) for n, m in model.named_children() if any(True for _ in m.parameters())]
    if len(children) < 2:
        return None
    name, last = children[-1]
    own = {id(p) for p in last.parameters()}
    for earlier, module in children[:-1]:
        if own & {id(p) for p in module.parameters()}:
            return name, earlier
    return None


def _levels(model: nn.Module, body: list[str], heads: list[str]) -> dict[str, int]:
    """Each body parameter's depth level, bottom 0."""
    stack = _stack(model, set(body), heads)
    if stack is None:
        children = [n for n, _ in model.named_children() if not _under(n, heads)]
        rank = {}
        for name in body:
            first = name.split(".")[0]
            rank[name] = children.index(first) if first in children else 0
        order = sorted(set(rank.values()))
        return {n: order.index(r) for n, r in rank.items()}
    prefix, size = stack
    # each block's depth is its position in the stack (a Sequential built from an OrderedDict
    # names its blocks, so the name is not always the index)
    position = {n: i for i, (n, _) in enumerate(model.get_submodule(prefix).named_children())}
    levels: dict[str, int] = {}
    seen_stack = False
    for name in body:
        if name.startswith(prefix + "."):
            seen_stack = True
            levels[name] = position[name[len(prefix) + 1 :].split(".")[0]] + 1
        else:
            levels[name] = size + 1 if seen_stack else 0
    used = sorted(set(levels.values()))
    return {n: used.index(v) for n, v in levels.items()}


def _stack(model: nn.Module, body: set[str], heads: list[str]) -> tuple[str, int] | None:
    """The longest ``ModuleList``/``Sequential`` of blocks with parameters, all in the body:
    ``(its name, its length)``."""
    best: tuple[str, int] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)) or _under(name, heads):
            continue
        blocks = [c for c in module.children() if any(True for _ in c.parameters())]
        if len(blocks) < 2 or len(blocks) != len(module):
            continue
        own = {f"{name}.{n}" if name else n for n, _ in module.named_parameters()}
        if not own or not own <= body | _frozen_names(model):
            continue
        if name and (best is None or len(module) > best[1]):
            best = (name, len(module))
    return best


def _frozen_names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if not p.requires_grad}


def _group_name(names: tuple[str, ...], level: int) -> str:
    parts = [n.split(".")[:-1] for n in names]
    common: list[str] = []
    for segment in zip(*parts, strict=False):
        if len(set(segment)) != 1:
            break
        common.append(segment[0])
    return ".".join(common) if common else f"level {level}"


# --------------------------------------------------------------------------------------------
# History and lint
# --------------------------------------------------------------------------------------------


def _from_history(facts: _Known, known: dict[str, Any]) -> dict[str, Any] | None:
    """The history's recommendation as plain data, or ``None`` when history is off or
    unavailable (no store yet, SQLAlchemy not installed)."""
    choice = known.get("history", True)
    if choice is False:
        return None
    from . import history
    from .errors import MissingDependencyError

    if not history.enabled() and choice is True:
        return None
    if not isinstance(choice, (bool, str, history.History)):
        raise check.ArgError("history", choice, "True, False, a History or a store's URL or path")
    try:
        store = choice if isinstance(choice, history.History) else None
        url = history.checked_url(choice, "history") if isinstance(choice, str) else None
        if store is None and not history.exists(url):
            return None
        store = store or history.History(url)
        query = _query(facts)
        return store.recommend(query).to_dict()
    except MissingDependencyError:
        return None


def _query(facts: _Known) -> dict[str, Any]:
    if facts.task is not None:
        return facts.task.fingerprint()
    return {
        "family": facts.family,
        "model": type(facts.model).__name__ if facts.model is not None else None,
        "parameters": facts.parameters,
        "batch_size": facts.effective_batch,
        "steps": facts.steps,
    }


LONG_ENOUGH = 10**7
"""The run length an advised schedule is laid out over for lint when the run's is not known
and its warmup does not fit lint's own assumption of 1,000 steps (Adam's 2,000)."""


def _lint_view(spec: str, steps: int | None) -> Any:
    """The advised schedule as lint should read it: the spec, laid out over the run's steps
    when known, else over the 1,000 steps lint assumes (a warmup given as a share fits); a
    warmup of more steps than that (Adam's 2,000) is read as the schedule of a run long enough
    to hold it, so that lint sees the warmup the advice gives."""
    if steps is not None:
        return spec
    from lrpilot.schedules import parse_schedule

    try:
        parse_schedule(spec, total_steps=1000)
    except ValueError:
        return parse_schedule(spec, total_steps=LONG_ENOUGH)
    return spec


def _findings(facts: _Known, known: dict[str, Any], advised: str) -> list[Finding]:
    """The lint of what is known. The schedule linted is the recipe's own when it has one,
    else the ``advised`` one when the run's length is known (its spec is laid out over it):
    with none given lint would assume a constant LR and tell the user to add the very warmup
    and decay this advice gives. The optimizer is the live one,
    else the name or class given, so that an ``lr`` passed with ``optimizer="adam"`` is
    checked against its family's range too."""
    if facts.task is None and facts.model is None:
        return []
    own = known.get("schedule") or (facts.task.schedule if facts.task is not None else None)
    optimizer = facts.live_optimizer if facts.live_optimizer is not None else facts.optimizer
    return lint(
        facts.task,
        model=facts.model,
        optimizer=optimizer,
        schedule=_lint_view(advised, facts.steps) if own is None else None,
        train_loader=known.get("train_loader"),
        val_loader=known.get("val_loader"),
        lr=known.get("lr"),
        steps=facts.steps,
        grad_clip=facts.grad_clip,
        batch_size=facts.batch_size,
        devices=facts.devices,
        accumulation_steps=facts.accumulation_steps,
    )
