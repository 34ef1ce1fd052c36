"""The training monitor: detects what goes wrong in a run, acts, and says what it did.

:class:`Monitor` watches the training loss, the gradient norm and the validation metric. It detects
a non-finite loss or gradient, a loss spike against its running median (median/MAD, not a fixed
threshold; two bad steps in a row, as one alone may be an outlier batch, or twelve where the run
was learning and the loss stays below its start: such a spike often settles), exploding gradient
norms, a stalled loss that stays at its start at full LR while the weights move (a network the LR
knocked out, or a loss bouncing around its start: too high, not too low), the run's own divergence
stop about to fire, sustained oscillation, a plateau of the validation metric or of the training
loss at a steady LR, overfitting (validation worsening while training improves), progress so slow
that the LR is likely too low (a note), and a loss that rose over the first ``slow_after`` of the
run instead of falling, with the weights moving (too high). The stall and the rise need evidence
beyond the batches' noise (``EVIDENCE_Z``). It acts: it rolls back to the last good snapshot
(model, optimizer, schedule position, LR scale, RNGs) and cuts the LR (by 10 after a divergence,
then by its root, from the LR that failed when a warmup had not reached its peak; by half after a
spike in a run that was learning), a bounded number of times and never below a floor; it reduces
the LR on a plateau (:class:`~lrpilot.ReduceOnPlateau` on the metric, a cut by ``plateau_factor``
on the training loss); on request (``clip=``) it clips gradients adaptively from the norms observed
(ZClip's z-score, or AutoClip's percentile) and says when more than half the steps are clipped (the
LR is then too high, and it is cut); it stops early and restores the best weights. Every event is
one plain sentence with the step, the reason and the action, printed as it happens (``quiet=True``
silences it), kept in ``monitor.events``, added to :attr:`RunResult.events <lrpilot.RunResult>`
and, with ``log=PATH``, appended to a JSON-lines file.

With :func:`lrpilot.train`::

    run = lrpilot.train(task, lr, callbacks=[lrpilot.Monitor()])

In a plain loop (three lines: create, feed it the loss after ``backward()``, obey)::

    monitor = lrpilot.Monitor().watch(model, optimizer, scheduler)
    for x, y in loader:
        loss = loss_fn(model(x), y)
        loss.backward()
        answer = monitor.step(loss)        # may roll back and cut the LR
        if answer.apply:
            optimizer.step()
            scheduler.step()
        optimizer.zero_grad()
        if answer.stop:
            break

and after each validation, ``if monitor.evaluate(metric).stop: break`` (higher is better).

Under ``torch.distributed`` every decision is taken on all ranks together: the loss, gradient
norm and metric the detectors read are all-reduced (averaged; a NaN on any rank is a NaN on
all), so every rank rolls back, cuts and stops at the same step.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrpilot import _validate as check
from lrpilot._dist import all_mean, world_size
from lrpilot._state import SpilledSnapshot, TrainingSnapshot, take_snapshot
from lrpilot.control._detectors import (
    LossPlateau,
    SpikeDetector,
    ZClip,
    declining,
    median_error,
    oscillating,
    overfitting,
    plateaued,
    relative_rise,
    too_slow,
)
from lrpilot.control.callbacks import Action, Callback, EvalInfo, GradInfo, RunInfo, StepInfo
from lrpilot.control.divergence import _exceeds
from lrpilot.control.plateau import ReduceOnPlateau
from lrpilot.errors import ConfigError

__all__ = ["Answer", "Monitor"]

LOSS_SCALE_SHARE = 0.1
"""A loss spike, or an oscillation's swing, must be at least this share of the run's first
loss to act on: near convergence the batch-to-batch noise of a tiny loss is large relative to
it and harmless."""
CLIP_WINDOW = 100
"""Steps over which the clipped share is judged (the playbook's "> 50 % clipped")."""
SNAPSHOT_PLACES = ("memory", "cpu", "disk")
"""Where a monitor keeps its snapshots (``Monitor(snapshots=...)``)."""
HOT_SHARE = 0.5
"""A step counts towards a stall only at an LR at least this share of the run's peak (its
scheduled peak times the monitor's cuts): a warmup's first steps, at a tiny LR, may leave the
loss flat without the LR being too high, and so may the tail of a decay."""
STALL_DROP = 0.02
"""The loss "has progressed" once its median over 10 steps is this share of its first value's
magnitude below it (:func:`_below_start`)."""
EVIDENCE_Z = 2.0
"""How many standard errors a loss-level comparison must clear before the monitor acts or
speaks on it: the stall's (the window's median above :func:`_below_start`) and
the rise's, the loss higher in the last window than in the first at ``slow_after`` (a note
that the LR is too low stays an advisory reading of a small drop, noise or not). Both read
medians of noisy batch losses; the spread of the batches, ``MAD_TO_SIGMA`` times their median
absolute deviation, gives each median's error (``sqrt(pi / 2n)`` times the spread), and the
stall's one-batch start is as noisy as a batch. A network knocked out to chance sits 2.3-4.4
of them above its start (mnist1d_conv at 10x its best LR); a loss as noisy as MovieLens' sits
within 1.3 of them whether the LR is 10x too high or the best (Adam at its best LR there needs
300 steps to fall 2 %): the loss cannot tell them apart, and acting on it cut MovieLens' long
Adam runs at their best LR to a hundredth."""
MOVE_FLOOR = 1e-4
"""A stalled loss is blamed on an LR too high only when the weights move: at least this
relative change per step, ``|w - w'| / |w'|`` over 5 steps. Healthy updates are about 1e-3 of
the weights (Karpathy's update-to-weight rule of thumb); an LR too high moves them more, while
one 100x too low leaves the loss flat with the weights all but still (1e-6 on a small MLP:
2e-6 a step), and cutting it further would be the wrong way."""
LOSS_PLATEAU_BLOCKS = 20
"""A run whose length is known is read in blocks of a twentieth of it (at least ``window``
steps) for a plateau of the training loss; a plain loop, in blocks of ``2 * window``."""
LOSS_PLATEAU_DROP = 0.005
"""A block of the training loss improves when its median is this share below the best block's.
At the best LR of a 2,000-step constant-LR GRU the loss still falls about 1 % a block late in
the run; at 4.6x and 10x that LR it has stopped by 500 and 300 steps."""
CREEP_DROP = 0.0025
"""A loss "still falling" (:func:`~lrpilot.control._detectors.declining`) drops by this share
between the halves of the last window (about 0.5 % a window): a slow but real descent, an LR
too low, passes; a knocked-out network creeping towards chance (0.1 % a window on mnist1d_conv)
does not."""


_Probe = tuple[int, torch.Tensor]
"""A copy of the weights and the count of healthy steps when it was taken
(:meth:`Monitor._weights_moved`)."""


def _below_start(first: float) -> float:
    """The level a loss must fall under to count as progressed from its ``first`` value:
    :data:`STALL_DROP` of the first value's magnitude below it (``(1 - STALL_DROP) * first``
    for a positive loss; the same margin for one below zero, such as a continuous negative
    log-likelihood, where that product would lie above the start)."""
    return first - STALL_DROP * abs(first)


GAVE_UP = "gave up after"
"""How a stop after the last allowed rollback reads (``"...; gave up after 6 rollbacks"``):
the report's "finished" check tells it from an early stop that restored the best weights."""


@dataclass(frozen=True)
class Answer:
    """What the monitor asks of a plain training loop after :meth:`Monitor.step` or
    :meth:`Monitor.evaluate`.

    Attributes:
        apply: Call ``optimizer.step()`` now (False after a non-finite loss, a spike or a
            rollback: the gradients in hand must not be applied).
        stop: End training (early stop: the best weights are already back in the model).
        rolled_back: The model and optimizer were put back to the last good snapshot.
        skip_batches: Batches to draw and discard before the next step.
        lr_factor: The factor the LR was multiplied by (``None``: unchanged).
        reason: The event's sentence, ``""`` when nothing happened.
    """

    apply: bool = True
    stop: bool = False
    rolled_back: bool = False
    skip_batches: int = 0
    lr_factor: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class _Decision:
    """What the detectors concluded at one step or evaluation."""

    kind: str
    reason: str
    rollback: bool = False
    lr_factor: float | None = None
    stop: bool = False
    restore_best: bool = False
    skip_step: bool = False
    snapshot: bool = False
    silent: bool = False
    lrs: tuple[float, float] | None = None
    back_to: int | None = None

    @property
    def acts(self) -> bool:
        """Whether the run must change (not only a note in the events)."""
        return self.rollback or self.lr_factor is not None or self.stop or self.snapshot


class Monitor(Callback):
    """Watch a run, act when it goes wrong, and say what was done.

    Every argument is keyword-only and has a default that works untouched; ``None`` (or 0
    where said) turns a detector off.

    Args:
        window: Steps in the running statistics of the loss and the gradient norm.
        spike_z: A loss this many robust sigmas (``1.4826 * MAD``) above its running median...
        spike_ratio: ...and this many times the median is a spike: roll back and cut the LR.
        explode_ratio: A gradient norm this many times its running median (and ``spike_z``
            sigmas above it) is exploding: roll back and cut the LR. ``None``: off. A step
            whose gradient the recipe's own clipping bounded (``Task(grad_clip=...)`` in
            ``lrpilot.train``) is not judged on its norm: its update is already bounded, and
            its loss says whether it hurt (a noisy binary task's one bad batch, its norm
            clipped from 30x the median, was rolled back to step 0 with the LR cut 10x).
        patience: Bad steps in a row (a non-finite loss or gradient, or a spike or an
            exploding norm that takes the loss back above the run's first) before a rollback.
            One alone is an outlier batch: ``lrpilot.train`` never applies a non-finite one,
            a plain loop gets ``apply=False``.
        spike_patience: Bad steps in a row (a loss spike, an exploding gradient norm) before
            a rollback where the run was learning and the loss stays below its first value:
            such a spike often settles by itself within a few steps, and its steps are applied.
            Gradient norms of healthy runs at their best LR reach 30-46x their running median
            (the diamonds MLP, with SGD and AdamW): no threshold tells an outlier batch from
            them, so a lone large gradient is not acted on unless it throws the loss back above
            its start (``clip=`` or ``Task(grad_clip=...)`` bound it, on request). Why: SGD
            at its best LR on the diamonds MLP spikes to 10-25x its running median for 5-8
            steps and comes back lower (the "catapult" of a large LR, Lewkowycz et al. 2020);
            clipping the gradient that starts it ended seed 1's runs 10-28 % worse in
            validation RMSE than leaving them alone over 8 data orders, and rolling back on
            its second step 13 % worse. A spike that persists this long, or goes back above
            the start, is acted on.
        lr_factor: The LR cut at each rollback after a spike, an oscillation, or a too-high
            clipped share: the run was healthy at this LR, a halving is enough.
        diverge_factor: The LR cut at the first rollback after a divergence (a spike that
            takes the loss back above its start, a non-finite loss right after one, a stall,
            or the run's own divergence detector about to stop it); each later one cuts by
            its square root.
            Why: an LR that diverges is past the divergence edge, and the edge of a range test
            typically lies 3-10x above the best LR (Smith 2017; fastai's "the minimum's LR
            over 10"), so halving settles just below the cliff, still several times too hot.
            Cutting by 10 from an LR at or a little past the edge lands in that band; a run
            that diverges again was further past it, and the square root (10^-0.5) bisects,
            in log-LR, the decade the first cut jumped.
        max_rollbacks: Rollbacks allowed in a run; one more stops it at its last good state.
        min_lr_factor: The floor of the monitor's cuts, as a fraction of the starting LR.
        snapshot_every: Healthy steps between snapshots (a snapshot is taken only when no
            anomaly was seen over that many steps and the median loss over the last
            ``window`` steps since the last rollback has fallen below its start, so it is
            "good"; until then a rollback returns to the start).
        skip_batches: Batches to skip after a rollback (``lrpilot.train`` does not rewind the
            data, so the batches that led into the spike are already behind; PaLM skipped
            200 to 500 more).
        oscillation_window: Steps of sustained up-down loss swings (no progress) before the
            LR is cut; 0: off.
        clip: ``"zscore"`` (ZClip: EMA mean + ``clip_z`` std of the norms), ``"percentile"``
            (AutoClip: the ``clip_percentile``-th percentile of the norms seen) or ``None``
            (the default). Why off by default: at their best LRs, ZClip at ``clip_z=2.5``
            clipped 0.5-5 % of the steps of healthy runs and moved their results more than a
            data order does, more often for the worse (``benchmarks/RESULTS.md``, the monitor's
            section: a long AdamW MLP 18 % worse, an SGD LSTM 3.7 accuracy points); the spike,
            explosion and divergence rules still catch a run that goes wrong. A recipe that
            needs clipping (an RNN) gets it from ``Task(grad_clip=...)``, which the advice
            and the lint ask for.
        clip_z, clip_percentile, clip_warmup: The clipping rule's settings.
        clip_too_high: A clipped share above this over the last 100 steps means the LR is too
            high: say so and cut it (``None``: never act on it).
        plateau_patience: Evaluations without improvement before the LR is cut by
            ``plateau_factor`` (:class:`~lrpilot.ReduceOnPlateau`); ``None``: off.
        plateau_factor: The cut on a plateau, of the metric or of the training loss.
        loss_plateau_patience: Blocks (a twentieth of the run each) of the training loss, at
            a steady LR, that do not improve on the best block by ``LOSS_PLATEAU_DROP``
            before the LR is cut by ``plateau_factor``; ``None``: off. Reduce-on-plateau on the
            training loss, for runs evaluated too rarely for the metric's plateau to show: a
            constant LR too high for the later part of a run holds the loss at a floor that a
            lower LR gets under (a character GRU at 10x its best LR stops improving after 15 %
            of its run). Only once the best block lies ``slow_drop`` below the first (a fall,
            then a floor), never where the schedule already moves the LR, after a note that
            the LR is too low, or in the last block, where a cut has nothing left to change.
        overfit_patience: Evaluations of worsening validation metric while the training loss
            falls before an early stop; ``None``: off.
        stop_patience: Evaluations without improvement before an early stop; ``None``: off.
        restore_best: On an early stop, put back the weights of the best evaluation.
        slow_after: Fraction of the run after which the loss must have fallen by
            ``slow_drop`` (relative), or the LR is reported as likely too low (a note, no
            action; only where the run's length is known: ``lrpilot.train``, or a plain loop
            told ``watch(..., steps=)``); ``None``: off. A loss that rose over that stretch
            instead, by more than the batches' noise (``EVIDENCE_Z``), is an LR too high: the
            run is rolled back and the LR cut as after a divergence (a loss bouncing around
            its start may stay within the stall's noise test, which compares the window with
            the one-batch first loss; this one compares the first and last windows).
        slow_drop: See ``slow_after``.
        snapshots: Where the snapshots a rollback returns to are kept: ``"memory"``, beside
            the tensors (the fastest; a GPU model's copy doubles its GPU memory), ``"cpu"``, in
            host memory, or ``"disk"``, in a file under ``snapshot_dir`` (for a model too big
            to hold twice; written at each snapshot, read back only at a rollback). Under
            ``"cpu"`` and ``"disk"`` the best weights for an early stop stay in host memory.
        snapshot_dir: The folder of ``"disk"`` snapshots (default ``$LRPILOT_HOME/snapshots``;
            created readable by the user only). Each run's file is removed when it ends.
        quiet: Do not print events.
        log: A JSON-lines file to append every event to (created readable by the user only).
    """

    def __init__(
        self,
        *,
        window: int = 50,
        spike_z: float = 6.0,
        spike_ratio: float = 1.5,
        explode_ratio: float | None = 10.0,
        patience: int = 2,
        spike_patience: int = 12,
        lr_factor: float = 0.5,
        diverge_factor: float = 0.1,
        max_rollbacks: int = 6,
        min_lr_factor: float = 1e-3,
        snapshot_every: int = 25,
        skip_batches: int = 0,
        oscillation_window: int = 30,
        clip: str | None = None,
        clip_z: float = 2.5,
        clip_percentile: float = 90.0,
        clip_warmup: int = 25,
        clip_too_high: float | None = 0.5,
        plateau_patience: int | None = 5,
        plateau_factor: float = 0.5,
        loss_plateau_patience: int | None = 3,
        overfit_patience: int | None = 3,
        stop_patience: int | None = None,
        restore_best: bool = True,
        slow_after: float | None = 0.25,
        slow_drop: float = 0.02,
        snapshots: str = "memory",
        snapshot_dir: str | Path | None = None,
        quiet: bool = False,
        log: str | Path | None = None,
    ) -> None:
        self.window = check.whole("window", window, 4)
        self.spike_z = check.real("spike_z", spike_z, 0.0, open_low=True)
        self.spike_ratio = check.real("spike_ratio", spike_ratio, 1.0)
        self.explode_ratio = check.optional_real("explode_ratio", explode_ratio, 1.0)
        self.patience = check.whole("patience", patience, 1)
        self.spike_patience = check.whole("spike_patience", spike_patience, 1)
        self.lr_factor = check.real(
            "lr_factor", lr_factor, 0.0, 1.0, open_low=True, open_high=True
        )
        self.diverge_factor = check.real(
            "diverge_factor", diverge_factor, 0.0, 1.0, open_low=True, open_high=True
        )
        self.max_rollbacks = check.whole("max_rollbacks", max_rollbacks, 0)
        self.min_lr_factor = check.real("min_lr_factor", min_lr_factor, 0.0, 1.0, open_low=True)
        self.snapshot_every = check.whole("snapshot_every", snapshot_every, 1)
        self.skip_batches = check.whole("skip_batches", skip_batches, 0)
        self.oscillation_window = check.whole("oscillation_window", oscillation_window, 0)
        self.clip = None if clip is None else check.choice("clip", clip, ("zscore", "percentile"))
        self.clip_z = check.real("clip_z", clip_z, 0.0, open_low=True)
        self.clip_percentile = check.real("clip_percentile", clip_percentile, 0.0, 100.0)
        self.clip_warmup = check.whole("clip_warmup", clip_warmup, 1)
        self.clip_too_high = check.optional_real("clip_too_high", clip_too_high, 0.0, 1.0)
        self.plateau_patience = _optional_whole("plateau_patience", plateau_patience)
        self.plateau_factor = check.real(
            "plateau_factor", plateau_factor, 0.0, 1.0, open_low=True, open_high=True
        )
        self.loss_plateau_patience = _optional_whole(
            "loss_plateau_patience", loss_plateau_patience, 1
        )
        self.overfit_patience = _optional_whole("overfit_patience", overfit_patience, 1)
        self.stop_patience = _optional_whole("stop_patience", stop_patience, 1)
        self.restore_best = check.boolean("restore_best", restore_best)
        self.slow_after = check.optional_real("slow_after", slow_after, 0.0, 1.0, open_low=True)
        self.slow_drop = check.real("slow_drop", slow_drop, 0.0)
        self.snapshots = check.choice("snapshots", snapshots, SNAPSHOT_PLACES)
        self.snapshot_dir = None if snapshot_dir is None else Path(snapshot_dir)
        self.quiet = check.boolean("quiet", quiet)
        self.log = None if log is None else Path(log)
        self.events: list[dict[str, Any]] = []
        self._controls: _Controls | None = None
        self._label: int | None = None  # a framework's own step, for the events (see below)
        self._reset(total=None)

    # ---- state -----------------------------------------------------------------------------

    def _reset(self, total: int | None) -> None:
        """Forget everything about the previous run."""
        self.events = []
        self._total = total
        self._step = 0
        self._losses = SpikeDetector(
            window=self.window,
            z=self.spike_z,
            ratio=self.spike_ratio,
            early_ratio=3.0,
            min_excess=LOSS_SCALE_SHARE,
        )
        ratio = self.explode_ratio if self.explode_ratio is not None else math.inf
        self._norms = SpikeDetector(window=self.window, z=self.spike_z, ratio=ratio)
        self._zclip = ZClip(
            mode=self.clip or "zscore",
            z=self.clip_z,
            percentile=self.clip_percentile,
            warmup=self.clip_warmup,
        )
        self._clipped: deque[bool] = deque(maxlen=CLIP_WINDOW)
        self._clip_cooldown = 0
        self._recent: deque[float] = deque(maxlen=max(self.oscillation_window, 1))
        self._history: list[float] = []
        self._bad = 0
        self._healthy = 0
        self._progressed = False  # the loss is below its start (its median over 10 steps)
        self._since = 0  # healthy steps since the last rollback
        self._peak = -math.inf  # the highest loss of the run
        self._rollbacks = 0
        self._hot_cuts = 0  # rollbacks cut by diverge_factor (or its root)
        self._hot_steps = 0  # healthy steps at HOT_SHARE of the peak LR since the last restart
        self._peak_lr = math.nan  # the run's peak LR (lrpilot.train), or the highest seen
        self._run_peak = False  # _peak_lr is the scheduled peak (lrpilot.train), not the max
        self._top_lr = 0.0  # the hottest LR applied since the start or the last rollback
        self._div_first = math.nan  # the run's divergence detector's first smoothed loss
        self._div_best = math.inf  # and its lowest
        self._div_threshold = math.nan  # and its growth threshold (lrpilot.train's default)
        self._distributed = False
        self._probe: _Probe | None = None  # (step, weights) of a stall
        self._model: nn.Module | None = None
        self._scale = 1.0
        self._snap_scale = 1.0
        self._snap_step = 0
        self._snap_label = 0  # the snapshot's step as the events name it
        self._snap_lr = math.nan
        self._lr = math.nan
        self._ema: float = math.nan
        self._vals: list[float] = []
        self._train_at_eval: list[float] = []
        self._best: float = -math.inf
        self._best_step = 0
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._plateau = ReduceOnPlateau(
            mode="max",
            factor=self.plateau_factor,
            patience=self.plateau_patience or 0,
            min_scale=self.min_lr_factor,
        )
        self._plateau_state = self._plateau.init()
        self._loss_plateau = self._new_loss_plateau()
        self._slow_checked = False
        self._rose: str | None = None  # a rise found, judged once the weights' move is known
        self._rise_probe: _Probe | None = None
        self._said_too_low: int | None = None  # the step of a note that the LR is too low
        self._stopped = False  # after a stop, the run's final evaluation is only recorded
        self._place: str | Path | None = None

    @property
    def clipped_share(self) -> float:
        """The share of applied steps whose gradient was clipped (0 before any)."""
        seen = self._zclip.seen
        return self._zclip.clipped / seen if seen else 0.0

    @property
    def lr_scale(self) -> float:
        """The product of the monitor's LR cuts still in force (1.0: none)."""
        return self._scale

    def to_dict(self) -> dict[str, Any]:
        """What the monitor did in the run, as plain data."""
        return {
            "rollbacks": self._rollbacks,
            "lr_scale": self._scale,
            "clipped": self._zclip.clipped,
            "clip_steps": self._zclip.seen,
            "clipped_share": self.clipped_share,
            "best_metric": self._best if math.isfinite(self._best) else None,
            "best_step": self._best_step if math.isfinite(self._best) else None,
            "events": [dict(e) for e in self.events],
        }

    # ---- lrpilot.train callback --------------------------------------------------------------

    def on_run_start(self, info: RunInfo) -> Action | None:
        """Reset; ask for the run's first snapshot where ``snapshots`` says."""
        self._reset(total=info.steps)
        self._model = info.model
        self._distributed = _distributed()
        # the first group's scheduled peak: the LR the steps report is that group's, which
        # under discriminative LRs may be a fraction of the head's (info.lr)
        first = info.optimizer.param_groups[0] if info.optimizer.param_groups else {}
        self._peak_lr, self._run_peak = float(first.get("initial_lr", info.lr)), True
        from lrpilot.train import RUN_DIVERGENCE

        self._div_threshold = RUN_DIVERGENCE.threshold or math.nan
        self._place = self._new_place()
        if self._place is None:
            return None
        return Action(snapshot=True, snapshot_to=self._place)  # the run's first, off-device

    def _new_place(self) -> str | Path | None:
        """Where this run's snapshots go (:attr:`Action.snapshot_to`): a new file for
        ``"disk"``, so that runs in parallel never share one."""
        if self.snapshots == "memory":
            return None
        if self.snapshots == "cpu":
            return "cpu"
        from lrpilot.history import home

        folder = self.snapshot_dir if self.snapshot_dir is not None else home() / "snapshots"
        return folder / f"snapshot-{os.getpid()}-{uuid.uuid4().hex[:12]}.pt"

    def on_before_optimizer_step(self, info: GradInfo) -> None:
        """Clip the step's gradients to the adaptive threshold, with the norm the loop measured
        (it gives none when the task's own clipping has just rescaled them)."""
        if self.clip is not None:
            self._clip_grads(info.grads, info.grad_norm)

    def on_step(self, info: StepInfo) -> Action | None:
        """Judge the step just taken; an :class:`Action` when something must be done."""
        if self._distributed:
            loss, norm = all_mean(info.loss, info.grad_norm)
        else:
            loss, norm = info.loss, info.grad_norm
        decision = self._observe(
            info.step,
            loss,
            norm,
            info.lr,
            applied=not info.skipped,
            diverging=self._run_diverging(info.smoothed),
            bounded=info.clipped,
        )
        return None if decision is None else self._as_action(decision, info.step)

    def _run_diverging(self, smoothed: float) -> str | None:
        """The reason when ``lrpilot.train``'s own divergence detector fires on this step
        (its smoothed loss past ``RUN_DIVERGENCE``'s threshold times its start, the rule of
        :class:`~lrpilot.DivergenceDetector` with ``reference="start"``), else ``None``.

        ``train`` shows its callbacks that step before it stops the run, and a rollback then
        rescues it; but the monitor's own rules wait ``patience`` bad steps, so a run whose
        smoothed loss crossed the line first was stopped before the monitor acted. Reading
        the smoothed loss ``train`` passes lets the monitor roll back on the very step.
        A custom detector given to ``train`` is not mirrored: only the default's threshold.
        """
        if not math.isfinite(smoothed):
            return None
        self._div_best = min(self._div_best, smoothed)
        if math.isnan(self._div_first):
            self._div_first = smoothed
            return None
        first, threshold = self._div_first, self._div_threshold
        if not math.isfinite(threshold):
            return None
        if not _exceeds(smoothed, first, threshold, first, self._div_best):
            return None
        how_far = f"passed {threshold:g}x" if first > 0 else "rose far above"
        return (
            f"the smoothed loss {smoothed:.4g} {how_far} its start ({first:.4g}): "
            "the run's divergence stop would end it"
        )

    def on_eval(self, info: EvalInfo) -> Action | None:
        """Judge a validation metric; restores the best weights itself before an early stop."""
        (metric,) = all_mean(info.metric)
        decision = self._observe_eval(info.step, metric, info.model)
        if decision is None:
            return None
        if decision.restore_best:
            self._put_back_best(info.model)
        return self._as_action(decision, info.step)

    def on_run_end(self, result: Any) -> None:
        """Add the monitor's own notes and a clipping summary to the run's events (its actions
        are there already, recorded by the loop)."""
        if self.clip is not None and self._zclip.seen:
            self._note(
                self._step,
                "clipping",
                f"clipped {self._zclip.clipped} of {self._zclip.seen} steps "
                f"({100 * self.clipped_share:.1f}%, {self.clip} rule)",
            )
        events = getattr(result, "events", None)
        if isinstance(events, list):
            events.extend(
                {"step": e["step"], "kind": "monitor", "message": e["message"]}
                for e in self.events
                if not e["acted"]
            )  # after the loop's own, each at the step where it happened

    def _as_action(self, decision: _Decision, step: int) -> Action | None:
        message = self._record(decision, step)[0]
        if not decision.acts:
            return None
        return Action(
            stop=decision.stop,
            lr_factor=decision.lr_factor,
            snapshot=decision.snapshot,
            snapshot_to=self._place if decision.snapshot else None,
            rollback=decision.rollback,
            skip_batches=self.skip_batches if decision.rollback else 0,
            reason=message,
        )

    # ---- plain loop ----------------------------------------------------------------------------

    def watch(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *schedulers: Any,
        steps: int | None = None,
    ) -> Monitor:
        """Watch a plain training loop's ``model`` and ``optimizer`` (and the schedulers that
        drive it, so that an LR cut or a rollback reaches them); takes the first snapshot.

        Args:
            model: The model trained.
            optimizer: Its optimizer.
            *schedulers: The LR schedulers that drive ``optimizer``.
            steps: The run's length in optimizer steps, when known: the slow-progress note
                needs it, and the training loss's plateau is judged in twentieths of it
                (without it, in blocks of ``2 * window`` steps).

        Returns:
            The monitor itself, for ``monitor = Monitor().watch(model, optimizer)``.
        """
        if not isinstance(model, nn.Module):
            raise check.ArgError("model", model, "a torch nn.Module")
        if not isinstance(getattr(optimizer, "param_groups", None), list):
            raise check.ArgError("optimizer", optimizer, "a torch optimizer")
        total = None if steps is None else check.whole("steps", steps, 1)
        self._reset(total=total)
        self._model = model
        self._place = self._new_place()
        self._controls = _Controls(model, optimizer, list(schedulers), self._place)
        self._controls.snapshot()
        return self

    def step(self, loss: float | torch.Tensor, grad_norm: float | None = None) -> Answer:
        """Feed one step's loss after ``backward()`` and before ``optimizer.step()``.

        Measures the gradient norm (unless given), judges the step, and does what is needed:
        a rollback, an LR cut, adaptive clipping of the gradients in hand. Obey the answer:
        call ``optimizer.step()`` only when ``answer.apply``, stop when ``answer.stop``.
        """
        controls = self._need_controls("step")
        grads = controls.grads()
        local = _scalar_loss(loss)
        own = _global_norm(grads) if grad_norm is None else float(grad_norm)
        value, norm = all_mean(local, own)
        lr = float(controls.optimizer.param_groups[0]["lr"])
        step = self._step + 1
        decision = self._observe(step, value, norm, lr, applied=math.isfinite(value + norm))
        if decision is None or not (decision.skip_step or decision.rollback):
            if self.clip is not None and math.isfinite(value + norm):
                self._clip_grads(grads, own if grad_norm is None else None)  # own: measured
        return self._carry_out(decision, step)

    def _measure_and_clip(self) -> float:
        """For a framework's hook right before ``optimizer.step()`` (Lightning's
        ``on_before_optimizer_step``, the HF Trainer's ``on_pre_optimizer_step``): the gradient
        norm before clipping, after clipping the gradients adaptively."""
        grads = self._need_controls("_measure_and_clip").grads()
        norm = _global_norm(grads)
        if self.clip is not None and math.isfinite(norm):
            self._clip_grads(grads, norm)
        return norm

    def _judge_applied(
        self, loss: float, grad_norm: float, *, applied: bool = True, bounded: bool = False
    ) -> Answer:
        """For a framework's hook right after ``optimizer.step()``: judge the step the
        framework already applied, and act (a rollback undoes it, a NaN included).
        ``applied=False``: the framework skipped the step itself (a ``GradScaler`` that found
        an inf): a non-finite one is then only counted, as :meth:`step` does, and rolled back
        after ``patience`` in a row. ``bounded``: the framework's own clipping bounded this
        step's update (its norm, measured before, is not judged)."""
        controls = self._need_controls("_judge_applied")
        value, norm = all_mean(float(loss), float(grad_norm))
        lr = float(controls.optimizer.param_groups[0]["lr"])
        step = self._step + 1
        decision = self._observe(step, value, norm, lr, applied=applied, bounded=bounded)
        return self._carry_out(decision, step)

    @contextmanager
    def _framework_step(self, step: int) -> Iterator[None]:
        """Name the events recorded inside by a framework's own step (the HF Trainer's
        ``global_step``, Lightning's): a rollback rewinds the monitor's count of kept steps,
        not the framework's, and events must match the framework's logs."""
        self._label = int(step)
        try:
            yield
        finally:
            self._label = None

    def _shown(self, step: int) -> int:
        """The step an event names: the framework's inside :meth:`_framework_step`."""
        return step if self._label is None else self._label

    def evaluate(self, metric: float | torch.Tensor) -> Answer:
        """Feed a validation metric (higher is better). On an early stop the best weights are
        put back before the answer (``answer.stop``) comes."""
        self._need_controls("evaluate")
        (value,) = all_mean(float(metric))
        model = self._controls.model if self._controls is not None else self._model
        assert model is not None  # watch() set it
        decision = self._observe_eval(self._step, value, model)
        if decision is not None and decision.restore_best:
            self._put_back_best(model)
        return self._carry_out(decision, self._step)

    def _need_controls(self, what: str) -> _Controls:
        if self._controls is None:
            raise ConfigError(
                f"Monitor.{what}() is for a plain loop: call monitor.watch(model, optimizer) "
                "first (with lrpilot.train, pass the monitor in callbacks= instead)."
            )
        return self._controls

    def _carry_out(self, decision: _Decision | None, step: int) -> Answer:
        """Do in a plain loop what ``lrpilot.train`` does with an :class:`Action`."""
        if decision is None:
            return Answer()
        controls = self._need_controls("step")
        message = self._record(decision, step)[1]
        if decision.rollback:
            controls.rollback()
        if decision.lr_factor is not None:
            controls.scale_lr(decision.lr_factor)
        if decision.snapshot:
            controls.snapshot()
        skip = self.skip_batches if decision.rollback else 0
        return Answer(
            apply=not (decision.skip_step or decision.rollback),
            stop=decision.stop,
            rolled_back=decision.rollback,
            skip_batches=skip,
            lr_factor=decision.lr_factor,
            reason=message,
        )

    # ---- the decisions ---------------------------------------------------------------------

    def _observe(
        self,
        step: int,
        loss: float,
        norm: float,
        lr: float,
        *,
        applied: bool,
        diverging: str | None = None,
        bounded: bool = False,
    ) -> _Decision | None:
        """Every step-level detector, in order of severity; the first that fires decides.
        ``bounded``: the recipe's clipping bounded this step's update (its norm is not
        judged)."""
        self._step = step
        if math.isnan(self._snap_lr):
            self._snap_lr = lr
        self._lr = lr
        self._top_lr = max(self._top_lr, lr)
        if not self._run_peak and not lr <= self._peak_lr:  # a plain loop: the highest seen
            self._peak_lr = lr
        if self._clip_cooldown:
            self._clip_cooldown -= 1
        bad = self._bad_step(loss, norm, bounded=bounded)
        if diverging is not None:
            return self._roll_back(diverging, "diverged", hot=True)
        if bad is not None:
            first = self._losses.first
            last = loss if math.isfinite(loss) else (self._history or [math.inf])[-1]
            hot = not math.isfinite(first) or last - first > LOSS_SCALE_SHARE * abs(first)
            return self._on_bad(*bad, applied=applied, hot=hot)
        self._bad = 0
        self._healthy += 1
        self._since += 1
        if lr >= HOT_SHARE * self._peak_lr * (self._scale if self._run_peak else 1.0):
            self._hot_steps += 1
        self._ema = loss if math.isnan(self._ema) else 0.9 * self._ema + 0.1 * loss
        self._history.append(loss)
        plateau = self._loss_plateau.update(loss, lr) if self.loss_plateau_patience else None
        return (
            self._check_stalled()
            or self._check_oscillation(loss)
            or self._check_clipping(applied)
            or self._check_slow(step)
            or self._check_loss_plateau(step, plateau)
            or self._maybe_snapshot(step, lr)
        )

    def _bad_step(
        self, loss: float, norm: float, *, bounded: bool = False
    ) -> tuple[str, str] | None:
        """``(reason, kind)`` when this step is non-finite, a loss spike or an exploding
        gradient norm (not for a step whose update clipping ``bounded``: the norm still
        joins the running statistic)."""
        if math.isfinite(loss):
            self._peak = max(self._peak, loss)
        if not math.isfinite(loss):
            return f"loss {loss:.4g} is not finite", "nan"
        if not math.isfinite(norm):
            return f"gradient norm {norm:.4g} is not finite", "nan"
        spike = self._losses.update(loss)
        explode = self._norms.update(norm)
        if spike is not None:
            return spike.describe("loss"), "spike"
        if explode is not None and not bounded:
            return explode.describe("gradient norm"), "exploding"
        return None

    def _on_bad(self, reason: str, kind: str, *, applied: bool, hot: bool) -> _Decision:
        """Skip one severe bad step (non-finite, or above the run's first loss: an outlier
        batch, or the start of a divergence) and roll back after ``patience`` in a row, or at
        once when a non-finite step was applied anyway (a framework's loop: the weights now
        hold NaN). A spike in a run that was learning is applied and waited on for
        ``spike_patience`` steps in a row: it often settles by itself. ``hot``: the step is a
        divergence (a loss back above the run's first by ``LOSS_SCALE_SHARE`` of it, all
        progress undone, or a non-finite one right after such a loss), and the rollback cuts
        by ``diverge_factor``."""
        self._bad += 1
        self._healthy = 0
        if kind == "nan" and applied:
            return self._roll_back(f"{reason} and was applied", kind, hot=hot)
        severe = hot or kind == "nan"
        if self._bad >= (self.patience if severe else max(self.patience, self.spike_patience)):
            streak = f" ({self._bad} bad steps in a row)" if self._bad > 1 else ""
            if hot and kind != "nan":
                streak += ", above the run's first loss"
            return self._roll_back(reason + streak, kind, hot=hot)
        return _Decision(kind, reason, skip_step=severe, silent=kind != "nan")

    def _roll_back(self, reason: str, kind: str, *, hot: bool = False) -> _Decision:
        """Roll back and cut the LR, within the attempts and the floor; else stop there.
        After a divergence (``hot``) the cut is ``diverge_factor``, then its square root."""
        self._healthy, self._bad, self._since = 0, 0, 0  # the peak stays: it blew up once
        self._hot_steps, self._probe, self._rose, self._rise_probe = 0, None, None, None
        self._recent.clear()
        self._loss_plateau = self._new_loss_plateau()
        if self._rollbacks >= self.max_rollbacks:
            self._stopped = True
            return _Decision(
                kind,
                f"{reason}; {GAVE_UP} {self._rollbacks} rollbacks",
                rollback=True,
                stop=True,
                back_to=self._snap_label,
            )
        self._rollbacks += 1
        cut = None
        if hot:
            cut = self.diverge_factor if not self._hot_cuts else math.sqrt(self.diverge_factor)
            cut *= self._short_of_peak()
            self._hot_cuts += 1
        self._top_lr = 0.0
        factor = self._cut(self._snap_scale, cut)
        back_to, before = self._snap_step, self._snap_lr
        shown_back_to = self._snap_label
        self._scale = self._snap_scale * (factor or 1.0)
        # after the loop rolls back and cuts, this state is the new snapshot ("good")
        self._snap_scale, self._snap_lr = self._scale, before * (factor or 1.0)
        self._step = back_to
        if back_to == 0:
            self._progressed = False
            self._forget_trajectory()
        return _Decision(
            kind,
            reason if factor is not None else f"{reason}; the LR is already at its floor",
            rollback=True,
            lr_factor=factor,
            snapshot=True,
            lrs=(before, self._snap_lr) if factor is not None else None,
            back_to=shown_back_to,
        )

    def _short_of_peak(self) -> float:
        """How far below its scheduled peak a run diverged: the hottest LR it applied since the
        start or the last rollback, over the peak in force (1 once it reached the peak, and
        where the peak is not known: a plain loop or a framework's).

        Why: a run that diverges during its warmup proves the LR it had climbed to too hot, not
        only the peak it was heading for, and its schedule will still climb to that peak. A cut
        by ``diverge_factor`` from the peak lands above the LR that already failed when the
        warmup had not passed a tenth of its peak: AdamW at 30x its best LR on mnist1d_conv
        blew up at step 2 of a 10-step warmup, at 0.3 of its peak, and cut by 10 from the
        peak it trained at 3x its best LR, past its cliff. Scaling the cut by this share puts
        the new peak ``diverge_factor`` below the LR that failed. After the peak the default
        cut already does that: the LRs still to come are no higher than the one in force."""
        if not self._run_peak or not self._top_lr > 0:
            return 1.0
        peak = self._peak_lr * self._snap_scale
        if not peak > 0 or self._top_lr >= (1 - 1e-6) * peak:
            return 1.0
        return self._top_lr / peak

    def _forget_trajectory(self) -> None:
        """After a rollback to the start: empty the running windows of the loss and the
        gradient norm and the clipping statistics (the first loss stays, the reference of
        every relative rule). They describe the discarded steps at the hotter LR, not the run
        that starts over: a knocked-out network's tiny gradients would otherwise make a healthy
        restart's first norms look exploding, and clip them."""
        for detector in (self._losses, self._norms):
            detector.values.clear()
            detector.ordered.clear()
        self._zclip = ZClip(
            mode=self.clip or "zscore",
            z=self.clip_z,
            percentile=self.clip_percentile,
            warmup=self.clip_warmup,
        )
        self._clipped.clear()

    def _cut(self, scale: float, factor: float | None = None) -> float | None:
        """The factor that cuts ``scale`` by ``factor`` (default ``lr_factor``) without going
        below the floor; ``None`` when already at the floor."""
        new = max(scale * (factor or self.lr_factor), self.min_lr_factor)
        return new / scale if new < scale * (1 - 1e-9) else None

    def _lower(self, reason: str, kind: str, factor: float | None = None) -> _Decision | None:
        """Cut the LR in place (no rollback), and take the snapshot after the cut."""
        cut = self._cut(self._scale, factor)
        if cut is None:
            return _Decision(kind, f"{reason}; the LR is already at its floor")
        self._scale *= cut
        self._mark_snapshot(self._step, self._lr * cut)
        return _Decision(
            kind, reason, lr_factor=cut, snapshot=True, lrs=(self._lr, self._lr * cut)
        )

    def _check_oscillation(self, loss: float) -> _Decision | None:
        if not self.oscillation_window:
            return None
        self._recent.append(loss)
        if len(self._recent) < self.oscillation_window:
            return None
        window = list(self._recent)
        self._recent.clear()  # non-overlapping windows: one test per window, not per step
        first = self._losses.first
        scale = LOSS_SCALE_SHARE * abs(first) if math.isfinite(first) else 0.0
        if not oscillating(window, scale=scale):
            return None
        return self._lower(
            f"the loss swung up and down for {self.oscillation_window} steps without progress",
            "oscillation",
        )

    def _check_clipping(self, applied: bool) -> _Decision | None:
        if self.clip is None or self.clip_too_high is None or not applied:
            return None
        if len(self._clipped) < CLIP_WINDOW or self._clip_cooldown:
            return None
        share = sum(self._clipped) / len(self._clipped)
        if share <= self.clip_too_high:
            return None
        self._clip_cooldown = CLIP_WINDOW
        self._clipped.clear()
        return self._lower(
            f"{100 * share:.0f}% of the last {CLIP_WINDOW} steps were clipped: the LR is "
            "likely too high",
            "clipping",
        )

    def _check_slow(self, step: int) -> _Decision | None:
        """At ``slow_after`` of the run: a loss that fell by less than ``slow_drop`` is a note
        (the LR is likely too low); one that rose beyond the batches' noise is judged 5 steps
        later (:meth:`_judge_rise`), when the weights' movement is known."""
        if self._rose is not None:
            return self._judge_rise()
        if self.slow_after is None or self._slow_checked or self._total is None:
            return None
        if step < max(self.slow_after * self._total, 4 * self.window // 5):
            return None
        # only what the run did since its last rollback: the steps before were discarded
        history = self._history[-self._since :] if self._since else []
        if len(history) < 4 * self.window // 5:
            return None  # too few steps since a rollback: judged once there are enough
        self._slow_checked = True
        span = (
            f"the {len(history)} steps since the last rollback"
            if self._rollbacks
            else f"the first {step} steps"
        )
        window = max(5, min(self.window, len(history) // 4))
        drop = too_slow(history, window=window, min_drop=self.slow_drop)
        if drop is None:
            return None
        head, tail = history[:window], history[-window:]
        scale = abs(statistics.median(head)) or 1.0  # too_slow's drop is relative to it
        error = math.hypot(median_error(head), median_error(tail)) / scale
        if drop < 0 and -drop <= EVIDENCE_Z * error:
            return None  # within the batches' noise: no evidence that it rose
        if drop < 0:  # a loss that rose says the opposite of an LR too low
            self._rose = f"the loss rose {-100 * drop:.1f}% over {span} instead "
            _, self._rise_probe = self._weights_moved(None)  # the probe the judgement reads
            return None
        self._said_too_low = step
        return _Decision(
            "slow",
            f"the loss fell only {100 * drop:.1f}% over {span}: the LR is likely too low",
        )

    def _judge_rise(self) -> _Decision | None:
        """A loss that rose over the first part of the run: with the weights moving
        (``MOVE_FLOOR``), the LR is too high, so roll back and cut as after a divergence; with
        them all but still, the LR is not to blame and it is only a note."""
        assert self._rose is not None
        if self._rise_probe is not None and self._since - self._rise_probe[0] < 5:
            return None
        rose, self._rose = self._rose, None
        moved, _ = self._weights_moved(self._rise_probe)
        self._rise_probe = None
        if moved is None or moved < MOVE_FLOOR:
            return _Decision(
                "slow",
                f"{rose}of falling, while the weights barely move: not the LR; check the data "
                "and the loss",
            )
        return self._roll_back(
            f"{rose}of falling, beyond the batches' noise, while the weights move: the LR is "
            "likely too high",
            "rose",
            hot=True,
        )

    def _new_loss_plateau(self) -> LossPlateau:
        total = self._total
        block = max(self.window, total // LOSS_PLATEAU_BLOCKS) if total else 2 * self.window
        return LossPlateau(
            block=block, patience=self.loss_plateau_patience or 1, min_drop=LOSS_PLATEAU_DROP
        )

    def _check_loss_plateau(self, step: int, median: float | None) -> _Decision | None:
        """Reduce-on-plateau on the training loss at a steady LR (``loss_plateau_patience``);
        ``median``: the plateaued block's median loss, fed every healthy step in
        :meth:`_observe` so that the blocks stay aligned whatever else decides."""
        detector = self._loss_plateau
        if median is None or self._said_too_low is not None:
            return None
        if not ReduceOnPlateau(threshold=self.slow_drop).is_better(detector.best, detector.first):
            return None  # it never fell: an LR too low, or a stall (their own rules judge it)
        if self._total is not None and step + detector.block > self._total:
            return None
        return self._lower(
            f"the training loss has not improved on {detector.best:.4g} by "
            f"{100 * LOSS_PLATEAU_DROP:g}% for {detector.patience * detector.block} steps at a "
            f"steady LR (median {median:.4g} over the last {detector.block})",
            "loss plateau",
            factor=self.plateau_factor,
        )

    def _check_stalled(self) -> _Decision | None:
        """A loss whose median over the last ``window`` steps at (near) the peak LR is not
        below its start, and is not falling either: a stalled run. Roll back and cut by
        ``diverge_factor`` (to the start when the loss never got below it: no snapshot is
        "good" before that).

        Why too high and not too low: at an LR too low the loss still falls, slowly and
        steadily, which :func:`~lrpilot.control._detectors.declining` tells apart from a loss
        that is flat or bouncing; an LR too high either knocks the network out (it sits at
        chance: mnist1d_conv at 10x its best LR stays at 2.30 nats with 10 classes) or keeps
        the loss bouncing around its start (SGD on a matrix factorisation at 10x), or lets it
        climb back there. Neither spikes, so no other rule fires. Once the run has diverged
        and been cut, its LR is known to be near the edge, and a loss still at its start,
        even creeping down, is taken as still too hot (a knocked-out network creeps towards
        chance). Only steps at ``HOT_SHARE`` of the peak LR count: a warmup's first steps, at
        a tiny LR, are not a stall. And the weights must move (``MOVE_FLOOR``, measured over
        the 5 steps after the loss first looks stalled): a loss left flat by an LR far too low
        is not cut. And the loss must lie above the start by more than the batches' noise
        (``EVIDENCE_Z``): a loss that only looks flat because each batch's loss varies more than
        it falls is no evidence either way."""
        first = self._losses.first
        if self._since % 5 or len(self._history) < 10:
            return None
        below = _below_start(first)
        self._progressed = statistics.median(self._history[-10:]) < below
        if self._progressed or self._hot_steps < self.window:
            return None
        window = self._history[-self.window :]
        level = statistics.median(window)
        if level < below:
            return None
        error = median_error(window) * math.sqrt(1 + 2 * len(window) / math.pi)
        if level - below < EVIDENCE_Z * error:
            return None  # within the batches' noise of the one-batch start: no evidence
        if not self._hot_cuts and declining(window, min_drop=CREEP_DROP):
            return None
        moved, self._probe = self._weights_moved(self._probe)
        if moved is None or moved < MOVE_FLOOR:
            return None
        rise = relative_rise(self._peak, first)
        peak = f"{rise:.3g}x it" if first > 0 else f"{self._peak:.4g}"
        jumped = f", after jumping to {peak}" if rise >= 1.5 else ""
        withdrawn = (
            f" (not too low, as the note at step {self._said_too_low} said: the weights move)"
            if self._said_too_low is not None
            else ""
        )
        self._said_too_low = None
        return self._roll_back(
            f"the loss's median over the last {len(window)} steps, {level:.4g}, is at or "
            f"above its start ({first:.4g}){jumped}"
            f"{'' if self._hot_cuts else ', and is not falling'}: the LR is likely "
            f"too high{withdrawn}",
            "stalled",
            hot=True,
        )

    def _weights_moved(self, probe: _Probe | None) -> tuple[float | None, _Probe | None]:
        """``(rate, probe)``: the weights' relative change per step since ``probe`` was taken
        (``None`` without one; ``inf`` without a model to read), and a new probe to keep in
        its place (the stall's and the rise's are kept apart, so that one does not reset the
        other's). Called only when the loss looks stalled, or rose, so a copy of the weights
        is taken once in a while, never per step."""
        if self._model is None:
            return math.inf, probe
        with torch.no_grad():
            now = torch.cat([p.detach().reshape(-1).float() for p in self._model.parameters()])
        taken = (self._since, now)  # torch.cat made a copy of its own: nothing to clone
        if probe is None or probe[0] >= self._since:
            return None, taken
        base = float(torch.linalg.vector_norm(probe[1]))
        if base == 0:
            return math.inf, taken
        change = float(torch.linalg.vector_norm(now - probe[1].to(now.device)))
        return change / base / (self._since - probe[0]), taken

    def _maybe_snapshot(self, step: int, lr: float) -> _Decision | None:
        """A snapshot every ``snapshot_every`` healthy steps, once the run is *good*: by the
        stall rule's own measure (:meth:`_check_stalled`), the median loss over the last
        ``window`` steps since the last rollback lies below the start. A snapshot taken
        while a too-hot run hovers near its start, on a lucky stretch of ten steps, is what
        a stall would roll back to: damaged weights at a cut LR."""
        if not self._progressed or self._since < self.window or self._rose is not None:
            return None  # nor while a rise found at slow_after awaits its judgement
        if step - self._snap_step < self.snapshot_every or self._healthy < self.snapshot_every:
            return None
        recent = self._history[-self.window :]
        if statistics.median(recent) >= _below_start(self._losses.first):
            return None
        self._mark_snapshot(step, lr)
        return _Decision("snapshot", "", snapshot=True)

    def _mark_snapshot(self, step: int, lr: float) -> None:
        self._snap_step, self._snap_scale = step, self._scale
        self._snap_label = self._shown(step)
        if math.isfinite(lr):
            self._snap_lr = lr

    def _observe_eval(self, step: int, metric: float, model: nn.Module) -> _Decision | None:
        """The evaluation-level detectors: early stop, overfitting, plateau."""
        if self._stopped:
            return None
        self._vals.append(metric)
        self._train_at_eval.append(self._ema)
        if math.isfinite(metric) and metric > self._best:
            self._best, self._best_step = metric, step
            if self.restore_best and (self.overfit_patience or self.stop_patience):
                off = self._place is not None  # "cpu" and "disk": in host memory
                self._best_weights = {
                    k: v.detach().to("cpu" if off else v.device, copy=True)
                    for k, v in model.state_dict().items()
                }
        if self.overfit_patience and overfitting(
            self._vals, self._train_at_eval, patience=self.overfit_patience
        ):
            return self._early_stop(
                f"validation metric fell for {self.overfit_patience} evaluations while the "
                "training loss fell (overfitting)",
                "overfitting",
            )
        if self.stop_patience and plateaued(self._vals, patience=self.stop_patience):
            return self._early_stop(
                f"no improvement on {self._best:.6g} for {self.stop_patience} evaluations",
                "early stop",
            )
        if not self.plateau_patience:
            return None
        before = self._plateau_state.scale
        self._plateau_state, verdict = self._plateau.update(self._plateau_state, metric)
        if not verdict.reduced:
            return None
        return self._lower(
            f"validation metric plateaued: {verdict.reason}",
            "plateau",
            factor=verdict.scale / before,
        )

    def _early_stop(self, reason: str, kind: str) -> _Decision:
        self._stopped = True
        restore = self.restore_best and self._best_weights is not None
        if restore:
            reason += f"; restored the best weights (step {self._best_step}, {self._best:.6g})"
        return _Decision(kind, reason, stop=True, restore_best=restore)

    def _put_back_best(self, model: nn.Module) -> None:
        if self._best_weights is not None:
            model.load_state_dict(self._best_weights)

    # ---- adaptive clipping -------------------------------------------------------------------

    def _clip_grads(self, grads: Sequence[torch.Tensor], norm: float | None = None) -> None:
        """Clip ``grads`` in place to the adaptive threshold; record whether it clipped.
        ``norm``: their global norm when already known."""
        if not grads:
            return
        if norm is None:
            norm = _global_norm(grads)
        limit = self._zclip.update(norm)
        clipped = math.isfinite(limit)
        self._clipped.append(clipped)
        if clipped:
            torch._foreach_mul_(list(grads), limit / (norm + 1e-6))

    # ---- events ------------------------------------------------------------------------

    def _record(self, decision: _Decision, step: int) -> tuple[str, str]:
        """The decision as an event: kept, printed, logged. Returns its head (step and
        reason, for :attr:`Action.reason`: ``lrpilot.train`` adds what it did itself) and the
        whole sentence; ``("", "")`` for a silent snapshot."""
        if decision.kind == "snapshot" or decision.silent:
            return "", ""
        step = self._shown(step)
        done = []
        if decision.back_to is not None:
            done.append(f"rolled back to step {decision.back_to}")
            if self.skip_batches and not decision.stop:
                done.append(f"skipped {self.skip_batches} batches")
        if decision.lrs is not None and all(math.isfinite(v) for v in decision.lrs):
            done.append(f"LR {decision.lrs[0]:.3g} -> {decision.lrs[1]:.3g}")
        elif decision.lr_factor is not None:
            done.append(f"LR x{decision.lr_factor:.3g}")
        if decision.skip_step:
            done.append("step skipped")
        if decision.stop:
            done.append("stopped the run")
        head = f"step {step}: {decision.reason}"
        message = head + ("; " + ", ".join(done) if done else "")
        self._emit(step, decision.kind, message, decision.acts)
        return head, message

    def _note(self, step: int, kind: str, reason: str) -> None:
        step = self._shown(step)
        self._emit(step, kind, f"step {step}: {reason}", acted=False)

    def _emit(self, step: int, kind: str, message: str, acted: bool) -> None:
        event = {"step": step, "kind": kind, "message": message, "acted": acted}
        self.events.append(event)
        if not self.quiet:
            _print(message)
        if self.log is not None:
            _append_line(self.log, event)


class _Controls:
    """What the monitor acts on in a plain loop: the model, the optimizer, their schedulers,
    and the last good snapshot of all of them."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedulers: list[Any],
        place: str | Path | None = None,
    ):
        self.model, self.optimizer, self.schedulers = model, optimizer, schedulers
        self.place = place
        self._saved: tuple[TrainingSnapshot | SpilledSnapshot, list[dict[str, Any]]] | None = None
        if isinstance(place, Path):  # a plain loop has no end to wait for: remove it with us
            weakref.finalize(self, _remove, place)

    def grads(self) -> list[torch.Tensor]:
        return [
            p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None
        ]

    def snapshot(self) -> None:
        self._saved = None  # first: its memory is free before the new copies are made
        state = take_snapshot(self.model, self.optimizer, self.place)
        self._saved = (state, [s.state_dict() for s in self.schedulers])

    def rollback(self) -> None:
        if self._saved is None:
            return
        state, schedulers = self._saved
        state.restore(self.model, self.optimizer)
        for scheduler, saved in zip(self.schedulers, schedulers, strict=True):
            scheduler.load_state_dict(saved)

    def scale_lr(self, factor: float) -> None:
        scale_lrs(self.optimizer, self.schedulers, factor)


def scale_lrs(optimizer: Any, schedulers: Iterable[Any], factor: float) -> None:
    """Multiply every param group's LR by ``factor``, and the schedulers' bases with it, so a
    scheduler's next ``step()`` keeps the cut (lrpilot's ``ScheduleLR`` through its ``scale``,
    a torch ``LRScheduler`` through ``base_lrs`` and each group's ``initial_lr``)."""
    from lrpilot._step import set_group_lr

    rest = []
    for scheduler in schedulers:
        if hasattr(scheduler, "peak_lrs") and hasattr(scheduler, "scale"):
            scheduler.scale = scheduler.scale * factor  # sets the groups' LRs too
        else:
            rest.append(scheduler)
            if isinstance(getattr(scheduler, "base_lrs", None), list):
                scheduler.base_lrs = [b * factor for b in scheduler.base_lrs]
    if rest or not list(schedulers):
        for group in optimizer.param_groups:
            set_group_lr(group, float(group["lr"]) * factor)
            if "initial_lr" in group:
                group["initial_lr"] = float(group["initial_lr"]) * factor


def _scalar_loss(loss: float | torch.Tensor) -> float:
    """The step's loss as a float; a tensor of per-sample losses is refused with what to do
    (torch's own error, "only one element tensors can be converted", does not say)."""
    if not isinstance(loss, torch.Tensor):
        return float(loss)
    if loss.numel() != 1:
        raise ConfigError(
            f"Monitor.step needs the step's scalar loss, got a tensor of shape "
            f"{tuple(loss.shape)}: reduce it to a scalar with .mean() (or use a loss with "
            "reduction='mean'), as for backward()."
        )
    return float(loss.detach())


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _optional_whole(arg: str, value: Any, low: int = 1) -> int | None:
    return None if value is None else check.whole(arg, value, low)


def _norm_tensor(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """The global 2-norm of ``grads``, as ``clip_grad_norm_`` computes it."""
    foreach_norm: Callable[..., Any] | None = getattr(torch, "_foreach_norm", None)
    if foreach_norm is not None and not any(g.is_sparse for g in grads):
        devices = {g.device for g in grads}
        if len(devices) == 1:
            return torch.linalg.vector_norm(torch.stack(foreach_norm(list(grads))))
    first = grads[0].device
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g).to(first) for g in grads])
    )


def _global_norm(grads: Sequence[torch.Tensor]) -> float:
    return float(_norm_tensor(grads)) if grads else 0.0


def _distributed() -> bool:
    """Whether a ``torch.distributed`` group of two or more ranks is running (checked once a
    run: the group does not change under a run, and the check costs a few microseconds a
    step)."""
    return world_size() > 1


def _print(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold yellow]lrpilot monitor[/] {escape(message)}"
    )


def _append_line(path: Path, event: dict[str, Any]) -> None:
    """Append one JSON line; a new file is created readable by the user only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")
