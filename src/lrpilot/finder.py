"""The LR range test: sweep the learning rate over a short run, record the loss, put
everything back, and suggest an LR for the real run.

The sweep is a transaction: model, optimizer and RNG state are snapshotted before the first
step and restored in a ``finally`` block, so the call leaves no trace even when it raises or
is interrupted. Nothing is written to disk.

A non-finite loss (one bad batch, an fp16 overflow) or a non-finite gradient norm does not end
the sweep: that step is skipped (gradients dropped, weights untouched; the LR still advances),
left off the curve and reported in ``result.warnings``. Only a streak of them, as the shared
:class:`~lrpilot.control.DivergenceDetector` counts it, is divergence.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from . import _validate as check
from . import suggest
from ._callsite import user_stacklevel
from ._facts import RunFacts, run_facts
from ._progress import progress_bar
from ._result import LRFinderResult
from ._rng import generators_of, isolated_rng, seed_everything
from ._state import TrainingSnapshot, inner_optimizer, loader_parts
from ._step import (
    LossStep,
    check_optimizer_holds,
    check_scalar_loss,
    cycle,
    default_loss_step,
    evaluate_loss,
    model_device,
    move_to_device,
    needs_closure,
    own_iterators,
    set_group_lr,
)
from .advice import ADAM_FAMILY, prior_lr_for
from .control.divergence import DivergenceDetector, DivergenceState
from .errors import ConfigError, DataError, LossError, ModelError, SpecError
from .task import Task
from .train import _norm_function

__all__ = [
    "find_lr",
    "find_lr_for_task",
    "LRFinderResult",
    "diagnose",
    "too_noisy",
    "ADAM_FAMILY",
    "prior_lr_for",
]

MAX_SKIPPED_STEPS = 20
"""AMP steps the grad scaler may skip in a row at one LR before the sweep counts it as
diverged (from the default scale of 2**16, 20 halvings reach 0.06)."""

MAX_NONFINITE = 3
"""Non-finite losses (or gradient norms) in a row that end the sweep as diverged; fewer are
skipped steps (a bad batch, an overflow), not divergence."""


def _read_schedule(schedule: Any, steps: int | None) -> Any:
    """The run's schedule as a schedule: a live torch scheduler becomes the table of the
    multipliers it gives over the run's ``steps`` (read off a copy stepped on a stand-in
    optimizer, so the scheduler, its optimizer and the model are left as they are); anything
    else as given."""
    if isinstance(schedule, torch.optim.lr_scheduler.LRScheduler):
        from .schedules import from_scheduler

        return from_scheduler(schedule, steps)
    return schedule


def _schedule_data(schedule: Any, steps: int | None) -> Any:
    """The run's schedule as plain data: a spec as given, a schedule as its dict."""
    if schedule is None or isinstance(schedule, str):
        if isinstance(schedule, str):
            _parse_spec(schedule, steps)  # a malformed spec fails before the sweep
        return schedule
    if not callable(schedule):
        raise check.ArgError(
            "schedule",
            schedule,
            "a text spec, a schedule (step -> multiplier) or a torch LRScheduler",
        )
    from .schedules import to_dict

    try:
        return to_dict(schedule)
    except ConfigError:
        return repr(schedule)


