"""Settings for the whole suite (unit tests and notebooks), a per-notebook time summary, and how `make test`
spreads the work over the cores.

Scheduling (pytest-xdist `--dist loadscope --no-loadscope-reorder`, as the Makefile runs it): a notebook's cells
stay together on one worker (they share a kernel), and so do a test module's tests (they share module fixtures),
except in SPLIT (and the tests of test_grading.py that do not use its graded class), whose tests are independent
and go wherever a core is free. Groups start longest first, from
tests/group_seconds.json (a fresh clone's run on a 2-core CPU; a group not listed counts as short), so no long
group starts last while the other core idles. Order and grouping change only the wall time, never a result.
Refresh the file after a lesson or a test changes much: `make test PYTEST_EXTRA=--group-seconds-out=tests/group_seconds.json`.
"""

import ast
import functools
import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

# Never touch the network: everything the course needs ships with it. Notebook kernels
# started by nbval inherit these.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

NOTEBOOK_BUDGET_S = 90.0  # each course-tiny notebook, top to bottom, on a 2-core CPU (hard limit)
# Lessons that run SmolLM2-135M-Instruct by default (the Makefile's list): 3 minutes each. Their first cell may wait for the
# model's conversion (`make test` runs `course get-model` beside the tests); that wait is reported apart.
REAL_MODEL_NOTEBOOKS = {f"lessons/{stem}.ipynb": "smollm2-135m-instruct" for stem in
                        ("06_instruction_tuning", "07_preference_tuning", "09_rl_verifiable_rewards", "10_evaluation",
                         "11_which_method")}
REAL_MODEL_BUDGET_S = 180.0
_notebook_seconds: dict[str, float] = defaultdict(float)
_model_wait_seconds: dict[str, float] = defaultdict(float)


def _converted_at(name: str) -> float | None:
    """When the model's conversion finished (its README.md is written last), or None if it has not.
    The folder is zoo.named_model_path's, found without importing torch into the controller: data/ of this
    checkout, or $COURSE_DATA (course_lib.data.datasets.data_dir's rule)."""
    data = Path(os.environ.get("COURSE_DATA") or Path(__file__).resolve().parent / "data")
    readme = data / "models" / name / "README.md"
    return readme.stat().st_mtime if readme.exists() else None


def _notebook_seconds_add(report):
    path = report.nodeid.split("::")[0]
    if not path.endswith(".ipynb"):
        return
    _notebook_seconds[path] += report.duration
    model = REAL_MODEL_NOTEBOOKS.get(path)
    done = _converted_at(model) if model and report.when == "call" else None
    if done is not None and report.start < done <= report.stop:  # the conversion finished during this cell
        _model_wait_seconds[path] += done - report.start


def budget_line(path: str, seconds: float, waited: float = 0.0) -> str:
    """One line of the summary: the notebook's own seconds against its budget, a model wait apart."""
    budget = REAL_MODEL_BUDGET_S if path in REAL_MODEL_NOTEBOOKS else NOTEBOOK_BUDGET_S
    own = seconds - waited
    line = f"{own:7.1f} s  {path}"
    if path in REAL_MODEL_NOTEBOOKS:
        line += f"  (real model, budget {budget:.0f} s)"
    if waited:
        line += f"  + {waited:.1f} s waiting for `course get-model`"
    return line + ("  OVER BUDGET" if own > budget else "")


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    terminalreporter.section(f"seconds per notebook (budget {NOTEBOOK_BUDGET_S:.0f} s each, "
                             f"{REAL_MODEL_BUDGET_S:.0f} s on the real model)")
    for path, seconds in sorted(_notebook_seconds.items()):
        terminalreporter.write_line(budget_line(path, seconds, _model_wait_seconds.get(path, 0.0)))


ROOT = Path(__file__).resolve().parent
SPLIT = {"tests/test_lessons_other_model.py", "tests/test_exercise_wrong_answers.py"}
SHARED_FIXTURES = {"tests/test_grading.py": "graded"}  # a module whose tests not using this fixture are independent
_group_seconds: dict[str, float] = defaultdict(float)


