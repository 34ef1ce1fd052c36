"""The Lightning callback on a tiny real LightningModule: range test before fit, monitor during."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("pytorch_lightning")

import lrpilot  # noqa: E402
from lrpilot.control.monitor import Monitor  # noqa: E402
from lrpilot.integrations.lightning import LRPilotCallback  # noqa: E402


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=g)


class Tiny(pl.LightningModule):
    """Two param groups (the head at 10x the body) and a step-wise LambdaLR."""

    def __init__(self, spike_at: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(8, 16), nn.Tanh())
        self.head = nn.Linear(16, 3)
        self.spike_at = spike_at
        self.lrs: list[list[float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)  # silenced during the range test
        if self.spike_at is not None and self.trainer.global_step in (
            self.spike_at,
            self.spike_at + 1,
        ):
            loss = loss * 1e3
        return loss

    def on_train_batch_start(self, batch, batch_idx):
        self.lrs.append([g["lr"] for g in self.trainer.optimizers[0].param_groups])

    def configure_optimizers(self):
        opt = torch.optim.SGD(
            [
                {"params": self.body.parameters(), "lr": 1e-3},
                {"params": self.head.parameters(), "lr": 1e-2},
            ],
            momentum=0.9,
        )
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / 100)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _fit(module: Tiny, callback: LRPilotCallback, steps: int = 40) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    trainer.fit(module, _loader())
    return trainer


def test_the_range_test_sets_the_pick_keeping_ratios_and_reaching_the_scheduler():
    module = Tiny()
    callback = LRPilotCallback(monitor=False, num_steps=40)
    trainer = _fit(module, callback)
    res = callback.result
    assert res is not None and res.group_ratios == pytest.approx([0.1, 1.0])
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert sched.base_lrs == pytest.approx(res.group_lrs())  # DEFECTS U3/U9
    assert module.lrs[0] == pytest.approx(res.group_lrs())  # step 0 ran at the pick
    assert module.lrs[10] == pytest.approx([lr * (1 - 10 / 100) for lr in res.group_lrs()])
    assert res.num_steps_run > 8


def test_the_monitor_rolls_back_a_spike_during_fit():
    module = Tiny(spike_at=20)
    monitor = Monitor(quiet=True, snapshot_every=5)
    callback = LRPilotCallback(find_lr=False, monitor=monitor)
    _fit(module, callback)
    spikes = [e for e in monitor.events if e["kind"] == "spike"]
    assert len(spikes) == 1 and "rolled back to step" in spikes[0]["message"]
    assert spikes[0]["step"] == 22  # two bad steps in a row; the monitor counts from 1
    assert all(torch.isfinite(p).all() for p in module.parameters())
    halved = [lrs[1] / before[1] for before, lrs in zip(module.lrs, module.lrs[1:], strict=False)]
    assert min(halved) < 0.6  # the LR cut reached the groups (and the LambdaLR's bases)
    assert not math.isnan(monitor.lr_scale) and monitor.lr_scale == 0.1  # above its start: /10


SCHEDULERS = {
    "OneCycleLR": lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=[1e-3, 1e-2], total_steps=40
    ),
    "SequentialLR": lambda o: torch.optim.lr_scheduler.SequentialLR(
        o,
        [
            torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, total_iters=4),
            torch.optim.lr_scheduler.CosineAnnealingLR(o, 36),
        ],
        milestones=[4],
    ),
    "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 5),
}


class Scheduled(Tiny):
    """Tiny with a scheduler of ``kind``, stepped every optimizer step or every epoch."""

    def __init__(self, kind: str, interval: str = "step") -> None:
        super().__init__()
        self.kind, self.interval = kind, interval

    def configure_optimizers(self):
        opt = _groups(self.body.parameters(), self.head.parameters())
        sched = SCHEDULERS[self.kind](opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": self.interval}}


def _groups(body, head) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        [{"params": body, "lr": 1e-3}, {"params": head, "lr": 1e-2}], momentum=0.9
    )


def _reference(kind: str, steps: int, every: int = 1) -> list[list[float]]:
    """The LRs the scheduler gives without lrpilot, on a copy of the module's optimizer."""
    opt = _groups([torch.zeros(1, requires_grad=True)], [torch.zeros(1, requires_grad=True)])
    sched = SCHEDULERS[kind](opt)
    lrs = []
    for t in range(1, steps + 1):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        if t % every == 0:
            sched.step()
    return lrs