def _parse_spec(spec: str, steps: int | None) -> None:
    """Parse ``spec`` for a run of ``steps``; its errors name find_lr's ``steps=``, not the
    parser's ``total_steps``."""
    from .schedules import parse_schedule

    try:
        parse_schedule(spec, total_steps=steps)
    except SpecError as err:
        message = str(err).replace("give total_steps", "pass steps= (the run's length)")
        raise SpecError(message.replace("total_steps=", "steps=")) from None


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
    diverge_threshold: float | None = 4.0,
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
    is not finite for :data:`MAX_NONFINITE` steps in a row. A single non-finite loss (or
    gradient norm) skips that step and is reported in ``result.warnings``. Model, optimizer
    and RNG states, and the loaders' iterators, are restored exactly afterwards.

    Args:
        model: the model to sweep (on any device; batches are moved to it).
        optimizer: an optimizer holding the model's parameters (or a wrapper whose
            ``.optimizer`` is one); its class and hyperparameters (momentum, weight decay,
            betas) are those of the real run. Optimizers whose ``step`` needs a closure
            (LBFGS) are not supported.
        train_loader: iterable of batches, cycled when shorter than the sweep.
        loss_fn: ``(outputs, targets) -> scalar loss`` for ``(inputs, targets)`` batches.
        steps: the length of the real run in optimizer steps. The best LR falls as runs get
            longer, so pass it whenever you know it.
        schedule: the real run's schedule, resolved for ``steps``: a text spec, a schedule
            (step -> multiplier), or a live torch ``LRScheduler`` (a copy of it is stepped on
            a stand-in optimizer to read its multipliers over the run, see
            :func:`lrpilot.schedules.from_scheduler`; the scheduler and the optimizer are left
            as they are; one already stepped gives the steps still to come). Recorded with the
            result (a scheduler as its table) for the rules that read it.
        start_lr, end_lr: the sweep's bounds (``0 < start_lr < end_lr < inf``).
        num_steps: optimizer steps in the sweep.
        mode: ``"exp"`` (evenly spaced in log-LR, the default) or ``"linear"``.
        rule: the rule that gives ``result.lr``: a name from :data:`lrpilot.suggest.RULES`
            or a callable ``(lrs, losses) -> lr`` returning a positive, finite LR.
        smoothing: the EMA factor of the smoothed loss used to stop (0 = no smoothing).
        diverge_threshold: stop when the smoothed loss exceeds this multiple of its best
            (``> 1``); ``None`` turns this rule off (a streak of non-finite losses still stops).
        val_loader: if given, record the loss on ``val_batches`` fixed validation batches
            after every step instead of the training loss (slower, less noisy).
        grad_clip: clip the global gradient norm to this value (``> 0``) before each step.
        accumulation_steps: micro-batches per optimizer step; the recorded loss is their mean.
        amp: use ``torch.autocast`` and a gradient scaler on CUDA; a step the scaler skips
            does not advance the sweep.
        loss_step: ``(model, batch) -> loss`` for batches that are not ``(inputs, targets)``.
        snapshot_device: where the restore snapshot lives; ``"cpu"`` spares GPU memory.
        seed: seed Python, NumPy, torch and the loaders' generators for the sweep (the
            caller's RNG states are restored afterwards, as always); ``None`` keeps them.
        progress: show a progress bar (plain text in a Jupyter notebook).

    Returns:
        An :class:`LRFinderResult`. Its ``warnings`` are also emitted once each as Python
        warnings pointing at the caller.

    Raises:
        ConfigError: a bad argument (named in the message), or a custom ``rule`` that fails
            or returns no positive, finite LR; that error's ``.result`` then holds the sweep's
            result under the default rule, so the curve is not lost.
        DataError: an empty loader, a one-shot iterator that ran out, or a batch that cannot
            be unpacked.
        LossError: a non-scalar or integer loss, or a loss that is not finite from the first
            step on.
        ModelError: no trainable parameters, an optimizer that does not hold them or needs a
            closure, or a model on the meta device.
    """
    opts = _check_options(
        start_lr=start_lr,
        end_lr=end_lr,
        num_steps=num_steps,
        mode=mode,
        steps=steps,
        accumulation_steps=accumulation_steps,
        diverge_threshold=diverge_threshold,
        smoothing=smoothing,
        grad_clip=grad_clip,
        val_batches=val_batches,
        amp=amp,
        progress=progress,
        seed=seed,
    )
    _check_rule(rule)
    _check_model(model)
    _check_optimizer(optimizer)
    _check_loader("train_loader", train_loader)
    if val_loader is not None:
        _check_loader("val_loader", val_loader)
    if loss_step is not None:
        check.function("loss_step", loss_step, "a function (model, batch) -> loss")
    elif loss_fn is not None:
        check.function("loss_fn", loss_fn, "a function (outputs, targets) -> loss")
    device = _check_device(snapshot_device)
    check_optimizer_holds(model, optimizer)
    step_loss = loss_step or default_loss_step(loss_fn)
    schedule = _read_schedule(schedule, opts.steps)
    run_schedule = _schedule_data(schedule, opts.steps)
    sweep_lrs = _sweep_lrs(opts.start_lr, opts.end_lr, opts.num_steps, opts.mode)
    notes: list[str] = []
    ratios = _group_ratios(optimizer, notes)
    _lint_once(model, train_loader, opts, schedule)

    train_loaders, train_generators = loader_parts(train_loader)
    val_loaders, val_generators = loader_parts(val_loader)
    generators = list({id(g): g for g in train_generators + val_generators}.values())
    with own_iterators(train_loaders + val_loaders):
        snapshot = TrainingSnapshot.take(model, optimizer, device, generators)
        batches = cycle(train_loader)
        try:
            if opts.seed is not None:
                seed_everything(opts.seed, generators)
            sweep = _Sweep(
                model=model,
                optimizer=optimizer,
                loss_step=step_loss,
                ratios=ratios,
                grad_clip=opts.grad_clip,
                accumulation_steps=opts.accumulation_steps,
                scaler=_grad_scaler(opts.amp, model_device(model), notes),
                detector=DivergenceDetector(
                    threshold=opts.diverge_threshold,
                    smoothing=opts.smoothing,
                    reference="best",
                    max_nonfinite=MAX_NONFINITE,
                ),
            )
            model.train()
            val = _fixed_batches(val_loader, opts.val_batches) if val_loader is not None else None
            with progress_bar("range test", len(sweep_lrs), opts.progress) as advance:
                sweep.run(batches, sweep_lrs, val, advance)
        finally:
            batches.close()  # lets a loader's iterator (and its workers) go now
            snapshot.restore(model, optimizer)
    facts = run_facts(optimizer, opts.steps, schedule, opts.grad_clip)
    result = _result(sweep, rule, facts, ratios, notes)
    result.schedule = run_schedule
    result.loss_source = "train" if val_loader is None else "val"
    if not _HELD_BACK.get():
        _publish(result, model, optimizer, train_loader)
    return result


def _publish(result: LRFinderResult, model: nn.Module, optimizer: Any, loader: Any) -> None:
    """Emit the result's warnings and add it to the history: what a finished range test does."""
    _emit(result.warnings)
    _record(result, model, optimizer, loader, result.steps)


_HELD_BACK: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lrpilot_held_back", default=False
)
"""While true, :func:`find_lr` neither warns nor records: :func:`find_lr_for_task` publishes
only the sweep it keeps."""


