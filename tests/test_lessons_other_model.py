"""Every lesson runs unchanged on another model set with COURSE_MODEL.

The stand-in is a different Llama, saved in a temp folder: narrower, another depth, grouped-query
attention and untied embeddings. Its weights are random, so only "runs top to bottom without an
error" is checked, not the numbers. `make test-real` sets LESSONS_REAL_MODEL=smollm2-135m-instruct
to run the same check on a real pretrained model (slow: not part of `make test`).

Each lesson runs in a forked copy of a process that has already imported torch, transformers, peft and
the course (`warm`), through an IPython shell as a kernel would run it: a fresh kernel would pay those
imports again, about ten seconds a lesson on a 2-core laptop, for a check that only needs the lesson's
own code to run. nbval runs every lesson in a real kernel anyway (with course-tiny, outputs compared).
"""

import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.models.base import COURSE_TINY, course_tiny_path

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("*.ipynb"))
REAL_MODEL = os.environ.get("LESSONS_REAL_MODEL")  # a name or folder that COURSE_MODEL accepts
LESSON_TIMEOUT_S = 600  # each lesson, top to bottom
# Lessons that read artefacts trained on one model: with another model they need that model's own run first.
TRAINED_ON_DEFAULT = {"06_instruction_tuning": "lesson 06 loads adapters `course sft` trained on "
                                               "smollm2-135m-instruct (its default); another model needs its own "
                                               "`COURSE_MODEL=... course sft` first",
                     "07_preference_tuning": "lesson 07 merges lesson 06's adapter, trained on smollm2-135m-instruct; "
                                             "another model needs its own `course sft`, `course dpo-pairs` and the runs "
                                             "after them first",
                     "11_which_method": "lesson 11 reads `course compare-methods`'s runs on smollm2-135m-instruct and "
                                        "needs a chat model; another model needs its own `course compare-methods "
                                        "--model ... --out ...` first"}


def _run_cells(sources: list[str]) -> int:
    """The child: run the cells in order in one IPython shell; 0, or 1 after printing the failing cell."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance(colors="NoColor")
    for index, source in enumerate(sources):
        result = shell.run_cell(source, store_history=False)
        if not result.success:
            print(f"\n--- code cell {index} failed:\n{source}", flush=True)
            return 1
    return 0


def execute(nb, path: Path, seconds: float) -> str:
    """Run every code cell in a forked child of this (warm) process, in `path`; raises on an error, or when
    the whole lesson takes over `seconds`. Returns what the lesson printed."""
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    with tempfile.TemporaryFile("w+b") as log:
        sys.stdout.flush(), sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 2
            try:
                os.setpgid(0, 0)  # its own process group: a timeout stops what it launched too
                os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
                sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, closefd=False)
                sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False)
                os.chdir(path)
                import matplotlib
                matplotlib.use("Agg")  # in this child only: figures are drawn, not shown
                code = _run_cells(sources)
            except BaseException:  # noqa: BLE001 - reported through the log and the exit code
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os._exit(code)
        deadline, status = time.monotonic() + seconds, None
        while status is None and time.monotonic() < deadline:
            done, raw = os.waitpid(pid, os.WNOHANG)
            status = raw if done else None
            time.sleep(0 if done else 0.2)
        if status is None:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        log.seek(0)
        printed = log.read().decode("utf-8", "replace")
    if status is None or not os.WIFEXITED(status) or os.WEXITSTATUS(status):
        why = "timed out" if status is None else f"exit status {status}"
        raise AssertionError(f"{path.name}: the lesson failed ({why}):\n{printed[-6000:]}")
    return printed


@pytest.fixture(scope="module")
def warm():
    """This process with the lessons' heavy imports done once, so each forked lesson starts warm."""
    import matplotlib.pyplot  # noqa: F401  (no MPLBACKEND here: nbval's kernels, started later, inherit it)
    import peft  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401
    from IPython.core.interactiveshell import InteractiveShell  # noqa: F401

    import course_lib.experiments  # noqa: F401
    import course_lib.tuning  # noqa: F401


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    if REAL_MODEL:
        return REAL_MODEL
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("other-llama")
    # narrower than course-tiny (96 against 128) so the check stays quick; what differs is the shape
    cfg = LlamaConfig(vocab_size=4096, hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                      num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    AutoTokenizer.from_pretrained(course_tiny_path()).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_with_course_model(lesson, other_model, warm, monkeypatch):
    if lesson.stem in TRAINED_ON_DEFAULT and not REAL_MODEL:
        pytest.skip(TRAINED_ON_DEFAULT[lesson.stem])
    monkeypatch.setenv("COURSE_MODEL", str(other_model))
    nb = nbformat.read(lesson, as_version=4)
    printed = execute(nb, lesson.parent, LESSON_TIMEOUT_S)  # raises on any error
    if lesson.stem == "00_start_here":  # it prints which model it loaded: the stand-in, not course-tiny
        assert f"model: {other_model}" in printed
        assert not re.search(r"\bnan\b", printed)  # the random-init twin is built from this model's config
        assert "training tokens seen" not in printed  # course-tiny's pre-training facts are not this model's
        assert re.search(rf"validation +{COURSE_TINY} +\d\.\d+ bits per byte", printed)  # compared per byte
