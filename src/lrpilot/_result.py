"""The range test's result: what it measured and suggests, as plain data that saves, loads
and applies itself to an optimizer (and to a scheduler built before it)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from . import _validate as check
from ._step import set_group_lr
from .errors import ConfigError
from .schedules._retarget import retarget

__all__ = ["LRFinderResult", "RESULT_VERSION"]


RESULT_VERSION = 1
"""The layout of :meth:`LRFinderResult.to_dict`; files without a ``"version"`` key are older."""

_LEGACY_NAMES = {"smoothed_losses": "ema_losses", "run_steps": "steps"}
"""Field names of results written before ``"version"`` existed, and their names now."""


@dataclass(repr=False)
class LRFinderResult:
    """What a range test measured and what it suggests.

    Attributes:
        lr: the suggested peak LR for the real run (the default rule's pick).
        lrs: the LR of each recorded sweep step (of the param group with the largest LR).
        losses: the raw loss recorded at each step (mean over accumulated micro-batches and
            over ranks under DDP; validation loss in validation mode).
        ema_losses: the bias-corrected EMA of ``losses`` that decided when to stop (the
            divergence detector's; it lags: the rules read ``smooth_losses``).
        smooth_losses: the lag-free smooth of ``losses`` that the rules read
            (:func:`lrpilot.suggest.smooth`); what plots draw.
        candidates: every rule's pick, by rule name.
        band: ``(low, high)``, where the best LR for the run is expected to lie: the pick
            times the spread of the default rule's errors on benchmark families it was not
            fitted on (``benchmarks/crossval.py``), widened where the curve says little.
            About four in five held-out tasks had their best LRs inside it.
        bounds: Leslie Smith's ``(base_lr, max_lr)`` for cyclical and one-cycle schedules:
            where the loss starts to fall and where it stops falling.
        rule: the name of the rule that gave ``lr``.
        diverged: whether the sweep stopped on divergence before ``end_lr``.
        num_steps_run: sweep steps recorded (optimizer steps taken; steps skipped for a
            non-finite loss and steps the AMP scaler skipped are not counted).
        steps: the length of the real run the suggestion is for, if known.
        schedule: the real run's schedule as plain data (its spec, or
            :func:`lrpilot.schedules.to_dict`), if given.
        group_ratios: each param group's LR as a fraction of the swept LR.
        effective_batch_size: samples per optimizer step over all ranks and micro-batches.
        warnings: what makes this curve hard to trust, each with what to do about it.
        skipped_lrs: the LRs at which a non-finite loss or gradient norm skipped the step.
        grad_norms: the global gradient norm (before clipping) at each recorded step.
        assumed: what the suggestion assumed about the run where it was not told, by name
            (``"steps"``, ``"schedule"``), in words.
        loss_source: ``"train"`` (the training loss of each step's batch) or ``"val"`` (the
            loss on fixed validation batches after each step).
        cost_steps: optimizer steps the range test spent in all: ``num_steps_run``, plus the
            first sweep's steps when :func:`lrpilot.find_lr_for_task` found its training loss
            too noisy to read and swept again on validation batches.
    """

    lr: float
    lrs: list[float]
    losses: list[float]
    ema_losses: list[float]
    candidates: dict[str, float]
    band: tuple[float, float]
    bounds: tuple[float, float]
    rule: str = "pilot"
    diverged: bool = False
    num_steps_run: int = 0
    steps: int | None = None
    schedule: Any = None
    smooth_losses: list[float] = field(default_factory=list)
    group_ratios: list[float] = field(default_factory=list)
    effective_batch_size: int | None = None
    warnings: list[str] = field(default_factory=list)
    skipped_lrs: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    assumed: dict[str, str] = field(default_factory=dict)
    loss_source: str = "train"
    cost_steps: int = 0

    def __post_init__(self) -> None:
        if self.cost_steps < self.num_steps_run:  # results written before cost_steps existed
            self.cost_steps = self.num_steps_run

    def __repr__(self) -> str:
        lo, hi = self.band
        return (
            f"LRFinderResult(lr={self.lr:.3g}, band=({lo:.3g}, {hi:.3g}), rule={self.rule!r}, "
            f"steps={self.steps}, diverged={self.diverged}, points={len(self.lrs)})"
        )

    def group_lrs(self, lr: float | None = None) -> list[float]:
        """The LR of each param group for a peak ``lr`` (the suggestion by default)."""
        peak = self.lr if lr is None else check.real("lr", lr, 0.0, open_low=True, open_high=True)
        return [peak * r for r in self.group_ratios]

    def apply(self, optimizer: Any, lr: float | None = None, *, scheduler: Any = None) -> None:
        """Set ``optimizer``'s param groups to the suggestion (or to peak ``lr``), keeping
        their LR ratios.

        Args:
            optimizer: the optimizer the sweep measured (the same number of param groups).
            lr: the peak LR to set instead of the suggestion.
            scheduler: a scheduler built on ``optimizer`` before this call, or a list of them
                (all stepped in the same run). It is updated too, so its next ``step()`` does
                not put the old LR back: lrpilot's ``ScheduleLR`` through ``set_peak_lr``, a
                torch ``LRScheduler`` by scaling every LR it keeps for a group (``base_lrs``,
                ``initial_lr``; ``OneCycleLR``'s ``max_lr``/``initial_lr``/``min_lr``;
                ``CyclicLR``'s ``max_lrs``, the new peak, and ``base_lrs``, which keep their
                ratio to it; each child of a ``SequentialLR`` or ``ChainedScheduler``) by the
                new peak over its old one. The groups then run at the new peak times where
                the schedule is now. See :mod:`lrpilot.schedules._retarget`.

        Raises:
            ConfigError: a different number of param groups, or a scheduler that cannot be
                pointed at the new peak (its type named). Nothing is changed then.
        """
        lrs = self.group_lrs(lr)
        groups = getattr(optimizer, "param_groups", None)
        if not isinstance(groups, list):
            raise check.ArgError("optimizer", optimizer, "an optimizer (with param_groups)")
        if len(groups) != len(lrs):
            raise ConfigError(
                f"optimizer has {len(groups)} param groups but the sweep measured "
                f"{len(lrs)}: apply the result to the optimizer that was swept, or set the LRs "
                "yourself from result.group_lrs()."
            )
        if isinstance(scheduler, (list, tuple)) and not scheduler:
            scheduler = None
        if scheduler is not None and not callable(getattr(scheduler, "set_peak_lr", None)):
            retarget(scheduler, optimizer, lrs)  # checks everything before it changes anything
            return
        if scheduler is not None:
            scheduler.set_peak_lr(lrs)  # lrpilot's ScheduleLR checks them, then sets the groups
        if not isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
            for group, group_lr in zip(groups, lrs, strict=True):
                set_group_lr(group, group_lr)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain, JSON-ready data (tuples become lists), plus ``"version"``."""
        data = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        return {"version": RESULT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LRFinderResult:
        """The result :meth:`to_dict` wrote (also reads files written before ``"version"``)."""
        if not isinstance(data, Mapping):
            raise check.ArgError("data", data, "a dict written by LRFinderResult.to_dict")
        values = dict(data)
        version = values.pop("version", None)
        if version is None:
            values = {_LEGACY_NAMES.get(k, k): v for k, v in values.items()}
        elif version != RESULT_VERSION:
            raise ConfigError(
                f"This result was written with layout version {version!r}; this lrpilot reads "
                f"version {RESULT_VERSION}: upgrade lrpilot to read it."
            )
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        required = [
            n for n, f in known.items() if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [n for n in required if n not in values]
        if unknown or missing:
            raise ConfigError(
                f"Not an LRFinderResult dict: unknown keys {unknown}, missing keys {missing}."
            )
        return cls(**{k: _typed(str(known[k].type), v) for k, v in values.items()})

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON to ``path``, atomically (a temporary file, then a rename,
        so a reader never sees half a file); returns the path."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> LRFinderResult:
        """The result :meth:`save` wrote to ``path``."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(
        self, path: str | Path | None = None, *, title: str | None = None, ax: Any = None
    ) -> Any:
        """Loss against LR on a log axis with the suggestion, its band and every rule's pick.

        Drawn from this result's data by :func:`lrpilot.report.plot_range_test` (matplotlib's
        object API: a notebook's backend is left alone). Writes a PNG (or any format
        matplotlib knows from the suffix) when ``path`` is given; draws on ``ax`` when given;
        returns the matplotlib ``Figure``.

        Raises:
            ConfigError: ``path`` cannot be written (no folder, no suffix, unknown format).
        """
        from .report import plot_range_test

        return plot_range_test(self, path, title=title, ax=ax)


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _typed(annotation: str, value: Any) -> Any:
    """A field's value read back from JSON: lists become tuples where the field is one."""
    if annotation.startswith("tuple") and isinstance(value, list):
        return tuple(value)
    return value
