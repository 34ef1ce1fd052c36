"""The on-disk cache of training results, shared by every benchmark process."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from benchmarks.data import OUT
from benchmarks.sources import run_version
from benchmarks.tasks import TASKS, BenchTask

CACHE_DIR = OUT / "cache"
STORE = Path(__file__).parent / "store"
"""The full benchmark's training results, kept in git: the oracle grids cost hours of CPU, a
fresh checkout must not lose them (the quick smoke test's stay in ``out/``)."""


def lr_key(lr: float) -> str:
    return f"{lr:.8g}"


def cache_path(quick: bool) -> Path:
    """``store/runs.json`` (tracked), or ``out/cache/runs-quick.json`` for the smoke test."""
    return CACHE_DIR / "runs-quick.json" if quick else STORE / "runs.json"


def is_quick(task: BenchTask) -> bool:
    """Whether ``task`` is the shortened smoke-test version of a registered task."""
    return task.signature() != TASKS[task.name].signature() or task.grid != TASKS[task.name].grid


def recipe_key(task: BenchTask) -> str:
    """What decides a training run besides its LR and seed: the task's name and signature and
    the code of lrpilot's run layer (``sources.run_version``)."""
    return f"{task.name}|{task.signature()}|{run_version()}"


class RunCache:
    """Training results on disk, keyed by :func:`recipe_key`, LR and seed. Several benchmark
    processes may share the file: each write merges under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs: dict[str, dict] = self._read()

    def _read(self) -> dict[str, dict]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def reload(self) -> None:
        """Merge in what other processes wrote since this one last read the file."""
        self.runs = {**self.runs, **self._read()}

    @staticmethod
    def key(task: BenchTask, lr: float, seed: int) -> str:
        return f"{recipe_key(task)}|{lr_key(lr)}|{seed}"

    def get(self, task: BenchTask, lr: float, seed: int) -> dict | None:
        return self.runs.get(self.key(task, lr, seed))

    def put(self, task: BenchTask, result: dict) -> None:
        key = self.key(task, result["lr"], result["seed"])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.runs = {**self._read(), **self.runs, key: result}
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(self.runs, indent=0, sort_keys=True))
            tmp.replace(self.path)


# --------------------------------------------------------------------------- migration
def migrate(old_version: str, verify: int = 3) -> int:
    """Re-key the runs cached under run-layer version ``old_version`` to the current one, in
    the run store and the search's trial curves (``store/trial_curves.json``, keyed the same
    way), once ``verify`` runs (from the cheapest tasks) retrain under the current code to the
    same final loss and metric, and the cheapest trial curve to the same values, bit for bit:
    a refactor of the run layer moves the key without changing a result. The old keys are
    dropped (git keeps them). Returns the number of entries re-keyed; raises, changing
    nothing, if any check differs."""
    import torch

    from benchmarks.train import train_run

    torch.set_num_threads(1)  # as the benchmark's workers: reductions in the same order
    cache = RunCache(cache_path(quick=False))
    new_version = run_version()
    old = {k: r for k, r in cache.runs.items() if _version_of(k) == old_version}
    recipes = [
        (k, r)
        for k, r in old.items()
        if k.split("|")[0] in TASKS and k.split("|")[1] == TASKS[k.split("|")[0]].signature()
    ]
    by_cost = sorted(recipes, key=lambda kv: kv[1]["wall_s"])[: max(verify * 20, 1)]
    for key, saved in by_cost[:: max(1, len(by_cost) // max(verify, 1))][:verify]:
        name, _, _, _, seed = key.split("|")
        fresh = train_run(TASKS[name], saved["lr"], int(seed)).to_dict()
        for field in ("final_train_loss", "raw_metric", "steps_done", "diverged"):
            if fresh[field] != saved[field]:
                raise RuntimeError(f"{key}: {field} differs under {new_version}; not migrating")
        print(f"verified {key}: identical under {new_version}")
    _verify_a_trial_curve(old_version, new_version)
    return sum(_rekey(path, old_version, new_version) for path in (cache.path, _curves_path()))


def _version_of(key: str) -> str | None:
    """The run-layer version in a cache key (``name|signature|version|lr|seed``)."""
    parts = key.split("|")
    return parts[2] if len(parts) == 5 else None


def _curves_path() -> Path:
    from benchmarks.prune_replay import CURVES_PATH

    return CURVES_PATH


def _verify_a_trial_curve(old_version: str, new_version: str) -> None:
    """Retrain the cheapest trial curve stored under ``old_version`` as the search trains a
    trial; raise unless its checkpoint values, final metric and steps come back identical."""
    from benchmarks.prune_replay import train_curve

    stored = RunCache(_curves_path()).runs
    old = [(k, r) for k, r in stored.items() if _version_of(k) == old_version]
    candidates = [(k, r) for k, r in old if k.split("|")[0] in TASKS]
    if not candidates:
        return
    key, saved = min(candidates, key=lambda kv: kv[1]["wall_s"])
    fresh = train_curve(TASKS[key.split("|")[0]], saved["lr"], saved["seed"])
    for field in ("values", "final", "steps", "diverged"):
        if fresh[field] != saved[field]:
            raise RuntimeError(f"{key}: {field} differs under {new_version}; not migrating")
    print(f"verified the trial curve {key}: identical under {new_version}")


def _rekey(path: Path, old_version: str, new_version: str) -> int:
    """Move every entry of the store at ``path`` from ``old_version`` to ``new_version``
    (an entry already under the new key is kept), under the store's lock."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = json.loads(path.read_text()) if path.exists() else {}
        moved = [k for k in runs if _version_of(k) == old_version]
        for key in moved:
            name, signature, _, lr, seed = key.split("|")
            result = runs.pop(key)
            runs.setdefault(f"{name}|{signature}|{new_version}|{lr}|{seed}", result)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(runs, indent=0, sort_keys=True))
        tmp.replace(path)
    return len(moved)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.cache")
    parser.add_argument("command", choices=("migrate",))
    parser.add_argument("--from", dest="old", required=True, help="the old run-layer version")
    parser.add_argument("--verify", type=int, default=3, help="runs retrained to check")
    args = parser.parse_args()
    print(f"re-keyed {migrate(args.old, args.verify)} runs and trial curves")
