"""The checks a careful engineer makes on a finished run: the clipping share, the edge."""

from __future__ import annotations

import torch

import lrpilot
from lrpilot._search._space import RANGE_MARGIN
from lrpilot.report._checks import CLIPPED_TOO_MANY, check_clipping, check_edge, check_finished


def _run(clipped: int, steps: int = 100) -> dict:
    return {"losses": [1.0] * steps, "clipped": clipped}


def test_the_recipes_clipping_is_judged_on_its_own_share():
    ok = check_clipping(_run(10), 1.0)
    assert ok.ok and ok.message == "10% of the steps were clipped at 1."
    most = _run(int(100 * CLIPPED_TOO_MANY) + 1) | {"grad_norms": [2.0] * 60 + [0.5] * 40}
    hot = check_clipping(most, 1.0)
    assert not hot.ok and "clipped at 1 (median gradient norm 2)" in hot.message
    # the recipe's threshold sets the share more than the LR does: no blame on the LR alone
    assert "a lower LR with a threshold above the typical norm" in hot.message
    assert "the LR is likely too high" not in hot.message


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
    one = check_edge(0.01, [0.01])  # one LR: nothing to be at the edge of, nothing to tell
    assert one.ok and one.state == "unknown" and "cannot tell" in one.message


def test_each_check_is_labelled_by_its_healthy_state_so_the_mark_answers_it(capsys):
    """✓ beside "still improving at the end" read as "yes, still improving" although it meant
    the opposite: the label is now the healthy state, in the terminal and the HTML report."""
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
    shown = _summary_of(checks, capsys)
    assert "✓ levelled off by the end: the training loss had levelled off" in shown
    assert "✗ levelled off by the end: the training loss fell" in shown
    assert "– no overfitting: too few evaluations to tell." in shown  # cannot tell: not ✓


def _summary_of(checks: list, capsys) -> str:  # type: ignore[type-arg]
    """What the terminal summary prints for ``checks``."""
    from lrpilot._cli_tune import print_summary

    print_summary(
        {"stages": [], "cost_steps": 1, "run_steps": 1, "lr": 0.01, "schedule": "constant"}
        | {"checks": checks},
        [],
    )
    return capsys.readouterr().out


def test_a_check_that_cannot_tell_is_neither_passed_nor_failed(capsys):
    """ "✓ no overfitting: too few evaluations to tell" showed not knowing as healthy: such a
    check is now "unknown", marked "–" in the terminal and the HTML report, while ``ok`` keeps
    its meaning ("not failed") for code that reads it."""
    from lrpilot.report._checks import (
        check_improving,
        check_overfitting,
        mark_of,
        run_checks,
        state_of,
    )
    from lrpilot.report._html import html_report

    unknown = [check_overfitting({"evals": [[10, 0.5]]}), check_improving({"losses": [1.0]})]
    for check in unknown:
        data = check.to_dict()
        assert data["ok"] is True and data["state"] == "unknown" and "known" not in data
        assert mark_of(data) == "–" and "to tell" in data["message"]
    edge = check_edge(0.01, [])
    assert edge.state == "unknown" and edge.to_dict()["state"] == "unknown"
    # every check whose message says it cannot tell is in the third state, and only those
    run = {"metric": 0.5, "losses": [1.0] * 5, "evals": [[5, 0.5]]}
    for check in run_checks(run, chosen=0.01, tried=[0.01], clip=None):
        assert (check.state == "unknown") == (
            "to tell" in check.message or "cannot tell" in (check.message)
        ), check
    # older data, without "state", keeps its two states
    assert state_of({"ok": True}) == "pass" and state_of({"ok": False}) == "fail"
    checks = [c.to_dict() for c in unknown] + [{"name": "finished", "ok": False, "message": "x"}]
    page = html_report({"lr": 0.01, "schedule": "constant", "cost_steps": 1, "checks": checks})
    assert '<span class="unknown">– no overfitting</span>: too few evaluations' in page
    assert '<span class="unknown">– levelled off by the end</span>' in page
    assert '<span class="bad">✗ finished</span>' in page
    assert "✓" not in page.split('id="checks"')[1]
    shown = _summary_of(checks, capsys)
    assert "– no overfitting: too few evaluations to tell." in shown
    assert "– levelled off by the end: too few steps to tell." in shown
    assert "✓" not in shown


def test_a_run_without_validation_data_finished_when_its_training_loss_is_finite():
    """A task without validation data has no metric: its finished run was marked "✗ finished:
    the final metric is not finite"."""
    from lrpilot.report._checks import check_finished, final_metric_text

    losses = [1.0 - i / 200 for i in range(100)]
    done = check_finished({"metric": float("nan"), "losses": losses, "evals": []})
    assert done.state == "pass" and "no validation data" in done.message
    assert "final training loss 0.5" in done.message
    assert final_metric_text({"metric": float("nan"), "evals": []}) == "none (no validation data)"
    # saved as strict JSON, the metric is null
    assert check_finished({"metric": None, "losses": losses, "evals": []}).ok
    # evaluated, and the metric came out NaN: that is a failure
    nan = check_finished({"metric": float("nan"), "losses": losses, "evals": [[100, None]]})
    assert nan.state == "fail" and nan.message == "the final metric is not finite."
    blown = check_finished({"metric": None, "losses": [float("nan")] * 5, "evals": []})
    assert blown.state == "fail"
    diverged = check_finished({"metric": None, "diverged": True, "stopped": "loss blew up"})
    assert diverged.state == "fail" and "diverged" in diverged.message
    assert final_metric_text({"metric": None, "diverged": True, "evals": []}) == "nan"


def test_a_run_the_monitor_gave_up_on_did_not_finish_and_an_early_stop_did():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=g)
    task = lrpilot.Task(
        model_fn=lambda: torch.nn.Linear(4, 1),
        optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr),
        train_loader=[
            (x[i : i + 16], x[i : i + 16].sum(1, keepdim=True)) for i in range(0, 128, 16)
        ],
        loss_fn=torch.nn.functional.mse_loss,
        steps=60,
    )
    monitor = lrpilot.Monitor(quiet=True, max_rollbacks=1)
    run = lrpilot.train(task, 500.0, progress=False, callbacks=[monitor], divergence=None)
    assert run.stopped and "gave up after 1 rollbacks" in run.stopped  # far too hot: twice
    check = check_finished(run)
    assert check.state == "fail" and "the monitor stopped the run" in check.message
    early = check_finished({"metric": 0.5, "stopped": "no improvement for 3 evaluations"})
    assert early.state == "pass" and "stopped early" in early.message
