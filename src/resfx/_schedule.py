"""Learning-rate schedules as closed formulas of the step: `f(step)`, a factor of the peak rate.

No scheduler object to rebuild, extend or checkpoint: `resfx.Finetuner` sets every
group's rate from `schedule_factor` at every step, so a resumed run is exact. Plain
maths at the bottom of the layers.
"""

import math
from typing import Literal, get_args

Schedule = Literal["constant", "cosine", "onecycle"]
"""The learning-rate schedule over the whole run (see `Finetuner`)."""

_ONECYCLE_PCT, _ONECYCLE_DIV, _ONECYCLE_FINAL_DIV = 0.3, 25.0, 1e4


def _annealing_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def schedule_factor(schedule: Schedule, step: int, total_steps: int) -> float:
    """The schedule's factor `f(step)` of the peak learning rate (see `Finetuner`).

    Args:
        schedule: `"constant"`, `"cosine"` or `"onecycle"`.
        step: the optimizer step, 0-based.
        total_steps: the steps of the whole run.

    Returns:
        The factor, 1 at the peak.

    Raises:
        ValueError: unknown `schedule`, or `step` outside `[0, total_steps)`.

    Example:
        >>> schedule_factor("cosine", 5, 10), round(schedule_factor("onecycle", 0, 10), 12)
        (0.5, 0.04)
    """
    if schedule not in get_args(Schedule):
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {get_args(Schedule)}")
    if not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, {total_steps}), got {step}")
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return (1 + math.cos(math.pi * step / total_steps)) / 2
    # torch.optim.lr_scheduler.OneCycleLR's two phases, relative to max_lr.
    initial = 1 / _ONECYCLE_DIV
    phase_end = float(_ONECYCLE_PCT * total_steps) - 1
    if step <= phase_end:
        return _annealing_cos(initial, 1.0, step / phase_end)
    return _annealing_cos(
        1.0, initial / _ONECYCLE_FINAL_DIV, (step - phase_end) / (total_steps - 1 - phase_end)
    )
