"""``import lrpilot`` stays light, and a missing optional package says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lrpilot
from lrpilot._imports import require
from lrpilot.errors import MissingDependencyError


def test_import_lrpilot_loads_no_heavy_or_optional_package():
    code = (
        "import sys, lrpilot; heavy = ('matplotlib', 'rich', 'typer', 'optuna', "
        "'sqlalchemy', 'pytorch_lightning', 'lightning', 'transformers', 'tensorboard'); "
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_extra_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # makes `import optuna` fail here
    with pytest.raises(MissingDependencyError, match=r"pip install 'lrpilot\[search\]'"):
        require("optuna", "search")
    with pytest.raises(ImportError):  # still an ImportError for code that catches those
        require("optuna", "search")
    assert issubclass(MissingDependencyError, lrpilot.LRPilotError)


def test_an_installed_module_is_returned():
    import math

    assert require("math", "arithmetic") is math
