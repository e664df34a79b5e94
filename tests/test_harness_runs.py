"""`course evaluate` and `course leak` (lesson 10): what they plan and which rows each arm trains on, without a model."""

import pytest

from course_lib.data.tasks import function_parts, task_rows
from course_lib.experiments.harness_runs import ARMS, EvalConfig, planned_runs, run_key
from course_lib.experiments.leakage import LeakConfig, arm_rows, leak_rows


def test_planned_runs():
    plan = planned_runs(EvalConfig())
    assert len({run_key(r) for r in plan}) == len(plan) == 13
    assert {r["arm"] for r in plan} == set(ARMS)
    tiny = [r for r in plan if r["arm"] == "course-tiny"]
    assert not any(r["apply_chat_template"] for r in tiny)  # course-tiny never trained in its template
    assert {r["limit"] for r in plan if r["num_fewshot"] == 2} == {48}
    assert [r for r in plan if r["apply_chat_template"] and r["task"] == "docstring_choice"][0]["arm"] == "base"
    with pytest.raises(ValueError, match="unknown arm"):
        planned_runs(EvalConfig(arms=["gpt"]))


def test_leak_rows_are_disjoint_and_only_the_leak_arm_sees_them():
    config = LeakConfig(leaked=6, train_rows=4)
    leaked, clean = leak_rows(config.leaked)
    names = [function_parts(r["messages"][0]["content"])[0] for r in leaked + clean]
    assert names == [it["function"] for it in task_rows("docstring_choice")[:12]]  # the harness's first items
    leak_arm, control = arm_rows("leaked", config), arm_rows("clean", config)
    assert len(leak_arm) == len(control) == 10 and leak_arm[:4] == control[:4]
    assert all(r in leak_arm for r in leaked) and not any(r in control for r in leaked + clean)
    assert not any(r in leak_arm for r in clean)
