"""A byte-level GRU language model on Python source code (the ``.py`` files of the installed
``json`` and ``email`` packages of the standard library), AdamW, 2,000 steps, with
gradient clipping. Batches are dicts, so the task gives a ``loss_step``.

    lrpilot find examples/stdlib_bytes_gru.py
"""

import sysconfig
from pathlib import Path

import torch
from torch import nn

import lrpilot

SEQ, BATCH, STEPS = 64, 32, 2000


def _corpus() -> torch.Tensor:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted((root / "json").glob("*.py")) + sorted((root / "email").glob("*.py"))
    data = b"".join(f.read_bytes() for f in files)
    return torch.tensor(list(data), dtype=torch.long)


class ByteGRU(nn.Module):
    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, width)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, 256)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.gru(self.embed(tokens))
        return self.head(hidden)


class Windows(torch.utils.data.IterableDataset):
    """Random windows of the corpus as {"tokens": ..., "next": ...} dicts."""

    def __init__(self, data: torch.Tensor, seed: int) -> None:
        self.data, self.seed = data, seed

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        while True:
            starts = torch.randint(0, len(self.data) - SEQ - 1, (BATCH,), generator=g)
            window = torch.stack([self.data[s : s + SEQ + 1] for s in starts.tolist()])
            yield {"tokens": window[:, :-1], "next": window[:, 1:]}


def next_byte_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    logits = model(batch["tokens"])
    return nn.functional.cross_entropy(logits.reshape(-1, 256), batch["next"].reshape(-1))


def task() -> lrpilot.Task:
    data = _corpus()
    split = int(0.9 * len(data))
    train = torch.utils.data.DataLoader(Windows(data[:split], 0), batch_size=None)
    val = [next(iter(Windows(data[split:], 1))) for _ in range(4)]
    return lrpilot.Task(
        model_fn=ByteGRU,
        optimizer_fn=lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.01),
        train_loader=train,
        val_loader=val,
        loss_step=next_byte_loss,
        steps=STEPS,
        grad_clip=1.0,
        name="stdlib_bytes_gru",
    )
