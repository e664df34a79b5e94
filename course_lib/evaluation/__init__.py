"""Evaluation you can trust (lesson 10): the standard harness offline, uncertainty, contamination.

    harness        lm-evaluation-harness on the course's tasks (data/tasks); multiple-choice scoring by hand
"""

from course_lib.evaluation.harness import (course_root, tasks_dir, score_answer, harness_model, run_harness,
                                           choice_logprobs, choice_predictions)

__all__ = ["course_root", "tasks_dir", "score_answer", "harness_model", "run_harness", "choice_logprobs",
           "choice_predictions"]
