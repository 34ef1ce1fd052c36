"""The Hugging Face integration on a tiny BertForSequenceClassification built from a config
(nothing downloaded): the range test on a Trainer, and the monitor as a TrainerCallback."""

from __future__ import annotations

import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

import lrpilot  # noqa: E402
from lrpilot.control.monitor import Monitor  # noqa: E402
from lrpilot.integrations.transformers import MonitorCallback, find_lr_for_trainer  # noqa: E402


class Pairs(torch.utils.data.Dataset):
    """Token sequences whose label is whether token 7 occurs: learnable in a few dozen steps."""

    def __init__(self, n: int = 128, length: int = 12, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(8, 64, (n, length), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)
        self.ids[self.labels == 1, 3] = 7

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": self.labels[i]}


def _trainer(
    tmp_path, callbacks=(), steps: int = 30, model_cls=None, **args
) -> transformers.Trainer:
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = (model_cls or transformers.BertForSequenceClassification)(config)
    options = dict(
        output_dir=str(tmp_path),
        max_steps=steps,
        per_device_train_batch_size=16,
        learning_rate=1e-3,
        logging_steps=1_000,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    options.update(args)
    return transformers.Trainer(
        model=model,
        args=transformers.TrainingArguments(**options),
        train_dataset=Pairs(),
        eval_dataset=Pairs(n=32, seed=1),
        callbacks=list(callbacks),
    )


def test_find_lr_for_trainer_sets_the_pick_on_optimizer_args_and_the_schedule(tmp_path):
    trainer = _trainer(tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    res = find_lr_for_trainer(trainer, num_steps=30)
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model is untouched
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx(res.group_lrs())
    assert trainer.args.learning_rate == pytest.approx(res.lr)
    assert res.num_steps_run > 8 and math.isfinite(res.lr)
    trainer.train()
    assert trainer.lr_scheduler.base_lrs == pytest.approx(res.group_lrs())  # U3/U9


def test_find_lr_for_trainer_picks_for_the_schedule_train_will_run(tmp_path):
    trainer = _trainer(tmp_path, lr_scheduler_type="cosine", warmup_steps=3)
    res = find_lr_for_trainer(trainer, num_steps=30)
    assert "schedule" not in res.assumed and res.schedule["source"] == "LambdaLR"
    table = lrpilot.schedules.from_dict(res.schedule)
    spec = lrpilot.schedules.parse_schedule("warmup(3)+cosine", total_steps=30)
    assert [table(t) for t in range(30)] == pytest.approx([spec(t) for t in range(30)], abs=1e-12)
    assert trainer.lr_scheduler is None  # built on a stand-in, then left to train()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx(res.group_lrs())
    trainer.train()
    assert trainer.lr_scheduler.base_lrs == pytest.approx(res.group_lrs())


def test_a_plateau_scheduler_leaves_the_constant_assumption(tmp_path):
    trainer = _trainer(
        tmp_path, lr_scheduler_type="reduce_lr_on_plateau", eval_strategy="steps", eval_steps=10
    )
    res = find_lr_for_trainer(trainer, num_steps=12)
    assert "schedule" in res.assumed and res.schedule is None


class MultiplyLR(transformers.TrainerCallback):
    """At step 15, the LR x300 (the groups and the scheduler's bases): an injected spike."""

    def on_step_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kw):
        if state.global_step == 15 and not getattr(self, "done", False):
            self.done = True
            inner = getattr(optimizer, "optimizer", optimizer)
            for group in inner.param_groups:
                group["lr"] *= 300
            lr_scheduler.base_lrs = [b * 300 for b in lr_scheduler.base_lrs]


def test_the_monitor_callback_rolls_back_a_spike_and_cuts_the_trainers_schedule(tmp_path):
    monitor = Monitor(quiet=True, snapshot_every=5)
    trainer = _trainer(tmp_path, callbacks=[MultiplyLR(), MonitorCallback(monitor)], steps=40)
    trainer.train()
    acted = [e for e in monitor.events if e["acted"]]
    assert acted and acted[0]["kind"] in ("spike", "exploding", "nan")
    assert 16 <= acted[0]["step"] <= 21 and "rolled back to step" in acted[0]["message"]
    base = trainer.lr_scheduler.base_lrs[0]
    assert base == pytest.approx(1e-3 * monitor.lr_scale)  # injection undone, the cut kept
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_an_early_stop_ends_the_trainer_and_restores_the_best_weights(tmp_path):
    monitor = Monitor(quiet=True, stop_patience=1, plateau_patience=None, overfit_patience=None)
    callback = MonitorCallback(monitor, metric="eval_loss")
    trainer = _trainer(
        tmp_path,
        callbacks=[callback],
        steps=60,
        eval_strategy="steps",
        eval_steps=5,
        learning_rate=3e-2,
    )
    trainer.train()
    stops = [e for e in monitor.events if e["kind"] == "early stop"]
    assert len(stops) == 1 and trainer.state.global_step < 60  # at LR 3e-2 it stalls early
    assert "restored the best weights" in stops[0]["message"]
    best = -monitor.to_dict()["best_metric"]
    assert trainer.evaluate()["eval_loss"] == pytest.approx(best, rel=1e-5)


class Injected(transformers.BertForSequenceClassification):
    """A BERT whose training forwards ``at`` (counted from 1) go wrong: the loss times NaN
    (``"nan"``), or the logits x1e4 (``"logits"``: a spike in a loss the Trainer computes
    itself, as with label smoothing, where the model's output has no loss)."""

    at: tuple[int, ...] = ()
    how = "nan"

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        out = super().forward(
            input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs
        )
        if self.training:
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls in self.at and self.how == "nan":
                out.loss = out.loss * float("nan")
            elif self.calls in self.at:
                out.logits = out.logits * 1e4
        return out


def _injected_trainer(tmp_path, monitor, at, how, steps=40, **args) -> transformers.Trainer:
    """A Trainer on an :class:`Injected` BERT, watched by ``monitor``, with a linear decay."""
    trainer = _trainer(
        tmp_path,
        callbacks=[MonitorCallback(monitor)],
        steps=steps,
        model_cls=Injected,
        lr_scheduler_type="linear",
        **args,
    )
    trainer.model.at, trainer.model.how = at, how
    return trainer


def test_a_nan_batch_is_rolled_back_and_the_schedule_follows_the_trainers_step(tmp_path):
    monitor = Monitor(quiet=True, snapshot_every=5)
    trainer = _injected_trainer(tmp_path, monitor, at=(25,), how="nan")
    trainer.train()
    acted = [e for e in monitor.events if e["acted"]]
    assert [e["kind"] for e in acted] == ["nan"] and "rolled back to step" in acted[0]["message"]
    assert acted[0]["step"] == 25  # the Trainer's global_step, as in its logs
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert math.isfinite(trainer.evaluate()["eval_loss"])
    assert trainer.lr_scheduler.last_epoch == trainer.state.global_step == 40
    assert trainer.optimizer.param_groups[0]["lr"] == 0.0  # the decay ran to its end


def test_a_spike_in_a_loss_the_trainer_computes_itself_is_seen(tmp_path):
    monitor = Monitor(quiet=True, snapshot_every=5)
    trainer = _injected_trainer(
        tmp_path, monitor, at=(25, 26), how="logits", label_smoothing_factor=0.1
    )
    trainer.train()
    acted = [e for e in monitor.events if e["acted"]]
    assert acted and acted[0]["kind"] == "spike" and acted[0]["step"] == 26
    assert monitor.lr_scale < 1.0
    assert "training_step" not in vars(trainer)  # the wrap is undone after the run


def test_without_a_trainer_and_a_loss_the_callback_warns(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.create_optimizer()
    callback = MonitorCallback(Monitor(quiet=True))
    args, state, control = trainer.args, transformers.TrainerState(), transformers.TrainerControl()
    callback.on_train_begin(args, state, control, model=trainer.model, optimizer=trainer.optimizer)
    callback.on_pre_optimizer_step(args, state, control)
    with pytest.warns(RuntimeWarning, match="saw no training loss"):
        callback.on_step_end(args, state, control)
    callback.on_train_end(args, state, control)


def test_a_trainer_given_to_the_callback_is_read_without_looking_up_the_stack(tmp_path):
    monitor = Monitor(quiet=True, snapshot_every=5)
    trainer = _injected_trainer(
        tmp_path, monitor, at=(25, 26), how="logits", label_smoothing_factor=0.1
    )
    trainer.remove_callback(MonitorCallback)
    trainer.add_callback(MonitorCallback(monitor, trainer=trainer))
    import lrpilot.integrations.transformers as hf

    looked = []
    real = hf._calling_trainer
    hf._calling_trainer = lambda: looked.append(1) or real()  # type: ignore[assignment]
    try:
        trainer.train()
    finally:
        hf._calling_trainer = real
    assert looked == []  # the given trainer was used
    acted = [e for e in monitor.events if e["acted"]]
    assert acted and acted[0]["kind"] == "spike"
    with pytest.raises(lrpilot.ConfigError, match="trainer must be a transformers.Trainer"):
        MonitorCallback(monitor, trainer=object())