_FINGERPRINT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "lrpilot_fingerprint", default=None
)
"""The task's fingerprint while :func:`find_lr_for_task` sweeps it: the history then files the
range test under the same recipe as the task's runs."""
_LINTED: weakref.WeakValueDictionary[int, nn.Module] = weakref.WeakValueDictionary()
"""Models already linted in this process (a notebook sweeps the same model again and again)."""


def _lint_once(model: nn.Module, train_loader: Any, opts: _Options, schedule: Any) -> None:
    """Warn (:class:`lrpilot.lint.LintWarning`) on the serious findings about this model's
    recipe, the first time it is swept. The optimizer is left
    out: its LR is what the sweep varies; so is the loader: the sweep reads exactly its own
    batches, and the inputs' statistics are :func:`lrpilot.advise`'s to check."""
    if _LINTED.get(id(model)) is model:
        return
    _LINTED[id(model)] = model
    from . import lint

    findings = lint.lint(
        model=model,
        train_loader=train_loader,
        steps=opts.steps,
        schedule=schedule,
        grad_clip=opts.grad_clip,
        accumulation_steps=opts.accumulation_steps,
        batches=0,
    )
    lint.warn_serious(findings, stacklevel=user_stacklevel())


def _record(
    result: LRFinderResult, model: nn.Module, optimizer: Any, loader: Any, steps: int | None
) -> None:
    """Add the range test to the history (``LRPILOT_HISTORY=0`` switches it off)."""
    from . import history

    if history.enabled():
        fingerprint = _FINGERPRINT.get() or history.fingerprint_of(
            model, optimizer, loader, steps=steps
        )
        history.record_range_test(result, fingerprint=fingerprint)


def find_lr_for_task(
    task: Task, *, seed: int | None = 0, val_fallback: bool = False, **options: Any
) -> LRFinderResult:
    """:func:`find_lr` on a fresh model and optimizer built from ``task``, with its whole recipe.

    The run's length, schedule, gradient clipping, accumulation, AMP, device and loss step all
    come from the task; any :func:`find_lr` option given here overrides the task's. With a
    ``seed`` the model is initialised from it and the sweep runs under it (the caller's RNGs
    are put back afterwards), so the same task and seed give the same curve.

    A training-loss curve can be too noisy to read: where every batch holds different users,
    items or texts, the loss jumps more from batch to batch than it falls over the whole sweep
    (its drop is under :data:`NOISE_LEVEL_Z` standard errors), and the pick leans on the
    optimizer family's prior. With ``val_fallback=True`` and a task that has validation data,
    the sweep then runs again from the same start on fixed validation batches (``val_batches``
    of them), whose loss moves only with the weights; the result keeps the clearer of the two
    curves, says so in its warnings, and counts both sweeps in ``cost_steps``. It is off by
    default: on the benchmark's one such family (MovieLens) it reads the SGD runs' best LR
    where the prior misses it 20-40x, but its Adam-family runs want 2-7x less than the clear
    curve says, and the default rule's constants refitted with it did worse held out
    (``python -m benchmarks.val_fallback``). Passing ``val_loader`` sweeps on validation
    batches from the start.
    """
    options.setdefault("steps", task.steps)
    options.setdefault("loss_step", task.loss_step)
    options.setdefault("grad_clip", task.grad_clip)
    options.setdefault("accumulation_steps", task.accumulation_steps)
    options.setdefault("amp", task.amp)
    if "schedule" not in options and task.schedule is not None:
        options["schedule"] = task.schedule_for(options["steps"])
    fallback = check.boolean("val_fallback", val_fallback)
    could_fall_back = task.val_loader is not None and options.get("val_loader") is None
    with isolated_rng(generators_of([task.train_loader])):
        if seed is not None:
            torch.manual_seed(check.whole("seed", seed, 0))
        model, optimizer = task.build()
    sweep = functools.partial(find_lr, model, optimizer, task.train_loader, task.loss_fn)
    # the recipe swept for: a pick for steps=N other than the task's is N steps' pick
    ran = (
        task
        if options["steps"] == task.steps
        else dataclasses.replace(task, steps=options["steps"])
    )
    token = _FINGERPRINT.set(ran.fingerprint(model, optimizer))
    try:
        held = _HELD_BACK.set(True)
        try:
            result = sweep(seed=seed, **options)
            z_train = _signal_to_noise(result) if could_fall_back else math.inf
            if z_train < NOISE_LEVEL_Z and fallback:
                again = sweep(seed=seed, **options, val_loader=task.val_loader)
                result = _clearer(result, z_train, again)
            elif z_train < NOISE_LEVEL_Z:
                result.warnings.append(
                    "This task has validation data: find_lr_for_task(task, val_fallback=True) "
                    "(lrpilot find --val-fallback) sweeps again on fixed validation batches, "
                    "whose loss moves only with the weights."
                )
        finally:
            _HELD_BACK.reset(held)
        _publish(result, model, optimizer, task.train_loader)
    finally:
        _FINGERPRINT.reset(token)
    return result


def too_noisy(result: LRFinderResult) -> bool:
    """Whether a range test's curve is too noisy to read: its drop is within reach of its own
    noise (:data:`NOISE_LEVEL_Z` standard errors), so its pick leans on the optimizer family's
    prior."""
    return _signal_to_noise(result) < NOISE_LEVEL_Z


def _signal_to_noise(result: LRFinderResult) -> float:
    return suggest.landmarks(result.lrs, result.losses).signal_to_noise


