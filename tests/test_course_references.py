"""Course text cites what students can read: papers and documentation (docs/references.md).

The course was written from source documents students never get (a notes file of verified figures,
a folder of raw material). A lesson that says "(FACTS: …)", "one of the course's seed sources" or
"Seed question 1" points at something the reader cannot open. This fails when such a reference
appears in a lesson, solution or exercise; "seed" stays for random seeds.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
FILES = sorted(p for d in ("sources/lessons", "sources/solutions") for p in (REPO / d).glob("*.py")) + sorted(
    p for d in ("lessons", "solutions", "exercises") for p in (REPO / d).glob("*.ipynb"))
HIDDEN = re.compile(r"(?-i:\bFACTS\b)|\bseeds?(?:\s+#)?\s+(?:sources?|questions?|documents?|tables?|files?)\b|\bthe seed's\b|\bseeds'(?=\s)"
                    r"|\bthe\s+seeds?\s+(?:promises?|says?|lists?|claims?|calls?)\b|shared/seeds", re.IGNORECASE)


def hidden_references(text: str) -> list[str]:
    """The places in `text` that cite a source document students do not have."""
    return [" ".join(m.string[max(m.start() - 40, 0):m.end() + 40].split()) for m in HIDDEN.finditer(text)]


def _text(path: Path) -> str:
    if path.suffix == ".py":
        return path.read_text()
    nb = nbformat.read(path, as_version=4)
    return "\n".join(cell.source for cell in nb.cells)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_reference_students_cannot_see(path):
    found = hidden_references(_text(path))
    assert not found, (f"{path.relative_to(REPO)} cites a source students do not have; cite the paper or "
                       "documentation (docs/references.md) instead:\n" + "\n".join(found))


@pytest.mark.parametrize("line", ["(FACTS: Learning rate)", "as one of the course's seed sources calls it",
                                  "**Seed question 1:** the total VRAM", "The seeds' analysis exercise",
                                  "the seed's table, corrected", "The seeds promise 8×", "one of the seed\n# sources says"])
def test_catches_hidden_references(line):
    assert hidden_references(line)


@pytest.mark.parametrize("line", ["set_seed(0)", "seed 0, the same batches", "3 seeds with mean ± sd",
                                  "inside the seed-to-seed spread", "torch.manual_seed(0)",
                                  "the seed of each run", "the seeds for the replay runs", "a facts table", "one seed's curves"])
def test_random_seeds_stay(line):
    assert not hidden_references(line)
