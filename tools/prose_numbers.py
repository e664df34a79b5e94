"""Every number the prose of a notebook states is a measurement it shows or a source it cites.

    python tools/prose_numbers.py lessons/*.ipynb solutions/*.ipynb
    git show REV:lessons/05_catastrophic_forgetting.ipynb > /tmp/05.ipynb && python tools/prose_numbers.py /tmp/05.ipynb

For each number written in a markdown cell, one of these must hold (else it is reported):

1. **Shown.** It is one of the numbers in the notebook's stored outputs, a literal in its code (a
   setting the reader sees: `max_steps=20`, `[:150]`), or in a results file a code cell reads (`load_results("x")` -> data/results/x.json, or a literal `*.json` name), after
   rounding that value to the precision the prose writes (0.66 matches 0.6612; 20 matches 19.6).
   A percentage also matches a fraction (62 % matches 0.617). A number followed by a unit of
   time or of work (minutes, seconds, steps, epochs) must be shown with the same unit: "10 minutes"
   is not backed by "step 10" (time in a results file counts: `minutes`, `seconds` keys).
2. **Cited.** Its sentence carries a citation: an author–year ("Hu et al. 2022", "Smith (2017"),
   an arXiv id, a link, docs/references.md, or a paper's section or table ("QLoRA §3", "Table 2": the
   notebooks number neither their own sections with § nor their tables).
3. **Derived.** The sentence computes it from numbers it states: "16 / 4.127 ≈ 3.9" (the result is
   evaluated; the inputs need backing of their own).
4. **Not a claim.** It is part of a name or a reference, not a quantity: in inline code or math,
   quotation marks (someone else's words, quoted to correct them), inside a word or model name
   (Llama-2-7B, fp32, NF4, 7B), a lesson/section/part/exercise number, a numbered heading, a year, the
   notebook's own run time in its first cell ("about 30 s": the test suite's budget checks it), the
   inputs a graded part's statement sets ("## Q3 …"), or one of the few phrases in `NOT_CLAIMS`.

What it cannot see: a claim without a number ("full fine-tuning stays ahead at every size",
"small next to the seed-to-seed spread"), or a number that is shown but said of the wrong thing.
Those need a reader; the check only makes a wrong *figure* hard to commit. `--review` lists, without
failing, the sentences that compare or generalise without a number (`COMPARISON`), for that reader.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
RESULT_DIRS = ("data/results", "benchmarks/results", "data/models/course-tiny")

# a number: 1,377,408  0.661  3e-4  −0.138  .5 is not written in the course; a trailing % or × is the unit
NUMBER = re.compile(r"(?<![\w.\-/])[−-]?(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?(?:e[−-]?\d+)?)(?![\w/]|\.\d)")
# in outputs a unit may follow without a space ("288.6MB", "20min"); a number inside a word (fp32) still is not one
OUTPUT_NUMBER = re.compile(r"(?<![\w.\-/])[−-]?(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?(?:e[−-]?\d+)?)(?![\d/]|\.\d)")
UNIT = re.compile(r"[\s-]?(%|×|[A-Za-z]+)")
SCALES = {"k": 1e3, "thousand": 1e3, "M": 1e6, "million": 1e6, "B": 1e9, "billion": 1e9}
BYTE_UNITS = {"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
STRICT_UNITS = {"minute": "minute", "minutes": "minute", "min": "minute", "s": "second", "second": "second",
                "seconds": "second", "step": "step", "steps": "step", "epoch": "epoch", "epochs": "epoch"}
UNIT_KEYS = {"minute": ("minute", "min", "second", "seconds", "_s"), "second": ("second", "seconds", "_s"),
             "step": ("step",), "epoch": ("epoch",)}
CITATION = re.compile(
    r"\b[A-Z][\w'-]+(?: et al\.?| (?:&|and) [A-Z][\w'-]+)?,?(?: [A-Z][\w]*)? \(?(?:19|20)\d\d\b"  # Hu et al. 2022
    r"|arXiv|https?://|\]\(|docs/references\.md"
    r"|§\d|\bTables? \d|\b(?:eq\.|Appendix) \d")  # a paper's section or table: the notebooks number neither
# references and names, not quantities
STRUCTURE = re.compile(
    r"\b(?:[Ll]essons?|[Ss]ections?|[Pp]arts?|[Ee]xercises?|[Qq]uestions?|[Ss]teps? [0-9]+ of|[Cc]ells?|§|"
    r"Table|Figure|eq\.|[Ll]ayers?|[Bb]locks?)\s*$")
NOT_CLAIMS = [  # phrases whose number is the set-up or a definition, not a measurement
    re.compile(r"\b\d+(?:-core| (?:idle |CPU )*cores?)\b"),  # the machine the course is written for
    re.compile(r"\b\d+[- ]bits?\b"),  # a format's name: 4-bit, 16 bits
    re.compile(r"\bseeds? \d+\b"),  # which random seed
    re.compile(r"\(1e\d bytes\)"),  # a unit's definition: GB (1e9 bytes)
    re.compile(r"[≥>]=?\s*\d+(?:\.\d+)+"),  # a version requirement: bitsandbytes ≥ 0.45
    re.compile(r"\b(?:RTX|GTX) \d{4}\b"),  # a product name
    re.compile(r"\b(?:torch|transformers|peft|trl|accelerate|bitsandbytes|deepspeed|datasets) \d+(?:\.\d+)+"),  # a version
]
TASK = re.compile(r"^#+\s*(?:Q|Part )\d+\b")  # the statement of a graded part: its numbers are the inputs it sets


# words of a comparison or a generalisation: a sentence with one and no number is a claim to read
COMPARISON = re.compile(r"\b(?:at every|in every|for every|always|never|ahead|behind|small next to|large next to|"
                        r"more than|less than|better|worse|beats?|wins?|outperforms?|no (?:effect|difference)|"
                        r"negligible|within the (?:spread|noise))\b", re.IGNORECASE)


@dataclass
class Claim:
    cell: int
    text: str  # the number as written
    value: float
    decimals: int
    unit: str | None
    sentence: str


def _to_float(text: str) -> tuple[float, int]:
    """The value and its written precision: decimals, or for 3e-4 the decimals of the mantissa minus the exponent."""
    t = text.replace("−", "-").replace(",", "")
    mantissa, _, exponent = t.partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return float(t), decimals - int(exponent or 0)


def _strip(md: str) -> str:
    """Markdown without what is not prose: code, math, link targets, HTML tags."""
    md = re.sub(r"```.*?```", " ", md, flags=re.S)
    md = re.sub(r"`[^`]*`", " CODE ", md)
    md = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", " MATH ", md, flags=re.S)
    md = re.sub(r"\]\(([^)]*)\)", "](link)", md)
    md = re.sub(r"<[^>]+>", " ", md)
    return re.sub(r'"[^"\n]*"|“[^”]*”', " QUOTE ", md)  # someone else's words, quoted (often to correct them)


def _sentences(md: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*]|\d+\.) )|\n(?=#)", md):
        out += re.split(r"(?<=[.!?])\s+(?=[A-Z*(\"'])", " ".join(block.split()))
    return [s for s in out if s]


ARITHMETIC = re.compile(r"((?:[\d.,]+|e\^|[ +\-−×·*/()^√])+?)\s*[≈=]\s*([\d.,]+(?:e[−-]?\d+)?)")


def _derived(sentence: str) -> set[str]:
    """Results of arithmetic written out in the sentence ("16 / 4.127 ≈ 3.9", "e^0.1 ≈ 1.105") that are right."""
    ok = set()
    for m in ARITHMETIC.finditer(sentence):
        expr = m.group(1).replace("−", "-").replace("×", "*").replace("·", "*").replace("^", "**").replace(",", "")
        expr = expr.replace("e**", "2.718281828459045**").replace("√", "")
        if expr.count("(") != expr.count(")"):  # the expression began inside a parenthesis of the prose
            expr = expr.replace("(", " ").replace(")", " ")
        if not re.search(r"\d", expr) or not re.search(r"[-+*/]", expr.strip().lstrip("-")):
            continue
        try:
            value = eval(expr, {"__builtins__": {}})  # digits and operators only, matched above
        except Exception:
            continue
        written, decimals = _to_float(m.group(2).rstrip(".,"))
        if abs(value - written) <= 10.0 ** -decimals / 2 * (1 + 1e-9):
            ok.add(m.group(2).rstrip(".,"))
    return ok


def claims(md: str, cell: int = 0, header: bool = False) -> list[Claim]:
    """The numbers of one markdown cell that need backing (rules 2–4 of the module docstring applied).

    `header`: the notebook's first markdown cell, where "about 30 s" is the notebook's own run time."""
    found = []
    for sentence in _sentences(_strip(md)):
        if CITATION.search(sentence):
            continue
        if sentence.startswith("#"):  # a heading: "## 5. QLoRA on course-tiny" numbers a section
            sentence = re.sub(r"^#+\s*\d+(?:\.\d+)*\.?", "#", sentence)
        masked = re.sub(r"\d+(?= ?s\b)", lambda m: " " * len(m.group()), sentence) if header \
            else sentence
        for phrase in NOT_CLAIMS:
            masked = phrase.sub(lambda m: " " * len(m.group()), masked)
        derived = _derived(masked)
        for m in NUMBER.finditer(masked):
            if m.group() in derived:
                continue  # the sentence computes it
            before = masked[: m.start()]
            if STRUCTURE.search(before) or re.search(r"[A-Za-z][-–]$", before):
                continue
            value, decimals = _to_float(m.group())
            if decimals == 0 and 1900 <= value <= 2100:
                continue  # a year
            unit = UNIT.match(masked, m.end())
            u = unit.group(1) if unit else None
            if u in SCALES:  # 1.4 million, 6.74 B: compare in that unit
                value, decimals = value * SCALES[u], decimals - round(math.log10(SCALES[u]))
            found.append(Claim(cell, m.group(), value, decimals, STRICT_UNITS.get(u, u), sentence))
    return found


def unquantified(nb: nbformat.NotebookNode) -> list[str]:
    """Clauses that compare or generalise without any number: not checkable here, worth a reader's look."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            clauses = [c for s in _sentences(_strip(cell.source)) for c in re.split(r"[:;]\s|\s[—–]\s", s)]
            found += [f"cell {i}: {c[:160]}" for c in clauses if COMPARISON.search(c) and not NUMBER.search(c)]
    return found


