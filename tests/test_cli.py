import subprocess
import sys

from course_lib.cli import main


def test_every_subcommand_has_help(capsys):
    main([])
    listing = capsys.readouterr().out
    for name in ("doctor", "build-data", "pretrain", "vram", "release", "grade", "learning-curve", "forgetting"):
        assert name in listing, f"`course {name}` is not registered"


def test_user_error_is_one_line_and_nonzero():
    proc = subprocess.run([sys.executable, "-m", "course_lib.cli", "vram", "--model", "llama-2-7b",
                           "--method", "lora", "--batch-size", "0"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
