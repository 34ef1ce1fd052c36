"""Where a figure may be saved: checked before any work, so a typo in a path costs nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["check_plot_path", "check_report_path", "save_figure", "supported_formats"]

REPORT_SUFFIXES = (".html", ".htm")


def supported_formats() -> list[str]:
    """The file suffixes (without the dot) that matplotlib can write, sorted."""
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def check_plot_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a figure can be saved there, else a
    :class:`~lrpilot.errors.ConfigError` that names the path and says why.

    The suffix must be a format matplotlib writes (an empty path or one without a suffix is
    refused, rather than silently becoming ``.png`` or ``out.png``), the path must not be a
    folder, and its folder must exist and be writable. Nothing is created.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"A plot path must be a str or Path, got {type(path).__name__}.")
    text = os.fspath(path)
    formats = supported_formats()
    where = Path(text)
    suffix = where.suffix[1:].lower()
    if not text or not suffix:
        raise ConfigError(
            f"Plot path {text!r} has no file suffix to take the format from: give one of "
            + ", ".join(f".{f}" for f in formats)
            + " (for example lr.png)."
        )
    if suffix not in formats:
        raise ConfigError(
            f"Plot path {text!r}: format {suffix!r} is not one matplotlib writes; use one of "
            + ", ".join(f".{f}" for f in formats)
            + "."
        )
    folder = _file_in_a_folder("Plot path", text, where, "a file name such as lr.png")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"Plot path {text!r}: the folder {str(folder)!r} is not writable.")
    return where


def check_report_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`~pathlib.Path` if the HTML report can be written there, else a
    :class:`~lrpilot.errors.ConfigError` that names the path and says why.

    Checked before any work, so a typo or a read-only folder costs nothing: the suffix must be
    ``.html`` (or ``.htm``), the path must not be a folder, and its folder must exist and take a
    new file. That last test creates (and removes) an empty probe file there, because
    permission bits alone do not tell: root may write anywhere ``os.access`` says, yet not into
    an immutable folder or ``/proc``.
    """
    text = os.fspath(path)
    where = Path(text)
    if where.suffix.lower() not in REPORT_SUFFIXES:
        raise ConfigError(f"the report is an HTML file: give a path ending in .html, got {text!r}")
    folder = _file_in_a_folder("Report path", text, where, "a file such as report.html")
    _probe_write(text, folder)
    return where


def _file_in_a_folder(what: str, text: str, where: Path, example: str) -> Path:
    """The folder that will hold the file ``where`` (typed as ``text``); a ConfigError when
    ``where`` is a folder itself, or its folder is missing or not a folder."""
    if where.is_dir():
        raise ConfigError(f"{what} {text!r} is a folder: give {example}.")
    folder = where.parent
    if not folder.exists():
        raise ConfigError(f"{what} {text!r}: the folder {str(folder)!r} does not exist.")
    if not folder.is_dir():
        raise ConfigError(f"{what} {text!r}: {str(folder)!r} is not a folder.")
    return folder


def _probe_write(text: str, folder: Path) -> None:
    """Create and remove an empty hidden file in ``folder``; a ConfigError naming the path
    ``text`` (the user's) if that fails."""
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".lrpilot-", suffix=".probe", dir=folder)
    except OSError as exc:
        raise ConfigError(
            f"Report path {text!r}: the folder {str(folder)!r} is not writable "
            f"({exc.strerror or exc})."
        ) from None
    os.close(fd)
    os.unlink(probe)


def save_figure(fig: Figure, path: Any, **kwargs: Any) -> None:
    """Save ``fig`` to ``path`` (checked by :func:`check_plot_path`; a writable binary file
    object passes through, with ``format=`` in ``kwargs``)."""
    if hasattr(path, "write"):
        fig.savefig(path, **kwargs)
        return
    fig.savefig(check_plot_path(path), **kwargs)
