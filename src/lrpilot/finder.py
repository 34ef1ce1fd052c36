"""The LR range test: sweep the learning rate over a short run, record the loss, put
everything back, and suggest an LR for the real run.

The sweep is a transaction: model, optimizer and RNG state are snapshotted before the first
step and restored in a ``finally`` block, so the call leaves no trace even when it raises or
is interrupted. Nothing is written to disk.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from . import suggest
from .errors import ConfigError, DataError, LossError
from ._state import TrainingSnapshot, loader_generators
from ._step import (
    LossStep,
    check_optimizer_holds,
    check_scalar_loss,
    cycle,
    default_loss_step,
    evaluate_loss,
    model_device,
    move_to_device,
)
from . import _validate as check
from ._validate import is_count
from .advice import ADAM_FAMILY, prior_lr_for
from .task import Task

__all__ = ["find_lr", "find_lr_for_task", "LRFinderResult", "diagnose", "ADAM_FAMILY", "prior_lr_for"]

MAX_SKIPPED_STEPS = 20
"""AMP steps the grad scaler may skip in a row at one LR before the sweep counts it as
diverged (from the default scale of 2**16, 20 halvings reach 0.06)."""


@dataclass
class LRFinderResult:
    """What a range test measured and what it suggests.

    Attributes:
        lr: the suggested peak LR for the real run (the default rule's pick).
        lrs: the LR of each sweep step (of the param group with the largest LR).
        losses: the raw loss recorded at each step (mean over accumulated micro-batches and
            over ranks under DDP; validation loss in validation mode).
        ema_losses: the bias-corrected EMA of ``losses`` that decided when to stop (it lags:
            the rules read ``smooth_losses``).
        smooth_losses: the lag-free smooth of ``losses`` that the rules read
            (:func:`lrpilot.suggest.smooth`); what plots draw.
        candidates: every rule's pick, by rule name.
        band: ``(low, high)``, the range the suggestion moves in under resampled noise.
        bounds: Leslie Smith's ``(base_lr, max_lr)`` for cyclical and one-cycle schedules:
            where the loss starts to fall and where it stops falling.
        rule: the name of the rule that gave ``lr``.
        diverged: whether the sweep stopped on divergence before ``end_lr``.
        num_steps_run: sweep steps taken (optimizer steps; skipped AMP steps not counted).
        steps: the length of the real run the suggestion is for, if known.
        schedule: the real run's schedule as plain data (its spec, or
            :func:`lrpilot.schedules.to_dict`), if given.
        group_ratios: each param group's LR as a fraction of the swept LR.
        effective_batch_size: samples per optimizer step over all ranks and micro-batches.
        warnings: what makes this curve hard to trust, each with what to do about it.
    """

    lr: float
    lrs: list[float]
    losses: list[float]
    ema_losses: list[float]
    candidates: dict[str, float]
    band: tuple[float, float]
    bounds: tuple[float, float]
    rule: str = "pilot"
    diverged: bool = False
    num_steps_run: int = 0
    steps: int | None = None
    schedule: Any = None
    smooth_losses: list[float] = field(default_factory=list)
    group_ratios: list[float] = field(default_factory=list)
    effective_batch_size: int | None = None
    warnings: list[str] = field(default_factory=list)

    def group_lrs(self, lr: float | None = None) -> list[float]:
        """The LR of each param group for a peak ``lr`` (the suggestion by default)."""
        peak = self.lr if lr is None else lr
        return [peak * r for r in self.group_ratios]

    def apply(self, optimizer: torch.optim.Optimizer, lr: float | None = None) -> None:
        """Set ``optimizer``'s param groups to the suggestion, keeping their LR ratios."""
        for group, group_lr in zip(optimizer.param_groups, self.group_lrs(lr), strict=True):
            group["lr"] = group_lr

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain, JSON-ready data (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def plot(self, path: str | Path | None = None, *, title: str | None = None) -> Any:
        """Loss against LR on a log axis with the suggestion, its band and every rule's pick.

        Writes a PNG (or any format matplotlib knows from the suffix) when ``path`` is given;
        returns the matplotlib ``Figure``.
        """
        from .report import plot_range_test

        return plot_range_test(self, path, title=title)


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _schedule_data(schedule: Any, steps: int | None) -> Any:
    """The run's schedule as plain data: a spec as given, a schedule as its dict."""
    if schedule is None or isinstance(schedule, str):
        if isinstance(schedule, str):
            from .schedules import parse_schedule

            parse_schedule(schedule, total_steps=steps)  # a malformed spec fails before the sweep
        return schedule
    if not callable(schedule):
        raise check.ArgError("schedule", schedule, "a text spec or a schedule (step -> multiplier)")
    from .schedules import to_dict

    try:
        return to_dict(schedule)
    except ConfigError:
        return repr(schedule)


def find_lr(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    *,
    steps: int | None = None,
    schedule: Any = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: Literal["exp", "linear"] = "exp",
    rule: str | suggest.Rule = "pilot",
    smoothing: float = 0.9,
    diverge_threshold: float = 4.0,
    val_loader: Iterable[Any] | None = None,
    val_batches: int = 4,
    grad_clip: float | None = None,
    accumulation_steps: int = 1,
    amp: bool = False,
    loss_step: LossStep | None = None,
    snapshot_device: str | torch.device | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> LRFinderResult:
    """Run an LR range test and suggest a peak LR for the real run.

    The LR grows from ``start_lr`` to ``end_lr`` over ``num_steps`` optimizer steps (every
    param group scaled together, keeping their ratios); the loss is recorded at each step and
    the sweep stops when the smoothed loss exceeds ``diverge_threshold`` times its best, or
    is not finite. Model, optimizer and RNG states are restored exactly afterwards.

    Args:
        model: the model to sweep (on any device; batches are moved to it).
        optimizer: an optimizer holding the model's parameters; its class and
            hyperparameters (momentum, weight decay, betas) are those of the real run.
        train_loader: iterable of batches, cycled when shorter than the sweep.
        loss_fn: ``(outputs, targets) -> scalar loss`` for ``(inputs, targets)`` batches.
        steps: the length of the real run in optimizer steps. The best LR falls as runs get
            longer, so pass it whenever you know it.
        schedule: the real run's schedule (a text spec or a schedule), resolved for ``steps``;
            recorded with the result for the rules that read it.
        start_lr, end_lr: the sweep's bounds (``0 < start_lr < end_lr``).
        num_steps: optimizer steps in the sweep.
        mode: ``"exp"`` (evenly spaced in log-LR, the default) or ``"linear"``.
        rule: the rule that gives ``result.lr``: a name from :data:`lrpilot.suggest.RULES`
            or a callable ``(lrs, losses) -> lr``.
        smoothing: the EMA factor of the smoothed loss used to stop (0 = no smoothing).
        diverge_threshold: stop when the smoothed loss exceeds this multiple of its best.
        val_loader: if given, record the loss on ``val_batches`` fixed validation batches
            after every step instead of the training loss (slower, less noisy).
        grad_clip: clip the global gradient norm to this value before each step.
        accumulation_steps: micro-batches per optimizer step; the recorded loss is their mean.
        amp: use ``torch.autocast`` and a gradient scaler on CUDA; a step the scaler skips
            does not advance the sweep.
        loss_step: ``(model, batch) -> loss`` for batches that are not ``(inputs, targets)``.
        snapshot_device: where the restore snapshot lives; ``"cpu"`` spares GPU memory.
        seed: seed Python, NumPy, torch and the loaders' generators for the sweep (the
            caller's RNG states are restored afterwards, as always); ``None`` keeps them.
        progress: show a progress bar.

    Returns:
        An :class:`LRFinderResult`.

    Raises:
        ConfigError: bad bounds, step counts or rule name.
        DataError: an empty loader or a batch that cannot be unpacked.
        LossError: a non-scalar loss, or a loss that is not finite at the first step.
        ModelError: no trainable parameters, or an optimizer that does not hold them.
    """
    _check_options(
        start_lr, end_lr, num_steps, mode, steps, accumulation_steps, diverge_threshold, smoothing
    )
    _check_rule(rule)
    num_steps, accumulation_steps = int(num_steps), int(accumulation_steps)
    check_optimizer_holds(model, optimizer)
    step_loss = loss_step or default_loss_step(loss_fn)
    run_schedule = _schedule_data(schedule, steps)
    sweep_lrs = _sweep_lrs(start_lr, end_lr, num_steps, mode)
    ratios = _group_ratios(optimizer)

    generators = loader_generators(train_loader) + loader_generators(val_loader)
    snapshot = TrainingSnapshot.take(model, optimizer, snapshot_device, generators)
    try:
        if seed is not None:
            _seed_everything(seed, generators)
        sweep = _Sweep(
            model=model,
            optimizer=optimizer,
            loss_step=step_loss,
            ratios=ratios,
            grad_clip=grad_clip,
            accumulation_steps=accumulation_steps,
            amp=amp,
            smoothing=smoothing,
            diverge_threshold=diverge_threshold,
        )
        model.train()
        val = _fixed_batches(val_loader, val_batches) if val_loader is not None else None
        sweep.run(cycle(train_loader), sweep_lrs, val, progress)
    finally:
        snapshot.restore(model, optimizer)
    result = _result(sweep, rule, steps, optimizer, ratios)
    result.schedule = run_schedule
    return result


def find_lr_for_task(task: Task, *, seed: int | None = 0, **options: Any) -> LRFinderResult:
    """:func:`find_lr` on a fresh model and optimizer built from ``task``, with its whole recipe.

    The run's length, schedule, gradient clipping, accumulation, AMP, device and loss step all
    come from the task; any :func:`find_lr` option given here overrides the task's. With a
    ``seed`` the model is initialised from it and the sweep runs under it (the caller's RNGs
    are put back afterwards), so the same task and seed give the same curve.
    """
    from ._rng import generators_of, isolated_rng

    options.setdefault("steps", task.steps)
    options.setdefault("loss_step", task.loss_step)
    options.setdefault("grad_clip", task.grad_clip)
    options.setdefault("accumulation_steps", task.accumulation_steps)
    options.setdefault("amp", task.amp)
    if "schedule" not in options and task.schedule is not None:
        options["schedule"] = task.schedule_for(options["steps"])
    with isolated_rng(generators_of([task.train_loader])):
        if seed is not None:
            torch.manual_seed(seed)
        model, optimizer = task.build()
    return find_lr(model, optimizer, task.train_loader, task.loss_fn, seed=seed, **options)


def _check_options(
    start_lr: float,
    end_lr: float,
    num_steps: int,
    mode: str,
    steps: int | None,
    accumulation_steps: int,
    diverge_threshold: float,
    smoothing: float,
) -> None:
    if not (start_lr > 0 and end_lr > 0):
        raise ConfigError(f"LR bounds must be positive, got {start_lr=} and {end_lr=}.")
    if start_lr >= end_lr:
        raise ConfigError(f"start_lr must be below end_lr, got {start_lr=} >= {end_lr=}.")
    if not is_count(num_steps) or num_steps < suggest.MIN_POINTS:
        raise ConfigError(
            f"num_steps must be an int >= {suggest.MIN_POINTS} for the rules to read a curve, "
            f"got {num_steps=}; 100 is a good default."
        )
    if mode not in ("exp", "linear"):
        raise ConfigError(f"mode must be 'exp' or 'linear', got {mode=}.")
    if steps is not None and (not is_count(steps) or steps < 1):
        raise ConfigError(f"steps (the real run's length) must be a positive int, got {steps=}.")
    if not is_count(accumulation_steps) or accumulation_steps < 1:
        raise ConfigError(f"accumulation_steps must be an int >= 1, got {accumulation_steps=}.")
    if diverge_threshold <= 1:
        raise ConfigError(f"diverge_threshold must be > 1, got {diverge_threshold=}.")
    if not 0 <= smoothing < 1:
        raise ConfigError(f"smoothing must be in [0, 1), got {smoothing=}.")


def _seed_everything(seed: int, generators: list[torch.Generator]) -> None:
    """Seed every RNG a sweep draws from (restored afterwards by the snapshot)."""
    import random

    import numpy as np

    seed = check.whole("seed", seed, 0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    for generator in generators:
        generator.manual_seed(seed)


def _check_rule(rule: str | suggest.Rule) -> None:
    if not callable(rule) and rule not in suggest.RULES:
        raise ConfigError(f"Unknown rule {rule!r}; choose one of {sorted(suggest.RULES)}.")


def _sweep_lrs(start_lr: float, end_lr: float, num_steps: int, mode: str) -> list[float]:
    """The LR of every sweep step, ``start_lr`` first and ``end_lr`` last."""
    if mode == "exp":
        ratio = math.log(end_lr / start_lr)
        return [start_lr * math.exp(ratio * i / (num_steps - 1)) for i in range(num_steps)]
    return [start_lr + (end_lr - start_lr) * i / (num_steps - 1) for i in range(num_steps)]


def _group_ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's LR over the largest group LR (all 1.0 when every LR is zero)."""
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    top = max(lrs)
    return [lr / top for lr in lrs] if top > 0 else [1.0] * len(lrs)


def _fixed_batches(loader: Iterable[Any], count: int) -> list[Any]:
    """The first ``count`` batches of ``loader``: the same subsample at every sweep step."""
    if count < 1:
        raise ConfigError(f"val_batches must be >= 1, got {count=}.")
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == count:
            break
    if not batches:
        raise DataError("The validation loader yielded no batch.")
    return batches


def _distributed() -> tuple[bool, int]:
    """Whether a torch.distributed process group is up, and its world size."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return True, torch.distributed.get_world_size()
    return False, 1


class _Sweep:
    """The sweep's loop and what it records; one instance per range test."""

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_step: LossStep,
        ratios: list[float],
        grad_clip: float | None,
        accumulation_steps: int,
        amp: bool,
        smoothing: float,
        diverge_threshold: float,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.loss_step = loss_step
        self.ratios = ratios
        self.grad_clip = grad_clip
        self.accumulation_steps = accumulation_steps
        self.device = model_device(model)
        self.amp = amp and self.device.type == "cuda"
        if amp and not self.amp:
            warnings.warn(
                f"amp=True needs a CUDA model; this one is on {self.device}: sweeping in full "
                "precision.",
                RuntimeWarning,
                stacklevel=4,
            )
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.smoothing = smoothing
        self.diverge_threshold = diverge_threshold
        self.distributed, self.world_size = _distributed()
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.diverged = False
        self.batch_size: int | None = None
        self._ema = 0.0

    def run(
        self,
        batches: Iterator[Any],
        schedule: list[float],
        val: list[Any] | None,
        progress: bool,
    ) -> None:
        with _progress_bar(progress, len(schedule)) as advance:
            for lr in schedule:
                self._set_lr(lr)
                loss = self._step_until_taken(batches)
                if val is not None and math.isfinite(loss):
                    loss = self._reduce(evaluate_loss(self.model, val, self.loss_step))
                advance(lr, loss)
                if self._record(lr, loss):
                    break

    def _step_until_taken(self, batches: Iterator[Any]) -> float:
        """One optimizer step at the current LR, retried while the AMP grad scaler skips it
        (the scale is still settling); after :data:`MAX_SKIPPED_STEPS` skips in a row the
        gradients are taken to be non-finite for good and the loss reads as NaN."""
        for _ in range(MAX_SKIPPED_STEPS):
            loss = self._optimizer_step(batches)
            if loss is not None:
                return loss
        return float("nan")

    def _set_lr(self, lr: float) -> None:
        for group, ratio in zip(self.optimizer.param_groups, self.ratios, strict=True):
            group["lr"] = lr * ratio

    def _optimizer_step(self, batches: Iterator[Any]) -> float | None:
        """One optimizer step over ``accumulation_steps`` micro-batches; the mean loss, or
        ``None`` when the AMP grad scaler skipped the step (inf/NaN gradients)."""
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i in range(self.accumulation_steps):
            batch = move_to_device(next(batches), self.device)
            self._note_batch_size(batch)
            with self._sync_context(last=i == self.accumulation_steps - 1), self._autocast():
                loss = check_scalar_loss(self.loss_step(self.model, batch))
            scaled = loss / self.accumulation_steps if self.accumulation_steps > 1 else loss
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += float(loss.detach())
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        mean = self._reduce(total / self.accumulation_steps)
        if self.scaler is None:
            self.optimizer.step()
            return mean
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        skipped = self.scaler.get_scale() < scale
        return None if skipped and math.isfinite(mean) else mean

    def _sync_context(self, last: bool) -> Any:
        """Skip DDP's gradient all-reduce on all but the last micro-batch."""
        if not last and hasattr(self.model, "no_sync"):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def _autocast(self) -> Any:
        return torch.autocast("cuda") if self.amp else contextlib.nullcontext()

    def _reduce(self, value: float) -> float:
        """The mean of ``value`` over all ranks (itself outside torch.distributed)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=_collective_device(self.device))
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world_size

    def _note_batch_size(self, batch: Any) -> None:
        if self.batch_size is None:
            self.batch_size = _batch_size(batch)

    def _record(self, lr: float, loss: float) -> bool:
        """Record one point; ``True`` when the sweep must stop (identical on every rank,
        since every rank sees the same all-reduced loss)."""
        if not math.isfinite(loss):
            if not self.losses:
                raise LossError(
                    f"The loss is {loss} at the first step (lr={lr:.3g}): check the data, the "
                    "model's initialisation and the loss function before sweeping."
                )
            self.diverged = True
            return True
        n = len(self.losses) + 1
        self._ema = self.smoothing * self._ema + (1 - self.smoothing) * loss
        smoothed = self._ema / (1 - self.smoothing**n)
        self.lrs.append(lr)
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        best = min(self.smoothed)
        if _exceeds(smoothed, best, self.diverge_threshold, self.smoothed[0]):
            self.diverged = True
            return True
        return False


def _exceeds(value: float, best: float, threshold: float, first: float) -> bool:
    """Whether ``value`` is more than ``threshold`` times ``best``, for losses of any sign:
    measured as growth over the best by ``threshold - 1`` times the scale of the curve."""
    scale = abs(best) if best > 0 else max(abs(first - best), 1e-12)
    return value - best > (threshold - 1) * scale


def _collective_device(device: torch.device) -> torch.device:
    backend = torch.distributed.get_backend()
    return device if backend == "nccl" else torch.device("cpu")


def _batch_size(batch: Any) -> int | None:
    """Samples in a batch: the leading size of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else None
    items = (
        batch.values()
        if isinstance(batch, dict)
        else batch
        if isinstance(batch, (tuple, list))
        else ()
    )
    for item in items:
        size = _batch_size(item)
        if size is not None:
            return size
    return None


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[float, float], None]]:
    """A rich progress bar for the sweep, or a no-op when disabled."""
    if not enabled:
        yield lambda lr, loss: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("[bold]range test"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lr {task.fields[lr]:.2e}  loss {task.fields[loss]:.4g}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task_id = bar.add_task("sweep", total=total, lr=0.0, loss=float("nan"))
        yield lambda lr, loss: bar.update(task_id, advance=1, lr=lr, loss=loss)


def _result(
    sweep: _Sweep,
    rule: str | suggest.Rule,
    steps: int | None,
    optimizer: torch.optim.Optimizer,
    ratios: list[float],
) -> LRFinderResult:
    lrs, losses = sweep.lrs, sweep.losses
    if len(lrs) < suggest.MIN_POINTS:
        raise LossError(
            f"The sweep diverged after {len(lrs)} steps, too few for any rule (need "
            f"{suggest.MIN_POINTS}): lower start_lr, or raise num_steps or diverge_threshold."
        )
    rules = _bind_rules(steps, prior_lr_for(optimizer))
    name = rule if isinstance(rule, str) else getattr(rule, "__name__", "custom")
    if callable(rule):
        rules[name] = rule
    candidates = {n: float(fn(lrs, losses)) for n, fn in rules.items()}
    marks = suggest.landmarks(lrs, losses)
    samples = (
        sweep.batch_size * sweep.accumulation_steps * sweep.world_size
        if sweep.batch_size
        else None
    )
    notes = diagnose(marks, lrs, sweep.diverged)
    for note in notes:
        warnings.warn(note, RuntimeWarning, stacklevel=3)
    if steps is None:
        hint = (
            f"steps= (the real run's length) was not given: the suggestion is for a run of at "
            f"most {suggest.HORIZON_REFERENCE_STEPS} steps. Longer runs want lower LRs; pass "
            "steps=N."
        )
        warnings.warn(hint, UserWarning, stacklevel=3)
        notes.append(hint)
    return LRFinderResult(
        lr=candidates[name],
        lrs=list(lrs),
        losses=list(losses),
        ema_losses=list(sweep.smoothed),
        smooth_losses=[float(v) for v in suggest.smooth(lrs, losses)],
        candidates=candidates,
        band=suggest.bootstrap_band(lrs, losses, rules[name]),
        bounds=(marks.onset, marks.minimum),
        rule=name,
        diverged=sweep.diverged,
        num_steps_run=len(lrs),
        steps=steps,
        group_ratios=ratios,
        effective_batch_size=samples,
        warnings=notes,
    )


NOISE_LEVEL_Z = 8.0
"""A drop of fewer standard errors than this is within reach of noise (pure noise shows 2-6)."""


def diagnose(marks: suggest.Landmarks, lrs: list[float], diverged: bool) -> list[str]:
    """What makes a range-test curve (its ``marks``, read off the sweep over ``lrs``) hard to
    trust, each with what to do about it."""
    notes = []
    if marks.signal_to_noise < NOISE_LEVEL_Z:
        notes.append(
            "The loss barely fell during the sweep, against its noise: the suggestion leans on "
            "the prior. Raise end_lr, use more steps (num_steps) or larger batches, or record "
            "a validation loss (val_loader)."
        )
    if not diverged and marks.minimum >= lrs[int(0.95 * (len(lrs) - 1))]:
        notes.append(
            f"The loss was still falling at the end of the sweep (lr {lrs[-1]:.3g}): the "
            "divergence edge was not seen, so the suggestion stays well below that LR and may be "
            "too low. Raise end_lr."
        )
    return notes


def _bind_rules(steps: int | None, prior_lr: float | None) -> dict[str, suggest.Rule]:
    """The built-in rules with what the finder knows about the run bound in."""
    rules = dict(suggest.RULES)
    rules["pilot"] = functools.partial(suggest.pilot, steps=steps, prior_lr=prior_lr)
    return rules