def _clearer(train: LRFinderResult, z_train: float, val: LRFinderResult) -> LRFinderResult:
    """Of a training-loss sweep found too noisy (its signal-to-noise ``z_train``) and the
    validation-loss sweep run after it, the one with the clearer curve, its ``cost_steps``
    counting both and a note of what happened."""
    z_val = _signal_to_noise(val)
    kept = val if z_val > z_train else train
    kept.cost_steps = train.cost_steps + val.cost_steps
    what = (
        "this curve is the validation loss"
        if kept is val
        else "that curve was no clearer, so this is still the training loss"
    )
    kept.warnings.insert(
        0,
        f"The training loss was too noisy to read (its drop was {z_train:.1f} standard errors "
        f"of its noise, under {NOISE_LEVEL_Z:g}): the sweep ran again from the same start on "
        f"fixed validation batches ({z_val:.0f} standard errors), and {what}; both sweeps are "
        f"counted ({kept.cost_steps} steps).",
    )
    return kept


@dataclass(frozen=True)
class _Options:
    """find_lr's numeric and flag arguments, checked and normalised."""

    start_lr: float
    end_lr: float
    num_steps: int
    mode: str
    steps: int | None
    accumulation_steps: int
    diverge_threshold: float | None
    smoothing: float
    grad_clip: float | None
    val_batches: int
    amp: bool
    progress: bool
    seed: int | None


def _check_options(**values: Any) -> _Options:
    """Every numeric and flag argument of :func:`find_lr`, by the one policy of ``_validate``."""
    start_lr = check.real("start_lr", values["start_lr"], 0.0, open_low=True, open_high=True)
    end_lr = check.real("end_lr", values["end_lr"], 0.0, open_low=True, open_high=True)
    if start_lr >= end_lr:
        raise ConfigError(f"start_lr must be below end_lr, got {start_lr=} >= {end_lr=}.")
    steps, seed = values["steps"], values["seed"]
    return _Options(
        start_lr=start_lr,
        end_lr=end_lr,
        num_steps=check.whole("num_steps", values["num_steps"], suggest.MIN_POINTS),
        mode=check.choice("mode", values["mode"], ("exp", "linear")),
        steps=None if steps is None else check.whole("steps", steps, 1),
        accumulation_steps=check.whole("accumulation_steps", values["accumulation_steps"], 1),
        diverge_threshold=check.optional_real(
            "diverge_threshold", values["diverge_threshold"], 1.0, open_low=True
        ),
        smoothing=check.real("smoothing", values["smoothing"], 0.0, 1.0, open_high=True),
        grad_clip=check.optional_real("grad_clip", values["grad_clip"], 0.0, open_low=True),
        val_batches=check.whole("val_batches", values["val_batches"], 1),
        amp=check.boolean("amp", values["amp"]),
        progress=check.boolean("progress", values["progress"]),
        seed=None if seed is None else check.whole("seed", seed, 0),
    )


def _check_rule(rule: Any) -> None:
    if isinstance(rule, str):
        if rule not in suggest.RULES:
            raise ConfigError(f"Unknown rule {rule!r}; choose one of {sorted(suggest.RULES)}.")
    elif not callable(rule):
        raise check.ArgError(
            "rule", rule, f"one of {sorted(suggest.RULES)} or a function (lrs, losses) -> lr"
        )


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got a {type(model).__name__}.")
    if any(p.is_meta for p in model.parameters()):
        raise ModelError(
            "The model's parameters are on the meta device (shapes without values): "
            "materialise it first (model.to_empty(device=...) and initialise it, or load its "
            "weights)."
        )


def _check_optimizer(optimizer: Any) -> None:
    if isinstance(optimizer, (list, tuple)):
        raise ConfigError(
            f"optimizer must be one optimizer, got a {type(optimizer).__name__} of "
            f"{len(optimizer)}: the range test sweeps one optimizer; put every parameter "
            "group in it, or sweep each optimizer on its own."
        )
    inner = inner_optimizer(optimizer)
    usable = all(hasattr(optimizer, a) for a in ("param_groups", "step", "zero_grad"))
    if not usable or not hasattr(inner, "state") or not isinstance(inner.param_groups, list):
        raise ConfigError(
            "optimizer must be a torch.optim.Optimizer (or a wrapper whose .optimizer is "
            f"one), got a {type(optimizer).__name__}."
        )
    if needs_closure(inner):
        raise ModelError(
            f"{type(inner).__name__}.step() needs a closure, which the range test does not "
            "support (each sweep step is one forward and backward pass at one LR): sweep "
            "with a first-order optimizer such as SGD or Adam."
        )


def _check_loader(arg: str, loader: Any) -> None:
    iterable = hasattr(type(loader), "__iter__") or hasattr(type(loader), "__getitem__")
    if isinstance(loader, (str, bytes)) or not iterable:
        raise check.ArgError(arg, loader, "an iterable of batches (a DataLoader, a list, ...)")


def _check_device(device: Any) -> torch.device | None:
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise check.ArgError(
            "snapshot_device", device, "a torch device ('cpu', 'cuda', 'cuda:1', ...) or None"
        ) from None
    try:
        torch.empty(0, device=parsed)
    except (RuntimeError, AssertionError) as exc:
        raise ConfigError(
            f"snapshot_device={device!r} is not available here ({exc}); use 'cpu' or None."
        ) from None
    return parsed


