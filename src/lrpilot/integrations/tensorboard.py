"""TensorBoard: a run's LR, loss, gradient norm, clipped share and events, and a range test.

:class:`TensorBoardCallback` is a :func:`lrpilot.train` callback writing, at every step,
``train/lr``, ``train/loss`` and ``train/grad_norm``, ``val/metric`` at every evaluation and,
when given the run's :class:`~lrpilot.Monitor`, ``monitor/clipped_share``, ``monitor/lr_scale``
and each monitor event as text (tag ``events``), as it happens::

    monitor = lrpilot.Monitor()
    tb = TensorBoardCallback("runs/exp1", monitor=monitor)
    lrpilot.train(task, lr, callbacks=[monitor, tb])

:func:`write_range_test` writes an :class:`~lrpilot.LRFinderResult`'s curve as scalars. Both use
``torch.utils.tensorboard.SummaryWriter`` (the extra ``[tensorboard]``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lrpilot._imports import require
from lrpilot.control.callbacks import Callback, EvalInfo, RunInfo, StepInfo

__all__ = ["TensorBoardCallback", "write_range_test"]


def _summary_writer(log_dir: str | Path) -> Any:
    require("tensorboard", "TensorBoard logging")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))


class TensorBoardCallback(Callback):
    """Write a run to TensorBoard as it goes.

    Args:
        log_dir: The run's directory (one sub-directory per run, as TensorBoard expects).
        monitor: The run's :class:`~lrpilot.Monitor`, for the clipped share, the LR scale and
            its events (put the monitor before this callback in ``callbacks``).
        writer: A ``SummaryWriter`` of your own instead of ``log_dir`` (it is not closed).
    """

    def __init__(
        self, log_dir: str | Path | None = None, *, monitor: Any = None, writer: Any = None
    ) -> None:
        if (log_dir is None) == (writer is None):
            from lrpilot import _validate as check

            raise check.ArgError("log_dir", log_dir, "a directory, or writer=SummaryWriter(...)")
        self.log_dir, self.monitor = log_dir, monitor
        self._writer, self._own = writer, writer is None
        self._written = 0

    def on_run_start(self, info: RunInfo) -> None:
        """Open the writer (when given a directory)."""
        if self._own:
            self._writer = _summary_writer(self.log_dir)  # type: ignore[arg-type]
        self._written = 0

    def on_step(self, info: StepInfo) -> None:
        """The step's LR, loss and gradient norm (non-finite values are left out)."""
        w = self._writer
        w.add_scalar("train/lr", info.lr, info.step)
        if math.isfinite(info.loss):
            w.add_scalar("train/loss", info.loss, info.step)
        if math.isfinite(info.grad_norm):
            w.add_scalar("train/grad_norm", info.grad_norm, info.step)
        if self.monitor is not None:
            w.add_scalar("monitor/clipped_share", self.monitor.clipped_share, info.step)
            w.add_scalar("monitor/lr_scale", self.monitor.lr_scale, info.step)
            self._events()

    def on_eval(self, info: EvalInfo) -> None:
        """The validation metric."""
        if math.isfinite(info.metric):
            self._writer.add_scalar("val/metric", info.metric, info.step)

    def on_run_end(self, result: Any) -> None:
        """The remaining events (the run's own, when there is no monitor), then close."""
        if self.monitor is not None:
            self._events()
        else:
            for event in getattr(result, "events", []):
                self._writer.add_text("events", str(event["message"]), int(event["step"]))
        if self._own:
            self._writer.close()
        else:
            self._writer.flush()

    def _events(self) -> None:
        events = self.monitor.events
        for event in events[self._written :]:
            self._writer.add_text("events", event["message"], int(event["step"]))
        self._written = len(events)


def write_range_test(
    result: Any, log_dir: str | Path | None = None, *, writer: Any = None, tag: str = "range_test"
) -> None:
    """Write a range test's curve: ``{tag}/loss`` and ``{tag}/lr`` at each sweep step, the
    loss against ``log10(lr)`` (``{tag}/loss_vs_log10_lr``, the step being ``1000·log10 lr``
    rounded, TensorBoard's x-axis being an integer) and the suggestion as text.

    Args:
        result: An :class:`~lrpilot.LRFinderResult` (anything with ``lrs`` and ``losses``).
        log_dir: Where to write, or ``writer``: a ``SummaryWriter`` of your own (not closed).
    """
    own = writer is None
    if own:
        if log_dir is None:
            from lrpilot import _validate as check

            raise check.ArgError("log_dir", log_dir, "a directory, or writer=SummaryWriter(...)")
        writer = _summary_writer(log_dir)
    try:
        for i, (lr, loss) in enumerate(zip(result.lrs, result.losses, strict=True)):
            writer.add_scalar(f"{tag}/lr", lr, i)
            if math.isfinite(loss):
                writer.add_scalar(f"{tag}/loss", loss, i)
                writer.add_scalar(f"{tag}/loss_vs_log10_lr", loss, round(1000 * math.log10(lr)))
        lr = getattr(result, "lr", None)
        if lr is not None:
            writer.add_text(f"{tag}/suggestion", f"suggested LR {lr:.4g}", 0)
    finally:
        if own:
            writer.close()
        else:
            writer.flush()
