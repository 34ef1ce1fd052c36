"""LR pickers compared by the benchmark, each called the way a new user would call it.

- ``lrpilot``: ``lrpilot.find_lr_for_task(task.lrpilot_task(), seed=seed)``, the path the
  command line and ``tune`` use: the task's whole recipe (its run length, schedule and
  clipping) with the range test's defaults otherwise (1e-7 to 10, 100 steps) and its default
  suggestion ``res.lr``.
- ``torch-lr-finder`` 0.2.2: ``LRFinder.range_test(loader, start_lr=1e-7)`` with the library's
  defaults otherwise (``end_lr=10``, ``num_iter=100``, ``smooth_f=0.05``, ``diverge_th=5``), then
  ``plot(suggest_lr=True)``, which returns the steepest-gradient LR (10 points skipped at the
  start, 5 at the end). ``start_lr`` is README's 1e-7; the default would start at the optimizer's
  LR.
- ``lightning`` 2.6.6: ``Tuner(trainer).lr_find(module, train_dataloaders=loader).suggestion()``
  with its defaults (1e-8 to 1, 100 steps), the task wrapped in a minimal ``LightningModule``
  whose ``configure_optimizers`` builds the recipe's optimizer.
- ``fastai-valley`` and ``fastai-minimum`` (fastai 2.8.12, the package itself):
  ``Learner(DataLoaders(loader, val_loader), model, loss_func, opt_func=partial(OptimWrapper,
  opt=<recipe's optimizer>)).lr_find(suggest_funcs=(valley, minimum))`` with fastai's defaults
  (1e-7 to 10, 100 iterations, exponential, stop when the smoothed loss passes 4x its minimum);
  ``valley`` is fastai's default suggestion, ``minimum`` the LR at the smoothed minimum / 10.
  Both are read off one sweep, and each is charged all of it.
- ``prodigy`` (prodigyopt 1.1.2) and ``schedulefree`` (schedulefree 1.4.1): the LR-free
  alternatives, which *replace the recipe's optimizer* (SGD included) at their recommended
  settings instead of picking an LR for it: ``Prodigy(params, lr=1.0, weight_decay=<recipe's>,
  safeguard_warmup=<recipe warms up>)`` under the recipe's schedule, and
  ``AdamWScheduleFree(params, lr=0.0025, warmup_steps=5% of the run, weight_decay=<recipe's>)``
  with no schedule and ``optimizer.train()`` / ``optimizer.eval()`` around evaluation. Their
  "pick" is that fixed LR; their cost is the training run itself.
- ``optuna-tpe`` (Optuna): for seed k, a ``TPESampler(seed=k)`` study of 20 full-length
  training runs, all with seed 0's initialisation and data order (a search fixes its seed),
  over log LR in the oracle grid's range on a lattice of 6 points per decade (which holds the
  oracle grid's points); its pick is the best trial's LR, trained like every other pick with
  seed k. One study per pick seed (0-2; not 3-4, for time). A trial on a point already trained
  (a grid run, another study's trial) reuses that result: training is deterministic, so a
  real search would get the same number.
- ``default``: 1e-3 for the Adam family, 0.01 for SGD; no sweep.

Where the recipe clips gradients, lrpilot's Task holds ``grad_clip``, Lightning's ``Trainer``
gets ``gradient_clip_val`` and fastai ``GradientClip``; torch-lr-finder has no such option.

Each sweep starts from what ``lrpilot.train`` starts from (:func:`start`: the same seeding, then
the model), so it sees the same initialisation and data order as the training run at its pick.
A picker that returns no LR is recorded as failed and falls back to the default, as a user
would.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from importlib import metadata

import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.sources import pick_version, run_version
from benchmarks.tasks import BenchTask, Params, lattice_lr
from lrpilot._rng import generators_of, seed_everything

PICKERS = (
    "lrpilot",
    "torch-lr-finder",
    "lightning",
    "fastai-valley",
    "fastai-minimum",
    "prodigy",
    "schedulefree",
    "optuna-tpe",
    "default",
)
LR_FREE = frozenset({"prodigy", "schedulefree"})  # replace the optimizer; no LR to pick
SEARCHES = frozenset({"optuna-tpe"})  # searches of full runs: one per pick seed (0-2), not 5
SELF_TRAINING = SEARCHES  # the search itself trains the final model: no extra run to count
OPTUNA_TRIALS = 20
OPTUNA_PER_DECADE = 6  # the lattice of LRs a trial may take: 1.47x apart
OPTUNA_TRAIN_SEED = 0  # every study's trials train with this seed; the sampler's seed varies
NEEDS = {"fastai-valley": "fastai", "fastai-minimum": "fastai"}
"""Pickers whose package is installed by hand (not in the ``bench`` extra)."""


def available(pickers: list[str]) -> tuple[list[str], list[str]]:
    """``pickers`` split into those whose package imports here and those that do not."""
    import importlib.util

    usable = [p for p in pickers if p not in NEEDS or importlib.util.find_spec(NEEDS[p])]
    return usable, [p for p in pickers if p not in usable]


PRODIGY_LR = 1.0  # prodigyopt's README: "We recommend using lr=1. (default) for all networks"
SCHEDULEFREE_LR = 0.0025  # AdamWScheduleFree's default
SCHEDULEFREE_WARMUP = 0.05  # fraction of the run


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
        return pick_version()  # the code of the modules that decide it, not its docstrings
    if picker == "torch-lr-finder":
        return "torch-lr-finder-" + metadata.version("torch-lr-finder")
    if picker == "lightning":
        return "lightning-" + metadata.version("pytorch-lightning")
    if picker.startswith("fastai"):
        return "fastai-" + metadata.version("fastai")
    if picker == "prodigy":
        return "prodigyopt-" + metadata.version("prodigyopt")
    if picker == "schedulefree":
        return "schedulefree-" + metadata.version("schedulefree")
    if picker == "optuna-tpe":
        return (
            f"optuna-{metadata.version('optuna')}-tpe{OPTUNA_TRIALS}"
            f"-lattice{OPTUNA_PER_DECADE}-train-seed{OPTUNA_TRAIN_SEED}-{run_version()}"
        )
    return "default"


def recipe_weight_decay(task: BenchTask) -> float:
    """The weight decay of the recipe's optimizer (0 where it has none)."""
    probe = task.optimizer_fn([torch.zeros(1, requires_grad=True)], 1.0)
    return float(probe.defaults.get("weight_decay", 0.0))