def _sweep_lrs(start_lr: float, end_lr: float, num_steps: int, mode: str) -> list[float]:
    """The LR of every sweep step, ``start_lr`` first and ``end_lr`` last (never above it:
    ``exp(log(end/start))`` can round 1-2 ulp past it)."""
    if mode == "exp":
        ratio = math.log(end_lr / start_lr)
        lrs = [start_lr * math.exp(ratio * i / (num_steps - 1)) for i in range(num_steps)]
    else:
        lrs = [start_lr + (end_lr - start_lr) * i / (num_steps - 1) for i in range(num_steps)]
    lrs[-1] = end_lr
    return [min(lr, end_lr) for lr in lrs]


def _group_ratios(optimizer: Any, notes: list[str]) -> list[float]:
    """Each group's LR over the largest group LR. Where every LR is 0 (a warmup's first
    step), the groups' ``initial_lr`` (set by torch's schedulers) stand in; without them the
    ratios are unknown, all 1.0, with a note."""
    groups = optimizer.param_groups
    lrs = [float(g["lr"]) for g in groups]
    if max(lrs) <= 0 and all("initial_lr" in g for g in groups):
        lrs = [float(g["initial_lr"]) for g in groups]
    top = max(lrs)
    if top > 0:
        return [lr / top for lr in lrs]
    if len(lrs) > 1:
        notes.append(
            "Every param group's lr is 0 (a warmup at its first step?) and no group has an "
            "initial_lr: their ratios are unknown, so all groups were swept at one LR and "
            "result.apply() sets them all alike. Set the groups' LRs before find_lr to keep "
            "their ratios."
        )
    return [1.0] * len(lrs)


def _fixed_batches(loader: Iterable[Any], count: int) -> list[Any]:
    """The first ``count`` batches of ``loader``: the same subsample at every sweep step."""
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


def _grad_scaler(amp: bool, device: torch.device, notes: list[str]) -> Any:
    """A CUDA gradient scaler for ``amp``, or ``None`` (full precision)."""
    if not amp:
        return None
    if device.type != "cuda":
        notes.append(
            f"amp=True needs a CUDA model; this one is on {device}: sweeping in full precision."
        )
        return None
    return torch.amp.GradScaler("cuda")


_Step = tuple[float, str, float]
"""One sweep step's mean loss, why it was skipped ("" when the optimizer stepped) and the
global gradient norm before clipping (NaN where it was not measured)."""


