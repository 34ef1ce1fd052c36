"""Does the best LR move with the length of the run, and does lrpilot follow it?

    python -m benchmarks.horizon [--steps 250,3000] [--lrs 1e-3,3e-3,1e-2,3e-2]

One byte-level GRU language model (width 256, the scikit-learn byte corpus of ``data.py``),
AdamW (weight decay 0.01), 5% linear warmup then cosine, gradient clipping at 1.0, batch 32 of
64 bytes, trained with `lrpilot.train` for a short and a long budget at a few LRs (one seed:
each long run costs minutes on a CPU). One range test (`find_lr_for_task`, seed 0, 100 steps,
the same model and data order) is read by each rule for each budget, so the table shows which
rules move with the run length.

Results are cached in ``out/cache/horizon.json`` (a run is never repeated while lrpilot's run
layer and range test keep their code) and written to the
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
from benchmarks.data import OUT, stdlib_bytes, train_loader
from benchmarks.results_md import write_section
from benchmarks.sources import PICK_SOURCES, RUN_SOURCES, source_key
from benchmarks.tasks import ADAMW_SCHEDULE

SEQ, BATCH, WIDTH, VAL_WINDOWS = 64, 32, 256, 256
STEPS_FOR_SWEEP = 3000  # the sweep's curve is the same for any budget; this only keys it
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


def _adamw(params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def _task(steps: int) -> lrpilot.Task:
    """The recipe as an ``lrpilot.Task`` of ``steps`` steps: AdamW, the benchmark's 5% warmup
    + cosine (resolved for each budget), clipping at 1.0, minus the validation loss as the
    metric (lrpilot's default)."""
    train, val, _ = stdlib_bytes(SEQ, VAL_WINDOWS)
    return lrpilot.Task(
        model_fn=ByteGRU,
        optimizer_fn=_adamw,
        train_loader=train_loader(train, BATCH, seed=0),
        val_loader=torch.utils.data.DataLoader(val, batch_size=64),
        loss_fn=next_byte_loss,
        steps=steps,
        schedule=ADAMW_SCHEDULE,
        grad_clip=1.0,
        name="horizon-byte-gru",
    )


def val_nats(lr: float, steps: int, seed: int = 0) -> float:
    """Validation loss (nats/byte) after ``steps`` steps at peak ``lr``; NaN if it diverged."""
    run = lrpilot.train(_task(steps), lr, seed=seed, progress=False)
    return math.nan if run.diverged else -run.metric


def sweep() -> dict:
    """The range test every rule reads: ``find_lr_for_task`` with seed 0 and the range test's
    defaults (the curve does not depend on the budget; each rule reads it per budget)."""
    res = lrpilot.find_lr_for_task(_task(STEPS_FOR_SWEEP), seed=0, progress=False)
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


def _version() -> str:
    """What the cached runs and sweep depend on in lrpilot: the code of its run layer and of
    the range test (a change to either starts the cache afresh)."""
    return source_key(sorted(set(RUN_SOURCES) | set(PICK_SOURCES)))


def _load() -> dict:
    saved = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    fresh = {"runs": {}, "version": _version()}
    return saved if saved.get("version") == fresh["version"] else fresh


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
    cache = _load()
    if "sweep" not in cache:
        cache["sweep"] = sweep()
        _save(cache)
    for steps in budgets:
        for lr in (float(v) for v in args.lrs.split(",")):
            key = f"{steps}|{lr:g}"
            if key not in cache["runs"]:
                start = time.perf_counter()
                cache["runs"][key] = val_nats(lr, steps)
                took = time.perf_counter() - start
                print(f"{steps} steps, lr {lr:g}: {cache['runs'][key]:.4f} ({took:.0f} s)")
                _save(cache)
    command = "MPLCONFIGDIR=/tmp/mplcfg .venv/bin/python -m benchmarks.horizon"
    section = report(cache, budgets, command)
    write_section("horizon", section)
    print(section)


if __name__ == "__main__":
    main()
