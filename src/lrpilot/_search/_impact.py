"""The LR-impact table the usual guides print: the same recipe trained at a few LRs, side by
side: wall time, final training loss, validation metric, the train/validation gap, diverged."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from .. import _validate as check
from .._step import default_loss_step, evaluate_loss
from ..control.callbacks import Callback, EvalInfo
from ..task import Task
from ._result import ImpactResult, ImpactRow

__all__ = ["impact", "TRAIN_LOSS_BATCHES"]

TRAIN_LOSS_BATCHES = 20
"""Training batches the final training loss is measured on (in eval mode, after the run)."""


def impact(
    task: Task,
    lrs: Sequence[float],
    *,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> ImpactResult:
    """Train ``task`` at each of ``lrs`` (same seed) and tabulate what each LR did.

    The training and validation losses are both measured after the run, in eval mode, on the
    same model (up to :data:`TRAIN_LOSS_BATCHES` training batches, the whole validation
    loader), so their gap is overfitting and not dropout or a loss still falling mid-epoch.

    Args:
        task: The recipe.
        lrs: The peak LRs to compare, in the order the table shows them.
        steps: Each run's length (default ``task.steps``).
        seed: Every run's seed.
        progress: Show each run's progress bar.

    Returns:
        An :class:`ImpactResult`, one row per LR.
    """
    from ..train import train

    if not isinstance(task, Task):
        raise check.ArgError("task", task, "an lrpilot.Task")
    if isinstance(lrs, (str, bytes)) or not isinstance(lrs, Sequence) or not lrs:
        raise check.ArgError("lrs", lrs, "a non-empty list of learning rates")
    values = [check.real("lrs", lr, 0.0, open_low=True, open_high=True) for lr in lrs]
    rows = []
    for lr in values:
        probe = _FinalLosses(task)
        run = train(task, lr, steps=steps, seed=seed, callbacks=[probe], progress=progress)
        train_loss = probe.train_loss if not run.diverged else math.nan
        val_loss = probe.val_loss if not run.diverged else math.nan
        rows.append(
            ImpactRow(
                lr=lr,
                seconds=run.seconds,
                train_loss=train_loss if math.isfinite(train_loss) else _tail_loss(run.losses),
                val_loss=val_loss,
                metric=run.metric,
                gap=val_loss - train_loss,
                diverged=run.diverged,
                steps=run.steps_done,
            )
        )
    return ImpactResult(rows)


class _FinalLosses(Callback):
    """Measures the training and validation losses at the run's final evaluation."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.loss_step = task.loss_step or default_loss_step(task.loss_fn)
        self.train_loss = math.nan
        self.val_loss = math.nan

    def on_eval(self, info: EvalInfo) -> None:
        """At the final evaluation: both losses of the model as it is now."""
        if info.step < info.steps:
            return
        batches = itertools.islice(self.task.train_loader, TRAIN_LOSS_BATCHES)
        self.train_loss = evaluate_loss(info.model, batches, self.loss_step)
        if self.task.val_loader is not None:
            self.val_loss = evaluate_loss(info.model, self.task.val_loader, self.loss_step)

    def on_run_end(self, result: Any) -> None:
        """Without validation data there is no evaluation: the training loss from the run."""
        if self.task.val_loader is None and result.losses:
            self.train_loss = _tail_loss(result.losses)


def _tail_loss(losses: Sequence[float]) -> float:
    """The mean of the last 5 % of the run's finite training losses."""
    tail = [x for x in losses[-max(1, len(losses) // 20) :] if math.isfinite(x)]
    return sum(tail) / len(tail) if tail else math.nan
