"""Hugging Face ``transformers``: the monitor as a ``TrainerCallback``, and the range test on a
``Trainer``'s model, optimizer and data.

::

    from lrpilot.integrations.transformers import MonitorCallback, find_lr_for_trainer

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      callbacks=[MonitorCallback()])
    res = find_lr_for_trainer(trainer)   # sets the pick on the trainer's optimizer
    trainer.train()

:func:`find_lr_for_trainer` builds the trainer's optimizer (``trainer.create_optimizer()``, kept
by ``train()``), sweeps it on the trainer's train dataloader with ``model(**batch).loss`` as
the loss, for the run's length and the schedule ``train()`` will use (the trainer's scheduler,
or the one ``trainer.create_scheduler`` builds from ``lr_scheduler_type`` and the warmup,
built on a stand-in optimizer and read off a copy), and sets the pick on every param group
(ratios kept), on ``args.learning_rate`` and, when the trainer already has one, on its LR
scheduler.

:class:`MonitorCallback` reads each step's loss from what ``Trainer.training_step`` returns (the
loss the Trainer computed, label smoothing or a ``compute_loss`` override included), measures
the gradient norm in ``on_pre_optimizer_step`` (after the Trainer's own ``max_grad_norm``
clipping; it clips adaptively too with the monitor's ``clip=``),
judges every step in ``on_step_end`` (a non-finite one included) and acts: a rollback of
model, optimizer and scheduler, an LR cut that reaches the Trainer's scheduler (its
``base_lrs``), and ``control.should_training_stop`` for an early stop (the best weights put
back). A rollback does not rewind the Trainer's ``global_step``: the scheduler is stepped
forward again to follow it, and the events carry it (see :class:`MonitorCallback`). The extra
is ``[transformers]``.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from typing import Any

from lrpilot._imports import require
from lrpilot.control.monitor import Monitor
from lrpilot.errors import ConfigError
from lrpilot.integrations._schedule import catch_up, positions

transformers = require("transformers", "the Hugging Face integration")

__all__ = ["MonitorCallback", "find_lr_for_trainer"]


def _model_loss(model: Any, batch: Any) -> Any:
    """The loss a ``transformers`` model computes itself from a dict batch with labels."""
    return model(**batch).loss


def find_lr_for_trainer(trainer: Any, **options: Any) -> Any:
    """Run :func:`lrpilot.find_lr` on ``trainer``'s model, optimizer and train dataloader, and
    set the pick.

    Args:
        trainer: A ``transformers.Trainer`` (its optimizer is created when missing).
        **options: Passed to :func:`lrpilot.find_lr` (``num_steps``, ``end_lr``, ``rule``;
            ``steps`` defaults to the training length the trainer's arguments give;
            ``schedule`` to the trainer's LR scheduler, or the one its arguments describe:
            ``lr_scheduler_type``, ``warmup_steps``/``warmup_ratio``,
            ``lr_scheduler_kwargs``; none for ``reduce_lr_on_plateau``).

    Returns:
        The :class:`~lrpilot.LRFinderResult`; the model and RNGs are as they were, the
        optimizer's LRs are the pick's.
    """
    import lrpilot

    optimizer = trainer.optimizer or trainer.create_optimizer()
    loader = trainer.get_train_dataloader()
    args = trainer.args
    options.setdefault("progress", False)
    options.setdefault("accumulation_steps", max(1, int(args.gradient_accumulation_steps)))
    if "steps" not in options:
        options["steps"] = _training_steps(args, loader)
    if args.max_grad_norm and "grad_clip" not in options:
        options["grad_clip"] = float(args.max_grad_norm)
    if "schedule" not in options:
        schedule = _run_schedule(trainer, optimizer, options["steps"])
        if schedule is not None:
            options["schedule"] = schedule
    result = lrpilot.find_lr(trainer.model, optimizer, loader, loss_step=_model_loss, **options)
    scheduler = getattr(trainer, "lr_scheduler", None)
    result.apply(optimizer, scheduler=getattr(scheduler, "scheduler", scheduler))
    args.learning_rate = float(result.lr)
    return result


def _run_schedule(trainer: Any, optimizer: Any, steps: int) -> Any:
    """The schedule ``train()`` will run, as multipliers read off a copy of its scheduler:
    the trainer's own when it has one, else the one its arguments describe. ``None`` for a
    schedule that cannot be read ahead of the run (``ReduceLROnPlateau``) or built from the
    arguments: the range test then assumes a constant LR and says so."""
    from lrpilot.schedules import from_scheduler

    scheduler = getattr(trainer, "lr_scheduler", None)
    scheduler = getattr(scheduler, "scheduler", scheduler)  # Accelerate's wrapper
    if scheduler is None:
        scheduler = _scheduler_from_args(trainer, optimizer, steps)
    try:
        return None if scheduler is None else from_scheduler(scheduler, steps)
    except ConfigError:
        return None


def _scheduler_from_args(trainer: Any, optimizer: Any, steps: int) -> Any:
    """The scheduler ``trainer.create_scheduler`` builds for ``steps``, on a stand-in optimizer
    (a scheduler's constructor sets the LRs of the optimizer it is given). The trainer is left
    without a scheduler, as it was, so ``train()`` builds the real one on the real optimizer."""
    from lrpilot.schedules._tabulated import stand_in

    saved = {
        k: vars(trainer)[k]
        for k in ("lr_scheduler", "_created_lr_scheduler")
        if k in vars(trainer)
    }
    try:
        return trainer.create_scheduler(steps, optimizer=stand_in(_inner(optimizer)))
    except (ValueError, TypeError):  # arguments train() would refuse too: not ours to judge
        return None
    finally:
        for key in ("lr_scheduler", "_created_lr_scheduler"):
            vars(trainer).pop(key, None)
        vars(trainer).update(saved)


def _training_steps(args: Any, loader: Any) -> int:
    if args.max_steps and args.max_steps > 0:
        return int(args.max_steps)
    per_epoch = max(1, len(loader) // max(1, int(args.gradient_accumulation_steps)))
    return max(1, math.ceil(float(args.num_train_epochs) * per_epoch))


_Base: Any = transformers.TrainerCallback


class MonitorCallback(_Base):
    """Watch a ``Trainer``'s run with a :class:`~lrpilot.Monitor`.

    Each step's loss is the one the Trainer computed and backpropagated: the sum over the
    step's micro-batches of what ``Trainer.training_step`` returned (read by wrapping that
    method on the trainer that calls ``on_train_begin``, for the run), so a loss the Trainer
    computes itself (``label_smoothing_factor``, ``compute_loss_func``, a ``compute_loss``
    override) is seen too. Outside a ``Trainer`` the model's own ``output.loss`` is read
    instead, and a warning says when no loss came at all.

    Every optimizer step is judged, a non-finite one included: the Trainer has applied its
    NaN/inf gradients, so the monitor rolls back to its last good snapshot and cuts the LR
    (a step that Accelerate's ``GradScaler`` skipped is only counted, as in a plain loop).

    What a rollback rewinds: the model's weights, the optimizer's state and the LR cut's
    bases. What it does not: the Trainer's ``state.global_step``, its data order and its
    logs (the discarded steps stay in them), nor the LR scheduler's position, which is
    stepped forward again so the schedule keeps following ``global_step`` and ends with the
    run (``lrpilot.train`` instead redoes the discarded steps). The monitor's events carry
    ``global_step``, as the Trainer's logs do; "rolled back to step N" names the
    ``global_step`` of the snapshot whose weights were put back.

    Args:
        monitor: The monitor (``None``: a default one).
        metric: The evaluation metric to watch (``"eval_loss"`` by default; a key of the
            metrics ``on_evaluate`` gets).
        greater_is_better: Whether a larger ``metric`` is better (``False`` for a loss).
        trainer: The ``Trainer`` whose ``training_step`` to read the loss from. ``None``: the
            one calling ``on_train_begin``, found up the call stack (callbacks are handed its
            model and optimizer, never the trainer itself); give it when the callback is
            driven some other way, or to make the choice explicit.
    """

    def __init__(
        self,
        monitor: Monitor | None = None,
        *,
        metric: str = "eval_loss",
        greater_is_better: bool = False,
        trainer: Any = None,
    ) -> None:
        self.monitor = monitor if monitor is not None else Monitor()
        self.metric, self.greater_is_better = metric, bool(greater_is_better)
        self._losses: list[float] = []
        self._norm: float | None = None  # None: no optimizer step since the last judgement
        self._hook: Any = None
        self._given = trainer
        if trainer is not None and not isinstance(trainer, transformers.Trainer):
            raise ConfigError(
                f"trainer must be a transformers.Trainer, got {type(trainer).__name__}"
            )
        self._trainer: Any = None  # the trainer whose training_step is wrapped
        self._warned = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start watching the model, optimizer and scheduler the Trainer built, and reading
        each step's loss."""
        model, optimizer = kwargs["model"], kwargs["optimizer"]
        scheduler = kwargs.get("lr_scheduler")
        steps = int(state.max_steps) if state.max_steps and state.max_steps > 0 else None
        self.monitor.watch(
            model, _inner(optimizer), *([scheduler] if scheduler else []), steps=steps
        )
        self._losses, self._norm, self._warned = [], None, False
        self._trainer = self._given if self._given is not None else _calling_trainer()
        if self._trainer is not None:
            _wrap_training_step(self._trainer, self._losses)
        else:
            self._hook = model.register_forward_hook(self._keep_loss)

    def _keep_loss(self, module: Any, inputs: Any, output: Any) -> None:
        """The model's own loss (outside a Trainer only)."""
        loss = getattr(output, "loss", None)
        if module.training and loss is not None:
            self._losses.append(float(loss.detach()))

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Measure the gradient norm (and clip it, with the monitor's ``clip=``), right before
        the step."""
        self._norm = self.monitor._measure_and_clip()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Judge the step just taken, a non-finite one included; roll back, cut the LR or
        stop when needed."""
        if self._norm is None:
            return
        norm, self._norm = self._norm, None
        loss = self._step_loss()
        if loss is None:
            self._warn_no_loss()
            return
        skipped = bool(getattr(kwargs.get("optimizer"), "step_was_skipped", False))
        schedulers = self.monitor._need_controls("_judge_applied").schedulers
        before = positions(schedulers)
        with self.monitor._framework_step(state.global_step):
            answer = self.monitor._judge_applied(loss, norm, applied=not skipped)
        if answer.rolled_back:
            catch_up(schedulers, before)
        if answer.stop:
            control.should_training_stop = True

    def _step_loss(self) -> float | None:
        """The step's loss, and forget it: the sum of ``training_step``'s returns (each is
        its micro-batch's share of the step's loss), or the mean of the model's losses."""
        losses = self._losses[:]
        self._losses.clear()
        if not losses:
            return None
        return sum(losses) if self._trainer is not None else sum(losses) / len(losses)

    def _warn_no_loss(self) -> None:
        """Say once that steps go unjudged: silence would look like a healthy run."""
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            "MonitorCallback saw no training loss for this step: the model's output has no "
            "`.loss` (the loss is computed outside it) and no Trainer was found to read it "
            "from; the monitor cannot judge the steps.",
            RuntimeWarning,
            stacklevel=2,
        )

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Feed the evaluation metric; stop early when the monitor says so."""
        if self._hook is not None:
            self._losses.clear()  # evaluation forwards are not training steps
        value = (kwargs.get("metrics") or {}).get(self.metric)
        if value is None or self.monitor._controls is None:
            return
        metric = float(value) if self.greater_is_better else -float(value)
        with self.monitor._framework_step(state.global_step):
            answer = self.monitor.evaluate(metric)
        if answer.stop:
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop reading the losses."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._trainer is not None:
            _unwrap_training_step(self._trainer)
            self._trainer = None


def _calling_trainer() -> Any:
    """The ``Trainer`` whose ``train()`` is calling this callback, found up the call stack
    (callbacks are handed its model and optimizer, never the trainer itself); ``None`` when
    none is (a callback called by hand)."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, transformers.Trainer):
                return candidate
            frame = frame.f_back
        return None
    finally:
        del frame  # a frame held in a local keeps the whole stack alive


def _wrap_training_step(trainer: Any, losses: list[float]) -> None:
    """Make ``trainer.training_step`` also append each loss it returns to ``losses`` (on
    the instance only, undone by :func:`_unwrap_training_step`; an earlier wrap left by a
    ``train()`` that raised is undone first, so losses are never counted twice)."""
    _unwrap_training_step(trainer)
    had_own = "training_step" in vars(trainer)
    original = trainer.training_step

    @functools.wraps(original)
    def training_step(*args: Any, **kwargs: Any) -> Any:
        loss = original(*args, **kwargs)
        losses.append(float(loss.detach()))
        return loss

    training_step._lrpilot_had_own = had_own  # type: ignore[attr-defined]
    trainer.training_step = training_step


def _unwrap_training_step(trainer: Any) -> None:
    """Put back the ``training_step`` that :func:`_wrap_training_step` wrapped."""
    wrapper = vars(trainer).get("training_step")
    while wrapper is not None and hasattr(wrapper, "_lrpilot_had_own"):
        if wrapper._lrpilot_had_own:
            trainer.training_step = wrapper.__wrapped__
        else:
            del trainer.training_step  # the class's method shows through again
        wrapper = vars(trainer).get("training_step")


def _inner(optimizer: Any) -> Any:
    """The torch optimizer inside Accelerate's wrapper (which the Trainer hands callbacks)."""
    return getattr(optimizer, "optimizer", optimizer)
