"""What a search study is made for: a study records what its trials score (the validation
metric and its function, or minus a loss) and the seed beside the task's fingerprint, refuses a
search that would score or train otherwise, and still opens a study made before it stored them."""

from __future__ import annotations

import dataclasses

import optuna
import pytest

import lrpilot
from lrpilot._search._runner import (
    METHOD_ATTR,
    OBJECTIVE_ATTR,
    SEED_ATTR,
    SPACE_ATTR,
    TASK_ATTR,
    objective_of,
)
from lrpilot._search._space import SearchSpace
from test_search import SPACE, tiny_task


def accuracy(model, loader) -> float:
    """Fraction classified correctly."""
    right = total = 0
    for x, y in loader:
        right += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return right / total


def _search(task: lrpilot.Task, journal: str, trials: int = 1, **kwargs) -> lrpilot.SearchResult:
    return lrpilot.search(
        task, "random", trials, journal, "s", space=SPACE, progress=False, **kwargs
    )


def test_the_objective_tells_validation_metric_validation_loss_and_training_loss() -> None:
    with_val = tiny_task()
    assert objective_of(with_val)["scores"] == "minus the validation loss"
    assert objective_of(tiny_task(metric_fn=accuracy)) == {
        "scores": "the validation metric",
        "fn": "accuracy",
    }
    no_val = dataclasses.replace(with_val, val_loader=None)
    assert objective_of(no_val)["scores"] == "minus the training loss"
    # the fingerprint (and with it the history's id) does not see the difference
    assert no_val.fingerprint()["id"] == with_val.fingerprint()["id"]


def test_a_study_refuses_a_task_that_scores_otherwise(tmp_path) -> None:
    journal = str(tmp_path / "s.journal")
    _search(tiny_task(), journal)
    no_val = dataclasses.replace(tiny_task(), val_loader=None)
    with pytest.raises(
        lrpilot.ConfigError, match="scored by minus the validation loss .*training"
    ):
        _search(no_val, journal, 2)
    with pytest.raises(lrpilot.ConfigError, match=r"this one: the validation metric \(accuracy\)"):
        _search(tiny_task(metric_fn=accuracy), journal, 2)
    assert len(_search(tiny_task(), journal, 2).trials) == 2  # the same objective continues


def test_a_study_refuses_another_seed(tmp_path) -> None:
    journal = str(tmp_path / "s.journal")
    _search(tiny_task(), journal, seed=3)
    with pytest.raises(lrpilot.ConfigError, match="created for seed 3 .*seed 5.*--seed 3"):
        _search(tiny_task(), journal, 2, seed=5)


def test_a_study_made_before_the_objective_and_seed_were_stored_still_opens(tmp_path) -> None:
    """An older lrpilot stored only the task, space and method: the missing attributes are
    unknown, not a mismatch; this search's are recorded and checked from then on."""
    journal = str(tmp_path / "s.journal")
    task = tiny_task()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    old = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    old.set_user_attr(TASK_ATTR, str(task.fingerprint()["id"]))
    old.set_user_attr(SPACE_ATTR, SearchSpace(lr=SPACE).to_dict())
    old.set_user_attr(METHOD_ATTR, "random")
    assert len(_search(task, journal).trials) == 1
    attrs = optuna.load_study(study_name="s", storage=storage).user_attrs
    assert attrs[OBJECTIVE_ATTR] == objective_of(task) and attrs[SEED_ATTR] == 0
    with pytest.raises(lrpilot.ConfigError, match="seed 0"):
        _search(task, journal, 2, seed=1)
