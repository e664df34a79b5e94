"""Which stored outputs changed between a git revision and the working tree, cell by cell.

    python tools/compare_outputs.py HEAD lessons/*.ipynb solutions/*.ipynb

Outputs are sanitized with tests/nbval_sanitize.cfg first (as nbval does), so only real changes show:
use it after `make notebooks` to see which numbers a change of code or versions moved.
"""

from __future__ import annotations

import configparser
import difflib
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sanitizers() -> list[tuple[re.Pattern, str]]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "tests" / "nbval_sanitize.cfg")
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


def outputs(nb: dict, subs: list[tuple[re.Pattern, str]]) -> dict[int, str]:
    """Index of each code cell -> its text outputs (streams, text/plain, error names), sanitized."""
    out = {}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        parts = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                parts.append("".join(o["text"]))
            elif "data" in o:
                parts.append("".join(o["data"].get("text/plain", "")))
            elif o.get("output_type") == "error":
                parts.append(f"ERROR {o['ename']}")
        text = "".join(parts)
        for pattern, replacement in subs:
            text = pattern.sub(replacement, text)
        out[i] = text
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__)
        return 2
    rev, paths = argv[0], argv[1:]
    subs = _sanitizers()
    for path in paths:
        old_text = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, cwd=ROOT).stdout
        old = outputs(json.loads(old_text), subs) if old_text else {}
        new = outputs(json.loads(Path(path).read_text(encoding="utf-8")), subs)
        changed = [i for i in sorted(set(old) | set(new)) if old.get(i) != new.get(i)]
        print(f"{path}: {len(changed)} cell(s) differ{': ' + str(changed) if changed else ''}")
        for i in changed:
            for line in difflib.unified_diff(old.get(i, "").splitlines(), new.get(i, "").splitlines(), lineterm="", n=0):
                if not line.startswith(("---", "+++", "@@")):
                    print("    " + line[:160])
    return 0


if __name__ == "__main__":
    sys.exit(main())
