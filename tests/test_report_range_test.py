"""The range-test plots: drawn from result data (a result, its dict, its JSON), never through
pyplot, and never writing anything when the path is bad."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lrpilot
from conftest import mlp
from lrpilot import report
from lrpilot.errors import ConfigError

SRC = Path(lrpilot.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result() -> lrpilot.LRFinderResult:
    from conftest import batches_of, make_classification

    loader = batches_of(*make_classification(), size=16)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return lrpilot.find_lr(
        model,
        opt,
        loader,
        torch.nn.functional.cross_entropy,
        steps=300,
        num_steps=30,
        progress=False,
    )


def _smoothed_line(fig):
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "loss (smoothed)"]
    return list(line.get_ydata())


def test_draws_the_stored_smooth_and_never_recomputes_it(result, monkeypatch):
    def no_smoothing(*args, **kwargs):
        raise AssertionError("the plot recomputed the smooth the result stores")

    monkeypatch.setattr(lrpilot.suggest, "smooth", no_smoothing)
    data = json.loads(json.dumps(result.to_dict()))  # as read back from a file
    data["smooth_losses"] = [v + 1.0 for v in data["smooth_losses"]]  # visibly the stored one
    fig = report.plot_range_test(data)
    assert _smoothed_line(fig) == pytest.approx(data["smooth_losses"])
    assert fig.axes[0].get_xscale() == "log"
    assert _smoothed_line(result.plot()) == pytest.approx(result.smooth_losses)


def test_the_y_axis_names_the_loss_the_sweep_recorded(result):
    assert result.plot().axes[0].get_ylabel() == "loss"
    data = {**result.to_dict(), "loss_source": "val"}  # a sweep on validation batches
    assert report.plot_range_test(data).axes[0].get_ylabel() == "validation loss"
    mixed = report.plot_range_tests([result, data])
    assert mixed.axes[0].get_ylabel() == "loss"  # an overlay of both kinds says only "loss"


def test_an_old_dict_without_the_smooth_gets_it_from_its_curve(result):
    data = result.to_dict()
    del data["smooth_losses"], data["band"], data["bounds"], data["candidates"]
    fig = report.plot_range_test(data)
    expected = lrpilot.suggest.smooth(data["lrs"], data["losses"])
    assert _smoothed_line(fig) == pytest.approx(list(expected))


def test_a_shorter_smooth_is_drawn_at_the_first_lrs(result):
    data = result.to_dict()
    data["smooth_losses"] = data["smooth_losses"][:-3]  # cut at a non-finite loss
    data["losses"][-1] = float("nan")
    fig = report.plot_range_test(data)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "loss (smoothed)"]
    assert list(line.get_xdata()) == data["lrs"][:-3]


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d.pop("lrs"), "missing key(s) 'lrs'"),
        (lambda d: d.update(losses=d["losses"][:-1]), "differ in length"),
        (lambda d: d.update(lr="0.1"), "'lr' must be a positive finite number"),
        (lambda d: d.update(lrs=[-1.0] * len(d["lrs"])), "positive finite"),
        (lambda d: d.update(band=[1.0]), "'band' must be a pair"),
        (lambda d: d.update(smooth_losses=d["smooth_losses"] + [1.0]), "'smooth_losses' has"),
    ],
)
def test_malformed_data_is_a_config_error(result, change, message):
    data = result.to_dict()
    change(data)
    with pytest.raises(ConfigError) as info:
        report.plot_range_test(data)
    assert message in str(info.value)


def test_not_a_result_at_all():
    with pytest.raises(ConfigError, match="LRFinderResult or its to_dict"):
        report.plot_range_test([1, 2, 3])


@pytest.mark.parametrize("name", ["", "out", "lr.xyz", "sub"])
def test_a_bad_path_writes_nothing(result, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigError) as info:
        result.plot(name)
    message = str(info.value)
    assert repr(name) in message
    if name in ("", "out", "lr.xyz"):
        assert ".png" in message and ".svg" in message and ".pdf" in message  # what would do
    assert sorted(os.listdir(tmp_path)) == ["sub"] and os.listdir(tmp_path / "sub") == []


def test_a_missing_folder_is_named(result, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        result.plot(tmp_path / "nope" / "lr.png")
    with pytest.raises(ConfigError, match="is not a folder"):
        (tmp_path / "file").write_text("x")
        result.plot(tmp_path / "file" / "lr.png")


def test_saves_any_format_matplotlib_writes(result, tmp_path):
    result.plot(tmp_path / "lr.PNG")
    report.plot_range_test(result.to_dict(), tmp_path / "lr.svg", title="mine")
    assert (tmp_path / "lr.PNG").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "lr.svg").read_bytes()[:500]
    assert "png" in report.supported_formats() and "svg" in report.supported_formats()


def test_draws_on_given_axes(result):
    from matplotlib.figure import Figure

    fig = Figure()
    axes = fig.subplots(1, 2)
    assert report.plot_range_test(result, ax=axes[1], title="right") is fig
    assert axes[1].get_title() == "right" and not axes[0].get_lines()


def test_overlay_of_several_sweeps(result, tmp_path):
    other = result.to_dict()
    other["lr"] = result.lr / 10
    fig = report.plot_range_tests(
        [result, other], tmp_path / "both.png", labels=["seed 0", "seed 1"]
    )
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [f"seed 0: suggest {result.lr:.3g}", f"seed 1: suggest {other['lr']:.3g}"]
    assert (tmp_path / "both.png").stat().st_size > 1000
    default = report.plot_range_tests([result, result, result])
    assert [t.get_text()[:5] for t in default.axes[0].get_legend().get_texts()] == [
        "run 1",
        "run 2",
        "run 3",
    ]
    with pytest.raises(ConfigError, match="2 labels for 1 results"):
        report.plot_range_tests([result], labels=["a", "b"])
    with pytest.raises(ConfigError, match="at least one"):
        report.plot_range_tests([])
    with pytest.raises(ConfigError, match="list of results"):
        report.plot_range_tests(result.to_dict())


def test_schedule_plot_checks_its_path_first(tmp_path):
    with pytest.raises(ConfigError, match="'xyz' is not one matplotlib writes"):
        report.plot_schedule([1.0, 0.5], tmp_path / "s.xyz")
    assert os.listdir(tmp_path) == []


NOTEBOOK = r"""
import json, sys
import matplotlib
matplotlib.use("module://fake_inline")  # as %matplotlib inline does
from matplotlib import pyplot as plt
from lrpilot import report
from lrpilot.errors import ConfigError

