"""Train one recipe at one peak LR for one seed and score it on validation data.

The seed fixes both the model's initialisation (``torch.manual_seed``) and the data order (the
loader's own generator). A run that diverges (a non-finite loss, or a smoothed training loss
five times its first value) stops at once and scores the task's trivial metric; a finished run
never scores worse than trivial either, so one wild run cannot dominate a mean.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks import data
from benchmarks.tasks import BenchTask

DIVERGE_FACTOR = 5.0
EMA_BETA = 0.98


@dataclass
class RunResult:
    """The outcome of one training run."""

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


def build(task: BenchTask, lr: float, seed: int) -> tuple[nn.Module, torch.optim.Optimizer,
                                                           DataLoader]:
    """A fresh model (initialised from ``seed``), the recipe's optimizer at ``lr`` and the
    training loader shuffled by ``seed``: exactly what every picker and run starts from."""
    torch.manual_seed(seed)
    model = task.model_fn()
    optimizer = task.optimizer_fn(model.parameters(), lr)
    train_set, _ = task.data_fn()
    return model, optimizer, data.train_loader(train_set, task.batch_size, seed)


def cycle(loader: DataLoader) -> Iterator:
    """Batches from ``loader`` forever, one epoch after another."""
    while True:
        yield from loader


def _set_mode(optimizer: torch.optim.Optimizer, train: bool) -> None:
    """Schedule-free optimizers keep two parameter sequences: ``train()`` before training
    steps, ``eval()`` before evaluation (a no-op for every other optimizer)."""
    switch = getattr(optimizer, "train" if train else "eval", None)
    if callable(switch):
        switch()


def _score(task: BenchTask, model: nn.Module, optimizer: torch.optim.Optimizer) -> float:
    _, val_set = task.data_fn()
    model.eval()
    _set_mode(optimizer, train=False)
    value = task.metric_fn(model, data.eval_loader(val_set, task.eval_batch))
    model.train()
    _set_mode(optimizer, train=True)
    return value


def _clamp(task: BenchTask, value: float) -> float:
    """``value``, or the trivial metric where it is non-finite or worse than trivial."""
    if not math.isfinite(value) or task.better(task.trivial, value):
        return task.trivial
    return value


def train_run(task: BenchTask, lr: float, seed: int) -> RunResult:
    """Train ``task``'s recipe at peak ``lr`` with ``seed`` and return the validation metric."""
    task.data_fn()  # loaded (and memoised) before the clock starts
    start = time.perf_counter()
    model, optimizer, loader = build(task, lr, seed)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, task.schedule)
    _set_mode(optimizer, train=True)
    batches = cycle(loader)
    first = ema = None
    diverged, steps_done, loss_value = False, 0, float("nan")
    for steps_done in range(1, task.steps + 1):  # noqa: B007 - the count is reported
        x, y = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss_fn(model(x), y)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            diverged = True
            break
        first = loss_value if first is None else first
        ema = loss_value if ema is None else EMA_BETA * ema + (1 - EMA_BETA) * loss_value
        if ema > DIVERGE_FACTOR * first:
            diverged = True
            break
        loss.backward()
        if task.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), task.grad_clip)
        optimizer.step()
        sched.step()
    raw = task.trivial if diverged else _score(task, model, optimizer)
    return RunResult(
        task=task.name, lr=lr, seed=seed, metric=_clamp(task, raw), raw_metric=raw,
        diverged=diverged, steps_done=steps_done, final_train_loss=loss_value,
        wall_s=time.perf_counter() - start,
    )  # fmt: skip
