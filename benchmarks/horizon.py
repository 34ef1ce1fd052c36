"""Does the best LR move with the length of the run, and does lrpilot follow it?

    python -m benchmarks.horizon [--steps 250,3000] [--lrs 1e-3,3e-3,1e-2,3e-2]

One byte-level GRU language model (width 256, the scikit-learn byte corpus of ``data.py``),
AdamW (weight decay 0.01), 5% linear warmup then cosine, gradient clipping at 1.0, batch 32 of
64 bytes, trained for a short and a long budget at a few LRs (one seed: each long run costs
minutes on a CPU). One range test (seed 0, 100 steps, the same model and data order) is read by
each rule for each budget, so the table shows which rules move with the run length.

Results are cached in ``out/cache/horizon.json`` (a run is never repeated) and written to the
``horizon`` section of ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import nn

import lrpilot
from benchmarks.data import OUT, stdlib_bytes
from benchmarks.results_md import write_section

SEQ, BATCH, WIDTH, VAL_WINDOWS = 64, 32, 256, 256
CACHE = OUT / "cache" / "horizon.json"


class ByteGRU(nn.Module):
    """Embedding 64 -> GRU -> linear head over 256 bytes."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, 64)
        self.rnn = nn.GRU(64, width, batch_first=True)
        self.head = nn.Linear(width, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(x))[0])


def next_byte_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs.reshape(-1, 256), targets.reshape(-1))


def _data() -> tuple:
    train, val, _ = stdlib_bytes(SEQ, VAL_WINDOWS)
    return train, torch.utils.data.DataLoader(val, batch_size=64)


def _loader(train, seed: int) -> torch.utils.data.DataLoader:  # noqa: ANN001
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(train, batch_size=BATCH, shuffle=True, generator=g)


def _warmup_cosine(steps: int):  # noqa: ANN202
    warm = max(1, steps // 20)

    def multiplier(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / (steps - warm)))

    return multiplier


def _val_loss(model: nn.Module, val) -> float:  # noqa: ANN001
    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for x, y in val:
            total += next_byte_loss(model(x), y).item() * len(x)
            count += len(x)
    model.train()
    return total / count


def train_once(train, val, lr: float, steps: int, seed: int = 0) -> float:  # noqa: ANN001
    """Validation loss (nats/byte) after ``steps`` steps at peak ``lr``; NaN if it diverged."""
    torch.manual_seed(seed)
    model = ByteGRU()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(steps))
    batches = iter(_loader(train, seed))
    for step in range(steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(_loader(train, seed + step))
            x, y = next(batches)
        loss = next_byte_loss(model(x), y)
        if not torch.isfinite(loss):
            return float("nan")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return _val_loss(model, val)


def sweep(train) -> dict:  # noqa: ANN001
    """The range test every rule reads: seed 0, lrpilot's defaults."""
    torch.manual_seed(0)
    model = ByteGRU()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    res = lrpilot.find_lr(
        model, opt, _loader(train, 0), next_byte_loss, grad_clip=1.0, progress=False
    )
    return {"lrs": res.lrs, "losses": res.losses}


def _picks(curve: dict, steps: int) -> dict[str, float]:
    rules = {
        "lrpilot": lambda lrs, losses: lrpilot.suggest.pilot(
            lrs, losses, steps=steps, prior_lr=1e-3
        ),
        "minimum/10": lrpilot.suggest.minimum,
        "valley": lrpilot.suggest.valley,
        "steepest": lrpilot.suggest.steepest,
    }
    return {name: rule(curve["lrs"], curve["losses"]) for name, rule in rules.items()}


def _setup_text() -> str:
    """The module docstring's second paragraph: what is trained and how."""
    return " ".join(__doc__.split("\n\n")[2].split())


def report(cache: dict, budgets: list[int], command: str) -> str:
    """The RESULTS.md section: val loss per LR and budget, and each rule's pick per budget."""
    lines = [
        "## Run length: the best LR falls as the run grows",
        "",
        f"Command: `{command}`. {_setup_text()}",
        "",
        "| peak LR | " + " | ".join(f"{b} steps: val nats/byte" for b in budgets) + " |",
        "| ---: |" + " ---: |" * len(budgets),
    ]
    lrs = sorted({float(k.split("|")[1]) for k in cache["runs"]})
    for lr in lrs:
        cells = [cache["runs"].get(f"{b}|{lr:g}") for b in budgets]
        text = [
            "diverged" if c is not None and math.isnan(c) else "" if c is None else f"{c:.3f}"
            for c in cells
        ]
        lines.append(f"| {lr:g} | " + " | ".join(text) + " |")
    lines += ["", "Each rule's pick from the same range test, for each budget:", ""]
    lines += [
        "| rule | " + " | ".join(f"{b} steps" for b in budgets) + " |",
        "| --- |" + " ---: |" * len(budgets),
    ]
    picks = {b: _picks(cache["sweep"], b) for b in budgets}
    for rule in picks[budgets[0]]:
        lines.append(f"| {rule} | " + " | ".join(f"{picks[b][rule]:.3g}" for b in budgets) + " |")
    return "\n".join(lines)


def _save(cache: dict) -> None:
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps(cache))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.horizon",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", default="250,3000", help="run budgets, comma-separated")
    parser.add_argument("--lrs", default="1e-3,3e-3,1e-2,3e-2", help="peak LRs, comma-separated")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    budgets = [int(s) for s in args.steps.split(",")]
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {"runs": {}}
    train, val = _data()
    if "sweep" not in cache:
        cache["sweep"] = sweep(train)
        _save(cache)
    for steps in budgets:
        for lr in (float(v) for v in args.lrs.split(",")):
            key = f"{steps}|{lr:g}"
            if key not in cache["runs"]:
                start = time.perf_counter()
                cache["runs"][key] = train_once(train, val, lr, steps)
                took = time.perf_counter() - start
                print(f"{steps} steps, lr {lr:g}: {cache['runs'][key]:.4f} ({took:.0f} s)")
                _save(cache)
    command = "MPLCONFIGDIR=/tmp/mplcfg .venv/bin/python -m benchmarks.horizon"
    section = report(cache, budgets, command)
    write_section("horizon", section)
    print(section)


if __name__ == "__main__":
    main()
