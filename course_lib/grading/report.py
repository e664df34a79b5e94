"""What `course grade` writes: the gradebook CSV, the summary CSV, feedback Markdown, `--json`.

Everything a student controls (folder names, notebook names, messages quoting their code or
exceptions) is made inert here: a CSV cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return (or a quote) gets a leading `'`, so a spreadsheet shows it instead of running
it as a formula; in feedback it is HTML-escaped and put in a code span.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import re
from dataclasses import fields
from pathlib import Path

from course_lib.grading.grade import Row, Status, row_dict

__all__ = ["COLUMNS", "neutralise", "restore", "read_gradebook", "render_rows", "append_rows", "rewrite_rows",
           "digest", "summarize", "feedback_name",
           "write_summary", "write_feedback", "report_json"]

COLUMNS = [f.name for f in fields(Row)]
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "'")


def neutralise(cell: object) -> object:
    """A CSV cell a spreadsheet will not run: `'` before a leading `= + - @ \\t \\r` (or `'`)."""
    return "'" + cell if isinstance(cell, str) and cell[:1] in _FORMULA else cell


def restore(cell: str) -> str:
    """The value `neutralise` was given."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in _FORMULA and cell[1:2] != "" else cell


def read_gradebook(path: Path) -> list[Row]:
    """All rows of a gradebook CSV (an empty list when it does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [Row(restore(r["student"]), restore(r["notebook"]), restore(r["grade_id"]), int(r["points"]),
                    int(r["max_points"]), Status(restore(r["status"])), restore(r["message"]))
                for r in csv.DictReader(f)]


def digest(path: Path) -> str:
    """sha256 of a file's bytes ('' when it does not exist)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def render_rows(rows: list[Row], header: bool = False) -> bytes:
    """Rows as the gradebook's CSV bytes (rendered whole first: a row that cannot be written raises here,
    before anything reaches the file)."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    if header:
        writer.writeheader()
    writer.writerows({k: neutralise(v) for k, v in row_dict(r).items()} for r in rows)
    return buf.getvalue().encode("utf-8")


def append_rows(path: Path, rows: list[Row]) -> None:
    """Append rows (header first when the file is new) in one write, flushed to disk before returning."""
    new = not path.exists() or path.stat().st_size == 0
    data = render_rows(rows, header=new)
    with path.open("ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def rewrite_rows(path: Path, rows: list[Row]) -> None:
    """Replace the gradebook by `rows` (for `--resume`, which grades `error` rows again), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(render_rows(rows, header=True))
    tmp.replace(path)


def summarize(rows: list[Row]) -> dict[str, dict]:
    """student -> {points, max_points, notebooks: {name: {points, max_points, tests: [...]}}}."""
    out: dict[str, dict] = {}
    for r in rows:
        st = out.setdefault(r.student, {"points": 0, "max_points": 0, "notebooks": {}})
        nb = st["notebooks"].setdefault(r.notebook, {"points": 0, "max_points": 0, "tests": []})
        for d in (st, nb):
            d["points"] += r.points
            d["max_points"] += r.max_points
        nb["tests"].append({"grade_id": r.grade_id, "points": r.points, "max_points": r.max_points,
                            "status": r.status.value, "message": r.message})
    return out


def write_summary(path: Path, rows: list[Row], flags: dict[str, list[str]]) -> None:
    """Per-student totals: student, points, max_points, percent, notebooks, review."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "points", "max_points", "percent", "notebooks", "review"])
        for student, s in sorted(summarize(rows).items()):
            pct = round(100 * s["points"] / s["max_points"], 1) if s["max_points"] else 0.0
            review = "; ".join(flags.get(student, []))
            w.writerow([neutralise(student), s["points"], s["max_points"], pct, len(s["notebooks"]), neutralise(review)])


def _code(text: str) -> str:
    """Student-controlled text as an inert Markdown code span on one line (also safe in a table)."""
    text = html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if text else ""


def feedback_name(student: str) -> str:
    """`<student>.md` for a plain lower-case name; any other (`bob~smith`, `Bob`) is made safe and gets a
    digest of the exact name (`bob_smith-1f2e...md`), so two students never share a file, even where
    file names ignore case."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", student).lstrip(".")[:100] or "_"
    if re.fullmatch(r"[a-z0-9_][a-z0-9_.-]*", student) and not re.search(r"-[0-9a-f]{16}$", student):
        return f"{student}.md"
    return f"{safe}-{hashlib.sha256(student.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}.md"


def write_feedback(folder: Path, rows: list[Row]) -> list[Path]:
    """<student>.md per student: totals and one line per test (hidden tests show no source)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for student, s in sorted(summarize(rows).items()):
        lines = [f"# Feedback for {_code(student)}", "", f"**Total: {s['points']} / {s['max_points']}**", ""]
        for name, nb in sorted(s["notebooks"].items()):
            lines += [f"## {_code(name)} — {nb['points']} / {nb['max_points']}", "",
                      "| test | points | result |", "|---|---|---|"]
            for t in nb["tests"]:
                result = html.escape(t["status"]) + (f": {_code(t['message'])}" if t["message"] else "")
                lines.append(f"| {_code(t['grade_id'])} | {t['points']} / {t['max_points']} | {result} |")
            lines.append("")
        path = folder / feedback_name(student)
        path.write_text("\n".join(lines), encoding="utf-8")
        written.append(path)
    return written


def report_json(rows: list[Row], gradebook: Path) -> str:
    """The `--json` report: paths and the per-student summary with every test."""
    return json.dumps({"gradebook": str(gradebook),
                       "summary": str(gradebook.with_name(gradebook.stem + "_summary.csv")),
                       "students": summarize(rows)}, indent=1)
