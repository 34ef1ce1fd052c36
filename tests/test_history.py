"""The history store (record, list, show, export; private files; switching off; several
processes; a killed writer) and the recommender, on real recorded runs of tiny tasks."""

from __future__ import annotations

import csv
import io
import math
import multiprocessing
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrpilot
from lrpilot import history


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """A fresh ``$LRPILOT_HOME`` (not yet created) for every test."""
    path = tmp_path / "lrpilot-home"
    monkeypatch.setenv("LRPILOT_HOME", str(path))
    monkeypatch.delenv("LRPILOT_HISTORY_URL", raising=False)
    monkeypatch.delenv("LRPILOT_HISTORY", raising=False)
    return path


def _task(steps: int = 30, hidden: int = 16, optimizer=torch.optim.Adam) -> lrpilot.Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    return lrpilot.Task(
        model_fn=lambda: nn.Sequential(nn.Linear(8, hidden), nn.Tanh(), nn.Linear(hidden, 3)),
        optimizer_fn=lambda p, lr: optimizer(p, lr=lr),
        train_loader=DataLoader(TensorDataset(x, y), batch_size=16),
        val_loader=DataLoader(TensorDataset(x, y), batch_size=48),
        loss_fn=nn.functional.cross_entropy,
        steps=steps,
    )


def _train_at(task: lrpilot.Task, lrs) -> dict[float, float]:
    """Train ``task`` at each LR (``train`` records each run itself); the metric by LR."""
    out = {}
    for lr in lrs:
        before = len(history.History().records(kind="run"))
        run = lrpilot.train(task, lr, progress=False)
        assert len(history.History().records(kind="run")) == before + 1
        out[lr] = run.metric
    return out


def test_records_round_trip_list_show_and_export(home):
    task = _task()
    result = lrpilot.find_lr_for_task(task, progress=False)  # recorded by find_lr itself
    metrics = _train_at(task, [1e-3, 1e-2])  # and each run by train
    store = history.History()
    records = store.records()
    assert [r.kind for r in records] == ["range_test", "run", "run"]
    first = records[0].id
    assert {r.task_id for r in records} == {task.fingerprint()["id"]}  # one recipe, all three
    assert [r.id for r in records] == [first, first + 1, first + 2]
    test_rec = store.get(first)
    fingerprint = task.fingerprint()
    assert test_rec.task_id == fingerprint["id"] and test_rec.fingerprint == fingerprint
    assert test_rec.lr == result.lr and test_rec.family == "adam" and test_rec.steps == 30
    feats = test_rec.features
    assert feats["lr"] == result.lr and feats["band"] == list(result.band)
    marks = lrpilot.suggest.landmarks(result.lrs, result.losses)
    assert feats["lr_min"] == marks.minimum and feats["edge"] == marks.edge
    assert feats["steepest"] == lrpilot.suggest.steepest(result.lrs, result.losses)
    assert [r.metric for r in records[1:]] == pytest.approx(list(metrics.values()))
    assert store.records(kind="run", limit=1)[0].lr == 1e-2
    rows = list(csv.DictReader(io.StringIO(store.to_csv())))
    assert [int(r["id"]) for r in rows] == [r.id for r in records]
    assert float(rows[1]["metric"]) == pytest.approx(metrics[1e-3])
    assert [r["id"] for r in store.to_json()] == [r.id for r in records]
    with pytest.raises(lrpilot.ConfigError, match="No record 999"):
        store.get(999)


def test_trials_are_recorded_with_their_study():
    key = history.record_trial(
        3e-3,
        0.5,
        fingerprint={"id": "abc", "optimizer": "SGD"},
        study="s1",
        number=4,
        params={"lr": 3e-3},
    )
    rec = history.History().get(key)
    assert rec.kind == "trial" and rec.family == "sgd" and rec.metric == 0.5
    assert rec.details == {
        "study": "s1",
        "number": 4,
        "params": {"lr": 3e-3},
        "state": "complete",
    }


def test_the_store_is_private(home):
    history.record_trial(1e-3, 1.0, fingerprint={"id": "x"})
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.iterdir():  # the database and its WAL files
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_switching_off(home, monkeypatch):
    monkeypatch.setenv("LRPILOT_HISTORY", "0")
    run = lrpilot.train(_task(), 1e-3, progress=False)
    lrpilot.find_lr_for_task(_task(), progress=False)
    assert history.record_run(run, enabled=False) is None
    assert not history.enabled()
    assert history.record_run(run) is None
    assert not home.exists()  # nothing written anywhere


