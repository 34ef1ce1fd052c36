"""LR pickers compared by the benchmark, each called the way a new user would call it.

- ``lrpilot``: ``lrpilot.find_lr(model, optimizer, loader, loss_fn, steps=RUN_STEPS)`` with
  its defaults otherwise (1e-7 to 10, 100 steps) and its default suggestion ``res.lr``.
- ``torch-lr-finder`` 0.2.2: ``LRFinder.range_test(loader, start_lr=1e-7)`` with the library's
  defaults otherwise (``end_lr=10``, ``num_iter=100``, ``smooth_f=0.05``, ``diverge_th=5``), then
  ``plot(suggest_lr=True)``, which returns the steepest-gradient LR (10 points skipped at the
  start, 5 at the end). ``start_lr`` is README's 1e-7; the default would start at the optimizer's
  LR.
- ``lightning`` 2.6.6: ``Tuner(trainer).lr_find(module, train_dataloaders=loader).suggestion()``
  with its defaults (1e-8 to 1, 100 steps), the task wrapped in a minimal ``LightningModule``
  whose ``configure_optimizers`` builds the recipe's optimizer.
- ``default``: 1e-3 for the Adam family, 0.01 for SGD; no sweep.

Where the recipe clips gradients, lrpilot gets ``grad_clip`` and Lightning's ``Trainer``
``gradient_clip_val``; torch-lr-finder has no such option.

Each sweep starts from the same model initialisation and data order as the training run at its
pick (``train.build``). A picker that returns no LR is recorded as failed and falls back to the
default, as a user would.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

from benchmarks.tasks import BenchTask
from benchmarks.train import build

PICKERS = ("lrpilot", "torch-lr-finder", "lightning", "default")


@dataclass
class Pick:
    """One picker's answer for one task and seed, with the sweep curve behind it."""

    picker: str
    task: str
    seed: int
    lr: float
    sweep_steps: int
    wall_s: float
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    failed: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def version_key(picker: str) -> str:
    """What a cached pick depends on besides the task: the picker's code or version."""
    if picker == "lrpilot":
        import lrpilot

        root = Path(lrpilot.__file__).resolve().parent
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            digest.update(path.read_bytes())
        return "lrpilot-" + digest.hexdigest()[:12]
    if picker == "torch-lr-finder":
        return "torch-lr-finder-" + metadata.version("torch-lr-finder")
    if picker == "lightning":
        return "lightning-" + metadata.version("pytorch-lightning")
    return "default"


def _floats(values) -> list[float]:  # noqa: ANN001 - any sequence of numbers or tensors
    return [float(v) for v in values]


def _lrpilot(task: BenchTask, seed: int) -> Pick:
    import lrpilot

    model, optimizer, loader = build(task, task.default_lr, seed)
    res = lrpilot.find_lr(model, optimizer, loader, task.loss_fn, steps=task.steps,
                          grad_clip=task.grad_clip, progress=False)  # fmt: skip
    extra = {k: v for k, v in res.to_dict().items() if k not in ("lrs", "losses")}
    return Pick("lrpilot", task.name, seed, float(res.lr), int(res.num_steps_run), 0.0,
                _floats(res.lrs), _floats(res.losses), extra=extra)  # fmt: skip


def _torch_lr_finder(task: BenchTask, seed: int) -> Pick:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    model, optimizer, loader = build(task, task.default_lr, seed)
    finder = LRFinder(model, optimizer, task.loss_fn, device="cpu")
    finder.range_test(loader, start_lr=1e-7)
    lrs, losses = _floats(finder.history["lr"]), _floats(finder.history["loss"])
    fig, ax = plt.subplots()
    try:
        _, lr = finder.plot(suggest_lr=True, ax=ax)  # returns (ax, lr) in 0.2.2
        failed = ""
    except RuntimeError as err:  # too few points before divergence
        lr, failed = task.default_lr, str(err)
    plt.close(fig)
    finder.reset()
    return Pick("torch-lr-finder", task.name, seed, float(lr), len(lrs), 0.0, lrs, losses,
                failed=failed)  # fmt: skip


def _lightning(task: BenchTask, seed: int) -> Pick:
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.lr = task.default_lr

        def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
            x, y = batch
            return task.loss_fn(self.model(x), y)

        def configure_optimizers(self):  # noqa: ANN201
            return task.optimizer_fn(self.parameters(), self.lr)

    model, _, loader = build(task, task.default_lr, seed)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lrpilot-bench-pl-") as root:
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
            gradient_clip_val=task.grad_clip,
        )  # fmt: skip
        finder = Tuner(trainer).lr_find(Module(), train_dataloaders=loader)
    lrs, losses = _floats(finder.results["lr"]), _floats(finder.results["loss"])
    lr = finder.suggestion()
    failed = "" if lr is not None else "suggestion() returned None"
    return Pick("lightning", task.name, seed, float(lr if lr is not None else task.default_lr),
                len(lrs), 0.0, lrs, losses, failed=failed)  # fmt: skip


def _default(task: BenchTask, seed: int) -> Pick:
    return Pick("default", task.name, seed, task.default_lr, 0, 0.0)


_PICK = {
    "lrpilot": _lrpilot,
    "torch-lr-finder": _torch_lr_finder,
    "lightning": _lightning,
    "default": _default,
}


def pick(picker: str, task: BenchTask, seed: int) -> Pick:
    """Run ``picker`` on ``task`` with ``seed``'s initialisation and data order; its chatter
    (prints, progress bars) is swallowed."""
    task.data_fn()  # loaded (and memoised) before the clock starts
    start = time.perf_counter()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        result = _PICK[picker](task, seed)
    result.wall_s = time.perf_counter() - start
    return result
