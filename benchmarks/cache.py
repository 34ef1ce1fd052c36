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


def lr_key(lr: float) -> str:
    return f"{lr:.8g}"


def cache_path(quick: bool) -> Path:
    """``runs.json``, or ``runs-quick.json`` for the smoke test."""
    return CACHE_DIR / ("runs-quick.json" if quick else "runs.json")


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
