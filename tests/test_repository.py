"""The repository is self-contained and machine-independent: no tracked file holds an absolute path of this machine.

Before issue 26, data/adapters/*/adapter_config.json named the folder of the checkout that trained them
(peft's `base_model_name_or_path`); a fresh clone elsewhere got another machine's path.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / name for name in listed.decode().split("\0") if name]


def machine_paths() -> list[str]:
    """This checkout's folder, the folder it sits in (unless that is the system's temporary folder, which
    course text names on purpose: `/tmp/…` in examples) and the user's home: as they appear in a path."""
    import tempfile

    found = {str(REPO), str(Path.home()) + "/"}
    if REPO.parent.resolve() != Path(tempfile.gettempdir()).resolve():
        found.add(str(REPO.parent) + "/")
    return sorted(p for p in found if p not in ("/", "//"))


def test_no_absolute_path_of_this_machine_in_any_tracked_file():
    paths, hits = machine_paths(), []
    for path in tracked_files():
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary (weights, images)
            continue
        text = data.decode("utf-8", errors="replace")
        hits += [f"{path.relative_to(REPO)}: {p}" for p in paths if p in text]
    assert not hits, "absolute paths of this machine in tracked files:\n" + "\n".join(hits)


def test_adapter_configs_are_tidy():
    """What `course sft` writes (sft.tidy_adapter_config): the model's course name, target_modules sorted."""
    import json

    for config in sorted((REPO / "data" / "adapters").glob("*/adapter_config.json")):
        data = json.loads(config.read_text())
        assert not Path(data["base_model_name_or_path"]).is_absolute(), config
        assert data["target_modules"] == sorted(data["target_modules"]), config
        assert config.read_text() == json.dumps(data, indent=2, sort_keys=True) + "\n", config


def test_docs_link_only_inside_the_repository():
    """README and docs/ are read in a clone: a relative link must land in it (docs/instructors.md once
    pointed at ../shared/EXERCISES.md, a maintainers' folder beside the repository)."""
    import re

    bad = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)", text) + re.findall(r"`(\.\./[^`\s]+)`", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address (docs/references.md cites papers)
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(REPO) or not resolved.exists():
                bad.append(f"{page.relative_to(REPO)}: {target}")
    assert not bad, bad
