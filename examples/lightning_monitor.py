"""PyTorch Lightning with lrpilot: the range test picks the LR before fit, the monitor watches
the fit (a tiny classifier on synthetic data; runs offline in seconds on a CPU).

    python examples/lightning_monitor.py
"""

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrpilot.integrations.lightning import LRPilotCallback


def data(n: int, seed: int, shuffle: bool) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = (x[:, :4].sum(1) > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=shuffle, generator=g)


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=300)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    callback = LRPilotCallback(metric="val_loss", num_steps=60)
    trainer = pl.Trainer(
        max_steps=300,
        val_check_interval=50,
        check_val_every_n_epoch=None,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    trainer.fit(Classifier(), data(1024, 0, shuffle=True), data(256, 1, shuffle=False))
    res = callback.result
    print(f"range test: LR {res.lr:.3g} (band {res.band[0]:.3g}-{res.band[1]:.3g})")
    sched = trainer.lr_scheduler_configs[0].scheduler
    print(f"CosineAnnealingLR retargeted: base_lrs {[f'{b:.3g}' for b in sched.base_lrs]}")
    watched = callback.monitor.to_dict()
    print(f"monitor: {watched['rollbacks']} rollbacks, {len(watched['events'])} events")
    print(f"val_loss {float(trainer.callback_metrics['val_loss']):.4f}")
