"""Write the suggestion benchmark's results: ``RESULTS.md`` section, plot and a JSON dump."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
from importlib import metadata
from pathlib import Path

from benchmarks.data import OUT, stdlib_bytes
from benchmarks.results_md import write_section
from benchmarks.tasks import LM_SEQ, LM_VAL_WINDOWS, BenchTask

HERE = Path(__file__).resolve().parent
PLOT = HERE / "regret.png"
COLORS = {"lrpilot": "tab:green", "torch-lr-finder": "tab:orange", "lightning": "tab:purple",
          "default": "tab:gray"}  # fmt: skip


def _f(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def _versions() -> str:
    names = ("torch", "torch-lr-finder", "pytorch-lightning", "mnist1d", "scikit-learn")
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


def _command(args: argparse.Namespace) -> str:
    cmd = "MPLCONFIGDIR=/tmp/mplcfg .venv/bin/python -m benchmarks.suggestion"
    return cmd + (" --quick" if args.quick else "")


def _task_table(tasks: list[BenchTask], summaries: list[dict]) -> list[str]:
    rows = ["| task | data | recipe | steps × batch | schedule | metric | ms/step* |",
            "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for task, s in zip(tasks, summaries, strict=True):
        rows.append(
            f"| `{task.name}` | {task.title}; {task.notes} | `{task.model_fn.__name__}`, "
            f"{task.optimizer_desc}, default LR {task.default_lr:g} | {task.steps} × "
            f"{task.batch_size} | `{task.schedule}` | {task.metric_name} "
            f"({'higher' if task.higher_is_better else 'lower'} is better; regret in "
            f"{task.regret_unit}) | {s['ms_per_step']:.1f} |"
        )
    return rows


def _regret_table(summaries: list[dict], agg: dict, pickers: list[str]) -> list[str]:
    head = "| picker | " + " | ".join(f"`{s['task']}`" for s in summaries)
    rows = [head + " | median | max | max seed spread | sweep steps (max over tasks) |",
            "| --- |" + " ---: |" * (len(summaries) + 4)]  # fmt: skip
    for p in pickers:
        cells = " | ".join(_f(s["pickers"][p]["regret"]) for s in summaries)
        a = agg[p]
        rows.append(f"| {p} | {cells} | {_f(a['median'])} | {_f(a['max'])} | "
                    f"{_f(a['max_spread'])}× | {_f(a['max_sweep_steps'], '.0f')} |")  # fmt: skip
    return rows


def _picks_table(summaries: list[dict], pickers: list[str]) -> list[str]:
    rows = ["| task | oracle LR → metric | picker | picks, seeds 0–4 | spread | mean metric, "
            "seeds 0–2 | regret | sweep steps | sweep s | failures |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip
    for s in summaries:
        o = s["oracle"]
        head = f"`{s['task']}` | {_f(o and o['lr'], '.3g')} → {_f(o and o['mean'], '.4f')}"
        for p in pickers:
            r = s["pickers"][p]
            picks = ", ".join(f"{x:.2g}" for x in r["picks"])
            fails = f"{len(r['failed'])}: {r['failed'][0][:60]}" if r["failed"] else ""
            rows.append(f"| {head} | {p} | {picks} | {_f(r['spread'])}× | {_f(r['mean'], '.4f')}"
                        f" | {_f(r['regret'])} | {_f(r['sweep_steps'], '.0f')} | "
                        f"{_f(r['sweep_wall_s'], '.1f')} | {fails} |")  # fmt: skip
            head = " | "
    return rows


def _grid_table(summaries: list[dict]) -> list[str]:
    lrs = sorted({g["lr"] for s in summaries for g in s["grid"]})
    rows = ["| LR | " + " | ".join(f"`{s['task']}`" for s in summaries) + " |",
            "| ---: |" + " ---: |" * len(summaries)]  # fmt: skip
    for lr in lrs:
        cells = []
        for s in summaries:
            g = next((g for g in s["grid"] if g["lr"] == lr), None)
            if g is None or g["mean"] is None:
                cells.append("")
                continue
            star = " **◆**" if s["oracle"] and s["oracle"]["lr"] == lr else ""
            div = f" ({g['diverged']} div.)" if g["diverged"] else ""
            cells.append(f"{g['mean']:.4f} ± {g['std']:.4f}{div}{star}")
        rows.append(f"| {lr:.3g} | " + " | ".join(cells) + " |")
    return rows


def _targets(summaries: list[dict], agg: dict, pickers: list[str]) -> list[str]:
    me = agg.get("lrpilot")
    if not me or me["median"] is None:
        return ["lrpilot was not run."]
    peers = [p for p in pickers if p != "lrpilot" and agg[p]["median"] is not None]
    beats = all(me["median"] < agg[p]["median"] and me["max"] < agg[p]["max"] for p in peers)
    per_task = []
    for s in summaries:
        r = s["pickers"]["lrpilot"]["regret"]
        limit = 1.0 if "accuracy" in s["grid_metric"] else 2.0
        per_task.append(r is not None and r <= limit)
    yes = {True: "yes", False: "**no**"}
    return [
        f"- lower median and max regret than every peer and the plain default: {yes[beats]}",
        f"- within 1 accuracy point / 2% excess loss on every task: {yes[all(per_task)]}",
        f"- at most 200 sweep steps: {yes[me['max_sweep_steps'] <= 200]} "
        f"({me['max_sweep_steps']:.0f})",
        f"- pick moves by less than 2× over 5 seeds of data order: "
        f"{yes[me['max_spread'] < 2.0]} ({me['max_spread']:.2f}×)",
    ]


def plot(summaries: list[dict], pickers: list[str], path: Path = PLOT) -> None:
    """One panel per task: the oracle grid (mean ± std over seeds) and each picker's picks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(2, len(summaries))
    rows = math.ceil(len(summaries) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 4.3 * rows), squeeze=False)
    for ax in axes.flat[len(summaries) :]:
        ax.set_visible(False)
    for ax, s in zip(axes.flat, summaries, strict=False):
        grid = [g for g in s["grid"] if g["mean"] is not None]
        xs = [g["lr"] for g in grid]
        ys = [g["mean"] for g in grid]
        sd = [g["std"] for g in grid]
        ax.plot(xs, ys, "k.-", label="oracle grid (mean of 3 seeds)")
        low = [y - e for y, e in zip(ys, sd, strict=True)]
        high = [y + e for y, e in zip(ys, sd, strict=True)]
        ax.fill_between(xs, low, high, color="k", alpha=0.12)
        if s["oracle"]:
            ax.plot([s["oracle"]["lr"]], [s["oracle"]["mean"]], "k*", ms=14)
        for i, p in enumerate(pickers):
            r = s["pickers"][p]
            regret = _f(r["regret"])
            for j, lr in enumerate(r["picks"]):
                label = f"{p} (regret {regret})" if j == 0 else None
                ax.axvline(lr, color=COLORS.get(p, "b"), alpha=0.7, lw=1.4,
                           ymax=0.06 + 0.05 * i, label=label)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("peak LR")
        ax.set_ylabel(s["grid_metric"])
        ax.set_title(f"{s['task']} ({s['steps']} steps)", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    summaries: list[dict],
    agg: dict,
    pickers: list[str],
    tasks: list[BenchTask],
    args: argparse.Namespace,
    wall: float,
    machine: str,
) -> None:
    """RESULTS.md's suggestion section (or ``out/RESULTS-quick.md``), the plot, the JSON dump."""
    for s, t in zip(summaries, tasks, strict=True):
        s["grid_metric"] = t.metric_name
    compute = sum(s["compute_s"] for s in summaries)
    _, _, corpus = stdlib_bytes(LM_SEQ, LM_VAL_WINDOWS)
    plot_path = OUT / "regret-quick.png" if args.quick else PLOT
    plot(summaries, pickers, plot_path)
    dump = {"summaries": summaries, "aggregate": agg, "wall_s": wall, "quick": args.quick,
            "corpus": corpus, "machine": machine}  # fmt: skip
    (OUT / ("results-quick.json" if args.quick else "results.json")).write_text(
        json.dumps(dump, indent=1, default=str)
    )
    lines = [
        "## Suggested LR against an oracle grid",
        "",
        f"Command: `{_command(args)}`, {args.workers} worker processes of 1 thread each, on "
        f"{machine} ({os.cpu_count()} cores, shared). From scratch it costs "
        f"{compute / 60:.0f} worker-minutes, about {compute / 60 / args.workers:.0f} min of "
        f"wall time with {args.workers} workers; this invocation took "
        f"{wall / 60:.1f} min, the rest coming from the cache. Run on {dt.date.today()}; "
        f"{_versions()}.",
        "",
        "Each task's recipe is fixed and the peak LR is the free variable. Oracle: the best mean "
        "metric over 3 seeds on a grid of 3 LRs per decade over 5 decades. Each picker sweeps "
        "with a seed's model initialisation and data order; the recipe is then trained at its "
        "pick with that seed (seeds 0–2) and its regret is the oracle's metric minus its mean "
        "metric (accuracy points; for the LM, percent excess loss). Spread: largest / smallest "
        "pick over seeds 0–4. A run that diverges scores the trivial metric (chance accuracy, "
        "8 bits/byte).",
        f"Byte corpus: {corpus['num_files']} {corpus['source']} ({corpus['train_bytes']:,} "
        f"bytes train, {corpus['val_bytes']:,} held out), manifest SHA-256 "
        f"`{corpus['manifest_sha256']}`.",
        "",
        "### Tasks",
        "",
        *_task_table(tasks, summaries),
        "",
        "\\* median wall time of one training run divided by its steps, evaluation included.",
        "",
        "### Regret (lower is better)",
        "",
        *_regret_table(summaries, agg, pickers),
        "",
        "Targets for lrpilot's default suggestion:",
        "",
        *_targets(summaries, agg, pickers),
        "",
        "![regret](regret.png)",
        "",
        "### Picks per task",
        "",
        *_picks_table(summaries, pickers),
        "",
        "### Oracle grids (mean ± std of the metric over 3 seeds; ◆ = oracle)",
        "",
        *_grid_table(summaries),
        "",
        "Sweep curves (LR and raw loss per step, per task, picker and seed) are in "
        "`benchmarks/out/curves/`, every training result in `benchmarks/out/cache/runs.json`, "
        "the tables above as JSON in `benchmarks/out/results.json`.",
    ]
    text = "\n".join(lines)
    if args.quick:
        (OUT / "RESULTS-quick.md").write_text(text + "\n")
    else:
        write_section("suggestion", text)
