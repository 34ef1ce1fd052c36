"""The one training loop: ``train(task, lr) -> RunResult``.

Every part of lrpilot that trains a model goes through :func:`train`: the demo, a search's
trials, the race of ``tune``, the monitored run and the benchmark. It runs a task's whole
recipe from a fresh model: the optimizer at the given peak LR, the schedule resolved for the
run's length, gradient clipping, accumulation, mixed precision on CUDA and the task's device.
Callbacks (:mod:`lrpilot.control.callbacks`) see every step and evaluation and may stop the
run, change the LR, or roll it back. The result is plain data.

A non-finite loss or gradient skips its optimizer step (the weights never see NaN) and is
recorded as an event; the shared :class:`~lrpilot.control.DivergenceDetector` ends the run
when the smoothed loss climbs far above where it started or stays non-finite.

With the same seed on CPU, two runs are bitwise the same: the model's initialisation, the
data order (the loaders' generators), dropout and the updates. The caller's RNG states are
put back afterwards.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import _validate as check
from ._callsite import user_stacklevel
from ._dist import all_mean
from ._json import json_safe, nan_if_none
from ._progress import progress_bar
from ._rng import generators_of, isolated_rng, seed_everything
from ._state import SpilledSnapshot, TrainingSnapshot, loader_parts, take_snapshot
from ._step import (
    check_optimizer_holds,
    check_scalar_loss,
    cycle,
    default_loss_step,
    model_device,
    move_to_device,
    needs_closure,
    own_iterators,
)
from .control.callbacks import (
    Action,
    Callback,
    EvalInfo,
    GradInfo,
    RunInfo,
    StepInfo,
    as_callbacks,
)
from .control.divergence import DivergenceDetector, DivergenceState
from .errors import ConfigError, ModelError
from .task import Task

__all__ = ["train", "RunResult", "RUN_DIVERGENCE"]

RUN_DIVERGENCE = DivergenceDetector(threshold=5.0, smoothing=0.98, reference="start")
"""How a training run is judged to diverge: its smoothed loss (an EMA over ~50 steps) five
times where it started, or three non-finite losses in a row."""

RESULT_VERSION = 1


@dataclass
class RunResult:
    """What one training run did, as plain data.

    Attributes:
        lr: The peak LR the run was given.
        steps: The run's planned length in optimizer steps.
        seed: The seed it ran with.
        metric: The validation metric at the end (higher is better); NaN when the run
            diverged or the task has no validation data.
        lrs: The LR of the first param group at every optimizer step kept.
        losses: The training loss at every optimizer step kept (NaN where it was not finite).
        grad_norms: The global gradient norm before clipping at every step kept.
        evals: ``(step, metric)`` for every evaluation, the final one included.
        diverged: The divergence detector stopped the run.
        stopped: Why the run ended early (``""`` when it ran its length).
        events: What happened, in order: ``{"step", "kind", "message"}`` each, ``step``
            being the step where it happened (a rollback's message says where it went to).
        seconds: Wall time of the run, evaluations included.
        steps_done: Optimizer steps executed, those discarded by a rollback included.
        skipped: Steps not applied (a non-finite loss or gradient, or AMP's scaler).
        clipped: Steps whose gradient norm was above the task's ``grad_clip``.
        task: The task's ``name``, if it has one.
        lr_scale: The factor the callbacks' LR changes (a monitor's cuts) left on the whole
            schedule at the end: 1 when none changed it. The run then trained below ``lr``,
            and the history does not take it as evidence for ``lr``.
    """

    lr: float
    steps: int
    seed: int
    metric: float
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    diverged: bool = False
    stopped: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    steps_done: int = 0
    skipped: int = 0
    clipped: int = 0
    task: str | None = None
    lr_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data, with a ``"version"`` key; numbers stay floats (NaN for
        a diverged run's metric), as the reports read them. :meth:`save` writes it as strict
        JSON (NaN as ``null``), and :meth:`from_dict` reads ``null`` back as NaN."""
        out: dict[str, Any] = {"version": RESULT_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = [list(e) for e in value] if f.name == "evals" else _copy(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Rebuild a result from :meth:`to_dict`'s output."""
        if not isinstance(data, dict) or data.get("version") != RESULT_VERSION:
            raise ConfigError(
                f"not a RunResult dict of version {RESULT_VERSION}: "
                f"got version={data.get('version') if isinstance(data, dict) else data!r}"
            )
        names = {f.name for f in fields(cls)}
        missing = {"lr", "steps", "seed", "metric"} - set(data)
        if missing:
            raise ConfigError(f"not a RunResult dict: missing {sorted(missing)}")
        values = {k: _copy(v) for k, v in data.items() if k in names}
        for name in _FLOAT_LISTS:
            values[name] = [nan_if_none(v) for v in data.get(name, [])]
        values["metric"] = nan_if_none(data["metric"])
        values["evals"] = [(int(s), nan_if_none(m)) for s, m in data.get("evals", [])]
        return cls(**values)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON, atomically (a partial file never replaces a good one)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(json_safe(self.to_dict()), allow_nan=False))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """Read a result written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def __repr__(self) -> str:
        state = "diverged" if self.diverged else (self.stopped or "finished")
        return (
            f"RunResult(lr={self.lr:.4g}, steps={len(self.losses)}/{self.steps}, "
            f"metric={self.metric:.6g}, {state}, events={len(self.events)})"
        )


_FLOAT_LISTS = ("lrs", "losses", "grad_norms")
"""The fields of a :class:`RunResult` that are lists of floats (NaN where not finite)."""


def _copy(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def train(
    task: Task,
    lr: float,
    *,
    steps: int | None = None,
    seed: int = 0,
    callbacks: Sequence[Any] | Any = (),
    progress: bool = True,
    divergence: DivergenceDetector | None = RUN_DIVERGENCE,
) -> RunResult:
    """Train ``task``'s recipe from a fresh model at peak LR ``lr`` and score it.

    Args:
        task: The recipe (model, optimizer, data, loss, metric, schedule, clipping, ...).
        lr: The peak LR; param groups the optimizer builds at other LRs keep their ratios.
        steps: The run's length in optimizer steps (default ``task.steps``); the task's
            schedule is resolved for it, so a shorter run runs the whole schedule compressed.
        seed: Seeds the model's initialisation, the data order, dropout and every other RNG;
            the caller's RNG states are restored afterwards.
        callbacks: Objects with ``on_run_start`` / ``on_step`` / ``on_eval`` / ``on_run_end``
            (see :mod:`lrpilot.control.callbacks`); a single callback needs no list.
        progress: Show a progress bar.
        divergence: The divergence detector (default :data:`RUN_DIVERGENCE`); ``None``
            never stops the run on divergence.

    Returns:
        A :class:`RunResult`. The metric is measured at the end, and every
        ``task.eval_every`` steps when set.

    Raises:
        ConfigError: a bad ``lr``, ``steps``, ``seed`` or callback, no length at all, or an
            ``optimizer_fn`` that does not build its optimizer at ``lr``.
        ModelError: an optimizer that needs a closure or does not hold the model's parameters.
    """
    lr = check.real("lr", lr, 0.0, open_low=True, open_high=True)
    if not isinstance(task, Task):
        raise check.ArgError("task", task, "an lrpilot.Task")
    length = steps if steps is not None else task.steps
    if length is None:
        raise ConfigError(
            "train needs the run's length: set it in the task (Task(steps=N)), or pass "
            "steps=N (--steps N where a command has it)."
        )
    length = check.whole("steps", length, 1)
    seed = check.whole("seed", seed, 0)
    hooks = as_callbacks(callbacks)
    generators = generators_of([task.train_loader, task.val_loader])
    with isolated_rng(generators):
        seed_everything(seed, generators)
        loaders = [
            part for each in (task.train_loader, task.val_loader) for part in _dataloaders(each)
        ]
        with own_iterators(loaders):
            run = _Run(task, lr, length, seed, hooks, divergence)
            _lint_once(task, lr, length, run.model)
            with progress_bar("train", length, progress) as advance:
                result = run.execute(advance)
    for hook in hooks:
        if hasattr(hook, "on_run_end"):
            hook.on_run_end(result)
    _record(result, task, run)
    return result


_LINTED: weakref.WeakValueDictionary[int, Task] = weakref.WeakValueDictionary()
"""The tasks already linted in this process: a search or a race trains one task many times."""


def _lint_once(task: Task, lr: float, steps: int, model: nn.Module) -> None:
    """Warn (:class:`lrpilot.lint.LintWarning`) on the serious findings about the task's
    recipe (an RNN without clipping, an LR far outside its family's range, a large batch
    without warmup), the first time this task object is trained. No batch is read: the
    inputs' statistics are :func:`lrpilot.advise`'s and :func:`lrpilot.lint.lint`'s to check."""
    if _LINTED.get(id(task)) is task:
        return
    _LINTED[id(task)] = task
    from . import lint

    findings = lint.lint(task, model=model, lr=lr, steps=steps, batches=0)
    lint.warn_serious(findings, stacklevel=user_stacklevel())


def _record(result: RunResult, task: Task, run: _Run) -> None:
    """Add the run to the history (``LRPILOT_HISTORY=0`` switches it off; a store that cannot
    be written warns and leaves the run alone)."""
    from . import history

    if history.enabled():
        # the recipe as run: a run shortened with steps= is not the task's full-length recipe
        ran = task if task.steps == result.steps else replace(task, steps=result.steps)
        fingerprint = ran.fingerprint(run.model, run.optimizer)
        history.record_run(result, fingerprint=fingerprint)


@dataclass
class _Snapshot:
    """The run's state at one step, for a rollback."""

    state: TrainingSnapshot | SpilledSnapshot
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None
    step: int
    detector: DivergenceState
    kept: int


class _Run:
    """One training run's loop and what it records."""

    def __init__(
        self,
        task: Task,
        lr: float,
        steps: int,
        seed: int,
        hooks: list[Any],
        divergence: DivergenceDetector | None,
    ) -> None:
        from .schedules import ScheduleLR

        self.task, self.lr, self.steps, self.seed, self.hooks = task, lr, steps, seed, hooks
        self.grad_hooks = [c.on_before_optimizer_step for c in hooks if _overrides_grad_hook(c)]
        self.model, self.optimizer = task.build(lr)
        _check_optimizer(self.model, self.optimizer)
        self.device = model_device(self.model)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]  # once a run
        self.norm = _norm_function(self.trainable)
        self.loss_step = task.loss_step or default_loss_step(task.loss_fn)
        self.scheduler = ScheduleLR(self.optimizer, task.schedule_for(steps))
        self.scaler = self._scaler()
        self.detector = divergence
        self.detector_state = divergence.init() if divergence else DivergenceState()
        self.result = RunResult(lr=lr, steps=steps, seed=seed, metric=math.nan, task=task.name)
        self.snapshot: _Snapshot | None = None
        self.step = 0
        self.diverged_why = ""  # the detector's reason, until the loop stops or a rollback

    def _scaler(self) -> Any:
        if not self.task.amp:
            return None
        if self.device.type != "cuda":
            warnings.warn(
                f"amp=True needs a CUDA model; this one is on {self.device}: training in full "
                "precision.",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
        return torch.amp.GradScaler("cuda")

    def execute(self, advance: Callable[[int, float, float], None]) -> RunResult:
        """Run the loop, then the final evaluation; the result."""
        start = time.perf_counter()
        self.model.train()
        _set_optimizer_mode(self.optimizer, train=True)
        try:
            if self.hooks:
                info = RunInfo(self.lr, self.steps, self.seed, self.model, self.optimizer)
                self._apply(self._dispatch("on_run_start", info), None)
                if self.snapshot is None:  # what a rollback with no snapshot returns to
                    self.snapshot = self._take_snapshot(None)
            batches = cycle(self.task.train_loader)
            try:
                self._loop(batches, advance)
            finally:
                batches.close()  # lets the loader's iterator (and its workers) go now
            if not self.result.diverged and self.task.val_loader is not None:
                self.result.metric = self._evaluate()
        finally:
            self._drop_snapshot()
        self.result.seconds = time.perf_counter() - start
        return self.result

    def _loop(self, batches: Iterator[Any], advance: Callable[[int, float, float], None]) -> None:
        """Steps until the run's length, a stop or divergence; evaluations on the way."""
        every = self.task.eval_every
        while self.step < self.steps and not self.result.stopped:
            info = self._train_step(batches)
            advance(self.step, self.result.lrs[-1], self.result.losses[-1])
            if info is not None:  # before the divergence stop: a rollback may rescue the run
                self._apply(self._dispatch("on_step", info), batches)
            if self.result.diverged:
                self._event("diverged", self.diverged_why + "; the run was stopped")
                self.result.stopped = "diverged"
                return
            due = every is not None and self.step % every == 0 and self.step < self.steps
            if due and not self.result.stopped:
                self._evaluate()

    def _train_step(self, batches: Iterator[Any]) -> StepInfo | None:
        """One step, recorded and judged; what the callbacks see (``None`` without any)."""
        lr = float(self.optimizer.param_groups[0]["lr"])
        loss, norm, skipped = self._optimizer_step(batches)
        self.scheduler.step()
        self.step += 1
        clipped = self.task.grad_clip is not None and not skipped and norm > self.task.grad_clip
        r = self.result
        r.steps_done += 1
        r.skipped += skipped
        r.clipped += clipped
        r.lrs.append(lr)
        r.losses.append(loss if math.isfinite(loss) else math.nan)
        r.grad_norms.append(norm if math.isfinite(norm) else math.nan)
        smoothed = self._judge(loss if math.isfinite(norm) else math.nan)
        if not self.hooks:
            return None
        return StepInfo(
            self.step,
            self.steps,
            lr,
            loss,
            norm,
            skipped,
            clipped,
            smoothed,
            self.model,
            self.optimizer,
        )

    def _judge(self, loss: float) -> float:
        """Feed the divergence detector; record what it says."""
        if self.detector is None:
            return math.nan
        self.detector_state, verdict = self.detector.update(self.detector_state, loss)
        if verdict.diverged:  # the loop stops the run unless a callback rolls it back
            self.result.diverged, self.diverged_why = True, verdict.reason
        elif not verdict.finite:
            self._event("skipped", verdict.reason)
        return verdict.smoothed

    def _optimizer_step(self, batches: Iterator[Any]) -> tuple[float, float, bool]:
        """One optimizer step over the task's micro-batches: ``(mean loss, gradient norm
        before clipping, skipped)``. A non-finite loss or gradient is not applied."""
        accumulation = self.task.accumulation_steps
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i in range(accumulation):
            batch = move_to_device(next(batches), self.device)
            with self._sync(last=i == accumulation - 1), self._autocast():
                loss = check_scalar_loss(self.loss_step(self.model, batch))
            scaled = loss / accumulation if accumulation > 1 else loss
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total += float(loss.detach())
        (mean,) = all_mean(total / accumulation)  # under DDP: every rank judges the same loss
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for p in self.trainable if p.grad is not None]
        norm_t = self.norm([p.grad for p in params])  # type: ignore[misc]
        norm = float(norm_t)
        if self.scaler is None and not (math.isfinite(mean) and math.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)  # NaN must never reach the weights
            return mean, norm, True
        clip = self.task.grad_clip  # clip_grad_norm_ rescales once norm + 1e-6 exceeds it
        rescaled = clip is not None and bool(params) and norm + 1e-6 > clip
        if self.task.grad_clip is not None and params:
            _clip(params, self.task.grad_clip, norm_t)
        if self.grad_hooks:
            grads: list[torch.Tensor] = [p.grad for p in params]  # type: ignore[misc]
            info = GradInfo(
                self.step + 1, grads, None if rescaled else norm, self.model, self.optimizer
            )
            for hook in self.grad_hooks:
                hook(info)
        if self.scaler is None:
            self.optimizer.step()
            return mean, norm, False
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return mean, norm, self.scaler.get_scale() < scale

    def _sync(self, last: bool) -> Any:
        """Skip DDP's gradient all-reduce on all but the last micro-batch."""
        no_sync: Any = getattr(self.model, "no_sync", None)
        return no_sync() if not last and no_sync is not None else contextlib.nullcontext()

    def _autocast(self) -> Any:
        return torch.autocast("cuda") if self.scaler is not None else contextlib.nullcontext()

    def _evaluate(self) -> float:
        """The task's metric now, recorded and given to the callbacks."""
        if self.task.val_loader is None:
            return math.nan
        _set_optimizer_mode(self.optimizer, train=False)
        try:
            metric = self.task.metric(self.model)
        finally:
            _set_optimizer_mode(self.optimizer, train=True)
        self.result.evals.append((self.step, metric))
        info = EvalInfo(self.step, self.steps, metric, self.model, self.optimizer)
        self._apply(self._dispatch("on_eval", info), None)
        return metric

    def _dispatch(self, hook: str, info: Any) -> list[Action]:
        actions = []
        for callback in self.hooks:
            method = getattr(callback, hook, None)
            action = method(info) if method is not None else None
            if action is not None:
                if not isinstance(action, Action):
                    raise ConfigError(
                        f"{type(callback).__name__}.{hook} must return an lrpilot Action or "
                        f"None, got {action!r}"
                    )
                actions.append(action)
        return actions

    def _apply(self, actions: list[Action], batches: Iterator[Any] | None) -> None:
        """Carry out the callbacks' actions in order; each becomes an event at the step where
        it was asked for (a rollback's message says where it went back to)."""
        for action in actions:
            at = self.step  # before a rollback resets it
            done = []
            if action.rollback:
                done.append(self._rollback())
            if action.lr_factor is not None:
                before = self.scheduler.scale
                self.scheduler.scale = before * action.lr_factor
                done.append(f"LR scale {before:.3g} -> {self.scheduler.scale:.3g}")
            if action.skip_batches and batches is not None:
                for _ in range(action.skip_batches):
                    next(batches)
                done.append(f"skipped {action.skip_batches} batches")
            if action.snapshot:
                self.snapshot = self._take_snapshot(action.snapshot_to)
            self.result.lr_scale = float(self.scheduler.scale)
            if action.stop:
                self.result.stopped = action.reason or "stopped by a callback"
                done.append("stopped the run")
            if done:
                self._event("action", "; ".join([action.reason, *done]).strip("; "), step=at)

    def _take_snapshot(self, place: str | Path | None) -> _Snapshot:
        """The run's state now, kept where ``place`` says (:attr:`Action.snapshot_to`)."""
        self._drop_snapshot()  # first: its memory is free before the new copies are made
        return _Snapshot(
            state=take_snapshot(self.model, self.optimizer, place),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            step=self.step,
            detector=self.detector_state,
            kept=len(self.result.losses),
        )

    def _rollback(self) -> str:
        snap = self.snapshot
        if snap is None:  # only before the run's first snapshot: at its start
            raise ConfigError("a rollback was asked for before the run took its first snapshot")
        snap.state.restore(self.model, self.optimizer)
        self.scheduler.load_state_dict(snap.scheduler)
        if self.scaler is not None and snap.scaler is not None:
            self.scaler.load_state_dict(snap.scaler)
        dropped = self.step - snap.step
        r = self.result
        if r.diverged:  # rescued: the divergence is undone with the steps that led to it
            self._event("diverged", self.diverged_why + "; rolled back instead of stopping")
            r.diverged = False
        self.step, self.detector_state = snap.step, snap.detector
        del r.lrs[snap.kept :], r.losses[snap.kept :], r.grad_norms[snap.kept :]
        r.evals[:] = [e for e in r.evals if e[0] <= snap.step]
        return f"rolled back to step {snap.step} ({dropped} steps discarded)"

    def _drop_snapshot(self) -> None:
        """Forget the snapshot; a snapshot's file is removed."""
        if self.snapshot is not None and isinstance(self.snapshot.state, SpilledSnapshot):
            self.snapshot.state.delete()
        self.snapshot = None

    def _event(self, kind: str, message: str, *, step: int | None = None) -> None:
        """Record an event at ``step`` (default: the run's step now)."""
        at = self.step if step is None else step
        self.result.events.append({"step": at, "kind": kind, "message": message})


def _overrides_grad_hook(callback: Any) -> bool:
    """Whether ``callback`` has an ``on_before_optimizer_step`` of its own (not the base
    class's no-op, which the loop then spares calling at every step)."""
    method = getattr(type(callback), "on_before_optimizer_step", None)
    return callable(method) and method is not Callback.on_before_optimizer_step


def _dataloaders(loader: Any) -> list[Any]:
    """The DataLoaders inside ``loader`` (itself, or what a wrapper holds)."""
    return loader_parts(loader)[0]


def _check_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    check_optimizer_holds(model, optimizer)
    if needs_closure(optimizer):
        raise ModelError(
            f"{type(optimizer).__name__} needs a closure at every step, which lrpilot's "
            "training loop does not give: use a first-order optimizer."
        )


def _set_optimizer_mode(optimizer: torch.optim.Optimizer, *, train: bool) -> None:
    """Schedule-free optimizers keep two parameter sequences: ``train()`` before training
    steps, ``eval()`` before evaluation; a no-op for every other optimizer."""
    switch = getattr(optimizer, "train" if train else "eval", None)
    if callable(switch):
        switch()


def _norm_function(params: Sequence[torch.Tensor]) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """How to compute the global 2-norm of these parameters' gradients, chosen once a run, as
    ``clip_grad_norm_`` computes it (so clipping with it is bitwise ``clip_grad_norm_``).

    Gradients on one device in one dtype (the usual case): one fused per-tensor norm, then
    the norm of those, half the cost of ``get_total_norm``'s grouping on a small model.
    Otherwise torch's own grouping.
    """
    first = params[0] if params else None
    uniform = first is not None and all(
        p.device == first.device and p.dtype == first.dtype for p in params
    )
    foreach_norm: Any = getattr(torch, "_foreach_norm", None)
    get_total_norm: Any = getattr(torch.nn.utils, "get_total_norm", None)

    def fused(grads: list[torch.Tensor]) -> torch.Tensor:
        if not grads:
            return torch.tensor(0.0)
        if any(g.is_sparse for g in grads):
            return grouped(grads)
        return torch.linalg.vector_norm(torch.stack(foreach_norm(grads)))

    def grouped(grads: list[torch.Tensor]) -> torch.Tensor:
        if not grads:
            return torch.tensor(0.0)
        if get_total_norm is not None:  # torch >= 2.6
            return get_total_norm(grads)
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))

    return fused if uniform and foreach_norm is not None else grouped


def _clip(params: Sequence[torch.Tensor], max_norm: float, norm: torch.Tensor) -> None:
    """Scale the gradients of ``params`` to a global norm of at most ``max_norm``: exactly
    ``clip_grad_norm_``'s arithmetic, reusing the norm already computed."""
    clip_with_norm: Any = getattr(torch.nn.utils, "clip_grads_with_norm_", None)
    if clip_with_norm is not None:  # torch >= 2.6
        clip_with_norm(params, max_norm, norm)
    else:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
