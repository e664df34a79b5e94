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


def test_doctor_says_threads_and_scales_the_sft_estimate_by_matmul_speed(tmp_path):
    from course_lib.doctor import speed_report
    from course_lib.throughput import cpu_cores

    r = doctor()
    assert r["threads"]["lessons"] >= 1 and r["threads"]["commands"] >= 1 and r["cpu_cores"] == cpu_cores()
    assert "threads      lessons" in format_report(r)
    assert speed_report(tmp_path)["sft_minutes"] is None  # no benchmark file: no made-up estimate
    cores = str(cpu_cores())
    for ref_rate in (50.0, 100.0):
        (tmp_path / f"cpu-throughput-{cores}core.json").write_text(json.dumps({
            "machine": {"cpu": "a reference CPU", "cores": int(cores)},
            "matmul_gflops": {cores: {"square_1024": ref_rate}},
            "course_sft": {"wall_seconds": {cores: 600.0}}}))
        report = speed_report(tmp_path)
        expected = 600.0 * ref_rate / report["matmul_gflops"] / 60
        assert abs(report["sft_minutes"] - expected) <= 0.05 + 0.02 * expected  # a twice-faster reference: twice as long here
        assert "a reference CPU" in report["reference"]
