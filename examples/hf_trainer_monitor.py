"""Hugging Face Trainer with lrpilot: the range test on the Trainer's model, optimizer and data,
then the monitor as a TrainerCallback. The model is a tiny BERT built from a config (nothing
downloaded); the task: does token 7 occur? Runs offline in seconds on a CPU.

    python examples/hf_trainer_monitor.py
"""

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers

from lrpilot.integrations.transformers import MonitorCallback, find_lr_for_trainer


class Sevens(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(8, 64, (n, 12), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)
        self.ids[self.labels == 1, 3] = 7

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": self.labels[i]}


if __name__ == "__main__":
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    monitor = MonitorCallback()  # watches eval_loss (lower is better) by default
    trainer = transformers.Trainer(
        model=transformers.BertForSequenceClassification(config),
        args=transformers.TrainingArguments(
            output_dir=tempfile.mkdtemp(),
            max_steps=200,
            per_device_train_batch_size=32,
            eval_strategy="steps",
            eval_steps=50,
            logging_steps=50,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            warmup_steps=10,
        ),
        train_dataset=Sevens(2048, 0),
        eval_dataset=Sevens(256, 1),
        callbacks=[monitor],
    )
    res = find_lr_for_trainer(trainer, num_steps=60)
    print(f"range test: LR {res.lr:.3g} (band {res.band[0]:.3g}-{res.band[1]:.3g})")
    trainer.train()
    print(f"scheduler base_lrs: {[f'{b:.3g}' for b in trainer.lr_scheduler.base_lrs]}")
    print(
        f"monitor: {monitor.monitor.to_dict()['rollbacks']} rollbacks; "
        f"eval_loss {trainer.evaluate()['eval_loss']:.4f}"
    )
