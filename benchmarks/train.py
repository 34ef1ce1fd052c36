"""Train one recipe at one peak LR for one seed and score it on validation data.

The run is ``lrpilot.train`` on the task's ``lrpilot.Task`` (``BenchTask.lrpilot_task``): the
benchmark adds nothing to the loop. The seed fixes the model's initialisation, the data order
(the loader's own generator) and every other RNG; lrpilot's ``RUN_DIVERGENCE`` rule stops a run
whose smoothed training loss reaches five times its first value, or whose loss is non-finite
three steps in a row (a single non-finite loss skips its step). What the benchmark adds is
around the run: a run that diverged scores the task's trivial metric, and a finished run never
scores worse than trivial either, so one wild run cannot dominate a mean; and the record kept in
the run cache, in the metric's own units.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import lrpilot
from benchmarks.tasks import BenchTask


@dataclass
class RunRecord:
    """The outcome of one training run, as the run cache keeps it."""

    task: str
    lr: float
    seed: int
    metric: float
    raw_metric: float
    diverged: bool
    steps_done: int
    final_train_loss: float
    wall_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def clamp(task: BenchTask, value: float) -> float:
    """``value``, or the trivial metric where it is non-finite or worse than trivial."""
    if not math.isfinite(value) or task.better(task.trivial, value):
        return task.trivial
    return value


def record(task: BenchTask, run: lrpilot.RunResult) -> RunRecord:
    """The cache record of ``run``, a run of ``task``: its metric in the task's units, the
    trivial metric where it diverged."""
    raw = task.trivial if run.diverged else task.in_units(run.metric)
    return RunRecord(
        task=task.name,
        lr=run.lr,
        seed=run.seed,
        metric=clamp(task, raw),
        raw_metric=raw,
        diverged=run.diverged,
        steps_done=run.steps_done,
        final_train_loss=run.losses[-1] if run.losses else math.nan,
        wall_s=run.seconds,
    )


def train_run(task: BenchTask, lr: float, seed: int) -> RunRecord:
    """Train ``task``'s recipe at peak ``lr`` with ``seed`` and return the validation metric."""
    run = lrpilot.train(task.lrpilot_task(), lr, seed=seed, progress=False)
    return record(task, run)
