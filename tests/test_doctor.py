import json


from course_lib.cli import main
from course_lib.doctor import bnb_4bit_works, doctor, format_report, versions_line


def test_report_has_what_a_learner_needs(monkeypatch):
    monkeypatch.setenv("COURSE_MODEL", "smollm2-135m-instruct")
    r = doctor()
    assert r["packages"]["torch"] != "not installed"
    assert r["model"] == "smollm2-135m-instruct"  # the model the lessons will load, not a default
    assert (r["gpu"] is not None) == (r["device"] == "cuda")  # GPU memory is reported exactly when there is one
    assert r["course_tiny_present"]
    text = format_report(r)
    assert "4-bit NF4" in text and r["device"] in text and "smollm2-135m-instruct" in text


def test_nf4_round_trip_works_on_this_machine():
    ok, detail = bnb_4bit_works()
    assert ok, detail


def test_versions_line_and_cli(capsys):
    assert versions_line().startswith("Python ")
    assert main(["doctor", "--json"]) == 0
    assert "packages" in json.loads(capsys.readouterr().out)


def test_cli_without_command_prints_help(capsys):
    assert main([]) == 2
    assert "doctor" in capsys.readouterr().out