def _walk(obj, key: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)
    elif isinstance(obj, bool):
        return
    elif isinstance(obj, (int, float)):
        yield float(obj), key
    elif isinstance(obj, str):
        for m in NUMBER.finditer(obj):
            yield _to_float(m.group())[0], key


def evidence(nb: nbformat.NotebookNode, root: Path = ROOT) -> list[tuple[float, str | None]]:
    """(value, unit-or-key) for every number in the stored outputs and in the results files the code reads."""
    out: list[tuple[float, str | None]] = []
    files = set()
    points = [cell.metadata.get("course", {}).get("points", 0) for cell in nb.cells]
    out.append((float(sum(points)), None))  # an exercise's total: "11 points in all"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        files |= {f"{name}.json" for name in re.findall(r"load_results\(\s*[\"'](\w+)[\"']", cell.source)}
        files |= set(re.findall(r"[\"']([\w.-]+\.json)[\"']", cell.source))
        code = re.sub(r"#.*", "", cell.source)  # a setting the reader sees in the code: max_steps=20, [:150]
        out += [(_to_float(m.group(2))[0], "key:" + m.group(1).lower())
                for m in re.finditer(r"(\w+)\s*[=:]\s*[\"']?(" + NUMBER.pattern + ")", code)]
        out += [(_to_float(m.group())[0], None) for m in NUMBER.finditer(code)]
        for o in cell.get("outputs", []):
            text = o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            for m in OUTPUT_NUMBER.finditer(text.replace("−", "-")):
                unit = UNIT.match(text, m.end())
                u = unit.group(1) if unit else None
                out.append((_to_float(m.group())[0], STRICT_UNITS.get(u, u)))
    for name in sorted(files):
        for d in RESULT_DIRS:
            path = root / d / name
            if path.is_file():
                out += [(v, "key:" + k.lower()) for v, k in _walk(json.loads(path.read_text()))]
                break
    return out