class _Sweep:
    """The sweep's loop and what it records; one instance per range test."""

    def __init__(
        self,
        *,
        model: nn.Module,
        optimizer: Any,
        loss_step: LossStep,
        ratios: list[float],
        grad_clip: float | None,
        accumulation_steps: int,
        scaler: Any,
        detector: DivergenceDetector,
    ) -> None:
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.norm = _norm_function(self.params)
        self.optimizer = optimizer
        self.loss_step = loss_step
        self.ratios = ratios
        self.grad_clip = grad_clip
        self.accumulation_steps = accumulation_steps
        self.device = model_device(model)
        self.scaler = scaler
        self.detector = detector
        self.state: DivergenceState = detector.init()
        self.distributed, self.world_size = _distributed()
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.grad_norms: list[float] = []
        self.skipped: list[tuple[float, str, float]] = []  # (lr, what, value)
        self._streak: list[tuple[float, str, float]] = []
        self.diverged = False
        self.stop_reason = ""
        self.batch_size: int | None = None

    def run(
        self,
        batches: Iterator[Any],
        schedule: list[float],
        val: list[Any] | None,
        advance: Callable[[int, float, float], None],
    ) -> None:
        for done, lr in enumerate(schedule, 1):
            self._set_lr(lr)
            step = self._step_until_taken(batches)
            if step is None:
                self.diverged = True
                self.stop_reason = (
                    f"the AMP grad scaler skipped {MAX_SKIPPED_STEPS} steps in a row at "
                    f"lr {lr:.3g}"
                )
                break
            loss, skipped, norm = step
            if not skipped and val is not None:
                loss = self._reduce(evaluate_loss(self.model, val, self.loss_step))[0]
                skipped = "" if math.isfinite(loss) else "validation loss"
            advance(done, lr, loss)
            if self._record(lr, loss, skipped, norm):
                break
        self.skipped.extend(self._streak)  # non-finite at the very end: skipped, not divergence
        self._streak = []

    def _step_until_taken(self, batches: Iterator[Any]) -> _Step | None:
        """One sweep step at the current LR, retried while the AMP grad scaler skips it (the
        scale is still settling); ``None`` after :data:`MAX_SKIPPED_STEPS` skips in a row."""
        for _ in range(MAX_SKIPPED_STEPS):
            step = self._optimizer_step(batches)
            if step is not None:
                return step
        return None

    def _set_lr(self, lr: float) -> None:
        for group, ratio in zip(self.optimizer.param_groups, self.ratios, strict=True):
            set_group_lr(group, lr * ratio)

    def _optimizer_step(self, batches: Iterator[Any]) -> _Step | None:
        """One optimizer step over ``accumulation_steps`` micro-batches: the mean loss and
        ``""``; or the loss and what was not finite (``"loss"``, ``"gradient norm"``), the
        step skipped; or ``None`` when the AMP grad scaler skipped the step."""
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i in range(self.accumulation_steps):
            batch = move_to_device(next(batches), self.device)
            self._note_batch_size(batch)
            with self._sync_context(last=i == self.accumulation_steps - 1), self._autocast():
                loss = check_scalar_loss(self.loss_step(self.model, batch))
            scaled = loss / self.accumulation_steps if self.accumulation_steps > 1 else loss
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            total += float(loss.detach())
        local = total / self.accumulation_steps
        if self.scaler is not None:
            return self._scaled_step(local)
        # Every rank decides alike: the loss and "this rank's gradient norm is not finite"
        # are all-reduced together (DDP's gradients are already averaged, other wrappers'
        # need not be).
        norm = self._clip_and_norm()
        mean, bad_ranks = self._reduce(local, 0.0 if math.isfinite(norm) else 1.0)
        if not math.isfinite(mean):
            return self._skip(mean, "loss")
        if bad_ranks > 0:
            return self._skip(mean, "gradient norm")
        self.optimizer.step()
        return mean, "", norm

    def _scaled_step(self, local: float) -> _Step | None:
        mean = self._reduce(local)[0]
        if not math.isfinite(mean):  # before unscale_: the scaler must not see this step
            return self._skip(mean, "loss")
        self.scaler.unscale_(self.optimizer)
        norm = self._clip_and_norm()
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        skipped = self.scaler.get_scale() < scale
        if skipped and math.isfinite(mean):
            # Why: the loss was finite but the scaled gradients overflowed, so the scaler
            # skipped the step and lowered its scale. That is the scale still settling (it
            # starts at 2**16), not the model diverging: retry at the same LR, record nothing.
            return None
        return mean, "", norm

    def _skip(self, loss: float, what: str) -> _Step:
        """Drop this step's gradients without stepping: the weights stay as they were."""
        self.optimizer.zero_grad(set_to_none=True)
        return loss, what, math.nan

    def _clip_and_norm(self) -> float:
        """Clip the gradients to ``grad_clip`` (if set); the global norm before clipping."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return 0.0
        if self.grad_clip is not None:
            return float(torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip))
        return float(self.norm(grads))  # the run loop's fused norm, chosen once a sweep

    def _sync_context(self, last: bool) -> Any:
        """Skip DDP's gradient all-reduce on all but the last micro-batch."""
        no_sync = getattr(self.model, "no_sync", None)
        if not last and callable(no_sync):
            return no_sync()
        return contextlib.nullcontext()

    def _autocast(self) -> Any:
        if self.scaler is not None and self.device.type == "cuda":
            return torch.autocast("cuda")
        return contextlib.nullcontext()

    def _reduce(self, value: float, *more: float) -> tuple[float, ...]:
        """The mean of ``value`` over all ranks, and the sum of each of ``more`` (themselves
        outside torch.distributed), in one collective."""
        if not self.distributed:
            return (value, *more)
        t = torch.tensor(
            [value, *more], dtype=torch.float64, device=_collective_device(self.device)
        )
        torch.distributed.all_reduce(t)
        values = [float(v) for v in t.tolist()]
        return (values[0] / self.world_size, *values[1:])

    def _note_batch_size(self, batch: Any) -> None:
        if self.batch_size is None:
            self.batch_size = _batch_size(batch)

    def _record(self, lr: float, loss: float, skipped: str, norm: float) -> bool:
        """Record one point; ``True`` when the sweep must stop (identical on every rank,
        since every rank sees the same all-reduced values)."""
        value = math.nan if skipped == "gradient norm" else loss
        self.state, verdict = self.detector.update(self.state, value)
        if not verdict.finite:
            self._streak.append(
                (lr, skipped or "loss", loss if skipped != "gradient norm" else value)
            )
            if verdict.diverged:
                if not self.losses:
                    first, last = self._streak[0][0], self._streak[-1][0]
                    raise LossError(
                        f"The {self._streak[0][1]} is {self._streak[0][2]} from the first step "
                        f"on ({len(self._streak)} steps in a row, lr {first:.3g} to {last:.3g}): "
                        "check the data, the model's initialisation and the loss function "
                        "before sweeping."
                    )
                self.diverged, self.stop_reason = True, verdict.reason
                self._streak = []
                return True
            return False
        self.skipped.extend(self._streak)
        self._streak = []
        self.lrs.append(lr)
        self.losses.append(loss)
        self.smoothed.append(verdict.smoothed)
        self.grad_norms.append(norm)
        if verdict.diverged:
            self.diverged, self.stop_reason = True, verdict.reason
        return verdict.diverged


def _collective_device(device: torch.device) -> torch.device:
    backend = torch.distributed.get_backend()
    return device if backend == "nccl" else torch.device("cpu")


