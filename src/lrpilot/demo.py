"""The demo: a range test on MNIST-1D, a real dataset built locally by the ``mnist1d``
package (no download), then one short run at the suggestion to show what it buys."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .errors import ConfigError
from .task import Task
from .train import train

__all__ = ["mnist1d_task", "train_and_score"]

DEMO_STEPS = 1500
BATCH_SIZE = 64


def _load_mnist1d(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "The demo needs the mnist1d package: pip install 'lrpilot[demo]'."
        ) from exc
    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)  # built from templates in ~1 s; never get_dataset (network)
    x = torch.as_tensor(data["x"], dtype=torch.float32).unsqueeze(1)
    xt = torch.as_tensor(data["x_test"], dtype=torch.float32).unsqueeze(1)
    return x, torch.as_tensor(data["y"]), xt, torch.as_tensor(data["y_test"])


def _conv_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.Conv1d(32, 32, 5, padding=2, stride=2),
        nn.ReLU(),
        nn.Conv1d(32, 32, 5, padding=2, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 10, 10),
    )


def _accuracy(model: nn.Module, loader: Iterable[Any]) -> float:
    """Fraction classified correctly (``Task.metric`` runs it in eval mode, no gradients)."""
    correct = total = 0
    for x, y in loader:
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct / total


def mnist1d_task(seed: int = 0) -> Task:
    """MNIST-1D (4,000 train / 1,000 test signals of length 40, 10 classes), a small Conv1d
    network, Adam, a cosine-decayed run of :data:`DEMO_STEPS` steps."""
    x, y, xt, yt = _load_mnist1d(seed)
    g = torch.Generator().manual_seed(seed)
    train = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True, generator=g
    )
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xt, yt), batch_size=500)
    return Task(
        model_fn=_conv_net,
        optimizer_fn=lambda params, lr: torch.optim.Adam(params, lr=lr),
        train_loader=train,
        val_loader=val,
        loss_fn=nn.functional.cross_entropy,
        metric_fn=_accuracy,
        steps=DEMO_STEPS,
        schedule="cosine",
        name="mnist1d_conv",
    )


def train_and_score(task: Task, lr: float, seed: int = 0, progress: bool = False) -> float:
    """Train ``task``'s recipe at peak ``lr`` for ``task.steps`` steps with :func:`lrpilot.train`;
    its metric after (NaN when the run diverged)."""
    return train(task, lr, seed=seed, progress=progress).metric
