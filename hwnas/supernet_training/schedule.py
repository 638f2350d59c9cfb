"""The learning-rate schedule: linear warm-up, then poly decay to 0, by steps or by a time budget.

With ``--steps``/``--epochs`` the decay runs over a known number of steps (:func:`poly_factor`).
With ``--minutes`` the number of steps is not known in advance (it depends on how fast this
machine is now, and a shared machine changes speed), so the decay follows the fraction of the
budget spent instead (:class:`BudgetSchedule`): wherever the run stands when time runs out, the
schedule has reached its end. Earlier versions fixed a step count from a probe of the first steps;
a machine that slowed down later stopped with the learning rate still at 60 % of its peak.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

END_FACTOR = 0.0  # poly decay ends at (1 - 1)^power = 0


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up from 0.1 to 1 over ``warmup_steps`` steps (0-based ``step``)."""
    return 0.1 + 0.9 * step / warmup_steps


def poly_decay(t: float, power: float) -> float:
    """``(1 - t)^power`` for the fraction ``t`` of the decay done (clamped to [0, 1])."""
    return max(0.0, 1.0 - min(1.0, max(0.0, t))) ** power


def poly_factor(step: int, total_steps: int | None, warmup_steps: int, power: float) -> float:
    """LR multiplier at ``step`` (0-based) of a run of ``total_steps``: warm-up, then poly decay."""
    if step < warmup_steps:
        return warmup_factor(step, warmup_steps)
    if not total_steps:
        return 1.0
    return poly_decay((step - warmup_steps) / max(1, total_steps - warmup_steps), power)


@dataclass
class BudgetSchedule:
    """Poly decay over the part of a wall-clock budget left after warm-up.

    Each step asks :meth:`factor` with the fraction of the budget spent when the step starts and
    whether it is the last one (the caller predicts that from the step time). The first step after
    warm-up runs at the peak; later steps decay with ``t = (spent - spent_at_decay_start) /
    (1 - spent_at_decay_start)``; the last step runs at :data:`END_FACTOR`, so the run ends with
    the schedule finished even when warm-up took most of a tiny budget. ``decay_start`` is part of
    the checkpoint: a resumed run continues the same curve.
    """

    warmup_steps: int
    power: float
    decay_start: float | None = None  # fraction of the budget spent when the decay began

    def factor(self, step: int, spent: float, last: bool) -> float:
        if last:
            return END_FACTOR
        if step < self.warmup_steps:
            return warmup_factor(step, self.warmup_steps)
        if self.decay_start is None:
            self.decay_start = min(spent, 1.0)
        return poly_decay((spent - self.decay_start) / max(1e-9, 1.0 - self.decay_start), self.power)

    def state_dict(self) -> dict[str, Any]:
        return {"by": "budget", **asdict(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay_start = state.get("decay_start")


class StepTimer:
    """Predicts how long the next step and the run's closing work take, from what it measured.

    Step times: an exponential moving average of the last steps, skipping the first step after a
    (re)start, which pays one-off costs. Closing work (final checkpoint and curve plot): the last
    measured duration of each, or a cautious guess until measured.
    """

    def __init__(self, smoothing: float = 0.3, closing_guess_s: float = 1.5):
        self.smoothing = smoothing
        self.step_s: float | None = None
        self._seen = 0
        self._first_s = 0.0
        self.save_s: float | None = None
        self.plot_s: float | None = None
        self.closing_guess_s = closing_guess_s

    def add_step(self, seconds: float) -> None:
        self._seen += 1
        if self._seen == 1:
            self._first_s = seconds  # first step of a (re)start: data-loader start-up, allocator warm-up
            return
        self.step_s = seconds if self.step_s is None else (1 - self.smoothing) * self.step_s + self.smoothing * seconds

    def next_step_s(self) -> float:
        """The next step's predicted duration (until a second step is timed: the first one's, an overestimate)."""
        if self.step_s is not None:
            return self.step_s
        return self._first_s

    def closing_s(self) -> float:
        if self.save_s is None or self.plot_s is None:
            return max(self.closing_guess_s, (self.save_s or 0.0) + (self.plot_s or 0.0))
        return self.save_s + self.plot_s
