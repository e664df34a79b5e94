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


def test_a_real_model_lesson_is_held_to_three_minutes_without_its_wait_for_the_model():
    lesson_06 = "lessons/06_instruction_tuning.ipynb"
    waited = conftest.budget_line(lesson_06, 230.7, waited=103.0)
    assert waited.split()[0] == "127.7" and "103.0 s waiting" in waited and "OVER BUDGET" not in waited
    assert "OVER BUDGET" in conftest.budget_line(lesson_06, 181.0)
    assert "OVER BUDGET" in conftest.budget_line("lessons/01_transfer_learning.ipynb", 91.0)
    assert "OVER BUDGET" not in conftest.budget_line("lessons/01_transfer_learning.ipynb", 89.0)
    assert all((ROOT / path).exists() for path in conftest.REAL_MODEL_NOTEBOOKS)


def test_a_model_wait_is_counted_only_in_the_cell_during_which_the_conversion_finished(tmp_path, monkeypatch):
    from types import SimpleNamespace

    lesson = "lessons/07_preference_tuning.ipynb"
    monkeypatch.setattr(conftest, "_converted_at", lambda name: 1000.0)
    monkeypatch.setattr(conftest, "_notebook_seconds", conftest.defaultdict(float))
    monkeypatch.setattr(conftest, "_model_wait_seconds", conftest.defaultdict(float))
    for start, stop in [(900.0, 1005.0), (1005.0, 1010.0)]:  # the first cell waited 100 s, the next did not
        conftest._notebook_seconds_add(SimpleNamespace(nodeid=f"{lesson}::Cell 0", when="call", start=start,
                                                       stop=stop, duration=stop - start))
    assert conftest._model_wait_seconds[lesson] == 100.0 and conftest._notebook_seconds[lesson] == 110.0


def test_the_summary_looks_for_the_model_where_the_zoo_puts_it(tmp_path, monkeypatch):
    from course_lib.models.zoo import named_model_path

    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert conftest._converted_at("smollm2-135m-instruct") is None
    (named_model_path("smollm2-135m-instruct")).mkdir(parents=True)
    (named_model_path("smollm2-135m-instruct") / "README.md").write_text("done")
    assert conftest._converted_at("smollm2-135m-instruct") is not None
