"""README's commands work exactly as written, in a fresh shell (no venv on PATH).

Every fenced ```bash block of README.md is parsed into commands. `make` commands are dry-run
(`make -n`: the target exists and expands; `make lab` opens the course root, not lessons/ alone);
every other command runs for real, in order, with bash, in a scratch folder that links to the
checkout (so the instructors' worked example writes its class/ there). Inline `course <sub>`
mentions must name real subcommands.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
VENV_BIN = str(Path(sys.executable).parent)


def bash_blocks(text: str) -> list[list[str]]:
    """Each ```bash block as a list of commands: continuation lines joined, comments dropped."""
    blocks = []
    for body in re.findall(r"^ *```bash\n(.*?)^ *```", text, flags=re.S | re.M):
        body = re.sub(r"\\\n\s*", " ", body)
        commands = [line.split(" #")[0].strip() for line in body.splitlines()]
        blocks.append([c for c in commands if c and not c.startswith("#")])
    return blocks


def split_make(command: str) -> tuple[dict[str, str], list[str]] | None:
    """(VAR=value assignments, make arguments) for a `make` command, else None."""
    words = shlex.split(command)
    env = {}
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    return (env, words[1:]) if words[:1] == ["make"] else None


def fresh_env() -> dict[str, str]:
    """A new terminal's environment: no venv active, no venv bin on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != Path(VENV_BIN).resolve())
    return env


BLOCKS = bash_blocks(README)


def test_readme_has_the_student_commands():
    commands = [c for block in BLOCKS for c in block]
    assert "make lab" in commands and "make test" in commands and "make doctor" in commands
    assert "source .venv/bin/activate" in commands and "course doctor" in commands
    # a bare `course` in a block needs the activation before it, in the same block
    for block in BLOCKS:
        for i, c in enumerate(block):
            if c.split()[0] == "course":
                assert "source .venv/bin/activate" in block[:i], f"`{c}` runs before the venv is activated"


MAKES = sorted({(c, tuple(split_make(c)[1])) for b in BLOCKS for c in b if split_make(c)})


@pytest.mark.parametrize("command", [c for c, _ in MAKES])
def test_make_commands_exist(command):
    env, args = split_make(command)
    done = subprocess.run(["make", "-n", *args], cwd=REPO, env={**fresh_env(), **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    installed = subprocess.run(["make", "-q", "install"], cwd=REPO, env=fresh_env(), timeout=60).returncode == 0
    if args == ["doctor"] and installed:  # cheap enough to run for real once the venv is up to date
        real = subprocess.run(["make", "doctor"], cwd=REPO, env=fresh_env(), capture_output=True, text=True,
                              timeout=300)
        assert real.returncode == 0 and "4-bit NF4" in real.stdout, real.stdout + real.stderr
    if args[:1] == ["lab"]:
        lab = next(line for line in done.stdout.splitlines() if "jupyter lab" in line)
        assert f'--ServerApp.root_dir="{REPO}"' in lab, lab  # the course root: lessons/ and exercises/
        opened = lab.split()[-1] if not lab.rstrip().endswith("\\") else lab.split()[-2]
        assert (REPO / opened).is_file() and opened.startswith("lessons/"), lab


def test_make_lab_notebooks_name_the_course_kernel():
    """The kernel `make install` registers is the one every committed notebook asks for."""
    import nbformat
    kernel = re.search(r"^KERNEL := (\S+)", (REPO / "Makefile").read_text(), re.M).group(1)
    for nb in sorted(REPO.glob("*/[0-9][0-9]_*.ipynb")):
        assert nbformat.read(nb, as_version=4).metadata.kernelspec.name == kernel, nb


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in BLOCKS if any(not split_make(c) for c in b)],
                         ids=lambda b: next(c for c in b if not split_make(c)).split()[0])
def test_shell_commands_run_as_written(block, tmp_path):
    for entry in REPO.iterdir():  # a scratch copy of the checkout's layout: outputs land in tmp_path
        if entry.name != ".git":
            (tmp_path / entry.name).symlink_to(entry)
    script = "set -euo pipefail\n" + "\n".join(c for c in block if not split_make(c))
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=fresh_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{script}\n---\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    if any("course doctor" in c for c in block):
        assert "device" in done.stdout and "4-bit NF4" in done.stdout
    if any("course grade" in c for c in block):  # the numbers README promises
        for claim in re.findall(r"`(\w+ +\d+ / \d+)`", README):
            name, score = claim.split(maxsplit=1)
            assert re.search(rf"^{name}\s+{re.escape(score)}$", done.stdout, re.M), (claim, done.stdout)


def test_inline_course_commands_exist():
    mentioned = set(re.findall(r"`(?:\.venv/bin/)?course ([a-z][a-z-]*)", README))
    assert mentioned and mentioned <= set(cli.commands()), mentioned - set(cli.commands())


@pytest.mark.slow
def test_make_lab_serves_the_course_root_with_the_course_kernel(tmp_path):
    """Run what `make -n lab` prints (headless, on a free port) and ask the server what a browser would see."""
    import json
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # README's `make lab PORT=… LAB_ARGS=…`: the port and the extra options reach jupyter lab
    done = subprocess.run(["make", "-n", "lab", f"PORT={port}", "LAB_ARGS=--no-browser --IdentityProvider.token=readme-test"],
                          cwd=REPO, env=fresh_env(), capture_output=True, text=True, timeout=60)
    recipe = done.stdout[done.stdout.index(".venv/bin/jupyter lab"):].replace("\\\n", " ")
    command = shlex.split(recipe.split("#")[0].splitlines()[0])
    assert f"--ServerApp.port={port}" in command and "--no-browser" in command, command
    command += ["--allow-root", f"--ServerApp.runtime_dir={tmp_path}"]
    # what `make lab` sets up before it starts (students: nbgrader's Validate button only), for real
    subprocess.run(["make", ".venv/.nbgrader-student"], cwd=REPO, env=fresh_env(), check=True, timeout=300,
                   capture_output=True)
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(command, cwd=REPO, env=fresh_env(), stdout=log, stderr=log)

    def get(path: str):
        url = f"http://127.0.0.1:{port}{path}?token=readme-test"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                root = get("/api/contents")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "jupyter lab did not start"
                time.sleep(1)
        names = {item["name"] for item in root["content"]}
        assert {"lessons", "exercises", "solutions", "README.md"} <= names, names
        assert get("/api/contents/exercises/03_lora_math.ipynb")["type"] == "notebook"
        kernel = get("/api/contents/lessons/00_start_here.ipynb")["content"]["metadata"]["kernelspec"]["name"]
        assert kernel in get("/api/kernelspecs")["kernelspecs"], kernel
        # what the browser is told to load: nbgrader's Validate button, none of its instructor tools
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token=readme-test", timeout=30) as page:
            html = page.read().decode()
        config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', html, re.S).group(1))
        disabled = set(config["disabledExtensions"])
        assert {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                "@jupyter/nbgrader:menu"} <= disabled, disabled
        assert "@jupyter/nbgrader:validate-assignment" not in disabled
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert "No nbgrader_config.py file found" not in (tmp_path / "server.log").read_text()
