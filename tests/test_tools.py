"""tools/: the maintainer scripts read notebooks and JUnit reports the way the lessons and pytest write them."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nb(*texts):
    return {"cells": [{"cell_type": "markdown", "source": "x"}] + [
        {"cell_type": "code", "source": "", "outputs": [{"output_type": "stream", "name": "stdout", "text": t}]}
        for t in texts]}


def test_compare_outputs_sees_real_changes_and_ignores_sanitized_noise():
    tool = _load("compare_outputs")
    subs = tool._sanitizers()
    before = tool.outputs(_nb("accuracy 0.66123\n", "took 12.3 s\n"), subs)
    noise = tool.outputs(_nb("accuracy 0.66129\n", "took 9.8 s\n"), subs)  # 5th decimal, a wall time
    moved = tool.outputs(_nb("accuracy 0.6598\n", "took 12.3 s\n"), subs)
    assert before == noise
    assert [i for i in before if before[i] != moved[i]] == [1]


def test_drift_report_names_notebooks_and_tests(tmp_path):
    tool = _load("drift_report")
    junit = tmp_path / "r.xml"
    junit.write_text('<testsuites><testsuite>'
                     '<testcase classname="lessons.04_qlora_consumer_gpu.ipynb" name="Cell 7"><failure message="x"/></testcase>'
                     '<testcase classname="tests.test_cli" name="test_a"><error message="boom"/></testcase>'
                     '<testcase classname="tests.test_cli" name="test_b"/>'
                     '</testsuite></testsuites>')
    assert tool.failures(junit) == [("lessons/04_qlora_consumer_gpu.ipynb", "Cell 7", "x"),
                                     ("tests/test_cli.py", "test_a", "boom")]
