"""Checks of a recipe before it trains: each finding says what was measured and what to do.

``lint(task)`` (or ``lint(model=..., optimizer=..., train_loader=..., ...)`` for live objects)
looks for what the usual guides warn about: inputs that are not normalized (measured on a few
training batches), no validation data, a recurrent net trained without gradient clipping, an
LR outside its optimizer family's usual range, a batch large enough to need a warmup that the
schedule lacks, and a long run whose schedule never decays. It reads; it never trains, and the
loaders, model and RNG states are as before the call.

Findings of severity ``"warning"`` are the serious ones: :func:`warn_serious` turns them into
Python warnings of the category :class:`LintWarning` (what ``find_lr`` and ``train`` call);
``"info"`` findings are for ``lrpilot advise`` to print.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from . import _validate as check
from . import rules
from ._rng import generators_of, isolated_rng
from ._state import inner_optimizer, loader_parts
from ._step import own_iterators
from .errors import ConfigError
from .task import Task, loader_batch_size

__all__ = [
    "Finding",
    "LintWarning",
    "lint",
    "warn_serious",
    "SEVERITIES",
    "LONG_RUN_STEPS",
    "LINT_BATCHES",
]

SEVERITIES = ("info", "warning")
"""From least to most serious; ``"warning"`` findings are raised as :class:`LintWarning`."""

LONG_RUN_STEPS = 1000
"""A run at least this long should decay its LR (lrpilot's threshold: the cliffs of
DESIGN.md's constant-LR runs appeared at 2,000-3,000 steps)."""

LINT_BATCHES = 3
"""Training batches the input statistics are measured on."""

NORMAL_MEAN = 1.0
NORMAL_STD = (0.1, 3.0)
"""Float inputs whose mean is within ``NORMAL_MEAN`` of 0 and whose std is within this
interval count as normalized; ten times further out is a ``"warning"``."""

FEATURE_SCALE_RATIO = 100.0
"""Columns of tabular inputs whose stds differ by more than this factor are on different
scales (a warning: the largest dominates the first layer)."""


class LintWarning(UserWarning):
    """A serious lint finding, raised by :func:`warn_serious` before a range test or a run."""


@dataclass(frozen=True)
class Finding:
    """One thing lint found.

    Attributes:
        code: a short stable name (``"inputs-not-normalized"``, ``"rnn-without-clipping"``).
        severity: ``"warning"`` (serious: raised as a :class:`LintWarning`) or ``"info"``.
        message: what was measured, in one sentence with the numbers.
        advice: what to do about it.
        measured: the numbers behind the message, as plain data.
    """

    code: str
    severity: str
    message: str
    advice: str
    measured: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The finding as plain data."""
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.severity}: {self.message} {self.advice}"


def warn_serious(findings: Iterable[Finding], stacklevel: int = 1) -> list[Finding]:
    """Emit one :class:`LintWarning` per ``"warning"`` finding; return those findings.

    ``stacklevel`` counts from the caller of this function, as for :func:`warnings.warn`.
    """
    serious = [f for f in findings if f.severity == "warning"]
    for finding in serious:
        warnings.warn(f"{finding.message} {finding.advice}", LintWarning, stacklevel + 1)
    return serious


def lint(
    task: Task | None = None,
    *,
    model: nn.Module | None = None,
    optimizer: Any = None,
    train_loader: Iterable[Any] | None = None,
    val_loader: Iterable[Any] | None = None,
    lr: float | None = None,
    steps: int | None = None,
    schedule: Any = None,
    grad_clip: float | None = None,
    batch_size: int | None = None,
    devices: int = 1,
    accumulation_steps: int | None = None,
    batches: int = LINT_BATCHES,
) -> list[Finding]:
    """Check a recipe before training; the findings, most serious first.

    Give a :class:`~lrpilot.Task` (its model is built once, with every RNG put back), or the
    live objects; keyword arguments override what the task holds. Checks that lack what they
    need (no loader, no LR) are skipped.

    Args:
        task: the recipe.
        model, optimizer, train_loader, val_loader: live objects (or to override the task's).
        lr: the peak LR the run will use (default: the optimizer's largest group LR for a live
            optimizer; none for a task, whose LR is free).
        steps, schedule, grad_clip: the run's length, schedule (spec, schedule or callable)
            and gradient clipping (default: the task's).
        batch_size: the per-device batch (default: the loader's ``batch_size``).
        devices: data-parallel devices (the effective batch counts them).
        accumulation_steps: micro-batches per optimizer step (default: the task's, or 1).
        batches: training batches to measure the inputs on.
    """
    for name, value, low in (("batch_size", batch_size, 1), ("steps", steps, 1)):
        if value is not None:
            check.whole(name, value, low)
    check.whole("devices", devices, 1)
    if accumulation_steps is not None:
        check.whole("accumulation_steps", accumulation_steps, 1)
    ctx = _Context.gather(
        task,
        model=model,
        optimizer=optimizer,
        train_loader=train_loader,
        val_loader=val_loader,
        lr=lr,
        steps=steps,
        schedule=schedule,
        grad_clip=grad_clip,
        batch_size=batch_size,
        devices=devices,
        accumulation_steps=accumulation_steps,
    )
    count = check.whole("batches", batches, 0)
    found: list[Finding] = []
    if ctx.train_loader is not None and count:
        found += check_inputs(ctx.train_loader, count)
    if task is not None or train_loader is not None:
        found += check_validation(ctx.val_loader)
    if ctx.model is not None:
        found += check_rnn_clipping(ctx.model, ctx.grad_clip)
    if ctx.lr is not None and ctx.family is not None:
        found += check_lr_range(ctx.lr, ctx.family, ctx.finetuning)
    known = ctx.schedule is not UNKNOWN_SCHEDULE
    if ctx.effective_batch is not None and known:
        found += check_large_batch(ctx.effective_batch, ctx.schedule, ctx.steps)
    if ctx.steps is not None and known:
        found += check_decay(ctx.steps, ctx.schedule)
        found += check_schedule_ends_early(ctx.steps, ctx.schedule)
    return sorted(found, key=lambda f: -SEVERITIES.index(f.severity))


# --------------------------------------------------------------------------------------------
# What is known about the recipe
# --------------------------------------------------------------------------------------------


@dataclass
class _Context:
    model: nn.Module | None
    family: str | None
    lr: float | None
    train_loader: Iterable[Any] | None
    val_loader: Iterable[Any] | None
    steps: int | None
    schedule: Any
    grad_clip: float | None
    effective_batch: int | None
    finetuning: bool

    @classmethod
    def gather(cls, task: Task | None, **given: Any) -> _Context:
        if task is not None and not isinstance(task, Task):
            raise check.ArgError("task", task, "an lrpilot.Task (or None, with live objects)")
        model, optimizer = given["model"], given["optimizer"]
        if task is not None and model is None:
            model, built = build_quietly(task)
            optimizer = optimizer if optimizer is not None else built
        elif task is not None and optimizer is None:
            optimizer = task.make_optimizer(model, 1e-3)  # its family, for the LR check
        lr = given["lr"]
        if lr is None and given["optimizer"] is not None:
            lr = _current_lr(given["optimizer"])
        lr = check.optional_real("lr", lr, 0.0, open_low=True)
        steps = given["steps"] if given["steps"] is not None else getattr(task, "steps", None)
        steps = None if steps is None else check.whole("steps", steps, 1)
        loader = (
            given["train_loader"]
            if given["train_loader"] is not None
            else (task.train_loader if task is not None else None)
        )
        accumulation = given["accumulation_steps"]
        if accumulation is None:
            accumulation = task.accumulation_steps if task is not None else 1
        batch = given["batch_size"] or loader_batch_size(loader)
        effective = (
            None if batch is None else rules.effective_batch(batch, given["devices"], accumulation)
        )
        return cls(
            model=model,
            family=_family(optimizer),
            lr=lr,
            train_loader=loader,
            val_loader=given["val_loader"]
            if given["val_loader"] is not None
            else (task.val_loader if task is not None else None),
            steps=steps,
            schedule=_schedule(task, given["schedule"], steps),
            grad_clip=given["grad_clip"]
            if given["grad_clip"] is not None
            else (task.grad_clip if task is not None else None),
            effective_batch=effective,
            finetuning=model is not None and has_frozen(model),
        )


def build_quietly(task: Task) -> tuple[nn.Module, torch.optim.Optimizer]:
    """One model and its optimizer from ``task``, built with every RNG put back (as
    :meth:`Task.fingerprint` does), so looking at a recipe changes nothing."""
    with isolated_rng(generators_of([task.train_loader, task.val_loader])):
        torch.manual_seed(0)
        model = task.model_fn()
        if not isinstance(model, nn.Module):
            raise check.ArgError("model_fn", task.model_fn, "a function returning an nn.Module")
        return model, task.make_optimizer(model, 1e-3)


def has_frozen(model: nn.Module) -> bool:
    """Whether some of ``model``'s parameters are frozen (``requires_grad=False``)."""
    return any(not p.requires_grad for p in model.parameters())


def _current_lr(optimizer: Any) -> float | None:
    groups = getattr(inner_optimizer(optimizer), "param_groups", None)
    if not groups:
        return None
    top = max(float(g.get("lr", 0.0)) for g in groups)
    return top if top > 0 else None


def _family(optimizer: Any) -> str | None:
    if optimizer is None:
        return None
    try:
        return rules.family_of(optimizer)
    except check.ArgError:
        return None


UNKNOWN_SCHEDULE = object()
"""A schedule lint cannot read (a torch scheduler that needs a metric): its checks skip."""


def _from_torch(scheduler: Any, steps: int | None) -> Any:
    """A live torch scheduler's multipliers, read from a copy (yours is not stepped);
    :data:`UNKNOWN_SCHEDULE` for one that follows a metric (``ReduceLROnPlateau``)."""
    from .schedules import from_scheduler

    try:
        return from_scheduler(scheduler, steps or 1000)
    except ConfigError:
        return UNKNOWN_SCHEDULE


def _schedule(task: Task | None, schedule: Any, steps: int | None) -> Any:
    """The run's schedule resolved to ``step -> multiplier`` (``None``: a constant LR;
    :data:`UNKNOWN_SCHEDULE` when it cannot be read)."""
    if isinstance(schedule, torch.optim.lr_scheduler.LRScheduler):
        return _from_torch(schedule, steps)
    if schedule is None:
        if task is None or task.schedule is None:
            return None
        return task.schedule_for(steps or 1000)
    if isinstance(schedule, str):
        from .schedules import parse_schedule

        return parse_schedule(schedule, total_steps=steps or 1000)
    return check.function("schedule", schedule, "a spec or a schedule (step -> multiplier)")


def _multipliers(schedule: Any, steps: int) -> list[float]:
    """The schedule's multiplier at up to 200 steps spread over the run (1.0 when constant)."""
    if schedule is None:
        return [1.0]
    at = sorted({round(i * (steps - 1) / 199) for i in range(200)}) if steps > 1 else [0]
    return [float(schedule(t)) for t in at]


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------


def check_inputs(loader: Iterable[Any], batches: int = LINT_BATCHES) -> list[Finding]:
    """Mean and std of the float inputs over the first ``batches`` batches; a finding when
    they are far from 0 and 1, or when tabular columns sit on very different scales.

    The loader is read through its own fresh iterator with every RNG put back; a one-shot
    iterator (which reading would consume) is not read.
    """
    if isinstance(loader, Iterator):  # calling iter() on a DataLoader would draw a seed
        return []
    inputs = _float_inputs(loader, batches)
    if not inputs:
        return []
    flat = torch.cat([x.detach().reshape(-1).double().cpu() for x in inputs])
    mean, std = float(flat.mean()), float(flat.std()) if flat.numel() > 1 else 0.0
    found = _scale_finding(mean, std, len(inputs))
    found += _column_finding(inputs)
    return found


def _float_inputs(loader: Iterable[Any], batches: int) -> list[torch.Tensor]:
    dataloaders = loader_parts(loader)[0]
    out: list[torch.Tensor] = []
    with isolated_rng(generators_of([loader])), own_iterators(dataloaders):
        for i, batch in enumerate(loader):
            out += [t for t in _inputs_of(batch) if t.is_floating_point() and t.numel()]
            if i + 1 >= batches:
                break
    return out


def _inputs_of(batch: Any) -> list[torch.Tensor]:
    """The input tensors of a batch: the first item of ``(inputs, targets)``, a bare tensor,
    or a dict's tensors other than its labels and masks (``attention_mask`` and kin)."""
    if isinstance(batch, torch.Tensor):
        return [batch]
    if isinstance(batch, (tuple, list)) and batch:
        first = batch[0]
        if isinstance(first, torch.Tensor):
            return [first]
        if isinstance(first, (tuple, list)):
            return [t for t in first if isinstance(t, torch.Tensor)]
        return []
    if isinstance(batch, dict):  # neither labels nor masks: a float attention_mask is 0/1
        return [
            v
            for k, v in batch.items()
            if isinstance(v, torch.Tensor) and not any(w in str(k) for w in ("label", "mask"))
        ]
    return []


def _scale_finding(mean: float, std: float, count: int) -> list[Finding]:
    low, high = NORMAL_STD
    if abs(mean) <= NORMAL_MEAN and low <= std <= high:
        return []
    far = abs(mean) > 10 * NORMAL_MEAN or std > 10 * high or std < low / 10
    return [
        Finding(
            code="inputs-not-normalized",
            severity="warning" if far else "info",
            message=(
                f"The float inputs of the first {count} training batch(es) have mean "
                f"{mean:.3g} and std {std:.3g}, far from 0 and 1."
            ),
            advice=(
                "Normalize them (subtract the training set's mean, divide by its std, per "
                "feature or channel): unnormalized inputs shift the best LR and make it "
                "unstable (LeCun et al. 1998, 'Efficient BackProp'; recalled)."
            ),
            measured={"mean": mean, "std": std, "batches": count},
        )
    ]


def _column_finding(inputs: Sequence[torch.Tensor]) -> list[Finding]:
    tables = [x for x in inputs if x.dim() == 2 and x.shape[1] > 1]
    if not tables or len({x.shape[1] for x in tables}) != 1:
        return []
    stds = torch.cat([x.detach().double().cpu() for x in tables]).std(dim=0)
    live = stds[stds > 0]
    if live.numel() < 2:
        return []
    ratio = float(live.max() / live.min())
    if ratio <= FEATURE_SCALE_RATIO:
        return []
    return [
        Finding(
            code="features-on-different-scales",
            severity="warning",
            message=(
                f"The input columns' stds range from {float(live.min()):.3g} to "
                f"{float(live.max()):.3g} (a factor of {ratio:.3g})."
            ),
            advice=(
                "Standardize each column (sklearn's StandardScaler, or (x - mean) / std per "
                "column): the widest column dominates the first layer's gradient."
            ),
            measured={"std_min": float(live.min()), "std_max": float(live.max())},
        )
    ]


def check_validation(val_loader: Iterable[Any] | None) -> list[Finding]:
    """A finding when there is no validation data."""
    if val_loader is not None:
        return []
    return [
        Finding(
            code="no-validation-data",
            severity="info",
            message="The recipe has no validation data (val_loader is None).",
            advice=(
                "Hold out a validation split: without it a run's metric is NaN, overfitting "
                "goes unseen, and search and tune cannot compare LRs."
            ),
        )
    ]


def check_rnn_clipping(model: nn.Module, grad_clip: float | None) -> list[Finding]:
    """A finding when a recurrent layer (RNN, LSTM, GRU) trains without gradient clipping."""
    recurrent = sorted({type(m).__name__ for m in model.modules() if isinstance(m, nn.RNNBase)})
    if not recurrent or grad_clip is not None:
        return []
    return [
        Finding(
            code="rnn-without-clipping",
            severity="warning",
            message=f"The model has recurrent layers ({', '.join(recurrent)}) and no clipping.",
            advice=(
                f"Clip the gradient norm (Task(grad_clip={rules.RNN_CLIP}) or "
                "torch.nn.utils.clip_grad_norm_): recurrent nets have exploding gradients "
                f"({rules.RULES['rnn_clip'].source})."
            ),
            measured={"layers": recurrent},
        )
    ]


def check_lr_range(lr: float, family: str, finetuning: bool = False) -> list[Finding]:
    """A finding when ``lr`` lies outside its family's usual range
    (:data:`lrpilot.rules.FAMILY_RANGES`): ``"warning"`` beyond 10x outside, else ``"info"``.
    A fine-tuning run (frozen parameters) is allowed ten times lower."""
    span = rules.FAMILY_RANGES.get(family)
    if span is None:
        return []
    low, high = span
    if finetuning:
        low /= 10
    if low <= lr <= high:
        return []
    off = low / lr if lr < low else lr / high
    where = "below" if lr < low else "above"
    return [
        Finding(
            code="lr-outside-family-range",
            severity="warning" if off > 10 else "info",
            message=(
                f"LR {lr:.3g} is {off:.3g}x {where} the usual range {low:g}-{high:g} of the "
                f"{family} family."
            ),
            advice=(
                "Check it with a range test (lrpilot.find_lr) or start from lrpilot.advise; "
                f"the range is a rule of thumb ({rules.RULES['family_range'].source})."
            ),
            measured={"lr": lr, "family": family, "range": [low, high]},
        )
    ]


def _has_warmup(schedule: Any, steps: int | None) -> bool:
    if schedule is None:
        return False
    values = _multipliers(schedule, max(10, (steps or 1000) // 10))
    return values[0] < 0.5 * max(values)


def check_large_batch(effective_batch: int, schedule: Any, steps: int | None) -> list[Finding]:
    """A finding when the effective batch is at least :data:`lrpilot.rules.LARGE_BATCH` and
    the schedule has no warmup."""
    if effective_batch < rules.LARGE_BATCH or _has_warmup(schedule, steps):
        return []
    return [
        Finding(
            code="large-batch-without-warmup",
            severity="warning",
            message=(
                f"The effective batch is {effective_batch} (>= {rules.LARGE_BATCH}) and the "
                "schedule does not warm up."
            ),
            advice=(
                "Warm up the LR (a spec such as 'warmup(0.05)+cosine'): large batches with "
                f"scaled-up LRs diverge early without it ({rules.RULES['sgd_warmup'].source})."
            ),
            measured={"effective_batch": effective_batch},
        )
    ]


DEAD_TAIL = 0.1
"""A schedule at (almost) zero over more than this share of the run's end ends too early."""


def check_schedule_ends_early(steps: int, schedule: Any) -> list[Finding]:
    """A finding when the schedule reaches zero (a millionth of its peak or less: a step decay
    to 1 % of the peak, ResNet's last phase, is not zero) with more than :data:`DEAD_TAIL` of
    the run still to go: those steps train at no LR. The usual cause is a
    schedule object built for another length (``cosine(steps=epochs)`` in a run counted in
    steps); a spec string is laid over the run and cannot do it."""
    values = _multipliers(schedule, steps)
    peak = max(values)
    if not (math.isfinite(peak) and peak > 0) or len(values) < 2:
        return []
    alive = [i for i, v in enumerate(values) if v > 1e-6 * peak]
    dead_share = 1.0 - (alive[-1] + 1) / len(values) if alive else 1.0
    if dead_share <= DEAD_TAIL:
        return []
    return [
        Finding(
            code="schedule-ends-early",
            severity="warning",
            message=(
                f"The schedule reaches zero with {dead_share:.0%} of the run's {steps} steps "
                "still to go: they train at an LR of 0."
            ),
            advice=(
                "Build the schedule for the run's length (a schedule object counts its own "
                "steps: cosine(steps=N) for a run of N optimizer steps, not epochs), or give "
                "a spec string such as 'warmup(0.05)+cosine', which is laid over the run."
            ),
            measured={"steps": steps, "dead_share": dead_share},
        )
    ]


def check_decay(steps: int, schedule: Any) -> list[Finding]:
    """A finding when a run of at least :data:`LONG_RUN_STEPS` steps never decays its LR (the
    last tenth of the run still at 90 % of the peak or more)."""
    if steps < LONG_RUN_STEPS:
        return []
    values = _multipliers(schedule, steps)
    peak = max(values)
    tail = values[-max(1, len(values) // 10) :]
    if not (math.isfinite(peak) and peak > 0) or min(tail) < 0.9 * peak:
        return []
    return [
        Finding(
            code="schedule-never-decays",
            severity="info",
            message=(
                f"The run is {steps} steps long and its LR never decays (the last tenth runs "
                f"at {min(tail) / peak:.0%} of the peak)."
            ),
            advice=(
                "Decay it ('warmup(0.05)+cosine', or 'wsd(decay=0.2)' for a "
                "warmup-stable-decay): a long constant-LR run ends noisier, and its best peak "
                "LR is lower "
                f"({rules.RULES['decay_long_runs'].source})."
            ),
            measured={"steps": steps, "tail_fraction": min(tail) / peak},
        )
    ]
