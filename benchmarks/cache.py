"""The on-disk cache of training results, shared by every benchmark process."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
def migrate(old_version: str, verify: int = 3, old_tree: Path | None = None) -> int:
    """Re-key the entries cached under run-layer version ``old_version`` to the current one,
    in the run store and the search's trial curves (``store/trial_curves.json``, keyed the
    same way), once the check passes: ``verify`` runs (the cheapest of as many families,
    diverged and not) and the cheapest trial curve retrain under the current code to the same
    final loss, metric, steps and divergence, bit for bit. A refactor of the run layer moves
    the key without changing a result. The old keys are dropped (git keeps them). Returns the
    number of entries re-keyed; raises, changing nothing, if any check differs.

    The reference is the stored result, or, with ``old_tree`` (a checkout of the code the
    entries were stored with, e.g. ``git worktree add /tmp/old <commit>``), the same runs
    retrained under that code here: a run stored on another machine or torch build can
    differ from any run on this one in its last bits (diamonds_mlp:sgd at LR 1, diverging
    within two steps, does), which says nothing about the change being migrated."""
    cache = RunCache(cache_path(quick=False))
    new_version = run_version()
    old = {k: r for k, r in cache.runs.items() if _version_of(k) == old_version}
    jobs = _check_jobs(old, verify) + _curve_job(old_version)
    if old_tree is None:
        reference = {job: _stored_outcome(job, old) for job in jobs}
    else:
        reference = _outcomes_in(old_tree, jobs, old_version)
    fresh = _outcomes(jobs)
    for job in jobs:
        if fresh[job] != reference[job]:
            raise RuntimeError(
                f"{job}: {reference[job]} before, {fresh[job]} under {new_version}; not migrating"
            )
        print(f"verified {job}: identical under {new_version}")
    return sum(_rekey(path, old_version, new_version) for path in (cache.path, _curves_path()))


_Job = tuple[str, str, float, int]
"""``(kind, task, lr, seed)``: a benchmark run (``"run"``) or a search trial's curve
(``"curve"``) to retrain for :func:`migrate`'s check."""


def _check_jobs(old: dict[str, dict], count: int) -> list[_Job]:
    """``count`` runs to retrain: the cheapest stored run of each family that learnt and of
    each that diverged, the two kinds in turn, cheapest first (a diverged run alone checks
    only a few steps)."""
    cheapest: dict[tuple[str, bool], tuple[float, _Job]] = {}
    for key, result in old.items():
        name, signature, _, lr, seed = key.split("|")
        if name not in TASKS or signature != TASKS[name].signature():
            continue
        slot = (name.split(":")[0].removesuffix("-long"), bool(result["diverged"]))
        job: _Job = ("run", name, float(lr), int(seed))
        if slot not in cheapest or result["wall_s"] < cheapest[slot][0]:
            cheapest[slot] = (result["wall_s"], job)
    learnt = sorted(v for (_, diverged), v in cheapest.items() if not diverged)
    blew_up = sorted(v for (_, diverged), v in cheapest.items() if diverged)
    turns = [pair for both in zip(learnt, blew_up, strict=False) for pair in both]
    rest = learnt[len(blew_up) :] + blew_up[len(learnt) :]
    return [job for _, job in (turns + rest)[:count]]


def _curve_job(old_version: str) -> list[_Job]:
    """The cheapest trial curve stored under ``old_version`` (none when there is none)."""
    stored = [
        (r["wall_s"], ("curve", k.split("|")[0], float(r["lr"]), int(r["seed"])))
        for k, r in RunCache(_curves_path()).runs.items()
        if _version_of(k) == old_version and k.split("|")[0] in TASKS
    ]
    return [min(stored)[1]] if stored else []


def _stored_outcome(job: _Job, old: dict[str, dict]) -> list[Any]:
    """What the store holds for ``job``, in :func:`_outcomes`' form."""
    kind, name, lr, seed = job
    if kind == "run":
        key = next(k for k in old if k.split("|")[0] == name and float(k.split("|")[3]) == lr
                   and int(k.split("|")[4]) == seed)  # fmt: skip
        r = old[key]
        return [r["final_train_loss"], r["raw_metric"], r["steps_done"], r["diverged"]]
    version = _version_of(next(iter(old)))
    row = next(
        r
        for k, r in RunCache(_curves_path()).runs.items()
        if k.split("|")[0] == name and _version_of(k) == version
        and r["lr"] == lr and r["seed"] == seed
    )  # fmt: skip
    return [row["values"], row["final"], row["steps"], row["diverged"]]


def _outcomes(jobs: list[_Job]) -> dict[_Job, list[Any]]:
    """Each job retrained here under the current code, one thread as the benchmark's workers
    (reductions in the same order)."""
    import torch

    from benchmarks.prune_replay import train_curve
    from benchmarks.train import train_run

    torch.set_num_threads(1)
    out: dict[_Job, list[Any]] = {}
    for job in jobs:
        kind, name, lr, seed = job
        if kind == "run":
            r = train_run(TASKS[name], lr, seed).to_dict()
            out[job] = [r["final_train_loss"], r["raw_metric"], r["steps_done"], r["diverged"]]
        else:
            c = train_curve(TASKS[name], lr, seed)
            out[job] = [c["values"], c["final"], c["steps"], c["diverged"]]
    return out


def _outcomes_in(tree: Path, jobs: list[_Job], version: str) -> dict[_Job, list[Any]]:
    """:func:`_outcomes` with the lrpilot checked out at ``tree`` (its ``src``) and these
    benchmarks, in a subprocess: the run layer is all a version covers. Raises unless that
    lrpilot's run layer is ``version``."""
    here = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{tree.resolve() / 'src'}{os.pathsep}{here}"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cache", "retrain", "--version", version],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        cwd=here,
        env=env,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"retraining under {tree} failed:\n{done.stderr[-2000:]}")
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    return {tuple(job): outcome for job, outcome in rows}  # type: ignore[misc]


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
    parser.add_argument("command", choices=("migrate", "retrain"))
    parser.add_argument("--from", dest="old", help="migrate: the old run-layer version")
    parser.add_argument("--verify", type=int, default=3, help="migrate: runs retrained to check")
    parser.add_argument(
        "--old-tree",
        type=Path,
        help="migrate: a checkout of the lrpilot the entries were stored with (its src/ is "
        "used), to retrain the check's runs under (default: compare with the stored results)",
    )
    parser.add_argument("--version", help="retrain: the run-layer version this code must be")
    args = parser.parse_args()
    if args.command == "retrain":  # what --old-tree runs under the old code
        from benchmarks.sources import RUN_SOURCES, source_key

        found = "run-" + source_key(RUN_SOURCES, missing_ok=True)  # modules added since: none
        if found != args.version:
            raise SystemExit(f"this tree's run layer is {found}, not {args.version}")
        jobs = [tuple(job) for job in json.loads(sys.stdin.read())]
        print(json.dumps(list(_outcomes(jobs).items())))  # type: ignore[arg-type]
    else:
        if not args.old:
            parser.error("migrate needs --from")
        count = migrate(args.old, args.verify, args.old_tree)
        print(f"re-keyed {count} runs and trial curves")
