"""PyTorch Lightning: lrpilot's range test before fit and its monitor during fit.

::

    from lrpilot.integrations.lightning import LRPilotCallback

    trainer = pl.Trainer(max_steps=2_000, callbacks=[LRPilotCallback()])
    trainer.fit(module, datamodule)

At the start of training (optimizers configured, data loaded), :class:`LRPilotCallback` runs
:func:`lrpilot.find_lr` on the module, its optimizer and the train dataloader, with the run's
length (``trainer.estimated_stepping_batches``) and the schedule of the LR scheduler that
``configure_optimizers`` returned (read off a copy of it, stepped per optimizer step or per
epoch as its ``interval`` says), and sets the pick: every param group keeps its ratio to the
others, and the LR schedulers Lightning built are retargeted too (every LR they keep, scaled to
the new peak: ``base_lrs``, ``OneCycleLR``'s ``max_lr``, ``CyclicLR``'s ``max_lrs``, the
children of a ``SequentialLR``; lrpilot's ``ScheduleLR`` through its peak), so their next
``step()`` does not put the old LR back. The module, optimizer and RNGs come back exactly as
they were.

During fit, a :class:`~lrpilot.Monitor` watches every optimizer step: it measures the gradient
norm right before the step (``on_before_optimizer_step``; and clips it, with ``clip=``),
judges the step after it (``on_train_batch_end``), a non-finite one included, rolls back and
cuts the LR, and stops the run (``trainer.should_stop``) on an early stop, the best weights
put back. A rollback rewinds the weights and the optimizer's state, not Lightning's
``global_step`` nor its data order or logs; the LR schedulers are stepped forward again to
where they were, so the schedule keeps following the fit and ends with it, and the monitor's
events carry ``global_step``. The callback needs automatic optimization and one optimizer.
With several schedulers on the optimizer, or a ``ReduceLROnPlateau``, the range test
assumes a constant LR (``result.assumed`` says so) unless ``schedule=`` is given. Works with
``lightning.pytorch`` and with ``pytorch_lightning`` (extra ``[lightning]``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from lrpilot._imports import require
from lrpilot.control.monitor import Monitor
from lrpilot.errors import ConfigError, MissingDependencyError
from lrpilot.integrations._schedule import catch_up, positions


def _lightning() -> Any:
    """``lightning.pytorch`` when installed, else ``pytorch_lightning``."""
    try:
        return require("lightning.pytorch", "the Lightning callback")
    except MissingDependencyError:
        return require("pytorch_lightning", "the Lightning callback")


pl = _lightning()

__all__ = ["LRPilotCallback"]


_Base: Any = pl.Callback


class LRPilotCallback(_Base):
    """Run lrpilot's range test before fit and its monitor during fit.

    The monitor judges every optimizer step, one with a NaN/inf loss or gradient norm
    included: Lightning has applied it, so the monitor rolls back to its last good snapshot
    and cuts the LR (a step that AMP's ``GradScaler`` skipped is only counted). A rollback
    rewinds the module's weights and the optimizer's state; it does not rewind
    ``trainer.global_step``, the data order or what was logged, and the LR schedulers are
    stepped forward again to their position before it, so the schedule keeps following
    ``global_step`` and ends with the fit (``lrpilot.train`` instead redoes the discarded
    steps). The monitor's events carry ``global_step``; "rolled back to step N" names the
    ``global_step`` of the snapshot whose weights were put back.

    Args:
        find_lr: Run the range test at the start of training and set its pick.
        monitor: A :class:`~lrpilot.Monitor` to watch the fit (``None``: a default one;
            ``False``: no monitor).
        metric: The logged validation metric the monitor reads (``trainer.callback_metrics``)
            for plateaus, overfitting and early stops; ``None``: none.
        higher_is_better: Whether a larger ``metric`` is better (``False`` for a loss).
        **find_lr_options: Passed to :func:`lrpilot.find_lr` (``num_steps``, ``end_lr``,
            ``rule``, ...).

    Attributes:
        result: The range test's :class:`~lrpilot.LRFinderResult` once it ran.
    """

    def __init__(
        self,
        *,
        find_lr: bool = True,
        monitor: Monitor | bool | None = None,
        metric: str | None = "val_loss",
        higher_is_better: bool = False,
        **find_lr_options: Any,
    ) -> None:
        super().__init__()
        self.find_lr = bool(find_lr)
        if monitor is True or monitor is None:
            monitor = Monitor()
        self.monitor: Monitor | None = monitor if isinstance(monitor, Monitor) else None
        self.metric, self.higher_is_better = metric, bool(higher_is_better)
        self.find_lr_options = find_lr_options
        self.result: Any = None
        self._losses: list[float] = []
        self._norm: float | None = None  # None: no optimizer step since the last judgement

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Range test, then start watching."""
        optimizer = _one_optimizer(trainer)
        configs = [c for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is optimizer]
        schedulers = [c.scheduler for c in configs]
        if self.find_lr:
            self.result = self._range_test(trainer, pl_module, optimizer, configs)
        if self.monitor is not None:
            total = trainer.estimated_stepping_batches
            steps = int(total) if math.isfinite(total) and total >= 1 else None
            self.monitor.watch(pl_module, optimizer, *schedulers, steps=steps)
            self._losses, self._norm = [], None

    def _range_test(self, trainer: Any, pl_module: Any, optimizer: Any, configs: list) -> Any:
        import lrpilot

        options = {"progress": False, **self.find_lr_options}
        total = trainer.estimated_stepping_batches
        if "steps" not in options and math.isfinite(total):
            options["steps"] = int(total)
        if "schedule" not in options:
            schedule = _run_schedule(trainer, configs, options.get("steps"))
            if schedule is not None:
                options["schedule"] = schedule
        if trainer.accumulate_grad_batches > 1:
            options.setdefault("accumulation_steps", trainer.accumulate_grad_batches)
        loader = _train_loader(trainer)
        with _no_logging(pl_module):
            result = lrpilot.find_lr(
                pl_module, optimizer, loader, loss_step=_training_step_loss, **options
            )
        schedulers = [c.scheduler for c in configs]
        retargeted: Any = schedulers[0] if len(schedulers) == 1 else schedulers or None
        result.apply(optimizer, scheduler=retargeted)
        return result

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
        """Keep each micro-batch's loss for the monitor."""
        if self.monitor is not None:
            self._losses.append(float(loss.detach()) * trainer.accumulate_grad_batches)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        """Measure the gradient norm (and clip it, with the monitor's ``clip=``), right before
        the step."""
        if self.monitor is not None:
            self._norm = self.monitor._measure_and_clip()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Judge the optimizer step just taken, a non-finite one included (Lightning applied
        it: the monitor rolls back); roll back, cut the LR or stop when needed. After a
        rollback the LR schedulers are stepped forward again to Lightning's position."""
        if self.monitor is None or self._norm is None or not self._losses:
            return
        loss = sum(self._losses) / len(self._losses)
        norm, self._losses, self._norm = self._norm, [], None
        schedulers = self.monitor._need_controls("_judge_applied").schedulers
        before = positions(schedulers)
        applied = not _scaler_skipped(trainer, norm)
        with self.monitor._framework_step(trainer.global_step):
            answer = self.monitor._judge_applied(
                loss, norm, applied=applied, bounded=_clipped_by(trainer, norm)
            )
        if answer.rolled_back:
            catch_up(schedulers, before)
        if answer.stop:
            trainer.should_stop = True

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Feed the validation metric; stop early when the monitor says so."""
        if self.monitor is None or self.metric is None or trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None or self.monitor._controls is None:
            return
        metric = float(value) if self.higher_is_better else -float(value)
        with self.monitor._framework_step(trainer.global_step):
            answer = self.monitor.evaluate(metric)
        if answer.stop:
            trainer.should_stop = True


def _scaler_skipped(trainer: Any, norm: float) -> bool:
    """Whether the AMP ``GradScaler`` skipped the step: it does when the (unscaled)
    gradients are not finite, and then nothing was applied to roll back."""
    plugin = getattr(trainer, "precision_plugin", None)
    return getattr(plugin, "scaler", None) is not None and not math.isfinite(norm)


def _one_optimizer(trainer: Any) -> Any:
    optimizers = trainer.optimizers
    if len(optimizers) != 1:
        raise ConfigError(
            f"LRPilotCallback handles one optimizer, the module configured {len(optimizers)}: "
            "run lrpilot.find_lr on each yourself."
        )
    return optimizers[0]


def _train_loader(trainer: Any) -> Any:
    """The train dataloader Lightning built (unwrapped from its CombinedLoader)."""
    loader = trainer.train_dataloader
    iterables = getattr(loader, "iterables", None)
    return iterables if iterables is not None else loader


def _training_step_loss(model: Any, batch: Any) -> Any:
    """The loss of the module's own ``training_step`` (a tensor, or a dict's ``"loss"``)."""
    out = model.training_step(batch, 0)
    if isinstance(out, dict):
        out = out.get("loss")
    if out is None:
        raise ConfigError(
            "training_step returned no loss, which the range test needs: return the loss "
            "tensor (or a dict with 'loss'); manual optimization is not supported."
        )
    return out


@contextlib.contextmanager
def _no_logging(module: Any) -> Iterator[None]:
    """Silence ``self.log`` / ``self.log_dict`` while the range test calls ``training_step``
    (outside Lightning's loop, logging would fail or pollute the run's metrics)."""

    def silent(*args: Any, **kwargs: Any) -> None:
        return None

    module.log, module.log_dict = silent, silent
    try:
        yield
    finally:
        del module.log, module.log_dict


def _run_schedule(trainer: Any, configs: list, steps: int | None) -> Any:
    """The schedule the fit will run, for the range test: lrpilot's own ``ScheduleLR``'s, or
    the one LR scheduler's multipliers (read off a copy of it; stepped every optimizer step or
    every epoch, as its config's ``interval`` and ``frequency`` say). ``None`` where it cannot
    be known before the run: no scheduler or several, a ``ReduceLROnPlateau``, an epoch length
    Lightning does not know, or a scheduler that cannot be copied."""
    if len(configs) != 1 or getattr(configs[0], "reduce_on_plateau", False):
        return None
    config = configs[0]
    scheduler = config.scheduler
    if hasattr(scheduler, "peak_lrs"):
        return scheduler.schedule  # lrpilot's own: its shape is known
    every = max(1, int(getattr(config, "frequency", 1) or 1))
    if getattr(config, "interval", "step") == "epoch":
        per_epoch = _steps_per_epoch(trainer)
        if per_epoch is None:
            return None
        every *= per_epoch
    from lrpilot.schedules import from_scheduler

    try:
        return from_scheduler(scheduler, steps, every=every)
    except ConfigError:  # the range test then assumes a constant LR and says so
        return None


def _steps_per_epoch(trainer: Any) -> int | None:
    """Optimizer steps in one epoch of the fit, if Lightning knows the epoch's length."""
    batches = trainer.num_training_batches
    if not math.isfinite(batches) or batches < 1:
        return None
    return max(1, math.ceil(int(batches) / max(1, int(trainer.accumulate_grad_batches))))


def _clipped_by(trainer: Any, norm: float) -> bool:
    """Whether Lightning's own norm clipping (``Trainer(gradient_clip_val=...)``) bounded a
    step whose norm, measured before it, was ``norm``: the monitor then does not judge that
    norm (the update was bounded; the loss says whether it hurt)."""
    clip = getattr(trainer, "gradient_clip_val", None)
    algorithm = getattr(trainer, "gradient_clip_algorithm", None)  # None: "norm"
    algorithm = str(getattr(algorithm, "value", algorithm) or "norm")
    return clip is not None and float(clip) > 0 and algorithm == "norm" and norm > float(clip)
