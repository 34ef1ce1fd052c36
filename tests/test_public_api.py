"""The public namespace: small, sorted, and reporting itself as ``lrpilot``."""

from __future__ import annotations

import lrpilot


def test_all_is_sorted_and_every_name_exists():
    assert lrpilot.__all__ == sorted(lrpilot.__all__)
    assert len(set(lrpilot.__all__)) == len(lrpilot.__all__)
    for name in lrpilot.__all__:
        assert hasattr(lrpilot, name), name


def test_public_objects_report_the_package_as_their_module():
    for obj in (lrpilot.find_lr, lrpilot.Task, lrpilot.LRFinderResult):
        assert obj.__module__ == "lrpilot", obj
    assert repr(lrpilot.Task).endswith("'lrpilot.Task'>")


def test_contract_names_from_the_design():
    for name in (
        "find_lr",
        "Task",
        "LRFinderResult",
        "LRPilotError",
        "ConfigError",
        "DataError",
        "LossError",
        "ModelError",
    ):
        assert name in lrpilot.__all__
    assert set(lrpilot.suggest.RULES) >= {"pilot", "steepest", "valley", "minimum"}
