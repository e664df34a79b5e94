"""course_lib's layout: imports run one way (no circles), no module takes another's private names, and a
course_lib import inside a function only where a comment says why (CONTRIBUTING, "Where a new lesson's pieces go").

Read from the source with `ast`, as text: nothing is imported, so a circle that Python happens to survive
(a deferred import, an import order that works today) is still found."""

import ast
from pathlib import Path

import course_lib

ROOT = Path(course_lib.__file__).resolve().parent


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"))
    return found


MODULES = _modules()


def _imports(name: str, tree: ast.Module):
    """(target module, imported names, line, at module level?) for every course_lib import in `tree`."""
    top = {id(node) for node in tree.body} | {id(n) for node in tree.body if isinstance(node, ast.If)
                                               for n in ast.walk(node)}  # `if TYPE_CHECKING:` blocks count
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_lib"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"  # `from course_lib.tuning import sft`: the module itself
                yield (sub if sub in MODULES else node.module), alias.name, node.lineno, id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("course_lib"):
                    yield alias.name, None, node.lineno, id(node) in top


def _edges() -> dict[str, set[str]]:
    """module -> the modules importing it runs: each target and the packages above it (their __init__)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, tree in MODULES.items():
        if name.split(".")[:2] == ["course_lib", "grading"]:
            continue  # grading/ is kept by its own issue (#27); its internals are not part of this check
        for target, _, _, _ in _imports(name, tree):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # course_lib.a.b imports course_lib.a first
                dep = ".".join(parts[:i])
                if dep in MODULES and dep != name and not name.startswith(dep + "."):
                    graph[name].add(dep)  # a module inside package `a` does not re-enter a's __init__
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_checks_see_the_whole_library():
    assert {"course_lib.models.loading", "course_lib.memory.vram", "course_lib.tuning.sft",
            "course_lib.data.build", "course_lib.experiments.forgetting"} <= set(MODULES)
    assert len(_edges()["course_lib.tuning.sft"]) >= 5


def test_no_import_circles():
    assert _circles(_edges()) == []


def test_a_circle_is_found_where_there_is_one():
    graph = _edges()
    graph["course_lib.data.datasets"].add("course_lib.tuning.sft")  # what data -> preferences -> sft -> data was
    assert any({"course_lib.data.datasets", "course_lib.tuning.sft"} <= set(c) for c in _circles(graph))


def test_no_module_takes_a_private_name_from_another():
    taken = [f"{name}:{line} takes {target}.{imported}"
             for name, tree in MODULES.items() for target, imported, line, _ in _imports(name, tree)
             if imported and imported.startswith("_") and target != name]
    assert taken == []


def test_course_lib_is_imported_at_module_level():
    deferred = [f"{name}:{line} imports {target} inside a function"
                for name, tree in MODULES.items() if not name.startswith("course_lib.grading")
                for target, _, line, top in _imports(name, tree) if not top]
    assert deferred == []


def test_importing_course_lib_has_no_side_effect():
    import os
    import subprocess
    import sys

    code = ("import os; before = dict(os.environ); import course_lib, course_lib.models, course_lib.tuning; "
            "print(sorted(set(os.environ.items()) ^ set(before.items())))")
    env = {k: v for k, v in os.environ.items() if k != "DS_ACCELERATOR"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
