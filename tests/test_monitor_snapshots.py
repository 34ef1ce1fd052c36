"""Where the monitor keeps its snapshots: beside the tensors, in host memory, or in a file.

A rollback from any of the three must give the same run, bit for bit; a file snapshot is
private to the user and removed when the run ends (a plain loop's rollback from disk is tested
beside the in-memory one in ``test_monitor.py``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from torch import nn

import lrpilot
from conftest import assert_state_dicts_equal
from lrpilot._state import SpilledSnapshot, TrainingSnapshot
from lrpilot.control.callbacks import Action, Callback
from lrpilot.control.monitor import Monitor
from lrpilot.errors import ConfigError
from test_monitor import CE, MultiplyLR, _clone, _data, _task


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _trained_adam_model() -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Dropout(0.2), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = _data(64)
    for _ in range(3):
        opt.zero_grad()
        CE(model(x), y).backward()
        opt.step()
    return model, opt, x


def test_a_spilled_snapshot_restores_model_optimizer_and_rng_bitwise(tmp_path):
    model, opt, x = _trained_adam_model()
    path = tmp_path / "private" / "snap.pt"
    spilled = SpilledSnapshot.write(TrainingSnapshot.take(model, opt, device="cpu"), path)
    model_state = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = _clone(opt.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]
    draw = torch.rand(3)  # the RNG as it stood at the snapshot, one draw on

    for _ in range(4):  # move everything: weights, Adam's moments, BatchNorm's stats, the RNG
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    spilled.restore(model, opt)

    assert_state_dicts_equal(model.state_dict(), model_state)
    assert_state_dicts_equal(opt.state_dict(), opt_state)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))
    assert torch.equal(torch.rand(3), draw)
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert not list(path.parent.glob(".*tmp"))  # no half-written file left beside it
    spilled.delete()
    assert not path.exists()
    spilled.delete()  # twice is harmless


class FilesAt(Callback):
    """Lists the files of ``folder`` at step ``at`` (with their permission bits)."""

    def __init__(self, folder: Path, at: int) -> None:
        self.folder, self.at, self.seen = folder, at, None

    def on_step(self, info):
        if info.step == self.at:
            self.seen = [(p.name, _mode(p)) for p in self.folder.glob("*")]
        return None


def _injected_run(tmp_path: Path, **monitor_options) -> tuple[lrpilot.RunResult, Monitor]:
    monitor = Monitor(quiet=True, **monitor_options)
    run = lrpilot.train(_task(), 0.1, progress=False, callbacks=[MultiplyLR(110), monitor])
    return run, monitor


@pytest.mark.parametrize("place", ["cpu", "disk"])
def test_a_rollback_from_host_memory_or_disk_gives_the_same_run_as_from_memory(tmp_path, place):
    folder = tmp_path / "snaps"
    reference, watched = _injected_run(tmp_path)
    assert watched.to_dict()["rollbacks"] >= 1  # the injection is rolled back

    files = FilesAt(folder, at=105)
    monitor = Monitor(quiet=True, snapshots=place, snapshot_dir=folder)
    run = lrpilot.train(_task(), 0.1, progress=False, callbacks=[MultiplyLR(110), monitor, files])

    assert run.losses == reference.losses and run.lrs == reference.lrs
    assert run.metric == reference.metric
    assert [e["message"] for e in run.events] == [e["message"] for e in reference.events]
    if place == "disk":
        assert len(files.seen) == 1 and files.seen[0][1] == 0o600  # one file, the user's only
        assert _mode(folder) == 0o700
        assert not list(folder.iterdir())  # removed when the run ended
    else:
        assert not folder.exists()


def test_a_snapshot_that_cannot_be_written_stays_in_memory_and_the_run_goes_on(tmp_path):
    reference, _ = _injected_run(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.warns(RuntimeWarning, match="could not write a snapshot"):
        run, monitor = _injected_run(tmp_path, snapshots="disk", snapshot_dir=blocker / "snaps")
    assert monitor.to_dict()["rollbacks"] >= 1
    assert run.losses == reference.losses and run.metric == reference.metric


def test_disk_snapshots_default_to_lrpilot_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "home"))
    folder = tmp_path / "home" / "snapshots"
    files = FilesAt(folder, at=30)
    run = lrpilot.train(
        _task(steps=60),
        0.1,
        progress=False,
        callbacks=[Monitor(quiet=True, snapshots="disk"), files],
    )
    assert not run.diverged
    assert len(files.seen) == 1 and files.seen[0][0].startswith("snapshot-")
    assert not list(folder.iterdir())


class HalveAtStart(Callback):
    def on_run_start(self, info):
        return Action(lr_factor=0.5, reason="start at half")


def test_an_action_returned_at_the_run_start_is_carried_out():
    run = lrpilot.train(_task(steps=5), 0.1, progress=False, callbacks=[HalveAtStart()])
    assert run.lrs == pytest.approx([0.05] * 5)
    assert any("start at half" in e["message"] for e in run.events)


class RollbackAtStart(Callback):
    def on_run_start(self, info):
        return Action(rollback=True)


def test_a_rollback_before_the_first_snapshot_is_refused():
    with pytest.raises(ConfigError, match="before the run took its first snapshot"):
        lrpilot.train(_task(steps=5), 0.1, progress=False, callbacks=[RollbackAtStart()])


@pytest.mark.parametrize("bad", ["gpu", "/tmp/snap.pt", 3])
def test_an_action_names_its_snapshot_place_clearly(bad):
    with pytest.raises(ConfigError, match="snapshot_to must be"):
        Action(snapshot=True, snapshot_to=bad)


def test_an_unknown_snapshot_place_is_refused():
    with pytest.raises(ConfigError, match="snapshots"):
        Monitor(snapshots="ssd")
