"""The HTML report of a tuning: one self-contained, inert file built from plain result data.

Every figure is inline SVG drawn by matplotlib; the page has no script and loads nothing (a
Content-Security-Policy forbids any network resource, so a report opened from an email or a
shared drive cannot call out); every piece of text that came from the task or the run (names,
messages, sources) is escaped. The sections, each an element with a fixed ``id`` that the
browser test checks: ``summary``, ``advice``, ``range-test``, ``race``, ``schedule``, ``run``,
``grad-norms``, ``checks``, ``reproduce``.
"""

from __future__ import annotations

import contextlib
import html
import io
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._checks import final_metric_text, label_of, mark_of, state_of
from ._range_test import plot_range_test
from ._run import plot_grad_norms, plot_race, plot_run
from ._schedule import plot_schedule

__all__ = ["SECTIONS", "html_report", "write_html_report"]

SECTIONS = (
    "summary",
    "advice",
    "range-test",
    "race",
    "schedule",
    "run",
    "grad-norms",
    "checks",
    "reproduce",
)
"""The ``id`` of every section, in page order."""

POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""Nothing loads from anywhere; only the page's own style applies."""

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left}th{background:#f6f6f6}.ok{color:#1a7f37}.bad{color:#b42318;font-weight:600}
.none{color:#777;font-style:italic}.unknown{color:#777}figure{margin:.8em 0}
svg{max-width:100%;height:auto}
pre{background:#f6f6f6;padding:.7em;overflow-x:auto}.src{color:#555;font-size:.9em}
"""


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML (element content and quoted attributes)."""
    return html.escape(str(value), quote=True)


def svg(figure: Any) -> str:
    """A matplotlib figure as an inline ``<svg>`` element (no XML prologue, no date)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(draw: Callable[[], Any], caption: str) -> str:
    try:
        picture = svg(draw())
    except (ValueError, KeyError, TypeError, ConfigError) as error:
        return f'<p class="none">figure not drawn: {esc(error)}</p>'
    return f"<figure>{picture}<figcaption>{esc(caption)}</figcaption></figure>"


def _none(what: str) -> str:
    return f'<p class="none">{esc(what)}</p>'


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{esc(title)}</h2>{body}</section>'


def _number(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return format(number, spec) if math.isfinite(number) else str(number)


# --------------------------------------------------------------------------- sections
def _summary(data: Mapping[str, Any]) -> str:
    rows = [
        ("learning rate", _number(data.get("lr"))),
        ("schedule", data.get("schedule") or "constant"),
        ("run length", f"{data.get('run_steps', '–')} steps"),
        ("cost of choosing", f"{data.get('cost_steps', '–')} optimizer steps"),
    ]
    run = data.get("run")
    if run:
        rows.append(("final metric", final_metric_text(run, data.get("metric_is"))))
    stages = data.get("stages") or []
    parts = _table(("", ""), rows)
    if stages:
        parts += _table(
            ("stage", "optimizer steps", "seconds"),
            [(s.get("name"), s.get("steps"), _number(s.get("seconds"), ".1f")) for s in stages],
        )
    return parts


def _reason_rows(items: Sequence[Any]) -> list[tuple[str, str]]:
    rows = []
    for item in items:
        if isinstance(item, Mapping):
            text = item.get("text") or item.get("message") or item.get("reason") or ""
            rows.append((str(text), str(item.get("source") or "")))
        else:
            rows.append((str(item), ""))
    return rows


def _advice(data: Mapping[str, Any]) -> str:
    advice = data.get("advice")
    if not advice:
        return _none("no advice was asked for.")
    reasons = _reason_rows(advice.get("reasons") or [])
    findings = advice.get("findings") or []
    body = _table(
        ("advised", ""),
        [
            ("starting LR", _number(advice.get("lr"))),
            ("range to sweep", " – ".join(_number(v) for v in advice.get("range") or ())),
            ("schedule", advice.get("schedule") or "–"),
        ],
    )
    if reasons:
        body += "<h3>Why</h3><ul>" + "".join(
            f'<li>{esc(text)} <span class="src">({esc(source or "no source")})</span></li>'
            for text, source in reasons
        )
        body += "</ul>"
    body += "<h3>Lint</h3>"
    if not findings:
        return body + '<p class="ok">no findings.</p>'
    rows = []
    for f in findings:
        f = f if isinstance(f, Mapping) else {"message": str(f)}
        rows.append(
            (
                f.get("severity", ""),
                f.get("message") or f.get("text", ""),
                f.get("fix") or f.get("advice") or f.get("what_to_do", ""),
            )
        )
    return body + _table(("severity", "finding", "what to do"), rows)


def _range_test(data: Mapping[str, Any]) -> str:
    result = data.get("range_test")
    if not result:
        return _none("no range test was run.")
    band = result.get("band")
    caption = f"suggestion {_number(result.get('lr'))}" + (
        f", band {_number(band[0])}–{_number(band[1])}" if band else ""
    )
    body = _figure(lambda: plot_range_test(result), caption)
    warnings = result.get("warnings") or []
    if warnings:
        body += "<ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>"
    return body


def _race(data: Mapping[str, Any]) -> str:
    race = data.get("race")
    if not race:
        return _none("no race was run.")
    if not race.get("candidates"):
        return _none(race.get("note") or "no race was run.")
    by_loss = race.get("scored_by") == "training loss"
    score, curves = (
        ("train_loss", "training loss per candidate (no validation data)")
        if by_loss
        else ("metric", "validation metric per candidate")
    )
    rows = [
        (
            _number(c.get("lr")),
            c.get("steps", "–"),
            _number(c.get(score), ".4g"),
            _number(c.get("predicted"), ".4g"),
            _outcome(c),
        )
        for c in race["candidates"]
    ]
    head = ("LR", "steps trained", "final training loss" if by_loss else "metric")
    note = race.get("note")
    return (
        _table((*head, "predicted final", "outcome"), rows)
        + (f"<p>{esc(note)}</p>" if note else "")
        + _figure(lambda: plot_race(race["candidates"]), f"race: {curves}")
    )


def _outcome(candidate: Mapping[str, Any]) -> str:
    marks = [
        m for m, key in (("race's best", "winner"), ("chosen", "chosen")) if candidate.get(key)
    ]
    if _unscored(candidate) and candidate.get("steps") is not None:
        marks.insert(0, "diverged")
    return ", ".join(marks) or str(candidate.get("cut") or "finished")


def _unscored(candidate: Mapping[str, Any]) -> bool:
    """Whether a race candidate's run gave no score (it diverged): no ``train_loss`` where it
    was raced on the training loss (no validation data), else no ``metric``."""
    key = "train_loss" if "train_loss" in candidate else "metric"
    return candidate.get(key) is None


def _schedule(data: Mapping[str, Any]) -> str:
    lrs = data.get("schedule_lrs")
    if not lrs:
        return _none("no schedule to draw.")
    spec = data.get("schedule") or "constant"
    return _figure(
        lambda: plot_schedule(lrs, peak=float(data.get("lr") or 1.0), title=str(spec)),
        f"{spec} over {len(lrs)} steps at peak {_number(data.get('lr'))}",
    )


def _run(data: Mapping[str, Any]) -> str:
    run = data.get("run")
    if not run:
        return _none("the full run was not trained (--no-train).")
    events = run.get("events") or []
    body = _figure(lambda: plot_run(run), "training loss and validation metric; events dashed")
    if events:
        body += _table(
            ("step", "kind", "what happened"),
            [(e.get("step"), e.get("kind"), e.get("message")) for e in events],
        )
    elif data.get("monitored") is False:
        body += "<p>no monitor watched this run (--no-monitor).</p>"
    else:
        body += '<p class="ok">no events: the monitor did not need to act.</p>'
    return body


def _grad_norms(data: Mapping[str, Any]) -> str:
    run = data.get("run")
    if not run or not run.get("grad_norms"):
        return _none("no gradient norms recorded.")
    clip = data.get("grad_clip")
    steps = max(1, len(run.get("losses", [])))
    share = f"{int(run.get('clipped', 0)) / steps:.0%} of steps clipped" if clip else "no clipping"
    return _figure(lambda: plot_grad_norms(run, clip), f"gradient norm before clipping; {share}")


def _checks(data: Mapping[str, Any]) -> str:
    checks = data.get("checks") or []
    if not checks:
        return _none("no checks were made.")
    items = "".join(
        f'<li><span class="{CHECK_CLASSES[state_of(c)]}">'
        f"{mark_of(c)} {esc(label_of(c))}</span>: {esc(c.get('message'))}</li>"
        for c in checks
    )
    return f"<ul>{items}</ul>"


CHECK_CLASSES = {"pass": "ok", "fail": "bad", "unknown": "unknown"}
"""The style of each check's state: a check that cannot tell is grey, neither green nor red."""


def _reproduce(data: Mapping[str, Any]) -> str:
    command = data.get("command")
    if not command:
        return _none("no command recorded.")
    return f"<pre>{esc(command)}</pre>"


BUILDERS: dict[str, tuple[str, Callable[[Mapping[str, Any]], str]]] = {
    "summary": ("Choice", _summary),
    "advice": ("Advice and lint", _advice),
    "range-test": ("Range test", _range_test),
    "race": ("Race of candidates", _race),
    "schedule": ("Schedule", _schedule),
    "run": ("Full run", _run),
    "grad-norms": ("Gradient norms", _grad_norms),
    "checks": ("Checks", _checks),
    "reproduce": ("Reproduce", _reproduce),
}


def html_report(data: Mapping[str, Any]) -> str:
    """The report page for ``data`` (a tuning's ``to_dict()``; every part optional)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a report is built from a dict of results, got {type(data).__name__}")
    title = f"lrpilot: {data.get('task') or 'tuning'}"
    sections = "".join(_section(key, *_render(key, data)) for key in SECTIONS)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>{sections}</body></html>\n"
    )


def _render(key: str, data: Mapping[str, Any]) -> tuple[str, str]:
    title, build = BUILDERS[key]
    return title, build(data)


def write_html_report(data: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write :func:`html_report` to ``path`` (its folder must exist) and return the path.

    Written to a temporary file beside it, then renamed: an interrupted write leaves either
    the old report or the new one, never half a page."""
    target = Path(path)
    if target.is_dir() or not target.parent.is_dir():
        raise ConfigError(f"cannot write the report to {str(target)!r}: no such folder.")
    page = html_report(data)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, target)
    except OSError as exc:  # name the user's path, not the hidden partial file
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write the report to {str(target)!r}: {exc.strerror or exc}."
        ) from None
    return target
