"""Pruning that is fair to schedules, and the callback that connects a trial's training run
to Optuna.

Median and successive-halving pruners compare trials by their raw metric at the same early
step. For learning rates that is the short-horizon bias (Wu et al., ICLR 2018): early on a low
LR looks best, while a high LR, still in warmup or before its cosine has decayed, has most of
its gain still to come, so the trial that would have won is pruned.

:class:`ScheduleFairPruner` instead predicts each trial's *final* metric and prunes on that.
The prediction comes from the completed trials nearest in log-LR (and with the same other
knobs): a neighbour that scored ``v_j`` at this step and ``f_j`` at the end says the trial
will end near ``f_j + (v - v_j)``. What the rest of the schedule still adds at that LR (a decay
still to come, warmup not over) is carried by the neighbour's own curve, so a trial is judged
by where runs like it ended, not by where it stands now. By default the nearest completed
trial on each side in LR gives its guess and the better one counts: curves change shape with
the LR (near the edge of stability a higher LR starts worse and ends better once the schedule
decays), so one neighbour's gap need not last, and a trial is pruned only when both sides say
it ends below the leaders. Trials report at equal progress through their own schedule
(``report(value, step)`` at the same fractions of the run), so the comparison also holds when
trials differ in schedule.

Measured on stored trial curves of 43 scoreboard tasks (``benchmarks.prune_replay``), this
pruner is on par with Optuna's ``MedianPruner`` (about 0.15 points of the oracle-trivial gap
better, inside the noise, for the same steps), not better than it.
"""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from ..control._detectors import relative_rise
from ..control.callbacks import Action, Callback, EvalInfo, StepInfo
from ..errors import ConfigError

__all__ = [
    "ScheduleFairPruner",
    "TrialReporter",
    "DIVERGED_FACTOR",
    "STARTUP_TRIALS",
    "make_pruner",
]

DIVERGED_FACTOR = 20.0
"""A trial whose training loss exceeds this many times its first loss (for a loss below zero:
rises by ``DIVERGED_FACTOR - 1`` times its size, as
:func:`~lrpilot.control._detectors.relative_rise` reads it), or is not finite, is stopped at
once and recorded as diverged (the run layer's own detector, on a smoothed loss, stops it too,
a little later)."""

PRUNERS = ("fair", "median", "none")
PREDICTIONS = ("weighted", "bracket")
STARTUP_TRIALS = 2
"""Completed trials before any pruning (both pruners): the fewest that give the completed
finals a spread, so that "the top third of them" is a threshold and not one trial's value.
Optuna's pruners default to 5, which at 8 trials leaves pruning three trials at most."""
KEEP_SHARE = 1 / 3
"""The share of trials the fair pruner lets go on: those whose predicted final metric lies in
the top third of the finished trials' finals. An LR search looks for the best LR, not for a good
average, so a trial predicted below the leaders cannot become the answer; a third is successive
halving's default reduction factor (η = 3: Jamieson & Talwalkar 2016, Hyperband, ASHA), not a
value fitted on the benchmark."""


class ScheduleFairPruner(BasePruner):
    """Prune a trial whose predicted final metric is below a percentile of the completed
    trials' final metrics (the study maximizes).

    Args:
        n_startup_trials: Completed trials needed (with a value at the step) before any
            pruning.
        percentile: Prune below this percentile of the completed finals (default: the top
            :data:`KEEP_SHARE` go on; 50 would be the median's rule).
        bandwidth: Width, in decades of LR, of the Gaussian weight given to each completed
            neighbour.
        n_warmup_steps: Never prune at or before this step.
        prediction: ``"bracket"`` (the default): the better of the guesses of the nearest
            completed trial below and above the trial's LR (:func:`predict_bracketed`), so that
            a trial is pruned only when the neighbours on both sides say it ends below the
            leaders; ``"weighted"``: the Gaussian-weighted mean of every completed neighbour's
            guess (:func:`predict_final`; ``bandwidth`` is its width). On 43 scoreboard tasks
            replayed (``benchmarks.prune_replay``) the weighted mean pruned the eventual best
            trial more often: 0.6-0.8 points of the gap worse than Optuna's ``MedianPruner``,
            where the bracket is on par with it.
    """

    def __init__(
        self,
        n_startup_trials: int = STARTUP_TRIALS,
        percentile: float = 100.0 * (1.0 - KEEP_SHARE),
        bandwidth: float = 0.5,
        n_warmup_steps: int = 0,
        prediction: str = "bracket",
    ) -> None:
        if n_startup_trials < 1:
            raise ConfigError(f"n_startup_trials must be >= 1, got {n_startup_trials}")
        if not 0.0 < percentile < 100.0:
            raise ConfigError(f"percentile must be in (0, 100), got {percentile}")
        if not bandwidth > 0.0:
            raise ConfigError(f"bandwidth must be > 0, got {bandwidth}")
        if prediction not in PREDICTIONS:
            raise ConfigError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self._prediction = prediction
        self._n_startup_trials = n_startup_trials
        self._percentile = percentile
        self._bandwidth = bandwidth
        self._n_warmup_steps = n_warmup_steps

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Whether ``trial`` should stop at its last reported step."""
        step = trial.last_step
        if step is None or step <= self._n_warmup_steps:
            return False
        value = trial.intermediate_values[step]
        if not math.isfinite(value):
            return True
        done = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value) and step in t.intermediate_values
        ]
        if len(done) < self._n_startup_trials:
            return False
        if self._prediction == "bracket":
            predicted = predict_bracketed(trial, done, step)
        else:
            predicted = predict_final(trial, done, step, self._bandwidth)
        finals = sorted(t.value for t in done if t.value is not None)
        return predicted < _percentile(finals, self._percentile)


def predict_final(
    trial: FrozenTrial, done: list[FrozenTrial], step: int, bandwidth: float
) -> float:
    """``trial``'s final metric predicted from completed trials ``done``: each says
    ``f_j + (v - v_j)`` (its final plus the gap at ``step``), weighted by a Gaussian in
    log10-LR distance; trials with other categorical knobs count only when none match."""
    same = _comparable(trial, done)
    log_lr = math.log10(trial.params["lr"])
    weights, guesses = [], []
    for t in same:
        distance = (math.log10(t.params["lr"]) - log_lr) / bandwidth
        weights.append(math.exp(-0.5 * distance * distance))
        guesses.append(_guess(trial, t, step))
    total = sum(weights)
    if total < 1e-12:  # every neighbour far away: the nearest decides
        nearest = min(
            range(len(same)), key=lambda i: abs(math.log10(same[i].params["lr"]) - log_lr)
        )
        return guesses[nearest]
    return sum(w * g for w, g in zip(weights, guesses, strict=True)) / total


def predict_bracketed(trial: FrozenTrial, done: list[FrozenTrial], step: int) -> float:
    """``trial``'s final metric as the better of two guesses ``f_j + (v - v_j)``: those of
    the nearest completed trials at or below and at or above its LR (one, beyond the ends).

    Why the better one: a curve's shape changes with the LR (near the edge of stability a
    higher LR starts worse and, once the schedule decays, ends better), so a neighbour's gap
    at this step need not last. Between two neighbours the trial's curve lies between theirs;
    pruning only when both bracketing guesses fall short keeps a trial that one side would
    wrongly condemn."""
    same = _comparable(trial, done)
    lr = trial.params["lr"]
    below = [t for t in same if t.params["lr"] <= lr]
    above = [t for t in same if t.params["lr"] >= lr]
    sides = [max(below, key=lambda t: t.params["lr"])] if below else []
    sides += [min(above, key=lambda t: t.params["lr"])] if above else []
    return max(_guess(trial, t, step) for t in sides)


def _comparable(trial: FrozenTrial, done: list[FrozenTrial]) -> list[FrozenTrial]:
    """The completed trials with ``trial``'s categorical knobs; all of them when none has."""
    return [t for t in done if _same_choices(t, trial)] or done