@pytest.mark.parametrize("kind", ["OneCycleLR", "SequentialLR"])
def test_the_fit_runs_the_configured_schedule_at_the_pick(kind):
    module = Scheduled(kind)
    callback = LRPilotCallback(monitor=False, num_steps=30)
    _fit(module, callback)
    res = callback.result
    assert "schedule" not in res.assumed and res.schedule["source"] == kind
    scale = res.lr / 1e-2  # the head's old peak
    reference = _reference(kind, 40)
    for seen, old in zip(module.lrs, reference, strict=True):
        assert seen == pytest.approx([lr * scale for lr in old], rel=1e-9)
    top = max(lrs[1] for lrs in module.lrs)
    assert top == pytest.approx(res.lr, rel=0.02)  # the run peaks at the pick


def test_an_epoch_scheduler_is_read_per_epoch():
    module = Scheduled("CosineAnnealingLR", interval="epoch")
    callback = LRPilotCallback(monitor=False, num_steps=30)
    _fit(module, callback)
    res = callback.result
    table = lrpilot.schedules.from_dict(res.schedule)
    per_epoch = [table(t) for t in range(16)]  # 8 optimizer steps an epoch
    assert per_epoch[:8] == [1.0] * 8 and per_epoch[8:] == [per_epoch[8]] * 8
    assert per_epoch[8] == pytest.approx(0.5 * (1 + math.cos(math.pi / 5)))
    scale = res.lr / 1e-2
    for seen, old in zip(module.lrs, _reference("CosineAnnealingLR", 40, every=8), strict=True):
        assert seen == pytest.approx([lr * scale for lr in old], rel=1e-9)


class NaNAt(Tiny):
    """Tiny whose loss is multiplied by NaN at one step: NaN gradients, applied by Lightning."""

    def __init__(self, nan_at: int) -> None:
        super().__init__()
        self.nan_at = nan_at

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.trainer.global_step == self.nan_at else loss


def test_a_nan_batch_is_rolled_back_and_the_schedule_follows_the_fit():
    module = NaNAt(nan_at=24)
    monitor = Monitor(quiet=True, snapshot_every=5)
    trainer = _fit(module, LRPilotCallback(find_lr=False, monitor=monitor))
    acted = [e for e in monitor.events if e["acted"]]
    assert [e["kind"] for e in acted] == ["nan"] and "rolled back to step" in acted[0]["message"]
    assert acted[0]["step"] == 25  # Lightning's global_step after that optimizer step
    assert all(torch.isfinite(p).all() for p in module.parameters())
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert sched.last_epoch == trainer.global_step == 40  # not left behind by the rollback
    scale = monitor.lr_scale
    assert module.lrs[-1] == pytest.approx([lr * scale * (1 - 39 / 100) for lr in (1e-3, 1e-2)])


@pytest.mark.parametrize(
    ("clip", "algorithm", "bounded"),
    [(0.01, "norm", True), (0.01, "value", False), (None, None, False), (1e9, "norm", False)],
)
def test_a_step_lightnings_norm_clipping_bounded_is_not_judged_on_its_norm(
    monkeypatch, clip, algorithm, bounded
):
    """The norm is measured before Lightning clips: where ``gradient_clip_val`` (by norm)
    bounded the step, the monitor is told so, as ``lrpilot.train`` tells it (a clipped noisy
    batch was rolled back to step 0 with the LR cut 10x)."""
    monitor = Monitor(quiet=True)
    seen: list[bool] = []
    judge = monitor._judge_applied

    def spy(loss, norm, *, applied=True, bounded=False):
        seen.append(bounded)
        return judge(loss, norm, applied=applied, bounded=bounded)

    monkeypatch.setattr(monitor, "_judge_applied", spy)
    trainer = pl.Trainer(
        max_steps=5,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=clip,
        gradient_clip_algorithm=algorithm,
        callbacks=[LRPilotCallback(find_lr=False, monitor=monitor)],
    )
    trainer.fit(Tiny(), _loader())
    assert len(seen) == 5 and set(seen) == {bounded}