def training_task(picker: str, task: BenchTask) -> BenchTask:
    """The recipe trained at ``picker``'s pick: ``task`` itself, except for the LR-free pickers,
    which swap in their own optimizer (and, for Schedule-Free, drop the schedule). The swapped
    optimizer changes the task's signature, so their runs have their own cache keys."""
    if picker == "prodigy":
        return _prodigy_task(task)
    if picker == "schedulefree":
        return _schedulefree_task(task)
    return task


def _prodigy_task(task: BenchTask) -> BenchTask:
    """``task`` with Prodigy(lr=1, the recipe's weight decay) under the recipe's schedule;
    ``safeguard_warmup`` where the schedule warms up, as prodigyopt's README recommends."""
    from prodigyopt import Prodigy

    wd = recipe_weight_decay(task)
    import lrpilot

    resolved = lrpilot.parse_schedule(task.schedule, task.steps) if task.schedule else None
    warmup = isinstance(resolved, lrpilot.schedules.Warmup)

    def prodigy(params: Params, lr: float) -> torch.optim.Optimizer:
        return Prodigy(params, lr=lr, weight_decay=wd, safeguard_warmup=warmup)

    desc = (
        f"Prodigy(lr=1, weight_decay={wd:g}, safeguard_warmup={warmup}) [replaces "
        f"{task.optimizer_desc}]"
    )
    return replace(task, optimizer_fn=prodigy, optimizer_desc=desc, default_lr=PRODIGY_LR)


def _schedulefree_task(task: BenchTask) -> BenchTask:
    """``task`` with AdamWScheduleFree(lr=0.0025, 5% warmup, the recipe's weight decay) and no
    schedule (``lrpilot.train`` calls ``optimizer.train()`` / ``eval()`` around evaluation)."""
    from schedulefree import AdamWScheduleFree

    wd = recipe_weight_decay(task)
    warmup_steps = round(SCHEDULEFREE_WARMUP * task.steps)

    def schedulefree(params: Params, lr: float) -> torch.optim.Optimizer:
        return AdamWScheduleFree(params, lr=lr, warmup_steps=warmup_steps, weight_decay=wd)

    desc = (
        f"AdamWScheduleFree(lr={SCHEDULEFREE_LR}, warmup_steps={warmup_steps}, "
        f"weight_decay={wd:g}) [replaces {task.optimizer_desc}]"
    )
    return replace(
        task,
        optimizer_fn=schedulefree,
        optimizer_desc=desc,
        schedule=None,
        default_lr=SCHEDULEFREE_LR,
    )