def _guess(trial: FrozenTrial, neighbour: FrozenTrial, step: int) -> float:
    """What completed ``neighbour`` says ``trial`` ends at: its final plus the gap at ``step``."""
    gap = trial.intermediate_values[step] - neighbour.intermediate_values[step]
    return float(neighbour.value) + gap  # type: ignore[arg-type]


def _same_choices(a: FrozenTrial, b: FrozenTrial) -> bool:
    return all(a.params.get(k) == v for k, v in b.params.items() if isinstance(v, str))


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of sorted values (NumPy's default method)."""
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def make_pruner(name: str, n_startup_trials: int = STARTUP_TRIALS) -> BasePruner:
    """The pruner called ``name``: ``"fair"`` (:class:`ScheduleFairPruner`), ``"median"``
    (Optuna's ``MedianPruner`` with the same number of startup trials) or ``"none"``."""
    if name == "fair":
        return ScheduleFairPruner(n_startup_trials=n_startup_trials)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials)
    return optuna.pruners.NopPruner()


class TrialReporter(Callback):
    """Connects one ``lrpilot.train`` run to its Optuna trial.

    Reports the validation metric at every evaluation (the search has the task evaluate at
    fixed fractions of the run) or, without validation data, minus the smoothed training loss
    at the same fractions; stops the run when the pruner says so; stops it at once when the
    loss is not finite or far above its start (divergence). (The journal store's heartbeat
    beats from a thread of its own: ``_storage.beating``.)
    """

    def __init__(
        self,
        trial: optuna.Trial,
        checkpoints: set[int],
        *,
        report_loss: bool,
    ) -> None:
        self.trial = trial
        self.checkpoints = checkpoints
        self.report_loss = report_loss
        self.first_loss: float | None = None
        self.pruned_at: int | None = None
        self.diverged = ""
        self.failed = ""

    def on_step(self, info: StepInfo) -> Action | None:
        """Divergence, and (without validation data) the loss checkpoints."""
        loss = info.loss
        if self.first_loss is None and math.isfinite(loss):
            self.first_loss = loss
        if not math.isfinite(loss):
            return self._diverge(f"the loss was not finite at step {info.step}")
        if self.first_loss is not None and relative_rise(loss, self.first_loss) > DIVERGED_FACTOR:
            how_far = f"{DIVERGED_FACTOR:g}x" if self.first_loss > 0 else "far above"
            return self._diverge(
                f"the loss reached {loss:.4g} at step {info.step}, over "
                f"{how_far} its first value {self.first_loss:.4g}"
            )
        if self.report_loss and info.step in self.checkpoints:
            return self._report(-info.smoothed, info.step)
        return None

    def on_eval(self, info: EvalInfo) -> Action | None:
        """Report the metric at a checkpoint and ask the pruner."""
        if self.report_loss or info.step not in self.checkpoints:
            return None
        if not math.isfinite(info.metric):
            self.failed = f"the validation metric was {info.metric} at step {info.step}"
            return Action(stop=True, reason=self.failed)
        return self._report(info.metric, info.step)

    def _report(self, value: float, step: int) -> Action | None:
        if self.pruned_at is not None or self.diverged or self.failed:
            return None  # the run's final evaluation after a stop: nothing more to report
        self.trial.report(value, step)
        if self.trial.should_prune():
            self.pruned_at = step
            return Action(stop=True, reason=f"pruned at step {step}")
        return None

    def _diverge(self, reason: str) -> Action:
        self.diverged = self.diverged or reason
        return Action(stop=True, reason=f"diverged: {reason}")
