"""A search and the history: every trial is recorded as a ``trial`` with its state, and the
recommender learns only from complete ones; a full study says it will not try ``start`` LRs;
the summary says what was tried first. On the tiny real task of test_search.py."""

from __future__ import annotations

import pytest

import lrpilot
from lrpilot import history
from lrpilot._search._result import SearchResult, TrialRecord
from lrpilot._search._show import print_search
from lrpilot.history import History
from test_search import tiny_task

SPACE = (1e-3, 1.0)


@pytest.fixture
def store(tmp_path, monkeypatch) -> History:
    """A fresh default history store, so a search records into it."""
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LRPILOT_HISTORY_URL", raising=False)
    monkeypatch.delenv("LRPILOT_HISTORY", raising=False)
    return History()


def test_a_search_records_trials_with_their_state_and_pruned_ones_teach_nothing(tmp_path, store):
    task = tiny_task()
    # two good LRs complete first; the two tiny ones lag at the first checkpoint: pruned
    result = lrpilot.search(
        task,
        "bayes",
        4,
        str(tmp_path / "s.journal"),
        "pruning",
        space=SPACE,
        prune="median",
        progress=False,
        start=[0.3, 0.1, 0.001, 0.0012],
    )
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    assert pruned, "the test needs a pruned trial"
    records = store.records()
    assert {r.kind for r in records} == {"trial"}  # no trial stored as a finished run
    by_number = {r.details["number"]: r for r in records}
    assert sorted(by_number) == [t.number for t in result.trials]
    for t in result.trials:
        rec = by_number[t.number]
        assert rec.lr == pytest.approx(t.lr) and rec.details["study"] == "pruning"
        assert rec.features["steps_done"] == t.steps and rec.task_name == "tiny"
        if t.state == "PRUNED":
            assert rec.details["state"] == "pruned" and rec.metric is None
            assert rec.features["steps_done"] < rec.features["steps"]
        else:
            assert rec.details["state"] == "complete"
            assert rec.metric == pytest.approx(t.metric)
    answer = history.recommend(task)
    assert answer.basis == "same task" and answer.lr == pytest.approx(result.lr)
    assert "trained 2 time(s)" in answer.reason  # the complete trials only


def test_recommend_skips_pruned_trials_and_old_stores_pruned_runs(store):
    prints = {"id": "old", "optimizer": "SGD", "parameters": 100, "steps": 40}
    store.add("run", lr=1e-3, fingerprint=prints, metric=0.5, features={"stopped": ""})
    # an older lrpilot stored a pruned search trial as a run with its metric at step 1
    store.add(
        "run", lr=4e-4, fingerprint=prints, metric=0.9, features={"stopped": "pruned at step 1"}
    )
    store.add("run", lr=5e-4, fingerprint=prints, metric=0.95, features={"stopped": "diverged"})
    store.add("trial", lr=3e-4, fingerprint=prints, metric=0.99, details={"state": "pruned"})
    store.add("trial", lr=2e-3, fingerprint=prints, metric=0.6, details={"state": "complete"})
    store.add("trial", lr=7e-3, fingerprint=prints, metric=0.4)  # an older trial: no state
    answer = history.recommend(prints, history=store)
    assert answer.lr == pytest.approx(2e-3) and "trained 3 time(s)" in answer.reason


def test_record_trial_keeps_a_metric_only_for_a_complete_trial(store):
    key = history.record_trial(
        1e-3, 0.8, fingerprint={"id": "x"}, state="pruned", features={"steps_done": 1}
    )
    rec = store.get(key)
    assert rec.kind == "trial" and rec.metric is None and rec.details["state"] == "pruned"
    assert rec.features == {"steps_done": 1}
    with pytest.raises(lrpilot.ConfigError):
        history.record_trial(1e-3, 0.8, fingerprint={"id": "x"}, state="stopped")


def test_start_lrs_for_a_full_study_warn_how_to_try_them(tmp_path):
    journal = str(tmp_path / "s.journal")
    kwargs = dict(space=SPACE, prune=False, progress=False)
    lrpilot.search(tiny_task(), "bayes", 2, journal, "full", start=[0.05], **kwargs)
    with pytest.warns(UserWarning) as caught:
        again = lrpilot.search(
            tiny_task(), "bayes", 2, journal, "full", start=[0.05, 3e-3], **kwargs
        )
    text = " ".join(str(w.message) for w in caught)
    assert "start LR 0.003 not tried" in text and "0.05" not in text.split("not tried")[0]
    assert "already holds 2 finished trial(s)" in text
    assert "another study name" in text and "trials=3" in text
    assert len(again.trials) == 2


def _result(first_lr: float, method: str = "bayes") -> SearchResult:
    trial = TrialRecord(0, first_lr, {"lr": first_lr}, 0.5, "COMPLETE", 10, False, "", 0.1)
    return SearchResult(
        lr=first_lr,
        metric=0.5,
        params={"lr": first_lr},
        trials=[trial],
        method=method,
        study="s",
        storage="mem",
        space={"lr": [1e-4, 1e-2]},
        range_test_steps=94,
        range_test_lr=1.01e-3,
    )


def test_the_summary_says_what_was_tried_first(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    print_search(_result(1.01e-3))
    assert "suggested 0.00101, tried first;" in capsys.readouterr().out
    print_search(_result(3e-3))  # start LRs replaced the range test's pick
    out = capsys.readouterr().out
    assert "tried first" not in out
    assert "suggested 0.00101, not tried (the first trial tried lr 0.003)" in out
    print_search(_result(3e-3, method="grid"))
    assert "suggested 0.00101; LR space" in capsys.readouterr().out
