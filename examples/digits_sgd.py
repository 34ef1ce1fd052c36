"""scikit-learn's handwritten digits (1,797 images 8x8), an MLP, SGD with momentum 0.9,
600 steps of batch 64.

    lrpilot find examples/digits_sgd.py --json
"""

import torch
from sklearn.datasets import load_digits
from torch import nn

import lrpilot

STEPS = 600


def task() -> lrpilot.Task:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, val = perm[:1400], perm[1400:]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x[train], y[train]), batch_size=64, shuffle=True
    )
    val_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x[val], y[val]), batch_size=256
    )
    return lrpilot.Task(
        model_fn=lambda: nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)),
        optimizer_fn=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
        train_loader=loader,
        val_loader=val_loader,
        loss_fn=nn.functional.cross_entropy,
        steps=STEPS,
    )
