"""Every lesson runs unchanged on another model set with COURSE_MODEL.

The stand-in is a different Llama, saved in a temp folder: narrower, another depth, grouped-query
attention and untied embeddings. Its weights are random, so only "runs top to bottom without an
error" is checked, not the numbers. `make test-real` sets LESSONS_REAL_MODEL=smollm2-135m-instruct
to run the same check on a real pretrained model (slow: not part of `make test`).
"""

import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager
from traitlets import default

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


class _KernelManager(AsyncKernelManager):
    """nbval's kernel: this environment's Python."""

    @default("kernel_spec_manager")
    def _nbval_specs(self):
        return NbvalKernelspecManager(data_dir=self.data_dir)


def execute(nb, path: Path, seconds: float) -> None:
    """Run every cell in a new kernel; raises on an error, or when the whole notebook takes over `seconds`.

    The kernel is nbval's (this environment's Python), so under pytest it is forked from conftest.py's warm
    server like every notebook's; never a fork of the pytest worker itself: a lesson forked from a worker
    that had trained models once spun at full CPU after its first cell (OpenMP's pool does not survive a
    fork)."""
    client = NotebookClient(nb, kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_manager_class=_KernelManager,
                            resources={"metadata": {"path": str(path)}})  # it owns the kernel: shut down after
    deadline = time.monotonic() + seconds
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.timeout = max(1, int(deadline - time.monotonic()))  # what is left of the lesson's budget
            client.execute_cell(cell, index)


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
def test_lesson_runs_with_course_model(lesson, other_model, monkeypatch):
    if lesson.stem in TRAINED_ON_DEFAULT and not REAL_MODEL:
        pytest.skip(TRAINED_ON_DEFAULT[lesson.stem])
    monkeypatch.setenv("COURSE_MODEL", str(other_model))
    nb = nbformat.read(lesson, as_version=4)
    execute(nb, lesson.parent, LESSON_TIMEOUT_S)  # raises on any error
    if lesson.stem == "00_start_here":  # it prints which model it loaded: the stand-in, not course-tiny
        printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        assert f"model: {other_model}" in printed
        assert not re.search(r"\bnan\b", printed)  # the random-init twin is built from this model's config
        assert "training tokens seen" not in printed  # course-tiny's pre-training facts are not this model's
        assert re.search(rf"validation +{COURSE_TINY} +\d\.\d+ bits per byte", printed)  # compared per byte