def test_reading_an_empty_store_creates_nothing(home):
    store = history.History()
    assert store.records() == [] and store.to_json() == []
    assert store.to_csv().splitlines() == [",".join(history_columns())]
    assert not home.exists()
    answer = history.recommend(_task())
    assert answer.lr is None and answer.basis == "none" and "rules apply" in answer.reason


def history_columns() -> tuple[str, ...]:
    from lrpilot._history_schema import COLUMNS

    return COLUMNS


def test_passwords_are_masked():
    url = "postgresql://alice:s3cret@db.example:5432/runs"
    store = history.History(url)
    assert "s3cret" not in store.shown_url and "s3cret" not in repr(store)
    assert store.shown_url == "postgresql://alice:***@db.example:5432/runs"


def test_an_unreachable_server_fails_clearly_without_the_password():
    store = history.History("postgresql://alice:s3cret@127.0.0.1:1/runs")
    with pytest.raises(lrpilot.ConfigError) as info:
        store.records()
    assert "s3cret" not in str(info.value) and "LRPILOT_HISTORY=0" in str(info.value)


def test_a_broken_default_store_warns_and_never_fails_the_run(home):
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("a file where the folder should be")
    run = lrpilot.train(_task(), 1e-3, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert history.record_run(run) is None
    assert [w.category for w in caught] == [history.HistoryWarning]


def _write_many(url: str, tag: str, count: int) -> None:
    store = history.History(url)
    for i in range(count):
        store.add("trial", lr=1e-3 * (i + 1), fingerprint={"id": tag}, metric=float(i))


def test_two_processes_write_at_once(home):
    url = history.default_url()
    history.History(url).records()  # nothing yet: both processes create the store
    context = multiprocessing.get_context("fork")  # spawn re-imports torch: seconds
    workers = [context.Process(target=_write_many, args=(url, t, 40)) for t in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    records = history.History(url).records()
    assert len(records) == 80 and len({r.id for r in records}) == 80
    for tag in ("a", "b"):
        mine = [r.metric for r in records if r.task_id == tag]
        assert mine == [float(i) for i in range(40)]  # each process's records, in order


def test_a_killed_writer_leaves_the_store_readable(home):
    code = textwrap.dedent(
        """
        import sys
        from lrpilot import history
        store = history.History(sys.argv[1])
        i = 0
        while True:
            store.add("trial", lr=1e-3, fingerprint={"id": "k"}, metric=float(i))
            i += 1
            if i == 5:
                print("writing", flush=True)
        """
    )
    url = history.default_url()
    proc = subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    records = history.History(url).records()
    assert len(records) >= 5
    assert [r.metric for r in records] == [float(i) for i in range(len(records))]
    path = home / "history.sqlite"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    history.History(url).add("trial", lr=1e-3, fingerprint={"id": "k"})  # and writable


# --------------------------------------------------------------------------------------------
# The recommender
# --------------------------------------------------------------------------------------------


def test_same_recipe_recommends_its_best_run():
    task = _task()
    metrics = _train_at(task, [3e-4, 3e-3, 3e-2])
    answer = history.recommend(task)
    best = max(metrics, key=metrics.__getitem__)
    assert answer.lr == best and answer.basis == "same task" and answer.confidence == 0.9
    assert answer.low == best / 2 and answer.high == best * 2


def test_neighbours_predict_the_geometric_mean_of_their_best_lrs():
    """Two past tasks at 30 and 120 steps, the new one at 60: both one log-step away, so equal
    weights, and the prediction is the geometric mean of their best LRs."""
    short, long = _task(steps=30), _task(steps=120)
    best_short = max((m, lr) for lr, m in _train_at(short, [1e-3, 1e-2]).items())[1]
    best_long = max((m, lr) for lr, m in _train_at(long, [3e-4, 3e-3]).items())[1]
    answer = history.recommend(_task(steps=60))
    assert answer.basis == "neighbours" and len(answer.neighbours) == 2
    assert answer.lr == pytest.approx(math.sqrt(best_short * best_long), rel=1e-9)
    assert answer.neighbours[0]["distance"] == pytest.approx(math.log10(2))
    assert answer.low < answer.lr < answer.high and 0 < answer.confidence < 0.9
    # the other family's runs are no neighbours
    assert history.recommend(_task(steps=60, optimizer=torch.optim.SGD)).lr is None


def test_with_range_tests_the_ratio_to_the_curve_minimum_transfers():
    past = _task(steps=30)
    result = lrpilot.find_lr_for_task(past, progress=False)
    history.record_range_test(result, past)
    best = max((m, lr) for lr, m in _train_at(past, [1e-3, 1e-2]).items())[1]
    lr_min = history.range_test_features(result)["lr_min"]
    query = {"optimizer": "Adam", "parameters": 195, "batch_size": 16, "steps": 30, "lr_min": None}
    new_min = {"lr": 0.0, "lrs": result.lrs, "losses": [2 * x for x in result.losses]}
    new_features = history.range_test_features(new_min)
    answer = history.recommend(query, range_test=new_min, anchor="lr_min")
    assert answer.basis == "neighbours + range test"
    assert answer.lr == pytest.approx(best / lr_min * new_features["lr_min"], rel=1e-9)


def test_the_same_code_on_postgresql(postgres_url: str):
    store = history.History(postgres_url)
    key = store.add("trial", lr=2e-3, fingerprint={"id": "pg", "optimizer": "AdamW"}, metric=1.5)
    rec = store.get(key)
    assert rec.family == "adam" and rec.metric == 1.5 and rec.fingerprint["id"] == "pg"
    assert key in [r.id for r in store.records(kind="trial")]


def test_live_objects_get_the_fingerprint_fields_a_task_has():
    task = _task()
    model, optimizer = task.build(1e-3)
    live = history.fingerprint_of(model, optimizer, task.train_loader, steps=task.steps)
    of_task = task.fingerprint()
    shared = (
        "model",
        "parameters",
        "trainable",
        "optimizer",
        "hyperparameters",
        "batch_size",
        "dataset_size",
        "steps",
    )
    assert {k: live[k] for k in shared} == {k: of_task[k] for k in shared}
    assert len(live["id"]) == 16
    assert (
        history.fingerprint_of(model, optimizer, task.train_loader, steps=60)["id"] != live["id"]
    )


def _seeded(tmp_path: Path, tasks: dict[str, tuple[float, dict]]) -> history.History:
    """A store holding one scored run per past task: ``{task id: (lr, fingerprint fields)}``,
    each an Adam MLP of 1,000 parameters unless its fields say otherwise."""
    store = history.History(f"sqlite:///{tmp_path / 'seeded.sqlite'}")
    for task_id, (lr, fields) in tasks.items():
        fingerprint = {"id": task_id, "optimizer": "Adam", "model": "MLP", "parameters": 1000}
        store.add("run", lr=lr, fingerprint={**fingerprint, **fields}, metric=1.0)
    return store


def _query(**fields) -> dict:
    return {"optimizer": "Adam", "model": "MLP", "parameters": 1000, **fields}


def _nearest(store, query, k, **weights):
    """The recommendation from ``store`` for ``query`` with the distance's weights given."""
    past = history._past_tasks(store.records())
    wanted = history._query_features(query, None)
    return history._recommend(past, wanted, k, "test", **weights)


def test_the_dataset_size_decides_the_nearest_neighbour_when_weighted(tmp_path):
    """Past task ``a`` has the query's dataset but twice its steps (log10 2 decades away);
    ``b`` has its steps but a dataset 100x larger (2 decades at weight 1). Without the dataset
    axis (the default, weight 0) ``b`` is the nearer, with it ``a``."""
    store = _seeded(
        tmp_path,
        {
            "a": (1e-3, {"steps": 200, "dataset_size": 1_000, "grad_clip": None}),
            "b": (1e-2, {"steps": 100, "dataset_size": 100_000, "grad_clip": None}),
        },
    )
    query = _query(steps=100, dataset_size=1_000, grad_clip=None)
    assert history.DATA_WEIGHT == 0.0
    off = store.recommend(query, k=1)
    assert off.lr == pytest.approx(1e-2) and off.neighbours[0]["distance"] == 0.0
    on = _nearest(store, query, 1, data_weight=1.0)
    assert on.lr == pytest.approx(1e-3) and on.neighbours[0]["task_id"] == "a"
    assert on.neighbours[0]["distance"] == pytest.approx(math.log10(2))
    both = _nearest(store, query, 2, data_weight=1.0)  # weights 1 / (0.1 + d)^2
    wa, wb = 1 / (0.1 + math.log10(2)) ** 2, 1 / (0.1 + 2.0) ** 2
    assert both.lr == pytest.approx(10 ** ((-3 * wa - 2 * wb) / (wa + wb)), rel=1e-9)


def test_a_different_clipping_costs_the_clip_penalty(tmp_path):
    """The query clips; ``a`` clips too, at 4x the steps (log10 4 = 0.60 decades away); ``b``
    does not clip, at the query's steps (a penalty of 1 decade away): ``a`` is the nearer."""
    store = _seeded(
        tmp_path,
        {
            "a": (3e-3, {"steps": 400, "grad_clip": 1.0}),
            "b": (3e-4, {"steps": 100, "grad_clip": None}),
        },
    )
    query = _query(steps=100, grad_clip=0.5)
    answer = _nearest(store, query, 2, clip_penalty=1.0)
    distances = {n["task_id"]: n["distance"] for n in answer.neighbours}
    assert distances == pytest.approx({"a": math.log10(4), "b": 1.0})
    assert answer.neighbours[0]["task_id"] == "a"
    wa, wb = 1 / (0.1 + math.log10(4)) ** 2, 1 / 1.1**2
    expected = 10 ** ((wa * math.log10(3e-3) + wb * math.log10(3e-4)) / (wa + wb))
    assert answer.lr == pytest.approx(expected, rel=1e-9)
    assert history.CLIP_PENALTY == 0.0  # off by default: b, at the query's steps, is nearest
    assert store.recommend(query, k=1).neighbours[0]["task_id"] == "b"


def test_records_without_the_new_fields_count_the_missing_penalty(tmp_path):
    """A record from before the dataset and clipping fields still compares: each field known
    on one side only costs MISSING_PENALTY (times the axis's weight or penalty)."""
    store = _seeded(tmp_path, {"old": (2e-3, {"steps": 100})})
    query = _query(steps=100, dataset_size=5_000, grad_clip=None)
    answer = _nearest(store, query, 1, data_weight=1.0, clip_penalty=2.0)
    m = history.MISSING_PENALTY
    assert answer.lr == pytest.approx(2e-3) and answer.basis == "neighbours"
    assert answer.neighbours[0]["distance"] == pytest.approx(math.hypot(m, 2.0 * m))
    # a query that does not say either (a hand-written dict) is 0 away from it
    bare = _nearest(store, _query(steps=100), 1, data_weight=1.0, clip_penalty=2.0)
    assert bare.neighbours[0]["distance"] == 0.0


def test_a_shortened_run_is_recorded_as_the_recipe_it_ran_not_the_full_one():
    task = _task(steps=200)
    lrpilot.train(task, 0.01, steps=10, progress=False)  # a quick try of a long recipe
    (record,) = history.History().records(kind="run")
    full = task.fingerprint()
    assert record.fingerprint["steps"] == 10 and record.fingerprint["id"] != full["id"]
    # so the recommender does not read it as the 200-step recipe trained before
    assert history.recommend(task).basis != "same task"
    lrpilot.train(task, 0.01, progress=False)
    assert history.History().records(kind="run")[-1].fingerprint["id"] == full["id"]
    assert history.recommend(task).basis == "same task"  # the full recipe, trained once


def test_a_pick_for_another_length_is_recorded_as_that_recipe(home):
    """``find_lr_for_task(task, steps=N)`` (``lrpilot find --steps N``) picks for a run of N
    steps: its record says N, not the task's own length, or the history would teach the
    recommender an N-step pick for the task's recipe."""
    task = _task(steps=30)
    lrpilot.find_lr_for_task(task, steps=5000, num_steps=30, progress=False)
    (rec,) = history.History().records(kind="range_test")
    assert rec.fingerprint["steps"] == 5000 and rec.task_id != task.fingerprint()["id"]


class _CutTenfold(lrpilot.Callback):
    """Cuts the LR by 10 at step 5, as a monitor does after a rollback."""

    def on_step(self, info):
        return lrpilot.Action(lr_factor=0.1, reason="cut") if info.step == 5 else None


def test_a_run_whose_lr_was_cut_does_not_vouch_for_its_lr(home):
    task = _task()
    run = lrpilot.train(task, 1e-2, progress=False, callbacks=[_CutTenfold()])
    assert run.lr_scale == pytest.approx(0.1)
    assert lrpilot.RunResult.from_dict(run.to_dict()).lr_scale == pytest.approx(0.1)
    (rec,) = history.History().records(kind="run")
    assert rec.lr == 1e-2 and rec.features["lr_scale"] == pytest.approx(0.1)
    assert not history._finished(rec)  # trained mostly at 1e-3: not evidence for 1e-2
    clean = lrpilot.train(task, 1e-2, progress=False)
    assert clean.lr_scale == 1.0
    assert history._finished(history.History().records(kind="run")[-1])
