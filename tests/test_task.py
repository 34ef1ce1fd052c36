"""``lrpilot.Task``: the whole recipe, checked on construction, its schedule resolved for any
length, named param groups, and a fingerprint that is the same in every process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

import lrpilot
from lrpilot import schedules as S

TASK_FILE = textwrap.dedent(
    """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    import lrpilot

    def task():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=g)
        y = (x.sum(1) > 0).long()
        loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                            generator=torch.Generator().manual_seed(1))
        return lrpilot.Task(
            model_fn=lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
            optimizer_fn=lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.01),
            train_loader=loader, loss_fn=nn.functional.cross_entropy, steps=500,
            schedule="warmup(0.05)+cosine", grad_clip=1.0, name="tiny")
    """
)


def _task(**overrides) -> lrpilot.Task:
    x = torch.randn(32, 4)
    batches = [(x[i : i + 8], (x[i : i + 8].sum(1) > 0).long()) for i in range(0, 32, 8)]
    options = dict(
        model_fn=lambda: nn.Linear(4, 2),
        optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr),
        train_loader=batches,
        val_loader=batches,
        loss_fn=nn.functional.cross_entropy,
        steps=100,
    )
    options.update(overrides)
    return lrpilot.Task(**options)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("grad_clip", -1.0),
        ("grad_clip", 0.0),
        ("grad_clip", float("nan")),
        ("accumulation_steps", 0),
        ("accumulation_steps", 1.5),
        ("amp", 1),
        ("steps", 0),
        ("steps", "100"),
        ("eval_every", 0),
        ("device", "gpu"),
        ("train_loader", 42),
        ("model_fn", "resnet"),
        ("optimizer_fn", None),
    ],
)
def test_a_bad_recipe_names_the_argument(field, value):
    with pytest.raises(lrpilot.ConfigError, match=f"{field} must be"):
        _task(**{field: value})


def test_a_bad_schedule_spec_fails_when_the_task_is_built():
    with pytest.raises(lrpilot.SpecError, match="unknown schedule 'cosin'"):
        _task(schedule="warmup(0.05)+cosin")


def test_schedule_for_resolves_every_kind_for_any_length():
    spec = _task(schedule="warmup(0.1)+cosine", steps=1000)
    assert spec.schedule_for(200) == S.parse_schedule("warmup(0.1)+cosine", total_steps=200)
    assert spec.schedule_for() == S.parse_schedule("warmup(0.1)+cosine", total_steps=1000)
    factory = _task(schedule=lambda n: S.cosine(steps=n), steps=1000)
    assert factory.schedule_for(50) == S.cosine(steps=50)
    stretched = _task(schedule=S.cosine(steps=1000), steps=1000).schedule_for(100)
    assert [stretched(t) for t in (0, 50, 99)] == [S.cosine(steps=1000)(t) for t in (0, 500, 990)]
    assert _task().schedule_for(10) == S.constant()


def test_optimizer_fn_taking_the_model_builds_named_groups():
    def optimizer_fn(model, lr):
        return torch.optim.SGD(
            [{"params": model[0].parameters(), "lr": lr / 10}, {"params": model[2].parameters()}],
            lr=lr,
        )

    task = _task(
        model_fn=lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)),
        optimizer_fn=optimizer_fn,
    )
    _, optimizer = task.build(0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [0.05, 0.5]
    run = lrpilot.train(task, 0.5, steps=3, progress=False)
    assert run.lrs == [0.05, 0.05, 0.05]  # the first group's LR, ratio kept


def test_metric_fn_runs_in_eval_mode_and_puts_the_flags_back():
    modes = []

    def metric_fn(model, loader):
        modes.append((model.training, torch.is_grad_enabled()))
        return 1.0

    task = _task(metric_fn=metric_fn)
    model = nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5))
    model.train()
    model[1].eval()
    assert task.metric(model) == 1.0 and modes == [(False, False)]
    assert model.training and not model[1].training


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (0.5, 0.5),
        (3, 3.0),
        (torch.tensor(0.25), 0.25),
        (torch.tensor([0.75]), 0.75),
        (np.float64(0.125), 0.125),
        (np.array([0.5]), 0.5),
        (float("nan"), "nan"),  # a metric can be NaN (a diverged model): the run says so
    ],
)
def test_metric_fn_may_return_any_kind_of_number(returned, expected):
    value = _task(metric_fn=lambda model, loader: returned).metric(nn.Linear(4, 2))
    assert value != value if expected == "nan" else value == expected


@pytest.mark.parametrize("returned", [None, "0.5", [0.5, 0.6], torch.ones(2), True])
def test_metric_fn_returning_something_else_names_metric_fn(returned):
    task = _task(metric_fn=lambda model, loader: returned)
    with pytest.raises(lrpilot.ConfigError, match=r"metric_fn returned .* must return a number"):
        task.metric(nn.Linear(4, 2))


def test_fingerprint_is_plain_data_and_the_same_in_another_process(tmp_path):
    path = tmp_path / "tiny_task.py"
    path.write_text(TASK_FILE)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    mine = lrpilot.load_task_file(path).fingerprint()
    assert torch.equal(torch.get_rng_state(), before)  # building the model left no trace
    code = (
        f"import json, lrpilot; print(json.dumps(lrpilot.load_task_file({str(path)!r})"
        ".fingerprint()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == json.loads(json.dumps(mine))
    assert mine["model"] == "Sequential" and mine["parameters"] == 4 * 8 + 8 + 8 * 2 + 2
    assert mine["optimizer"] == "AdamW" and mine["hyperparameters"]["weight_decay"] == 0.01
    assert mine["batch_size"] == 8 and mine["dataset_size"] == 64 and mine["steps"] == 500
    assert mine["schedule"] == "warmup(0.05)+cosine" and mine["grad_clip"] == 1.0


def test_fingerprint_changes_with_the_recipe():
    base = _task().fingerprint()
    assert _task(grad_clip=1.0).fingerprint()["id"] != base["id"]
    assert _task(steps=200).fingerprint()["id"] != base["id"]
    assert _task().fingerprint() == base


def test_a_task_file_imports_the_module_beside_it(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "lrp_neighbour_net.py").write_text(
        "import torch\ndef build():\n    return torch.nn.Linear(4, 1)\n"
    )
    (folder / "task.py").write_text(
        "import torch, lrpilot\n"
        "from lrp_neighbour_net import build\n"
        "def task():\n"
        "    return lrpilot.Task(model_fn=build,"
        " optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr),"
        " train_loader=[(torch.randn(2, 4), torch.randn(2, 1))],"
        " loss_fn=torch.nn.functional.mse_loss, steps=3)\n"
    )
    monkeypatch.chdir(tmp_path)  # not the task's folder: only the file's own folder helps
    monkeypatch.setattr(sys, "path", list(sys.path))  # undone after the test
    task = lrpilot.load_task_file(folder / "task.py")
    assert lrpilot.train(task, 0.1, progress=False).steps_done == 3
    assert sys.path[0] == str(folder.resolve())


def test_load_task_file_says_a_folder_is_a_folder(tmp_path):
    with pytest.raises(lrpilot.ConfigError, match="is a folder"):
        lrpilot.load_task_file(tmp_path)


def test_fingerprint_reads_the_batch_size_of_a_loader_built_with_a_batch_sampler():
    data = TensorDataset(torch.randn(20, 4), torch.randint(0, 2, (20,)))
    sampler = BatchSampler(RandomSampler(data), batch_size=6, drop_last=False)
    loader = DataLoader(data, batch_sampler=sampler)
    assert loader.batch_size is None  # what torch reports for such a loader
    fingerprint = _task(train_loader=loader).fingerprint()
    assert fingerprint["batch_size"] == 6 and fingerprint["dataset_size"] == 20
    indexed = DataLoader(data, sampler=sampler, batch_size=None)  # one indexing call a batch
    assert _task(train_loader=indexed).fingerprint()["batch_size"] == 6
    unknown = DataLoader(data, batch_sampler=[[0, 1], [2, 3, 4]])  # a plain list: no size
    assert _task(train_loader=unknown).fingerprint()["batch_size"] is None