def pytest_addoption(parser):
    parser.addoption("--group-seconds-out", default=None,
                     help="write each group's total seconds to this JSON file (tests/group_seconds.json)")


@functools.lru_cache(maxsize=None)
def _test_arguments(path: str) -> dict[str, set[str]]:
    """Each test function of a test file, and the names of its arguments (the fixtures it uses)."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return {f.name: {a.arg for a in f.args.args} for f in tree.body if isinstance(f, ast.FunctionDef)}


def group_of(nodeid: str) -> str:
    """The work unit a test or notebook cell belongs to: its file, or itself where it shares nothing."""
    path, _, rest = nodeid.partition("::")
    if path in SPLIT:
        return nodeid
    shared = SHARED_FIXTURES.get(path)
    if shared and rest and shared not in _test_arguments(path).get(rest.split("[")[0], {shared}):
        return nodeid
    return path


def _seconds() -> dict[str, float]:
    known = ROOT / "tests" / "group_seconds.json"
    return json.loads(known.read_text()) if known.exists() else {}


def pytest_collectstart(collector):
    """An exercise notebook runs as `--nbval-lax` would run it (its stubs raise; only tagged cells are checked)
    even in a `--nbval` run, so `make test` checks lessons, solutions and exercises in one session."""
    path = getattr(collector, "path", None)
    if path is not None and path.suffix == ".ipynb" and path.parent.name == "exercises" and \
            hasattr(collector, "compare_outputs"):
        collector.compare_outputs = False


def pytest_collection_modifyitems(config, items):
    """Longest groups first, each group's items together and in their order (the scheduler follows it)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    seconds, first = _seconds(), {}
    for index, item in enumerate(items):
        first.setdefault(group_of(item.nodeid), index)
    items.sort(key=lambda item: (-seconds.get(group_of(item.nodeid), 0.0), first[group_of(item.nodeid)]))


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadscope` with conftest's groups for scopes (pytest-xdist's `loadgroup` marks rename node ids,
    which pytest 9 no longer lets a plugin do)."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)


# Notebook kernels forked from a server that has imported torch, transformers and peft once per worker
# (tests/warm_kernels.py, checked against fresh kernels by tests/test_warm_kernels.py): about 10 s of one core
# less per notebook. COURSE_COLD_KERNELS=1 starts every kernel fresh, as before.
_warm_server = None


def pytest_collection_finish(session):
    global _warm_server
    if os.environ.get("COURSE_COLD_KERNELS") == "1" or _warm_server is not None:
        return
    if not hasattr(session.config, "workerinput") and session.config.getoption("dist", "no") != "no":
        return  # the xdist controller runs no test
    if not any(str(item.path).endswith(".ipynb") or item.path.name == "test_lessons_other_model.py"
               for item in session.items):
        return
    import sys
    import tempfile

    from nbval import kernel

    sys.path.insert(0, str(ROOT / "tests"))
    import warm_kernels

    _warm_server = server = warm_kernels.Server(Path(tempfile.mkdtemp(prefix="warm-kernels-")))
    plain = kernel.NbvalKernelspecManager.get_kernel_spec

    def get_kernel_spec(self, kernel_name):
        spec = plain(self, kernel_name)
        if kernel_name == kernel.CURRENT_ENV_KERNEL_NAME:
            server.wait_ready()
            spec.argv = server.argv()
        return spec

    kernel.NbvalKernelspecManager.get_kernel_spec = get_kernel_spec


def pytest_unconfigure(config):
    if _warm_server is not None:
        _warm_server.stop()


def pytest_runtest_logreport(report):
    _notebook_seconds_add(report)
    _group_seconds[group_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session):
    out = session.config.getoption("group_seconds_out")
    if out and _group_seconds and not hasattr(session.config, "workerinput"):  # the controller, once
        rounded = {g: round(s, 1) for g, s in sorted(_group_seconds.items(), key=lambda kv: -kv[1])}
        Path(out).write_text(json.dumps(rounded, indent=1) + "\n")