def _floats(values) -> list[float]:
    return [float(v) for v in values]


def start(
    task: BenchTask, seed: int
) -> tuple[nn.Module, torch.optim.Optimizer, DataLoader, DataLoader]:
    """What ``lrpilot.train(task.lrpilot_task(), lr, seed=seed)`` starts from, for a peer's
    sweep: the RNGs and the loaders' generators seeded the way ``train`` seeds them, then a
    fresh model, the recipe's optimizer at the default LR, and the training and validation
    loaders."""
    recipe = task.lrpilot_task()
    seed_everything(seed, generators_of([recipe.train_loader, recipe.val_loader]))
    model, optimizer = recipe.build(task.default_lr)
    return model, optimizer, recipe.train_loader, recipe.val_loader


def _lrpilot(task: BenchTask, seed: int) -> Pick:
    import lrpilot

    res = lrpilot.find_lr_for_task(task.lrpilot_task(), seed=seed, progress=False)
    extra = {k: v for k, v in res.to_dict().items() if k not in ("lrs", "losses")}
    return Pick(
        "lrpilot",
        task.name,
        seed,
        float(res.lr),
        int(res.cost_steps),
        0.0,
        _floats(res.lrs),
        _floats(res.losses),
        extra=extra,
    )


def _torch_lr_finder(task: BenchTask, seed: int) -> Pick:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch_lr_finder import LRFinder

    model, optimizer, loader, _ = start(task, seed)
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
    return Pick(
        "torch-lr-finder", task.name, seed, float(lr), len(lrs), 0.0, lrs, losses, failed=failed
    )


def _lightning(task: BenchTask, seed: int) -> Pick:
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.lr = task.default_lr

        def training_step(self, batch, batch_idx):
            x, y = batch
            return task.loss_fn(self.model(x), y)

        def configure_optimizers(self):
            return task.optimizer_fn(self.parameters(), self.lr)

    model, _, loader, _ = start(task, seed)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lrpilot-bench-pl-") as root:
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
            gradient_clip_val=task.grad_clip,
        )
        finder = Tuner(trainer).lr_find(Module(), train_dataloaders=loader)
    lrs, losses = _floats(finder.results["lr"]), _floats(finder.results["loss"])
    lr = finder.suggestion()
    failed = "" if lr is not None else "suggestion() returned None"
    return Pick(
        "lightning",
        task.name,
        seed,
        float(lr if lr is not None else task.default_lr),
        len(lrs),
        0.0,
        lrs,
        losses,
        failed=failed,
    )


def _fastai_sweep(task: BenchTask, seed: int) -> tuple[list[float], list[float], dict]:
    """fastai's ``lr_find`` with its defaults on the recipe: the LRs, fastai's smoothed losses
    and its ``valley`` and ``minimum`` suggestions."""
    from fastai.callback.schedule import minimum, valley
    from fastai.callback.training import GradientClip
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.optimizer import OptimWrapper

    model, _, loader, val_loader = start(task, seed)
    dls = DataLoaders(loader, val_loader, device="cpu")
    cbs = [GradientClip(task.grad_clip)] if task.grad_clip is not None else []
    with tempfile.TemporaryDirectory(prefix="lrpilot-bench-fastai-") as root:
        learn = Learner(
            dls,
            model,
            loss_func=task.loss_fn,
            path=root,
            cbs=cbs,
            opt_func=partial(OptimWrapper, opt=task.optimizer_fn),
        )
        with learn.no_bar(), learn.no_logging():
            found = learn.lr_find(show_plot=False, suggest_funcs=(valley, minimum))
    rec = learn.recorder
    return (
        _floats(rec.lrs),
        _floats(rec.losses),
        {"valley": found.valley, "minimum": found.minimum},
    )