def _batch_size(batch: Any) -> int | None:
    """Samples in a batch: the leading size of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else None
    if isinstance(batch, dict):
        items: Iterable[Any] = batch.values()
    elif isinstance(batch, (tuple, list)):
        items = batch
    else:
        return None
    for item in items:
        size = _batch_size(item)
        if size is not None:
            return size
    return None


def _emit(notes: list[str]) -> None:
    """Each note once, as a Python warning pointing at the first frame outside lrpilot."""
    for note in notes:
        category = UserWarning if note.startswith("Assumed ") else RuntimeWarning
        warnings.warn(note, category, stacklevel=user_stacklevel())


def _result(
    sweep: _Sweep,
    rule: str | suggest.Rule,
    facts: RunFacts,
    ratios: list[float],
    notes: list[str],
) -> LRFinderResult:
    lrs, losses = sweep.lrs, sweep.losses
    if len(lrs) < suggest.MIN_POINTS:
        if sweep.diverged:
            raise LossError(
                f"The sweep diverged after {len(lrs)} steps ({sweep.stop_reason}), too few for "
                f"any rule (need {suggest.MIN_POINTS}): lower start_lr, or raise num_steps or "
                "diverge_threshold."
            )
        raise LossError(
            f"Only {len(lrs)} sweep steps gave a finite loss ({len(sweep.skipped)} skipped), "
            f"too few for any rule (need {suggest.MIN_POINTS}): check the data and the loss."
        )
    if sweep.skipped:
        notes.append(_skipped_note(sweep.skipped))
    rules = _bind_rules(facts)
    candidates = {n: float(fn(lrs, losses)) for n, fn in rules.items()}
    built = functools.partial(_assemble, sweep, facts=facts, ratios=ratios, notes=notes)
    if isinstance(rule, str):
        return built(rule, rules[rule], candidates)
    name = getattr(rule, "__name__", "custom")
    checked = functools.partial(_checked_rule, name, rule)
    try:
        pick = checked(lrs, losses)
    except Exception as exc:
        fallback = built("pilot", rules["pilot"], candidates)
        error = ConfigError(
            f"The custom rule {name!r} failed on the sweep's curve: {exc} The sweep's result "
            f"under the default rule 'pilot' (lr {fallback.lr:.3g}) is kept in this error's "
            ".result, curve included."
        )
        error.result = fallback  # type: ignore[attr-defined]
        raise error from exc
    return built(name, checked, {**candidates, name: pick})


def _checked_rule(name: str, rule: suggest.Rule, lrs: Any, losses: Any) -> float:
    """``rule``'s pick, if it is a positive, finite number."""
    value: Any = rule(lrs, losses)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    elif isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if not check.is_real(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"rule {name!r} must return a positive, finite LR, got {value!r}.")
    return float(value)


def _assemble(
    sweep: _Sweep,
    name: str,
    rule: suggest.Rule,
    candidates: dict[str, float],
    *,
    facts: RunFacts,
    ratios: list[float],
    notes: list[str],
) -> LRFinderResult:
    """The result for the pick of rule ``name``: band, bounds and diagnostics."""
    lrs, losses = sweep.lrs, sweep.losses
    notes = list(notes)
    # the floor as the default rule reads it: the fallback below names "the valley's floor"
    marks = suggest.landmarks(lrs, losses, floor_fraction=suggest.DEFAULT_CONSTANTS.floor_fraction)
    pick = candidates[name]
    band = _band(name, rule, pick, lrs, losses, notes)
    pick, band = _off_the_start(
        name, pick, band, lrs, marks, facts.prior_lr, notes, diverged=sweep.diverged
    )
    half_weight_z = suggest.DEFAULT_CONSTANTS.evidence_half_weight_z if name == "pilot" else None
    notes.extend(
        diagnose(marks, lrs, sweep.diverged, prior_lr=facts.prior_lr, half_weight_z=half_weight_z)
    )
    notes.extend(f"Assumed {what}: {why}." for what, why in facts.assumed.items())
    samples = (
        sweep.batch_size * sweep.accumulation_steps * sweep.world_size
        if sweep.batch_size
        else None
    )
    return LRFinderResult(
        lr=pick,
        lrs=list(lrs),
        losses=list(losses),
        ema_losses=list(sweep.smoothed),
        smooth_losses=[float(v) for v in suggest.smooth(lrs, losses)],
        candidates={**candidates, name: pick},
        band=band,
        bounds=(marks.onset, marks.minimum),
        rule=name,
        diverged=sweep.diverged,
        num_steps_run=len(lrs),
        steps=facts.steps,
        group_ratios=ratios,
        effective_batch_size=samples,
        warnings=notes,
        skipped_lrs=[lr for lr, _, _ in sweep.skipped],
        grad_norms=list(sweep.grad_norms),
        assumed=dict(facts.assumed),
    )


def _band(
    name: str,
    rule: suggest.Rule,
    pick: float,
    lrs: list[float],
    losses: list[float],
    notes: list[str],
) -> tuple[float, float]:
    """The default rule's band is calibrated on held-out tasks (:func:`suggest.pilot_band`);
    any other rule's is how far its pick moves under resampled noise of this sweep."""
    if name == "pilot":
        return suggest.pilot_band(pick, lrs, losses, suggest.DEFAULT_CONSTANTS)
    try:
        return suggest.bootstrap_band(lrs, losses, rule)
    except Exception as exc:  # a custom rule that fails on a resampled curve
        notes.append(
            f"The band could not be measured: rule {name!r} failed on a resampled curve ({exc})."
        )
        return pick, pick


