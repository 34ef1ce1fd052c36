"""The HTML report of ``tune``: built from a real tuning of a small task, self-contained and
inert, escaped, and rendered by a real headless browser (Debian's ``chromium``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import lrpilot
from lrpilot.autopilot import tune
from lrpilot.report._html import SECTIONS, html_report, write_html_report
from test_tune import write_task

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing can be fetched, were anything asked
]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tuned")
    task = lrpilot.load_task_file(write_task(folder, 1000))
    return tune(task, progress=False, command="lrpilot tune digits_task.py").to_dict()


def test_every_section_is_there_with_its_figure(tuned: dict) -> None:
    page = html_report(tuned)
    ids = re.findall(r'<section id="([^"]+)">', page)
    assert ids == list(SECTIONS)
    for key in ("range-test", "race", "schedule", "run", "grad-norms"):
        body = page.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]
        assert body.count("<svg") == 1, key
    assert page.count("<li><span") == len(tuned["checks"])
    assert "lrpilot tune digits_task.py" in page


def test_the_page_is_inert_and_self_contained(tuned: dict) -> None:
    page = html_report(tuned)
    assert "<script" not in page.lower()
    assert "default-src 'none'" in page  # the browser refuses any fetch
    # no resource from anywhere: every src/href is local to the page
    for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page):
        assert ref.startswith("#"), ref
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]*)\)", page))
    assert "<link" not in page and "@import" not in page


def test_text_from_the_task_and_the_run_is_escaped(tuned: dict) -> None:
    data = dict(tuned, task="digits <mlp>")
    data["run"] = dict(
        tuned["run"], events=[{"step": 3, "kind": "lr", "message": "<b>cut</b> & went on"}]
    )
    page = html_report(data)
    assert "digits &lt;mlp&gt;" in page and "<mlp>" not in page
    assert "&lt;b&gt;cut&lt;/b&gt; &amp; went on" in page and "<b>cut" not in page


def test_missing_parts_say_so_instead_of_breaking(tuned: dict) -> None:
    page = html_report({"lr": 0.01, "schedule": "constant", "cost_steps": 100})
    assert re.findall(r'<section id="([^"]+)">', page) == list(SECTIONS)
    assert "was not trained" in page and "no range test was run" in page
    with pytest.raises(lrpilot.ConfigError, match="dict of results"):
        html_report([1, 2])  # type: ignore[arg-type]


def test_the_report_file_is_replaced_whole(tmp_path: Path, tuned: dict) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    assert write_html_report(tuned, target) == target
    assert target.read_text().startswith("<!doctype html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no partial file left
    with pytest.raises(lrpilot.ConfigError, match="no such folder"):
        write_html_report(tuned, tmp_path / "missing" / "report.html")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run does)")
def test_a_headless_browser_renders_every_section(tmp_path: Path, tuned: dict) -> None:
    path = write_html_report(tuned, tmp_path / "report.html")
    profile = tmp_path / "profile"
    url = path.as_uri()
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    # the browser parsed the page into every section, each with its title and figure
    for key in SECTIONS:
        assert f'<section id="{key}">' in dom, key
    assert dom.count("<svg") == 5 and dom.count("<h2>") == len(SECTIONS)
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1000,6000"]
        + [f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (6000, 1000)
    inked = (pixels < 0.9).any(axis=2).any(axis=1)  # rows with anything drawn on them
    assert inked.mean() > 0.3  # text, tables and five figures fill the page
    # matplotlib's first colour (#1f77b4): the curves of the figures were painted
    blue = np.abs(pixels - np.array([0x1F, 0x77, 0xB4]) / 255).max(axis=2) < 0.08
    assert blue.any(axis=1).sum() > 200
