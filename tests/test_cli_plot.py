"""``lrpilot plot RESULT.json ... --out PATH``: replot saved results, several on one axis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import lrpilot
from conftest import batches_of, make_classification, mlp
from lrpilot.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> list[Path]:
    """Two results as `lrpilot find --json` prints them (one line) and as to_dict() writes."""
    folder = tmp_path_factory.mktemp("results")
    loader = batches_of(*make_classification(), size=16)
    paths = []
    for seed, indent in ((0, None), (1, 1)):
        model = mlp(seed=seed)
        res = lrpilot.find_lr(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loader,
            torch.nn.functional.cross_entropy,
            steps=300,
            num_steps=25,
            seed=seed,
            progress=False,
        )
        path = folder / f"seed{seed}.json"
        path.write_text(json.dumps(res.to_dict(), indent=indent))
        paths.append(path)
    return paths


def test_replots_one_result(saved, tmp_path):
    out = tmp_path / "lr.png"
    result = runner.invoke(app, ["plot", str(saved[0]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lr = json.loads(saved[0].read_text())["lr"]
    assert f"seed0: suggested lr {lr:.3g}" in result.stdout and f"plot: {out}" in result.stdout
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_overlays_several(saved, tmp_path):
    out = tmp_path / "both.svg"
    result = runner.invoke(
        app,
        [
            "plot",
            *map(str, saved),
            "-o",
            str(out),
            "--label",
            "a",
            "--label",
            "b",
            "--title",
            "two seeds",
        ],
    )
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    assert "two seeds" in svg and "a: suggest" in svg and "b: suggest" in svg


def test_reads_stdin(saved, tmp_path):
    out = tmp_path / "lr.pdf"
    result = runner.invoke(app, ["plot", "-", "--out", str(out)], input=saved[0].read_text())
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"lr": ', "is not valid JSON"),
        ("[1, 2]", "holds a JSON list, not a range-test result"),
        ('{"lr": 0.1}', "missing key(s) 'lrs', 'losses'"),
        ('{"lr": 0.1, "lrs": [0.1, 1.0], "losses": [1.0]}', "differ in length"),
    ],
    ids=["truncated", "list", "missing-keys", "lengths"],
)
def test_bad_results_exit_2(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_text(content)
    out = tmp_path / "lr.png"
    result = runner.invoke(app, ["plot", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}") and message in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_missing_file_folder_and_bad_out(saved, tmp_path):
    cases = [
        (
            ["plot", str(tmp_path / "nope.json"), "--out", str(tmp_path / "x.png")],
            "result file not found",
        ),
        (["plot", str(tmp_path), "--out", str(tmp_path / "x.png")], "is a folder"),
        (["plot", str(saved[0]), "--out", str(tmp_path / "x")], "no file suffix"),
        (["plot", str(saved[0]), "--out", str(tmp_path / "no" / "x.png")], "does not exist"),
        (
            [
                "plot",
                str(saved[0]),
                "--out",
                str(tmp_path / "x.png"),
                "--label",
                "a",
                "--label",
                "b",
            ],
            "2 --label for 1 results",
        ),
        (["plot", "-", "-", "--out", str(tmp_path / "x.png")], "read only once"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert not (tmp_path / "x.png").exists()
