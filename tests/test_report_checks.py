"""The checks a careful engineer makes on a finished run: the clipping share, the edge."""

from __future__ import annotations

from lrpilot._search._space import RANGE_MARGIN
from lrpilot.report._checks import CLIPPED_TOO_MANY, check_clipping, check_edge


def _run(clipped: int, steps: int = 100) -> dict:
    return {"losses": [1.0] * steps, "clipped": clipped}


def test_the_recipes_clipping_is_judged_on_its_own_share():
    ok = check_clipping(_run(10), 1.0)
    assert ok.ok and ok.message == "10% of the steps were clipped at 1."
    hot = check_clipping(_run(int(100 * CLIPPED_TOO_MANY) + 1), 1.0)
    assert not hot.ok and "the LR is likely too high" in hot.message


def test_without_clipping_in_the_recipe_the_monitors_adaptive_share_is_reported():
    assert check_clipping(_run(0), None).message == "no clipping in the recipe."
    assert check_clipping(_run(0), None, (0, 0)).message == "no clipping in the recipe."
    some = check_clipping(_run(0), None, (55, 1500))
    assert some.ok and "the monitor clipped 3.7% of the steps adaptively (55 of 1500)" in (
        some.message
    )
    most = check_clipping(_run(0), None, (60, 100))
    assert not most.ok and most.message.endswith("the LR is likely too high.")
    # a recipe that clips is judged on its own clipping, whatever the monitor did
    assert check_clipping(_run(5), 1.0, (90, 100)).ok


def test_a_choice_at_the_edge_of_what_was_tried_says_how_to_look_past_it():
    inside = check_edge(0.01, [0.005, 0.01, 0.02])
    assert inside.ok and inside.message == "0.01 lies inside 0.005–0.02."
    top = check_edge(0.02, [0.005, 0.01, 0.02])
    assert not top.ok and "is the highest tried (0.005–0.02)" in top.message
    assert "run `lrpilot search` on the task" in top.message
    assert RANGE_MARGIN == 10.0  # "a decade either side", as the message says
    assert not check_edge(0.005, [0.005, 0.01, 0.02]).ok
    assert check_edge(0.01, [0.01]).ok  # one LR: nothing to be at the edge of


def test_each_check_is_labelled_by_its_healthy_state_so_the_mark_answers_it(capsys):
    """✓ beside "still improving at the end" read as "yes, still improving" although it meant
    the opposite: the label is now the healthy state, in the terminal and the HTML report."""
    from lrpilot._cli_tune import print_summary
    from lrpilot.report._checks import check_improving, check_overfitting
    from lrpilot.report._html import html_report

    flat = check_improving({"losses": [1.0] * 100})
    falling = check_improving({"losses": [1.0 - i / 100 for i in range(100)]})
    assert flat.ok and flat.label == "levelled off by the end"
    assert not falling.ok and "a longer run would likely do better" in falling.message
    assert check_overfitting({"evals": []}).label == "no overfitting"
    checks = [flat.to_dict(), falling.to_dict(), check_overfitting({"evals": []}).to_dict()]
    old = {"name": "overfitting", "ok": True, "message": "saved by an older version."}
    page = html_report({"lr": 0.01, "schedule": "constant", "cost_steps": 1, "checks": [old]})
    assert "✓ no overfitting</span>" in page
    page = html_report({"lr": 0.01, "schedule": "constant", "cost_steps": 1, "checks": checks})
    assert "✓ levelled off by the end</span>: the training loss had levelled off" in page
    assert "✗ levelled off by the end</span>: the training loss fell" in page
    assert "still improving at the end</span>" not in page
    print_summary(
        {"stages": [], "cost_steps": 1, "run_steps": 1, "lr": 0.01, "schedule": "constant"}
        | {"checks": checks},
        [],
    )
    shown = capsys.readouterr().out
    assert "✓ levelled off by the end: the training loss had levelled off" in shown
    assert "✗ levelled off by the end: the training loss fell" in shown
    assert "✓ no overfitting: too few evaluations to tell." in shown
