"""Every number in a notebook's prose is shown by the notebook, cited, derived in the sentence, or not a claim.

The rules are in tools/prose_numbers.py. A failure names the notebook, the cell and the sentence: fix
the sentence (or print the number in a cell above it), not the allow-list.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(REPO.glob("lessons/*.ipynb")) + sorted(REPO.glob("solutions/*.ipynb"))


def _tool():
    spec = importlib.util.spec_from_file_location("prose_numbers", REPO / "tools" / "prose_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["prose_numbers"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


prose = _tool()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_number_in_the_prose_is_backed(path):
    found = prose.report(path)
    assert not found, "numbers in the prose that no output, results file or citation backs:\n" + "\n".join(found)


def _nb(markdown: list[str], output: str = "", code: str = "x = 1") -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_markdown_cell("# Lesson 09 — a title")]
    cells.append(nbformat.v4.new_code_cell(code, outputs=[nbformat.v4.new_output("stream", name="stdout",
                                                                                  text=output)]))
    cells += [nbformat.v4.new_markdown_cell(m) for m in markdown]
    return nbformat.v4.new_notebook(cells=cells)


def _unbacked(markdown: str, output: str = "", code: str = "x = 1") -> list[str]:
    return [c.text for c in prose.unbacked(_nb([markdown], output, code))]


# the contradictions issue 13 found, in the form they had (lesson 05 before commit 9fb27d5)
def test_catches_a_step_count_the_results_do_not_have():
    assert _unbacked("The runs fine-tune on A for 60 steps and then on B for 60 more.",
                     "forgetting.json: 30 runs, 40 steps each, 20 min") == ["60", "60"]


def test_catches_a_run_time_next_to_a_different_printed_one():
    out = "made by `course forgetting`, 40 steps each, 10 % growth, step 10, 20 min"
    assert _unbacked("Re-run it with `course forgetting` (about 10 minutes on 2 idle cores).", out) == ["10"]
    assert _unbacked("Re-run it with `course forgetting` (about 20 minutes on 2 idle cores).", out) == []


def test_rounding_follows_the_written_precision():
    out = "accuracy 0.6612, loss 19.6, share 0.617, peak 112.53 GB, lr 0.0003"
    assert _unbacked("It reaches 0.66 (0.661), about 20, 62 %, 112.5 GB, at 3e-4.", out) == []
    assert _unbacked("It reaches 0.67 and 0.662.", out) == ["0.67", "0.662"]


def test_citations_derivations_quotes_and_names_are_not_checked():
    assert _unbacked("GPT-3 175B needs 1.2 TB (Hu et al. 2022, §4.2).") == []
    assert _unbacked("Pile-CC perplexity 27.41 (QLoRA, Table 2).") == []
    assert _unbacked("That is 16 / 4.127 ≈ 3.9× smaller.", "16 vs 4.127 bits") == []
    assert _unbacked("That is 16 / 4.127 ≈ 4.5× smaller.", "16 vs 4.127 bits") == ["4.5"]
    assert _unbacked('A table lists "LoRA (FP16) 7B: 12 GB".') == []
    assert _unbacked("In lesson 03, section 5, on Llama-2-7B in fp32 with NF4 on 2 cores and a 4-bit code.") == []


def test_settings_in_the_code_and_results_files_count(tmp_path):
    assert _unbacked("A live run of 20 steps on 150 documents.", code="texts = texts[:150]\ncfg(max_steps=20)") == []
    (tmp_path / "data" / "results").mkdir(parents=True)
    (tmp_path / "data" / "results" / "x.json").write_text('{"runs": [{"max_steps": 40, "seconds": 1210}]}')
    nb = _nb(["Each of 40 steps; the command takes about 20 minutes."], code='load_results("x")')
    assert prose.unbacked(nb, tmp_path) == []


def test_review_lists_comparisons_made_without_a_number():
    nb = _nb(["Training from scratch catches up — but full fine-tuning stays ahead at every size: 0.662 against 0.482.",
              "Warm-up + cosine is a formula; on this task its effect is small next to the seed-to-seed spread."])
    found = prose.unquantified(nb)
    assert any("stays ahead at every size" in line for line in found)
    assert any("small next to the seed-to-seed spread" in line for line in found)
    assert not any("0.662" in line for line in found)
