"""How a run shrinks on a model bigger than course-tiny, so that it costs about what it costs there (lessons 01-05).

One rule, `shrink_run`: compute per step grows with parameters × tokens, so a model `factor` =
parameters / (course-tiny's × compute) times bigger gets `factor` times fewer tokens per run: rows are
cut first, then rows per step, then steps, each down to a floor of the experiment's own (the shortest
row, batch and run that still show its effect) and never above what was asked. `TransferConfig.scaled_for`
(lessons 01-02, `course learning-curve`) and `experiments.forgetting.scaled_config` (lesson 05, `course
forgetting`) both call it. `live_size` is a lesson's cheaper rule for the length of one live run.
"""

from __future__ import annotations

from typing import NamedTuple

from course_lib.memory.vram import PRESETS

__all__ = ["COURSE_TINY_PARAMS", "RunSize", "shrink_run", "live_size"]

COURSE_TINY_PARAMS = PRESETS["course-tiny"].parameters  # 1,377,408: the model every run's defaults were set for


class RunSize(NamedTuple):
    """A run's tokens per row, rows per step and steps after `shrink_run`, and the factor it had to find."""

    max_length: int
    batch_size: int
    max_steps: int
    factor: float  # parameters / (course-tiny's × compute); <= 1 means nothing shrank


def shrink_run(max_length: int, batch_size: int, max_steps: int, n_params: int, compute: float = 1.0,
               floors: tuple[int, int, int] = (32, 8, 16)) -> RunSize:
    """Fewer tokens by parameters / (course-tiny's × compute): rows, then batch, then steps, each to its floor."""
    factor = n_params / (COURSE_TINY_PARAMS * compute)
    if factor <= 1:
        return RunSize(max_length, batch_size, max_steps, factor)
    min_length, min_batch, min_steps = floors
    length = max(min(min_length, max_length), round(max_length / factor))
    left = factor * length / max_length  # reduction still to find after cutting rows
    batch = max(min(min_batch, batch_size), round(batch_size / max(left, 1)))
    left *= batch / batch_size
    steps = max(min(min_steps, max_steps), round(max_steps / max(left, 1)))
    return RunSize(length, batch, steps, factor)


def live_size(n: int, n_parameters: int, minimum: int = 2) -> int:
    """A lesson's live run of `n` steps (or examples), shortened for a larger model (lessons 02, 03).

    A step costs time in proportion to the parameters, so a live run cannot keep its length on a 100×
    larger model; scaling by (course-tiny's parameters / n_parameters)^(1/4) gives it a third of the steps
    (about 30× the time instead of 100×) while keeping enough of them to show a trend, and at least `minimum`.
    """
    if n_parameters <= COURSE_TINY_PARAMS:
        return n
    return max(minimum, round(n * (COURSE_TINY_PARAMS / n_parameters) ** 0.25))
