"""TensorBoard: a run's LR, loss, gradient norm, clipped share and events, and a range test.

:class:`TensorBoardCallback` is a :func:`lrpilot.train` callback writing, at every step,
``train/lr``, ``train/loss`` and ``train/grad_norm``, ``val/metric`` at every evaluation and,
when given the run's :class:`~lrpilot.Monitor`, ``monitor/clipped_share``, ``monitor/lr_scale``
and each monitor event as text (tag ``events``), as it happens (the run's own events, such as
a divergence stop, at its end)::

    monitor = lrpilot.Monitor()
    tb = TensorBoardCallback("runs/exp1", monitor=monitor)
    lrpilot.train(task, lr, callbacks=[monitor, tb])

:func:`write_range_test` writes an :class:`~lrpilot.LRFinderResult`'s curve as scalars. Both use
``torch.utils.tensorboard.SummaryWriter`` (the extra ``[tensorboard]``).
"""

from __future__ import annotations

import importlib
import math
import warnings
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

    After a rollback the loop redoes the discarded steps under the same step numbers. In a
    ``log_dir`` of its own, the callback marks the session's start and then a restart at the
    first redone step (``SessionLog.START`` events, what ``SummaryWriter(purge_step=...)``
    writes), so TensorBoard's readers drop what was written from that step on and show the
    redo in its place, one point a step. The monitor's events are written one call late,
    after any such mark, so that the rollback's own event (at the step where it happened) is
    kept; an event inside steps that a later rollback discards is hidden with them by the
    readers that honour the mark (the run's ``events`` keep every one). With a ``writer`` of
    your own nothing is marked (a mark would hide whatever else was written to it at those
    steps): the redo is written at the same steps again, and TensorBoard's data server keeps
    the later point of each tag and step.

    Args:
        log_dir: The run's directory (one sub-directory per run, as TensorBoard expects).
        monitor: The run's :class:`~lrpilot.Monitor`, for the clipped share, the LR scale and
            its events as they happen (put the monitor in ``callbacks`` too, before this
            callback; one that is not there watches nothing: a warning says so, and the
            run's own events are written at its end as without a monitor).
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
        self._written = 0  # the monitor's events written so far
        self._seen = 0  # the monitor's events there were at the previous step
        self._last = 0  # the last step written
        self._live: bool | None = None  # the monitor watches this run (None: not known yet)

    def on_run_start(self, info: RunInfo) -> None:
        """Open the writer (when given a directory)."""
        if self._own:
            self._writer = _summary_writer(self.log_dir)  # type: ignore[arg-type]
            self._mark_start(0)  # the session's start: a later mark then reads as a restart
        self._written, self._seen, self._last, self._live = 0, 0, 0, None

    def on_step(self, info: StepInfo) -> None:
        """The step's LR, loss and gradient norm (non-finite values are left out)."""
        if info.step <= self._last and self._own:  # a rollback: the steps are redone
            self._mark_start(info.step)
        self._last = info.step
        watching = self._watching(info.model)
        if watching:  # those there were at the previous call: after the restart mark
            self._events(self._seen)
        w = self._writer
        w.add_scalar("train/lr", info.lr, info.step)
        if math.isfinite(info.loss):
            w.add_scalar("train/loss", info.loss, info.step)
        if math.isfinite(info.grad_norm):
            w.add_scalar("train/grad_norm", info.grad_norm, info.step)
        if watching:
            w.add_scalar("monitor/clipped_share", self.monitor.clipped_share, info.step)
            w.add_scalar("monitor/lr_scale", self.monitor.lr_scale, info.step)
            self._seen = len(self.monitor.events)

    def on_eval(self, info: EvalInfo) -> None:
        """The validation metric."""
        if math.isfinite(info.metric):
            self._writer.add_scalar("val/metric", info.metric, info.step)

    def on_run_end(self, result: Any) -> None:
        """The remaining events: the monitor's, and the run's own that the monitor did not
        report (a divergence stop, skipped steps, other callbacks' actions); then close."""
        live = self.monitor is not None and bool(self._live)
        if live:
            self._events()
        for event in getattr(result, "events", []):
            if not (live and self._reported(event)):
                self._writer.add_text("events", str(event["message"]), int(event["step"]))
        if self._own:
            self._writer.close()
        else:
            self._writer.flush()

    def _watching(self, model: Any) -> bool:
        """Whether the monitor given watches this run (it is in ``callbacks`` too); warns
        once when it does not: its scalars would be flat and its events missing."""
        if self.monitor is None:
            return False
        if self._live is None:
            self._live = getattr(self.monitor, "_model", None) is model
            if not self._live:
                warnings.warn(
                    "TensorBoardCallback(monitor=...): that monitor is not watching this run; "
                    "pass it in callbacks= too, before the TensorBoard callback. Its scalars "
                    "are not written; the run's own events are, at its end.",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return self._live

    def _reported(self, event: dict[str, Any]) -> bool:
        """Whether a run event is one the monitor reported itself (written as it happened):
        its notes, copied as kind ``"monitor"``, and its actions, which the loop records
        starting with the monitor's own head (``step N: reason``)."""
        if event.get("kind") == "monitor":
            return True
        if event.get("kind") != "action":
            return False
        message = str(event["message"])
        return any(
            e["acted"]
            and e["step"] == event["step"]
            and message.startswith(e["message"].split("; ")[0])
            for e in self.monitor.events
        )

    def _events(self, upto: int | None = None) -> None:
        """The monitor's events not written yet (up to the ``upto``-th), each at its step."""
        events = self.monitor.events[: upto if upto is not None else None]
        for event in events[self._written :]:
            self._writer.add_text("events", event["message"], int(event["step"]))
        self._written = max(self._written, len(events))

    def _mark_start(self, step: int) -> None:
        """Mark a session's start at ``step``. After the first, a mark is a restart:
        TensorBoard's readers drop what was written before it at ``step`` or later (the
        discarded steps), as after ``SummaryWriter(purge_step=step)``."""
        proto = importlib.import_module("tensorboard.compat.proto.event_pb2")  # no stubs
        start = proto.SessionLog(status=proto.SessionLog.START)
        self._writer._get_file_writer().add_event(proto.Event(step=step, session_log=start))


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
