"""How `make test` spreads the suite over the cores (conftest.py): what runs together, what may spread."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)


def test_a_notebook_and_a_module_stay_whole():
    assert conftest.group_of("lessons/06_instruction_tuning.ipynb::Cell 15") == "lessons/06_instruction_tuning.ipynb"
    assert conftest.group_of("tests/test_nbgrader.py::test_exercise_is_what_nbgrader_generates[03_lora_math]") == \
        "tests/test_nbgrader.py"


def test_independent_tests_spread():
    stand_in = "tests/test_lessons_other_model.py::test_lesson_runs_with_course_model[08_beyond_one_gpu]"
    assert conftest.group_of(stand_in) == stand_in


def test_grading_tests_share_the_graded_class_only_when_they_use_it():
    uses = "tests/test_grading.py::test_honest_submissions_get_exactly_their_points[solution]"
    alone = "tests/test_grading.py::test_a_lost_worker_loses_only_its_own_task"
    assert conftest.group_of(uses) == "tests/test_grading.py"
    assert conftest.group_of(alone) == alone


def test_the_recorded_groups_are_groups_of_this_suite():
    """A stale name in tests/group_seconds.json would silently lose its place at the front."""
    recorded = json.loads((ROOT / "tests" / "group_seconds.json").read_text())
    for group in recorded:
        path = group.split("::")[0]
        assert (ROOT / path).exists(), f"tests/group_seconds.json names {path}, which is gone: refresh it"
        assert conftest.group_of(group) == group, group
