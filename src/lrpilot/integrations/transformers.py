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

:class:`MonitorCallback` reads each step's loss from the model's output (a forward hook), clips
adaptively in ``on_pre_optimizer_step`` (after the Trainer's own ``max_grad_norm`` clipping),
judges the step in ``on_step_end`` and acts: a rollback of model, optimizer and scheduler, an
LR cut that reaches the Trainer's scheduler (its ``base_lrs``), and
``control.should_training_stop`` for an early stop (the best weights put back). The extra is
``[transformers]``.
"""

from __future__ import annotations

import math
from typing import Any

from lrpilot._imports import require
from lrpilot.control.monitor import Monitor

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
    from lrpilot.errors import ConfigError
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

    Args:
        monitor: The monitor (``None``: a default one).
        metric: The evaluation metric to watch (``"eval_loss"`` by default; a key of the
            metrics ``on_evaluate`` gets).
        greater_is_better: Whether a larger ``metric`` is better (``False`` for a loss).
    """

    def __init__(
        self,
        monitor: Monitor | None = None,
        *,
        metric: str = "eval_loss",
        greater_is_better: bool = False,
    ) -> None:
        self.monitor = monitor if monitor is not None else Monitor()
        self.metric, self.greater_is_better = metric, bool(greater_is_better)
        self._losses: list[float] = []
        self._norm = math.nan
        self._hook: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start watching the model, optimizer and scheduler the Trainer built."""
        model, optimizer = kwargs["model"], kwargs["optimizer"]
        scheduler = kwargs.get("lr_scheduler")
        steps = int(state.max_steps) if state.max_steps and state.max_steps > 0 else None
        self.monitor.watch(
            model, _inner(optimizer), *([scheduler] if scheduler else []), steps=steps
        )
        self._hook = model.register_forward_hook(self._keep_loss)

    def _keep_loss(self, module: Any, inputs: Any, output: Any) -> None:
        loss = getattr(output, "loss", None)
        if module.training and loss is not None:
            self._losses.append(float(loss.detach()))

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Measure the gradient norm and clip adaptively, right before the step."""
        self._norm = self.monitor._measure_and_clip()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Judge the step just taken; roll back, cut the LR or stop when needed."""
        if math.isnan(self._norm) or not self._losses:
            return
        loss = sum(self._losses) / len(self._losses)
        norm, self._losses, self._norm = self._norm, [], math.nan
        if self.monitor._judge_applied(loss, norm).stop:
            control.should_training_stop = True

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Feed the evaluation metric; stop early when the monitor says so."""
        self._losses = []  # evaluation forwards are not training steps
        value = (kwargs.get("metrics") or {}).get(self.metric)
        if value is None or self.monitor._controls is None:
            return
        metric = float(value) if self.greater_is_better else -float(value)
        if self.monitor.evaluate(metric).stop:
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Stop reading the model's outputs."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


def _inner(optimizer: Any) -> Any:
    """The torch optimizer inside Accelerate's wrapper (which the Trainer hands callbacks)."""
    return getattr(optimizer, "optimizer", optimizer)