data = json.load(open(sys.argv[1]))
before = matplotlib.get_backend()
report.plot_range_test(data, sys.argv[2])
fig = report.plot_range_test(data)  # no path: the cell's value, shown once
report.plot_range_tests([data, data], sys.argv[2])
try:
    report.plot_range_test(data, "/nonexistent_dir/lr.png")
except ConfigError:
    pass
print(json.dumps({"before": before, "after": matplotlib.get_backend(),
                  "open": plt.get_fignums(), "type": type(fig).__module__}))
"""

FAKE_INLINE = """
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg as FigureCanvas

FigureManager = FigureManagerBase


def show(*args, **kwargs):
    pass
"""


def test_plotting_leaves_a_notebook_backend_alone(result, tmp_path):
    (tmp_path / "fake_inline.py").write_text(FAKE_INLINE)
    (tmp_path / "nb.py").write_text(NOTEBOOK)
    (tmp_path / "r.json").write_text(json.dumps(result.to_dict()))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(SRC)]))
    env.pop("MPLBACKEND", None)
    done = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "nb.py"),
            str(tmp_path / "r.json"),
            str(tmp_path / "lr.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == seen["after"] == "module://fake_inline"
    assert seen["open"] == []  # nothing registered with pyplot: no second display, no leak
    assert seen["type"] == "matplotlib.figure"
    assert (tmp_path / "lr.png").stat().st_size > 1000
