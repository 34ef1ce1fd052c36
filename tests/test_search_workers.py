"""Many workers on one study, for real: separate processes running ``lrpilot search`` on the
default journal file and on a throwaway PostgreSQL server (started here on loopback, stopped
afterwards; skipped only when no PostgreSQL binaries exist on the machine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

TRIALS = 6
SLOW_TASK = """
import os
import time
import torch
from torch import nn
import lrpilot

HOLD = os.environ.get("SLOW_TASK_HOLD", "")

def loss(outputs, targets):
    time.sleep(0.003)  # a trial lasts about half a second
    while HOLD and os.path.exists(HOLD):  # the test holds the worker mid-trial to kill it there
        time.sleep(0.01)
    return nn.functional.cross_entropy(outputs, targets)

def task():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(160, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    return lrpilot.Task(
        model_fn=lambda: nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)),
        optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
        train_loader=[(x[i : i + 32], y[i : i + 32]) for i in range(0, 128, 32)],
        val_loader=[(x[128:], y[128:])],
        loss_fn=loss,
        steps=120,
        name="slow",
    )
"""


# ------------------------------------------------------------------------------ workers


@pytest.fixture(params=["journal", "postgres"])
def storage(request, tmp_path) -> str:
    if request.param == "journal":
        return str(tmp_path / "search.journal")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def task_file(tmp_path) -> Path:
    path = tmp_path / "slow.py"
    path.write_text(SLOW_TASK)
    return path


def _command(task_file: Path, storage: str, study: str, heartbeat: int = 2) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from lrpilot.cli import app; app()",
        "search",
        str(task_file),
        "--method",
        "bayes",
        "--trials",
        str(TRIALS),
        "--storage",
        storage,
        "--study",
        study,
        "--lr-min",
        "1e-3",
        "--lr-max",
        "1",
        "--heartbeat",
        str(heartbeat),
        "--json",
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LRPILOT_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
        "SLOW_TASK_HOLD": str(tmp_path / "hold"),
    }


def _load(storage: str, study: str) -> optuna.Study:
    if "://" in storage:  # the very URL given to lrpilot search, as Optuna's own tools take it
        return optuna.load_study(study_name=study, storage=storage)
    backend = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    return optuna.load_study(study_name=study, storage=backend)


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count: complete, pruned, or failed by lrpilot with a reason."""
    return [
        t
        for t in study.get_trials()
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        or (t.state == optuna.trial.TrialState.FAIL and "lrpilot.failure" in t.user_attrs)
    ]


def test_two_workers_finish_exactly_the_requested_trials(storage, task_file, tmp_path):
    study_name = f"two-{tmp_path.name}"
    # a heartbeat far longer than the hold below: a held trial is not taken for a dead one
    cmd = _command(task_file, storage, study_name, heartbeat=60)
    hold = tmp_path / "hold"
    hold.touch()
    workers = [
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path)
        )
        for _ in range(2)
    ]
    try:
        _hold_until_both_run_a_trial(storage, study_name, workers, hold)
        outputs = [w.communicate(timeout=180) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for w, (_, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err
    study = _load(storage, study_name)
    trials = study.get_trials()
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    finished = _finished(study)
    assert len(finished) == TRIALS
    owners = {str(t.user_attrs["lrpilot.owner"]).split(":")[1] for t in finished}
    assert len(owners) == 2, "both workers ran trials"
    assert len({t.params["lr"] for t in finished}) == TRIALS, "no LR drawn twice"
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value)
    for out, _ in outputs:
        data = json.loads(out)
        assert (data["lr"], data["metric"]) == (best.params["lr"], best.value)


def _hold_until_both_run_a_trial(
    storage: str, study: str, workers: list[subprocess.Popen], hold: Path
) -> None:
    """Release the workers once each is held in a trial of its own.

    One worker alone runs all the trials in about a second and a half (most are pruned early),
    so a worker that got going later than that (a loaded machine starts two processes unevenly)
    found the study done and ran none: the hold file stops each at its first trial's first
    loss until the other is in a trial too."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for w in workers:
            assert w.poll() is None, w.stderr.read() if w.stderr else ""
        try:
            trials = _load(storage, study).get_trials()
        except KeyError:  # not created yet
            trials = []
        owners = {
            str(t.user_attrs["lrpilot.owner"]).split(":")[1]  # host:pid:number
            for t in trials
            if t.state == optuna.trial.TrialState.RUNNING and "lrpilot.owner" in t.user_attrs
        }
        if len(owners) == 2:
            hold.unlink()
            return
        time.sleep(0.05)
    raise AssertionError("the two workers were never both in a trial")


def test_a_worker_killed_mid_trial_then_rerun_completes_the_study(storage, task_file, tmp_path):
    study_name = f"kill-{tmp_path.name}"
    cmd = _command(task_file, storage, study_name)
    worker = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(tmp_path)
    )
    hold = tmp_path / "hold"
    victim = _hold_a_running_trial(storage, study_name, worker, hold)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    hold.unlink()
    study = _load(storage, study_name)
    assert study.get_trials()[victim].state == optuna.trial.TrialState.RUNNING  # a zombie now
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=_env(tmp_path))
    assert rerun.returncode == 0, rerun.stderr
    study = _load(storage, study_name)
    trials = study.get_trials()
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert trials[victim].state == optuna.trial.TrialState.FAIL
    assert len(_finished(study)) == TRIALS
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == victim]
    assert len(retried) == 1 and retried[0].params["lr"] == trials[victim].params["lr"]
    assert retried[0].state != optuna.trial.TrialState.FAIL
    assert json.loads(rerun.stdout)["lr"] == study.best_params["lr"]


def _hold_a_running_trial(storage: str, study: str, worker: subprocess.Popen, hold: Path) -> int:
    """The number of the trial the worker is held in, after it finished one.

    Once a trial has finished, the hold file stops the worker at its next loss evaluation:
    the trial it is in can neither finish nor be pruned nor diverge before the kill, whatever
    the machine's load (a fixed sleep raced the trial's end)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        try:
            trials = _load(storage, study).get_trials()
        except KeyError:  # not created yet
            trials = []
        if sum(t.state.is_finished() for t in trials) >= 1:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the worker never finished a trial")
    hold.touch()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        first = _load(storage, study).get_trials()
        time.sleep(0.5)
        again = _load(storage, study).get_trials()
        running = [t.number for t in again if t.state == optuna.trial.TrialState.RUNNING]
        if len(running) == 1 and [t.state for t in first] == [t.state for t in again]:
            return running[0]  # the worker is stuck in that trial: nothing moved for 0.5 s
    raise AssertionError("the worker was never held in a trial")