def _fastai(task: BenchTask, seed: int) -> list[Pick]:
    """fastai's ``valley`` and ``minimum`` read off one fastai sweep (each is charged it)."""
    lrs, losses, found = _fastai_sweep(task, seed)
    picks = []
    for rule in ("valley", "minimum"):
        lr, failed = found[rule], ""
        if lr is None or not lr > 0:
            lr, failed = task.default_lr, f"{rule} returned {lr}"
        picks.append(
            Pick(
                f"fastai-{rule}",
                task.name,
                seed,
                float(lr),
                len(lrs),
                0.0,
                lrs,
                losses,
                failed=failed,
                extra={k: float(v) for k, v in found.items()},
            )
        )
    return picks


def _lr_free(name: str, lr: float) -> Callable[[BenchTask, int], Pick]:
    """An LR-free optimizer: no sweep, its recommended LR (its run uses ``training_task``)."""

    def picker(task: BenchTask, seed: int) -> Pick:
        return Pick(name, task.name, seed, lr, 0, 0.0)

    return picker


def _optuna_tpe(task: BenchTask, seed: int) -> Pick:
    """A TPE study seeded with ``seed`` of ``OPTUNA_TRIALS`` full training runs over log LR in
    the grid's range, on a lattice of ``OPTUNA_PER_DECADE`` points per decade. Every trial
    trains with ``OPTUNA_TRAIN_SEED``, as a user's search would with its one fixed seed, so a
    trial on a point already trained (a grid run, another study's trial) reuses that result,
    which training would reproduce bit for bit. Each trial's result goes to the run cache."""
    import optuna

    from benchmarks.cache import RunCache, cache_path, is_quick
    from benchmarks.train import train_run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cache = RunCache(cache_path(is_quick(task)))
    lo = round(math.log10(min(task.grid)) * OPTUNA_PER_DECADE)
    hi = round(math.log10(max(task.grid)) * OPTUNA_PER_DECADE)
    walls: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        lr = lattice_lr(trial.suggest_int("lr_index", lo, hi), OPTUNA_PER_DECADE)
        cache.reload()
        run = cache.get(task, lr, OPTUNA_TRAIN_SEED)
        if run is None:
            run = train_run(task, lr, OPTUNA_TRAIN_SEED).to_dict()
            cache.put(task, run)
        walls.append(run["wall_s"])
        return run["metric"]

    direction = "maximize" if task.higher_is_better else "minimize"
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=OPTUNA_TRIALS)
    lrs = [lattice_lr(t.params["lr_index"], OPTUNA_PER_DECADE) for t in study.trials]
    values = [float(t.value) for t in study.trials]
    best = lattice_lr(study.best_params["lr_index"], OPTUNA_PER_DECADE)
    return Pick(
        "optuna-tpe",
        task.name,
        seed,
        best,
        OPTUNA_TRIALS * task.steps,
        sum(walls),
        lrs,
        values,
        extra={"best_value": float(study.best_value), "trial_metrics": True},
    )


def _default(task: BenchTask, seed: int) -> Pick:
    return Pick("default", task.name, seed, task.default_lr, 0, 0.0)


_PICK: dict[str, Callable[[BenchTask, int], Pick | list[Pick]]] = {
    "lrpilot": _lrpilot,
    "torch-lr-finder": _torch_lr_finder,
    "lightning": _lightning,
    "fastai": _fastai,
    "prodigy": _lr_free("prodigy", PRODIGY_LR),
    "schedulefree": _lr_free("schedulefree", SCHEDULEFREE_LR),
    "optuna-tpe": _optuna_tpe,
    "default": _default,
}
SWEEP_OF = {"fastai-valley": "fastai", "fastai-minimum": "fastai"}
"""Pickers that read their pick off another's sweep: one sweep serves both fastai rules."""


def sweep_name(picker: str) -> str:
    """The job that produces ``picker``'s pick."""
    return SWEEP_OF.get(picker, picker)


def pick(sweep: str, task: BenchTask, seed: int) -> list[Pick]:
    """Run the sweep (or search) ``sweep`` on ``task`` with ``seed``'s initialisation and data
    order and return the picks read off it; its chatter (prints, progress bars) is
    swallowed."""
    task.data_fn()  # loaded (and memoised) before the clock starts
    start = time.perf_counter()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        result = _PICK[sweep](task, seed)
    wall = time.perf_counter() - start
    results = result if isinstance(result, list) else [result]
    for r in results:
        r.wall_s = r.wall_s or wall  # Optuna sums its trials
    return results
