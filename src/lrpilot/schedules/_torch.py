"""The torch adapter: :class:`ScheduleLR` drives an optimizer's LRs from a schedule, and
:func:`attach` builds one.

Each param group's peak LR is kept in the group itself as ``initial_lr`` (torch's own key), so
it travels with ``optimizer.state_dict()``: a run resumed with ``start_step=N`` after
``optimizer.load_state_dict(...)`` reads the peak from there instead of taking the already
scheduled ``lr`` for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrpilot._step import set_group_lr
from lrpilot._validate import ArgError, is_real, real, whole
from lrpilot.errors import ConfigError

from ._base import Schedule, schedule_arg
from ._io import from_dict, to_dict
from ._spec import parse_schedule

PeakLR = float | Sequence[float]
"""One peak LR for every param group, or one per group."""


def _given_peaks(optimizer: Optimizer, peak_lr: PeakLR) -> list[float]:
    groups = optimizer.param_groups
    if is_real(peak_lr):
        raw = [peak_lr] * len(groups)
    elif isinstance(peak_lr, Sequence) and not isinstance(peak_lr, str):
        raw = list(peak_lr)
    else:
        raise ArgError("peak_lr", peak_lr, "a number > 0, or one per param group")
    if len(raw) != len(groups):
        raise ConfigError(f"peak_lr needs one value per param group ({len(groups)}): {peak_lr=}")
    return [real("peak_lr", p, 0.0, open_low=True) for p in raw]


def _current_peaks(optimizer: Optimizer) -> list[float]:
    peaks = [float(g["lr"]) for g in optimizer.param_groups]
    for i, p in enumerate(peaks):
        if not p > 0:
            raise ConfigError(
                f"param_groups[{i}] has lr={p}: set the optimizer's lr or give peak_lr"
            )
    return peaks


def _resumed_peaks(optimizer: Optimizer, start_step: int) -> list[float]:
    """The peaks recorded in the groups (``initial_lr``) by the scheduler that ran before."""
    peaks = []
    for i, group in enumerate(optimizer.param_groups):
        if "initial_lr" not in group:
            raise ConfigError(
                f"start_step={start_step} resumes a run, but param_groups[{i}] has no "
                "'initial_lr' (the peak a scheduler records) and its lr is the scheduled one, "
                "not the peak: pass peak_lr=, or load the scheduler's state_dict"
            )
        peaks.append(
            real(f"param_groups[{i}]['initial_lr']", group["initial_lr"], 0.0, open_low=True)
        )
    return peaks


def _peaks(optimizer: Optimizer, peak_lr: PeakLR | None, start_step: int) -> list[float]:
    if peak_lr is not None:
        return _given_peaks(optimizer, peak_lr)
    if start_step > 0:
        return _resumed_peaks(optimizer, start_step)
    return _current_peaks(optimizer)


class ScheduleLR(LRScheduler):
    """A torch LR scheduler driven by a schedule: group ``i`` runs at ``peak_i * scale * f(t)``.

    Build it with :func:`attach`. Unlike torch's schedulers it takes no step in its constructor
    and does not wrap ``optimizer.step``; ``last_epoch`` is the current optimizer step ``t``
    (0 right after construction). ``state_dict()`` holds the step, the peaks, ``scale`` and the
    schedule as plain data (:func:`to_dict`; a schedule that is not lrpilot's is stored as the
    object itself, so it must be picklable), so ``torch.load(weights_only=True)`` reads it back
    and :meth:`load_state_dict` resumes at exactly the saved step.

    Each group's peak is also written to the group as ``initial_lr``, as torch's schedulers do,
    so it survives ``optimizer.state_dict()``/``load_state_dict``: a resume with
    ``start_step > 0`` and no ``peak_lr`` reads it from there.

    Attributes:
        schedule: The schedule; may be replaced between steps.
        peak_lrs: The peak LR of each param group (their ratios are kept); change them with
            :meth:`set_peak_lr`.
        scale: An extra multiplier on every group, for controllers such as reduce-on-plateau;
            setting it applies the new LRs at once.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule,
        *,
        peak_lr: PeakLR | None = None,
        start_step: int = 0,
    ) -> None:
        # LRScheduler.__init__ is not called on purpose: it patches optimizer.step and takes a
        # step. Every attribute the base class reads is set here.
        if not isinstance(optimizer, Optimizer):
            raise ConfigError(f"optimizer must be a torch Optimizer, got optimizer={optimizer!r}")
        self.optimizer = optimizer
        self.schedule = schedule_arg("schedule", schedule)
        self.last_epoch = whole("start_step", start_step, 0)
        self._scale = 1.0
        self._set_peaks(_peaks(optimizer, peak_lr, self.last_epoch))

    @property
    def scale(self) -> float:
        """Extra multiplier on every group's LR (1.0 unless a controller changed it)."""
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        self._scale = real("scale", value, 0.0)
        self._apply()

    def set_peak_lr(self, peak_lr: PeakLR) -> None:
        """Change the peak LR and apply the LRs of the current step at once.

        Use it to apply a new LR (say, a range test's pick) to an optimizer this scheduler
        already drives: setting ``group["lr"]`` directly is undone by the next :meth:`step`,
        which recomputes every LR from the peaks. The schedule's shape and the current step
        are kept; ``initial_lr`` in each group is updated too, so a later resume reads the new
        peak.

        Args:
            peak_lr: One peak for every param group, or one per group (``> 0`` each).
        """
        self._set_peaks(_given_peaks(self.optimizer, peak_lr))

    def get_lr(self) -> list[float | torch.Tensor]:
        """The LR of each param group at the current step."""
        factor = self._scale * float(self.schedule(self.last_epoch))
        return [peak * factor for peak in self.peak_lrs]

    def step(self, epoch: int | None = None) -> None:
        """Advance one optimizer step and set the LRs (call after ``optimizer.step()``)."""
        if epoch is not None:
            raise ConfigError(
                f"ScheduleLR.step() takes no epoch, got {epoch=}; to resume, load a state_dict "
                "or attach with start_step"
            )
        self.last_epoch += 1
        self._apply()

    def _set_peaks(self, peaks: list[float]) -> None:
        """Record the peaks here and in each group's ``initial_lr``, then set the LRs."""
        self.peak_lrs = peaks
        self.base_lrs = list(peaks)
        for group, peak in zip(self.optimizer.param_groups, peaks, strict=True):
            group["initial_lr"] = peak
        self._apply()

    def _apply(self) -> None:
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            set_group_lr(group, float(lr))
        self._last_lr = lrs

    def state_dict(self) -> dict[str, Any]:
        """Step, peaks, scale and schedule, as plain data where the schedule allows it."""
        try:
            schedule: Any = to_dict(self.schedule)
        except ConfigError:
            schedule = self.schedule
        return {
            "step": self.last_epoch,
            "peak_lrs": list(self.peak_lrs),
            "scale": self._scale,
            "schedule": schedule,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` and set the LRs of the saved step at once."""
        missing = {"step", "peak_lrs", "scale", "schedule"} - set(state_dict)
        if missing:
            raise ConfigError(f"not a ScheduleLR state_dict: missing {sorted(missing)}")
        saved = state_dict["schedule"]
        peaks = [float(p) for p in state_dict["peak_lrs"]]
        if len(peaks) != len(self.optimizer.param_groups):
            raise ConfigError(
                f"state_dict has {len(peaks)} peak_lrs for "
                f"{len(self.optimizer.param_groups)} param groups"
            )
        self.schedule = from_dict(saved) if isinstance(saved, Mapping) else saved
        self.last_epoch = whole("step", state_dict["step"], 0)
        self._scale = real("scale", state_dict["scale"], 0.0)
        self._set_peaks(peaks)


def attach(
    optimizer: Optimizer,
    schedule: Schedule | str,
    *,
    peak_lr: PeakLR | None = None,
    total_steps: int | None = None,
    start_step: int = 0,
) -> ScheduleLR:
    """Drive ``optimizer`` with a schedule; returns a torch LR scheduler.

    The LRs are set at once for step ``start_step``; call ``scheduler.step()`` after each
    ``optimizer.step()``. Each group's peak is recorded in it as ``initial_lr``.

    Args:
        optimizer: Any torch optimizer.
        schedule: A schedule, or a text spec for :func:`parse_schedule`.
        peak_lr: Peak LR, one for all groups or one per group. Default at ``start_step=0``:
            each group's current ``lr``, so the ratios between groups are kept. Default when
            resuming (``start_step > 0``): each group's ``initial_lr``, which a scheduler
            recorded and ``optimizer.load_state_dict`` brought back (the current ``lr`` is
            already scheduled, not the peak); without it, pass ``peak_lr`` or load the
            scheduler's ``state_dict`` instead.
        total_steps: Steps in the run, to resolve a text spec (only with a spec).
        start_step: The step to start at (to resume without the scheduler's state_dict).

    Raises:
        ConfigError: For a resume whose groups hold no ``initial_lr`` and no ``peak_lr``,
            mismatched ``peak_lr``, or a group with ``lr`` 0 and no ``peak_lr``.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> sched = attach(opt, "warmup(0.1)+cosine", total_steps=100)
        >>> opt.param_groups[0]["lr"]
        0.0
        >>> for _ in range(10):
        ...     opt.step()
        ...     sched.step()
        >>> opt.param_groups[0]["lr"]
        0.1
    """
    if isinstance(schedule, str):
        schedule = parse_schedule(schedule, total_steps)
    elif total_steps is not None:
        raise ConfigError(f"total_steps is used only with a text spec, got {total_steps=}")
    return ScheduleLR(optimizer, schedule, peak_lr=peak_lr, start_step=start_step)
