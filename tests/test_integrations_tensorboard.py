"""TensorBoard: the event files written are read back with TensorBoard's own reader."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrpilot
from lrpilot.control.callbacks import Action, Callback

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lrpilot.integrations.tensorboard import TensorBoardCallback, write_range_test


def _task() -> lrpilot.Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    return lrpilot.Task(
        model_fn=lambda: nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)),
        optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
        train_loader=DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True),
        val_loader=DataLoader(TensorDataset(x, y), batch_size=256),
        loss_fn=nn.functional.cross_entropy,
        steps=120,
        eval_every=40,
    )


class Spike(Callback):
    def on_step(self, info):
        return Action(lr_factor=100.0, reason="injected") if info.step == 60 else None


def _read(path) -> EventAccumulator:
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_a_watched_run_is_written_as_scalars_and_event_texts(tmp_path):
    monitor = lrpilot.Monitor(quiet=True)
    tb = TensorBoardCallback(tmp_path / "run", monitor=monitor)
    run = lrpilot.train(_task(), 0.1, progress=False, callbacks=[Spike(), monitor, tb])
    acc = _read(tmp_path / "run")
    tags = acc.Tags()["scalars"]
    assert {"train/lr", "train/loss", "train/grad_norm", "val/metric"} <= set(tags)
    assert {"monitor/clipped_share", "monitor/lr_scale"} <= set(tags)
    losses = acc.Scalars("train/loss")
    assert [e.step for e in losses] == list(range(1, 121))  # the redo replaces the discarded
    assert [e.value for e in losses] == pytest.approx(run.losses, rel=1e-6)
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx(run.lrs, rel=1e-6)
    assert {40, 80, 120} <= {e.step for e in acc.Scalars("val/metric")}
    scale = [e.value for e in acc.Scalars("monitor/lr_scale")]
    assert scale[0] == 1.0 and scale[-1] < 1.0  # the monitor's cut is visible
    texts = [t.tensor_proto.string_val[0].decode() for t in acc.Tensors("events/text_summary")]
    injected = [e["message"] for e in run.events if e["message"].startswith("injected")]
    assert injected  # the run's own actions (not the monitor's) are written too, once each
    assert sorted(texts) == sorted([e["message"] for e in monitor.events] + injected)
    assert any("rolled back to step" in t for t in texts)


def test_the_rollbacks_redo_is_what_tensorboards_plugin_reader_shows(tmp_path):
    from tensorboard.backend.event_processing import plugin_event_accumulator

    monitor = lrpilot.Monitor(quiet=True)
    tb = TensorBoardCallback(tmp_path / "run", monitor=monitor)
    run = lrpilot.train(_task(), 0.1, progress=False, callbacks=[Spike(), monitor, tb])
    acc = plugin_event_accumulator.EventAccumulator(
        str(tmp_path / "run"), size_guidance={"tensors": 0}
    )
    acc.Reload()
    assert [e.step for e in acc.Tensors("train/loss")] == list(range(1, 121))
    events = acc.Tensors("events/text_summary")
    rollbacks = [e for e in run.events if "rolled back" in e["message"]]
    assert rollbacks and rollbacks[-1]["step"] in {e.step for e in events}  # kept


def test_a_monitor_missing_from_callbacks_is_said_and_the_runs_events_written(tmp_path):
    tb = TensorBoardCallback(tmp_path / "run", monitor=lrpilot.Monitor(quiet=True))
    with pytest.warns(RuntimeWarning, match="not watching this run"):
        run = lrpilot.train(_task(), 0.1, progress=False, callbacks=[Spike(), tb])
    acc = _read(tmp_path / "run")
    assert "monitor/lr_scale" not in acc.Tags()["scalars"]  # flat, meaningless: left out
    texts = [t.tensor_proto.string_val[0].decode() for t in acc.Tensors("events/text_summary")]
    assert run.events and texts == [e["message"] for e in run.events]


def test_a_range_test_curve_is_written_as_scalars(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=g)
    batches = [(x[i : i + 16], (x[i : i + 16].sum(1) > 0).long()) for i in range(0, 64, 16)]
    res = lrpilot.find_lr(
        model, opt, batches, nn.functional.cross_entropy, num_steps=40, progress=False
    )
    write_range_test(res, tmp_path / "lr")
    acc = _read(tmp_path / "lr")
    lrs = acc.Scalars("range_test/lr")
    assert [e.value for e in lrs] == pytest.approx(res.lrs, rel=1e-6)
    finite = [v for v in res.losses if math.isfinite(v)]
    assert [e.value for e in acc.Scalars("range_test/loss")] == pytest.approx(finite, rel=1e-6)
    steps = [e.step for e in acc.Scalars("range_test/loss_vs_log10_lr")]
    assert steps[0] == round(1000 * math.log10(res.lrs[0])) and steps == sorted(steps)


def test_a_callback_needs_a_place_to_write():
    with pytest.raises(lrpilot.ConfigError, match="log_dir"):
        TensorBoardCallback()
