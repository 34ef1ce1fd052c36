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
from benchmarks.pickers import LR_FREE, SEARCHES
from benchmarks.results_md import write_section
from benchmarks.tasks import LM_SEQ, LM_VAL_WINDOWS, BenchTask

HERE = Path(__file__).resolve().parent
PLOT = HERE / "regret.png"
COLORS = {"lrpilot": "tab:green", "torch-lr-finder": "tab:orange", "lightning": "tab:purple",
          "fastai-valley": "tab:brown", "fastai-minimum": "tab:pink", "prodigy": "tab:cyan",
          "schedulefree": "tab:olive", "optuna-tpe": "tab:red", "default": "tab:gray"}  # fmt: skip


def _f(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def _versions() -> str:
    names = ("torch", "torch-lr-finder", "pytorch-lightning", "fastai", "prodigyopt",
             "schedulefree", "optuna", "mnist1d", "scikit-learn")
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
    rows = [head + " | median | max | median % of gap | max % of gap | max seed spread | "
            "cost: steps (median over tasks) | cost: × one run (median over tasks) |",
            "| --- |" + " ---: |" * (len(summaries) + 7)]  # fmt: skip
    for p in pickers:
        cells = " | ".join(_f(s["pickers"][p]["regret"]) for s in summaries)
        a = agg[p]
        spread = "–" if a["max_spread"] is None else f"{a['max_spread']:.2f}×"
        rows.append(f"| {p} | {cells} | {_f(a['median'])} | {_f(a['max'])} | "
                    f"{_f(a['median_gap_pct'], '.1f')} | {_f(a['max_gap_pct'], '.1f')} | "
                    f"{spread} | {_f(a['median_cost_steps'], ',.0f')} | "
                    f"{_f(a['median_cost_runs'])}× |")  # fmt: skip
    return rows


def _gap_table(summaries: list[dict], pickers: list[str]) -> list[str]:
    """Regret as a percentage of the oracle–trivial gap, and cost, per picker and task."""
    head = "| picker | " + " | ".join(f"`{s['task']}` % gap, cost" for s in summaries) + " |"
    rows = [head, "| --- |" + " ---: |" * len(summaries)]
    for p in pickers:
        cells = " | ".join(
            f"{_f(r['gap_pct'], '.1f')}, {_f(r['cost_steps'], ',.0f')} st / "
            f"{_f(r['cost_runs'])}×"
            for r in (s["pickers"][p] for s in summaries)
        )
        rows.append(f"| {p} | {cells} |")
    return rows


def _picks_table(summaries: list[dict], pickers: list[str]) -> list[str]:
    rows = ["| task | oracle LR → metric | picker | picks, seeds 0–4 | spread | mean metric, "
            "seeds 0–2 | regret | % of gap | sweep steps | sweep s | cost: steps | "
            "cost: × run | failures |",
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
            "--- |"]  # fmt: skip
    for s in summaries:
        o = s["oracle"]
        head = f"`{s['task']}` | {_f(o and o['lr'], '.3g')} → {_f(o and o['mean'], '.4f')}"
        for p in pickers:
            r = s["pickers"][p]
            picks = ", ".join(f"{x:.2g}" for x in r["picks"])
            fails = f"{len(r['failed'])}: {r['failed'][0][:60]}" if r["failed"] else ""
            spread = "–" if r["spread"] is None else f"{r['spread']:.2f}×"
            rows.append(f"| {head} | {p} | {picks} | {spread} | {_f(r['mean'], '.4f')}"
                        f" | {_f(r['regret'])} | {_f(r['gap_pct'], '.1f')} | "
                        f"{_f(r['sweep_steps'], ',.0f')} | {_f(r['sweep_wall_s'], '.1f')} | "
                        f"{_f(r['cost_steps'], ',.0f')} | {_f(r['cost_runs'])}× | "
                        f"{fails} |")  # fmt: skip
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
    peers = [p for p in pickers if p != "lrpilot" and agg[p]["median"] is not None
             and p not in LR_FREE | SEARCHES]  # fmt: skip
    beats = all(me["median"] < agg[p]["median"] and me["max"] < agg[p]["max"] for p in peers)
    others = [p for p in pickers if p in LR_FREE | SEARCHES and agg[p]["median"] is not None]
    beats_others = all(me["median"] < agg[p]["median"] and me["max"] < agg[p]["max"]
                       for p in others)  # fmt: skip
    per_task = []
    for s in summaries:
        r = s["pickers"]["lrpilot"]["regret"]
        limit = 1.0 if "accuracy" in s["grid_metric"] else 2.0
        per_task.append(r is not None and r <= limit)
    yes = {True: "yes", False: "**no**"}
    return [
        f"- lower median and max regret than every range-test peer and the plain default: "
        f"{yes[beats]}",
        f"- (not a target, for context) lower median and max regret than the LR-free "
        f"optimizers and the 20-run Optuna search ({', '.join(others) or 'not run'}): "
        f"{yes[beats_others]}",
        f"- within 1 accuracy point / 2% excess loss on every task: {yes[all(per_task)]}",
        f"- at most 200 sweep steps: {yes[me['max_sweep_steps'] <= 200]} "
        f"({me['max_sweep_steps']:.0f})",
        f"- pick moves by less than 2× over 5 seeds of data order: "
        f"{yes[me['max_spread'] < 2.0]} ({me['max_spread']:.2f}×)",
    ]


def plot(summaries: list[dict], pickers: list[str], path: Path = PLOT) -> None:
    """One panel per task: the oracle grid (mean ± std over seeds) and each picker's picks
    (the LR-free optimizers are left out: their LR is not an LR of this recipe)."""
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
        for i, p in enumerate(p for p in pickers if p not in LR_FREE):  # no LR on this curve
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
        "metric (accuracy points; for the LM and the diamonds regression, percent excess "
        "loss / RMSE). Spread: largest / smallest pick over seeds 0–4. A run that diverges "
        "scores the trivial metric (chance accuracy, 8 bits/byte, the RMSE of predicting the "
        "training mean).",
        "",
        "**% of gap**: regret as a percentage of the gap between the oracle and the trivial "
        "baseline (chance accuracy, 8 bits/byte for the LM, the training-mean RMSE for "
        "diamonds): 0 is the oracle, 100 is a model "
        "that learnt nothing. **Cost**: what a picker spends to deliver one trained model, its "
        "sweep (or search) plus the final run at its pick, in optimizer steps and in wall time "
        "relative to one training run of the recipe (the median over the task's cached "
        "full-length runs; for Optuna, the median of its own trials, timed alongside them, "
        "because wall time on this shared machine drifts between sessions). A range test costs "
        "its sweep plus one run; the default LR 1 run; Prodigy and Schedule-Free one run of "
        "their own optimizer (counted as 1 run: their per-step overhead is not timed); Optuna "
        "20 runs less what diverged trials saved (its best trial is the trained model).",
        "",
        "**LR-free optimizers** (`prodigy`, `schedulefree`) replace the recipe's optimizer (the "
        "SGD recipe's included) at their recommended settings, so their row measures a "
        "different recipe with no LR to tune: Prodigy(lr=1, the recipe's weight decay, "
        "`safeguard_warmup` where the recipe warms up) under the recipe's schedule; "
        "AdamWScheduleFree(lr=0.0025, 5% warmup, the recipe's weight decay) with no schedule. "
        "**Optuna TPE**: for each seed 0–2, a study seeded with it (`TPESampler(seed=k)`) of 20 "
        "full-length runs with that seed's initialisation and data order, over log LR in the "
        "grid's range; the recipe is not retrained at the pick (the best trial is the trained "
        "model, and its metric is the one averaged). It selects on the same validation metric it "
        "is scored on (there is no separate test split, as for the oracle), so its regret is "
        "optimistic by the seed noise of its best of 20 trials. Seeds 3–4 are not searched "
        "(time), so its spread is over seeds 0–2. "
        "**fastai** `valley`/`minimum`: fastai 2.8.12's own `Learner.lr_find` on the recipe "
        "(plain PyTorch loaders wrapped in `DataLoaders`, the recipe's optimizer in "
        "`OptimWrapper`), each picker with its own sweep.",
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
        "Per task: regret as % of the oracle–trivial gap, and cost (steps / × one run):",
        "",
        *_gap_table(summaries, pickers),
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
