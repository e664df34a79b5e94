"""Committed outputs show the course, not the machine that built them.

The saved outputs of lessons/ and solutions/ are the page students read first (STYLE.md 12).
This fails on what has leaked into them before: absolute paths (a home folder, the checkout,
site-packages), library warnings (`…Warning:` lines, `file.py:NNN` references), progress bars
frozen part-way (a tqdm widget saved as its first frame, "0%| | 0/38"), transformers' weight-loading
bar (even finished) and its ANSI-coloured load report, and stray reprs of a cell's last expression
(`<function …>`, `<matplotlib… at 0x…>`). Fix the source in sources/ and rebuild with
tools/build_notebooks.py; silence a known library warning at the source.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(REPO.glob("lessons/*.ipynb")) + sorted(REPO.glob("solutions/*.ipynb"))

PROBLEMS = {
    "absolute path": re.compile(r"(?<![\w.~])(?:/(?:home|Users|root|work|tmp|opt|usr|var|srv|mnt|private)/\S"
                                r"|[A-Za-z]:\\\\?(?:Users|Program))|site-packages"),
    "warning": re.compile(r"\b\w*Warning\b:|\bFutureWarning\b|\b[\w/.-]+\.py:\d+\b|warnings\.warn\("),
    "stray repr": re.compile(r"^<(?:function|bound method|module|generator object) |<[\w.]+ (?:object )?at 0x"),
    # transformers' weight-loading bar (finished or not) and its load report, coloured with ANSI escapes
    "loading report": re.compile(r"Loading (?:weights|checkpoint shards)\b|LOAD REPORT|\x1b\[[0-9;]*m"),
}
# tqdm's text: "label:  40%|████      | 4/10 [00:01<00:02, ...]"
BAR = re.compile(r"(\d+)%\|[^|\n]*\|\s*(\d+(?:\.\d+)?[kMG]?)/(\d+(?:\.\d+)?[kMG]?)")


def output_texts(output) -> list[str]:
    """The text a reader sees for one output: stream text, text/plain, tracebacks."""
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return ["\n".join(output.get("traceback", []))]
    data = output.get("data", {})
    text = data.get("text/plain", "")
    return ["".join(text) if isinstance(text, list) else text]


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """One line per offending output line: cell id, kind, the line."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            is_widget = "application/vnd.jupyter.widget-view+json" in output.get("data", {})
            for text in output_texts(output):
                for line in text.splitlines():
                    for kind, pattern in PROBLEMS.items():
                        if pattern.search(line):
                            found.append(f"cell {cell.get('id')}: {kind}: {line[:160]}")
                    bar = BAR.search(line)
                    # a widget bar is saved as its first frame whatever happened next; a text bar
                    # short of its total stopped part-way
                    if bar and (is_widget or bar.group(2) != bar.group(3)):
                        found.append(f"cell {cell.get('id')}: frozen progress bar: {line[:160]}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_outputs_are_clean(path):
    found = problems(nbformat.read(path, as_version=4))
    assert not found, f"{path.relative_to(REPO)}:\n" + "\n".join(found)


def _nb(*outputs) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("x", outputs=list(outputs))
    cell.id = "c1"
    return nbformat.v4.new_notebook(cells=[cell])


def _stream(text: str, name: str = "stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _display(text: str, widget: bool = False):
    data = {"text/plain": text}
    if widget:
        data["application/vnd.jupyter.widget-view+json"] = {"model_id": "ab", "version_major": 2, "version_minor": 0}
    return nbformat.v4.new_output("display_data", data=data)


@pytest.mark.parametrize("output, kind", [
    (_stream("data         /srv/course/data"), "absolute path"),
    (_stream("model at /home/ana/course/data/models/course-tiny"), "absolute path"),
    (_stream("C:\\Users\\ana\\course\\data"), "absolute path"),
    (_stream("/usr/lib/python3/site-packages/x/y.py:3: UserWarning: careful", "stderr"), "warning"),
    (_stream("modeling_utils.py:3303: FutureWarning: `is_gradient_checkpointing` is deprecated", "stderr"), "warning"),
    (_stream("  warnings.warn(", "stderr"), "warning"),
    (_stream("Loading weights: 100%|██████████| 38/38 [00:00<00:00, 977.33it/s]", "stderr"), "loading report"),
    (_stream("LlamaForCausalLM LOAD REPORT from: x\nKey | Status\n\x1b[38;5;208mUNEXPECTED\x1b[0m", "stderr"),
     "loading report"),
    (_display("Loading weights:   0%|          | 0/38 [00:00<?, ?it/s]", widget=True), "frozen progress bar"),
    (_stream("train:  40%|████      | 4/10 [00:01<00:02,  3.0it/s]", "stderr"), "frozen progress bar"),
    (nbformat.v4.new_output("execute_result", data={"text/plain": "<function __main__.short_run(lr: float) -> None>"},
                            execution_count=1), "stray repr"),
    (nbformat.v4.new_output("execute_result", data={"text/plain": "[<matplotlib.lines.Line2D at 0x7f3a2c1b2d90>]"},
                            execution_count=1), "stray repr"),
])
def test_the_check_catches(output, kind):
    found = problems(_nb(output))
    assert any(f": {kind}: " in line for line in found), found


@pytest.mark.parametrize("output", [
    _stream("data         ../data\nmodel        course-tiny (course-tiny at ../data/models/course-tiny)"),
    _stream("train: 100%|██████████| 10/10 [00:01<00:00,  9.1it/s]", "stderr"),
    _display("<Figure size 600x350 with 1 Axes>"),
    _display("IntSlider(value=8, description='rank r', max=64, min=1)", widget=True),
    _stream("LR 1e-01 diverged at step 3: lower the learning rate (try 1e-3) or clip gradients"),
    _stream("ratio 0.5/1.0 and 12/12 points; see data/results/forgetting.json"),
])
def test_the_check_lets_honest_outputs_pass(output):
    assert problems(_nb(output)) == []
