"""Draw the schedule gallery of docs/schedules.md: one small PNG per schedule, plus an overview.

    MPLCONFIGDIR=/tmp/mplcfg .venv/bin/python docs/make_gallery.py

Every picture is a text spec over a 1,000-step run, drawn with ``lrpilot.schedules.plot``.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from lrpilot import schedules as S

STEPS = 1000
DPI = 72
OUT = Path(__file__).parent / "img"

GALLERY: dict[str, str] = {
    "constant": "constant",
    "step": "step(every=0.3, gamma=0.1)",
    "multistep": "multistep(milestones=[0.5, 0.75], gamma=0.1)",
    "exp": "exp(gamma=0.997)",
    "poly": "poly(power=2, min=0.01)",
    "linear": "linear(end=0.01)",
    "cosine": "cosine(min=0.01)",
    "restarts": "restarts(0.1, mult=2, min=0.01)",
    "cyclic_triangular": "cyclic(period=0.2, mode=triangular)",
    "cyclic_triangular2": "cyclic(period=0.2, mode=triangular2)",
    "cyclic_exp_range": "cyclic(period=0.2, mode=exp_range, gamma=0.998)",
    "onecycle": "onecycle(pct=0.3)",
    "onecycle_three_phase": "onecycle(pct=0.3, anneal=linear, three_phase=true)",
    "warmup_cosine": "warmup(0.05)+cosine(min=0.01)",
    "warmup_exp": "warmup(0.1, mode=exp)+constant",
    "invsqrt": "warmup(100)+invsqrt",
    "wsd": "wsd(warmup=0.05, decay=0.2)",
    "wsd_sqrt": "wsd(warmup=0.05, decay=0.2, shape=sqrt)",
    "join": "warmup(0.05)+constant(steps=0.45)+exp(gamma=0.995)",
}


def draw_one(name: str, spec: str) -> Path:
    fig = Figure(figsize=(4.0, 2.4), layout="constrained")
    ax = fig.subplots()
    S.plot(S.parse_schedule(spec, total_steps=STEPS), STEPS, ax=ax)
    ax.set_title(spec, fontsize=8, family="monospace")
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("× peak LR", fontsize=8)
    ax.tick_params(labelsize=7)
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=DPI)
    return path


def draw_overview(specs: dict[str, str], path: Path, cols: int = 4) -> None:
    rows = -(-len(specs) // cols)
    fig = Figure(figsize=(3.0 * cols, 1.9 * rows), layout="constrained")
    for ax, spec in zip(fig.subplots(rows, cols).flat, specs.values(), strict=False):
        S.plot(S.parse_schedule(spec, total_steps=STEPS), STEPS, ax=ax)
        ax.set_title(spec, fontsize=7, family="monospace")
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=6)
    for ax in fig.axes[len(specs) :]:
        ax.set_visible(False)
    fig.savefig(path, dpi=DPI)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, spec in GALLERY.items():
        print(draw_one(name, spec))
    overview = OUT / "gallery.png"
    draw_overview(GALLERY, overview)
    print(overview)


if __name__ == "__main__":
    main()
