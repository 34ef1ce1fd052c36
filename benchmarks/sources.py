"""What a cached result depends on in lrpilot: the code of the modules that decide it.

A sweep's pick is decided by the range test, the suggestion rules and what they build on; a
training run by the run layer. Each cache key hashes only those modules, and only their code:
the ``ast`` of each module with every docstring (and any other bare string statement) taken
out, so a reworded docstring or comment re-runs nothing, while any change to what the code
does moves the key. A change elsewhere in lrpilot (the CLI, the report, a future search
module) keeps every cached result.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

PICK_SOURCES = (
    "finder.py",
    "suggest.py",
    "_facts.py",
    "_step.py",
    "_state.py",
    "_rng.py",
    "advice.py",
    "task.py",
    "control/divergence.py",
    "schedules",
)
"""The modules that decide lrpilot's pick (``find_lr_for_task`` and its rules)."""

RUN_SOURCES = (
    "train.py",
    "_dist.py",
    "_json.py",
    "_step.py",
    "_rng.py",
    "control/divergence.py",
    "control/callbacks.py",
    "task.py",
    "schedules",
)
"""The modules that decide a training run (``lrpilot.train``)."""


def lrpilot_root() -> Path:
    """The folder of the installed lrpilot package."""
    import lrpilot

    return Path(lrpilot.__file__).resolve().parent


def code_of(source: str) -> str:
    """The code of a module as text, without docstrings, comments or layout."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        kept = [stmt for stmt in body if not _is_bare_string(stmt)]
        node.body = kept or [ast.Pass()]
    return ast.dump(tree)


def _is_bare_string(stmt: ast.AST) -> bool:
    """A statement that is only a string: a docstring, or an attribute's docstring."""
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _files(root: Path, names: Iterable[str], missing_ok: bool = False) -> list[Path]:
    """The ``.py`` files named: a module, or a package (``schedules``: the module or the
    package, whichever exists); a name that exists in neither form is an error, or left out
    with ``missing_ok`` (an older lrpilot, before the module existed)."""
    found: list[Path] = []
    for name in names:
        path = root / name
        if path.suffix == ".py" and path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(path.rglob("*.py"))
        elif path.with_suffix(".py").is_file():
            found.append(path.with_suffix(".py"))
        elif not missing_ok:
            raise FileNotFoundError(f"lrpilot source {name!r} not found under {root}")
    return found


def source_key(names: Iterable[str], root: Path | None = None, missing_ok: bool = False) -> str:
    """A short hash of the code (not the docstrings) of lrpilot's modules ``names``;
    ``missing_ok``: hash those that exist (the key an older lrpilot had, whose list of
    modules lacked the newer ones)."""
    root = root or lrpilot_root()
    digest = hashlib.sha256()
    for path in _files(root, names, missing_ok):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(code_of(path.read_text()).encode() + b"\0")
    return digest.hexdigest()[:12]


@functools.cache
def pick_version() -> str:
    """What an lrpilot pick depends on besides the task (read once per process)."""
    return "lrpilot-" + source_key(PICK_SOURCES)


@functools.cache
def run_version() -> str:
    """What a training run depends on besides the task: part of every run-cache key (read
    once per process)."""
    return "run-" + source_key(RUN_SOURCES)