def _skipped_note(skipped: list[tuple[float, str, float]]) -> str:
    whats = sorted({what for _, what, _ in skipped})
    at = ", ".join(f"{lr:.3g}" for lr, _, _ in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
    count = len(skipped)
    return (
        f"{count} non-finite {' or '.join(whats)}{'' if count == 1 else ' values'} skipped at "
        f"lr {at}: {'that step was' if count == 1 else 'those steps were'} not taken and left "
        "off the curve. A bad batch or an fp16 overflow does this; check the data if it "
        "happens often."
    )


def _off_the_start(
    name: str,
    pick: float,
    band: tuple[float, float],
    lrs: list[float],
    marks: suggest.Landmarks,
    prior: float | None,
    notes: list[str],
    *,
    diverged: bool = False,
) -> tuple[float, tuple[float, float]]:
    """A pick at the sweep's first LR says only that the curve gave nothing to go on (a flat
    curve): fall back to the optimizer family's prior, else the centre of the valley floor,
    else the onset, whichever first lies above the first LR, and say so.

    Except where the sweep ``diverged`` and the family's prior lies below its first LR: then
    the flat start was no valley but LRs already too high to learn (SGD swept from 1 sat at
    chance, then blew up; the valley's floor, 2.6, trains to chance too). Nothing in the sweep
    is safe; the prior, below it, is the guess, and the note says to lower ``start_lr``."""
    first = lrs[0] * (1 + 1e-9)
    if pick > first:
        return pick, band
    if diverged and prior is not None and prior < lrs[0]:
        notes.append(
            f"Rule {name!r} picked the sweep's first LR ({lrs[0]:.3g}) and the sweep diverged: "
            f"the loss never fell, so the sweep likely started above the LRs that train "
            f"(this optimizer family's usual LR, {prior:.3g}, lies below it). Using that prior "
            f"as a guess, unmeasured; lower start_lr (e.g. start_lr={prior / 1000:.0e}) and "
            "sweep again."
        )
        return prior, (prior, lrs[0])
    fallbacks = (
        ("the optimizer family's prior", prior),
        ("the centre of the valley's floor", marks.floor_centre),
        ("the onset of the fall", marks.onset),
    )
    for source, value in fallbacks:
        if value is not None and value > first:
            notes.append(
                f"Rule {name!r} picked the sweep's first LR ({lrs[0]:.3g}), which says only that "
                f"the curve gave it nothing to go on: using {source} instead, lr {value:.3g}. "
                "Treat it as a guess; sweep with more steps or larger batches."
            )
            return value, (min(band[0], value), max(band[1], value))
    notes.append(
        f"Rule {name!r} picked the sweep's first LR ({lrs[0]:.3g}) and the curve offers nothing "
        "above it: the loss did not fall anywhere in the sweep. Lower start_lr and sweep again."
    )
    return pick, band


NOISE_LEVEL_Z = 8.0
"""A drop of fewer standard errors than this is within reach of noise (pure noise shows 2-6)."""


def diagnose(
    marks: suggest.Landmarks,
    lrs: list[float],
    diverged: bool,
    *,
    prior_lr: float | None = None,
    half_weight_z: float | None = None,
) -> list[str]:
    """What makes a range-test curve (its ``marks``, read off the sweep over ``lrs``) hard to
    trust, each with what to do about it. The advice fits the sweep: no "raise end_lr" where it
    stopped on divergence, no prior mentioned where the optimizer has none (``prior_lr``).
    ``half_weight_z``: the drop at which the rule weighs the curve and the prior the same
    (the default rule's :attr:`~lrpilot.suggest.PilotConstants.evidence_half_weight_z`;
    ``None`` for a rule that reads no prior)."""
    notes = []
    if marks.signal_to_noise < NOISE_LEVEL_Z:
        lean = (
            f"the suggestion leans on the prior for this optimizer family (lr {prior_lr:.3g})"
            if prior_lr is not None
            else "this optimizer has no prior to fall back on, so the suggestion is a guess"
        )
        more = "" if diverged else "Raise end_lr, "
        notes.append(
            f"The loss barely fell during the sweep, against its noise: {lean}. "
            f"{more}{'use' if more else 'Use'} more steps (num_steps) or larger batches, or "
            "record a validation loss (val_loader)."
        )
    elif prior_lr is not None and half_weight_z and marks.signal_to_noise < half_weight_z:
        notes.append(
            f"The loss fell by {marks.signal_to_noise:.0f} standard errors of its noise, under "
            f"the {half_weight_z:g} at which the curve and the optimizer family's prior (lr "
            f"{prior_lr:.3g}) weigh the same: the suggestion lies nearer the prior than the "
            "curve's own reading. For a pick that rests on the curve, use more steps "
            "(num_steps) or larger batches, or record a validation loss (val_loader)."
        )
    if marks.onset <= lrs[0] * (1 + 1e-9) and marks.signal_to_noise >= NOISE_LEVEL_Z:
        notes.append(
            f"The loss was already falling at the sweep's first LR ({lrs[0]:.3g}): the lower "
            "bound (bounds[0]) only says the fall starts at or below it. Lower start_lr to see "
            "where it begins."
        )
    informative = marks.signal_to_noise >= NOISE_LEVEL_Z  # noise has its minimum anywhere
    if informative and not diverged and marks.minimum >= lrs[int(0.95 * (len(lrs) - 1))]:
        notes.append(
            f"The loss was still falling at the end of the sweep (lr {lrs[-1]:.3g}): the "
            "divergence edge was not seen, so the suggestion stays well below that LR and may be "
            "too low. Raise end_lr."
        )
    return notes


def _bind_rules(facts: RunFacts) -> dict[str, suggest.Rule]:
    """The built-in rules with what the finder knows about the run bound in."""
    rules = dict(suggest.RULES)
    rules["pilot"] = functools.partial(
        suggest.pilot,
        steps=facts.steps,
        prior_lr=facts.prior_lr,
        schedule_mean=facts.schedule_mean,
        family=facts.family,
    )
    return rules