def _matches(claim: Claim, value: float, unit: str | None) -> bool:
    strict = claim.unit in UNIT_KEYS
    scales = [1.0]
    if claim.unit == "%":
        scales.append(100.0)
    if claim.unit in BYTE_UNITS and unit and unit.startswith("key:") and "byte" in unit:
        scales.append(1 / BYTE_UNITS[claim.unit])  # a results file keeps bytes
    if strict:
        if unit and unit.startswith("key:"):
            if not any(k in unit for k in UNIT_KEYS[claim.unit]):
                return False
            if claim.unit == "minute" and "min" not in unit:
                scales = [1 / 60]
        elif unit != claim.unit:
            return False
    step = 10.0 ** -claim.decimals  # the written precision: 0.66 -> 0.01, 3e-4 -> 1e-4, 1.4 million -> 1e5
    return any(abs(abs(value * s) - abs(claim.value)) <= step / 2 * (1 + 1e-9) for s in scales)


def unbacked(nb: nbformat.NotebookNode, root: Path = ROOT) -> list[Claim]:
    """The claims of `nb` that no output or results file shows and no citation covers."""
    shown = evidence(nb, root)
    missing = []
    markdown = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"]
    for i in markdown:
        if not TASK.match(nb.cells[i].source.lstrip()):
            missing += [c for c in claims(nb.cells[i].source, i, header=i == markdown[0])
                        if not any(_matches(c, v, u) for v, u in shown)]
    return missing


def report(path: Path, root: Path = ROOT) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [f"{path.name} cell {c.cell}: {c.text}{' ' + c.unit if c.unit else ''} — {c.sentence[:140]}"
            for c in unbacked(nb, root)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="+", type=Path)
    p.add_argument("--review", action="store_true", help="also list comparisons made without a number (no failure)")
    args = p.parse_args(argv)
    lines = [line for path in args.notebooks for line in report(path)]
    if args.review:
        for path in args.notebooks:
            for line in unquantified(nbformat.read(path, as_version=4)):
                print(f"review {path.name} {line}")
    print("\n".join(lines) or "every number in the prose is shown or cited")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
