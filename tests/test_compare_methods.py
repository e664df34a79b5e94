"""course_lib.experiments.compare_methods: the sweep that extends itself, item-by-item comparisons with Student's t,
the resumable command and its provenance, the merge of parts, one real tiny run."""

from __future__ import annotations

import json
import math

import pytest

from course_lib.evaluation.uncertainty import seeds_by_items_difference
from course_lib.experiments import compare_methods as cm
from course_lib.tuning import methods


def test_sweep_starts_at_three_rungs_and_extends_past_an_edge():
    assert cm.sweep_rates("lora") == [3e-4, 1e-3, 3e-3]
    assert min(cm.sweep_rates("adalora")) <= 1e-2 <= max(cm.sweep_rates("adalora")) and max(cm.sweep_rates("adalora")) > 1e-2
    assert cm.sweep_status({1e-4: 3.0, 3e-4: 2.9, 1e-3: 3.1}) == "interior"
    assert cm.sweep_status({1e-4: 3.0, 3e-4: 2.9, 1e-3: 2.8}) == "edge"
    assert cm._next_rate({1e-4: 3.0, 3e-4: 2.9, 1e-3: 2.8}, 1.0) == 3e-3  # best at the top: one rung up
    assert cm._next_rate({1e-4: 2.0, 3e-4: 2.9, 1e-3: 2.8}, 1.0) == 3e-5  # best at the bottom: one rung down
    assert cm._next_rate({1e-6: 2.0, 3e-6: 2.9}, 1.0) is None  # the ladder ends


def test_versus_uses_students_t_and_the_items_pairing():
    a = [[1.0, 2.0, 3.0, 4.0], [1.1, 2.2, 2.9, 4.1], [0.9, 2.1, 3.2, 3.9]]
    b = [[x - 0.3 + 0.05 * i for i, x in enumerate(row)] for row in a]
    v = cm.versus(a, b)
    d = seeds_by_items_difference(a, b)
    assert (v["diff"], v["low"], v["high"]) == (d["diff"], d["low"], d["high"]) and not v["items_only"]
    assert v["verdict"] == "lower"
    half = (v["high"] - v["low"]) / 2
    se = d["se"]
    assert half > 1.96 * se * 1.01  # t with few degrees of freedom, not the normal quantile
    # a fixed arm (no training, one row) is that row at every seed: no seed noise of its own
    fixed = cm.versus(a, [[x - 0.3 for x in a[0]]], b_fixed=True)
    assert not fixed["items_only"] and fixed["diff"] < 0
    # one seed of a method: the items' interval only, marked
    one = cm.versus(a, b[:1])
    assert one["items_only"]
    same = cm.versus(a, a)
    assert same["verdict"] == "not separated" and same["diff"] == 0 and same["tie"] and not v["tie"]


def test_a_tie_needs_a_narrow_interval_not_only_an_unseparated_one():
    """Not separated is "not shown different"; a tie also needs the whole interval inside ±TIE_MARGIN."""
    a = [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]] * 3
    narrow = [[x + 0.01 * (-1) ** (i + s) for i, x in enumerate(a[0])] for s in range(3)]
    wide = [[x + 0.6 * (-1) ** (i + s) for i, x in enumerate(a[0])] for s in range(3)]
    small_but_real = [[x + 0.02 + 0.001 * (-1) ** i for i, x in enumerate(a[0])] for _ in range(3)]
    n, w, r = cm.versus(a, narrow), cm.versus(a, wide), cm.versus(a, small_but_real)
    assert n["verdict"] == "not separated" and n["tie"]
    assert w["verdict"] == "not separated" and w["high"] > cm.TIE_MARGIN and not w["tie"]  # unresolved
    assert r["verdict"] == "higher" and r["high"] < cm.TIE_MARGIN and not r["tie"]  # separated, however small


def _result(methods_runs: dict[str, list[list[float]]], base_rows: list[float]) -> dict:
    runs = []
    for method, seeds in methods_runs.items():
        for seed, nlls in enumerate(seeds):
            runs.append({"method": method, "learning_rate": 1e-3, "seed": seed, "chosen": True,
                         "val_response_nll": 2.5, "train_loss": [3.0, 2.9, 2.8, 2.7, 2.6], "train_tokens": 100,
                         "test": {"nll_rows": nlls, "response_ppl": math.exp(sum(nlls) / len(nlls)),
                                  "rouge_rows": [0.2, 0.4], "format_rows": [1, 0], "answers": ["a.", "b"]},
                         "retention": {"kept_rows": [1, 0], "logprob_change_rows": [-0.1, -0.3]}})
        runs.append({"method": method, "learning_rate": 3e-4, "seed": 0, "val_response_nll": 2.7,
                     "train_loss": [3.0], "train_tokens": 100})
        runs.append({"method": method, "learning_rate": 3e-3, "seed": 0, "val_response_nll": 2.6,
                     "train_loss": [3.0], "train_tokens": 100})
    base = {"zero_shot": {"test": {"nll_rows": base_rows, "response_ppl": 9.0, "rouge_rows": [0.1, 0.1],
                                   "format_rows": [0, 0], "answers": ["x", "y"]},
                          "prompt_tokens": 50.0, "extra_prompt_tokens": 0.0},
            "untrained_val_nll": {"fp32": 3.0, "nf4": 3.1}}
    return {"runs": runs, "baselines": base, "costs": {"sizes": {}, "rounds": []}}


def test_method_table_reads_every_arm_against_the_reference():
    lora = [[2.0, 3.0, 2.5, 2.2], [2.1, 3.1, 2.4, 2.3], [1.9, 2.9, 2.6, 2.1]]
    worse = [[x + 0.5 for x in row] for row in lora]
    table = cm.method_table(_result({"lora": lora, "ia3": worse, "glora": [worse[0]]}, [3.0, 4.0, 3.5, 3.2]))
    assert table["lora"]["vs_reference"] is None and table["lora"]["seeds"] == 3
    assert table["ia3"]["vs_reference"]["verdict"] == "higher" and not table["ia3"]["vs_reference"]["items_only"]
    assert table["glora"]["vs_reference"]["items_only"] and table["glora"]["nll"]["items_only"]
    assert table["zero_shot"]["kind"] == "baseline" and table["zero_shot"]["vs_reference"]["verdict"] == "higher"
    assert table["lora"]["ppl"] == pytest.approx(math.exp(sum(map(sum, lora)) / 12))  # exp of the mean NLL
    assert table["lora"]["sweep_status"] == "interior" and table["lora"]["left_start"]
    assert table["lora"]["start_by_seed"] == ["left"] * len(table["lora"]["val_nll_by_seed"])
    assert table["lora"]["logprob_change"]["mean"] == pytest.approx(-0.2)
    assert table["lora"]["rouge_l"]["mean"] == pytest.approx(0.3) and table["lora"]["format_rate"]["mean"] == 0.5


def test_a_run_that_ended_above_the_untrained_model_is_not_read_as_staying():
    assert [cm._from_start(v, 3.8) for v in (3.25, 3.79, 3.8, 4.27)] == ["left", "stayed", "stayed", "worse"]


def test_validate_names_the_unknown_method():
    with pytest.raises(ValueError, match="dylora"):
        cm.CompareConfig(methods=["lora", "dylora"]).validate()
    assert "glora" in cm.CompareConfig().methods and cm.CompareConfig().seeded("lora")
    assert not cm.CompareConfig().seeded("rslora") and cm.CompareConfig(seeded_methods=["all"]).seeded("rslora")


def test_command_keeps_runs_records_its_processes_and_refuses_a_resume_with_other_options(tmp_path, monkeypatch):
    monkeypatch.setattr(cm, "checkpoints_dir", lambda out="": tmp_path / "ck")

    def fake(config, state=None, save=None):
        state["baselines"] = {"zero_shot": {}}
        state["runs"].append({"method": "lora", "learning_rate": 1e-3, "seed": 0})
        save()
        raise KeyboardInterrupt
    monkeypatch.setattr(cm, "compare_methods", fake)
    config = cm.CompareConfig(methods=["lora"], out=str(tmp_path / "out.json"))
    with pytest.raises(KeyboardInterrupt, match="1 runs are kept"):
        cm._run(config)
    kept = json.loads((tmp_path / "ck" / "runs.json").read_text())
    assert kept["runs"][0]["method"] == "lora" and kept["baselines"] == {"zero_shot": {}}
    assert len(kept["processes"]) == 1 and kept["processes"][0]["command"].startswith("course compare-methods")
    with pytest.raises(ValueError, match="other options"):
        cm._run(cm.CompareConfig(methods=["ia3"], out=str(tmp_path / "out.json"), resume=True))

    seen = {}

    def finish(config, state=None, save=None):
        seen.update(runs=list(state["runs"]), baselines=state["baselines"])
        return {"model": "smollm2-135m-instruct", "runs": state["runs"], "baselines": state["baselines"]}
    monkeypatch.setattr(cm, "compare_methods", finish)
    assert cm._run(cm.CompareConfig(methods=["lora"], out=str(tmp_path / "out.json"), resume=True)) == 0
    assert seen["runs"][0]["seed"] == 0 and seen["baselines"] == {"zero_shot": {}}  # nothing rerun
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["command"] == "course compare-methods --methods lora --resume True"
    assert len(written["processes"]) == 2  # the interrupted process and the one that finished
    assert written["wall_seconds"] == pytest.approx(sum(p["wall_seconds"] for p in written["processes"]), abs=0.2)
    assert all("commit" in p and "cpu_seconds" in p for p in written["processes"])
    assert not (tmp_path / "ck").exists()


def test_merge_puts_parts_together_and_refuses_a_mismatch(tmp_path):
    def part(name, methods_, costs=None, **config):
        body = {"model": "m", "command": f"course compare-methods --methods {' '.join(methods_)}",
                "config": {"methods": methods_, "baselines": costs is not None, "costs": costs is not None,
                           "max_steps": 24, **config},
                "baselines": {"zero_shot": {}} if costs else {}, "costs": costs,
                "runs": [{"method": m, "seed": 0} for m in methods_], "retention_questions": ["q"],
                "test_references": ["r"], "processes": [{"command": "c", "commit": "abc", "wall_seconds": 5.0}]}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(body))
        return str(path)
    a, b = part("a", ["lora"], costs={"sizes": {}, "rounds": []}), part("b", ["ia3", "full"])
    merged = cm.merge_results([a, b])
    assert [r["method"] for r in merged["runs"]] == ["lora", "ia3", "full"]
    assert merged["config"]["methods"] == ["lora", "ia3", "full"] and merged["costs"] == {"sizes": {}, "rounds": []}
    assert [p["part"] for p in merged["processes"]] == [a, b]
    with pytest.raises(ValueError, match="max_steps"):
        cm.merge_results([a, part("c", ["dora"], max_steps=3)])
    with pytest.raises(ValueError, match="two parts ran lora"):
        cm.merge_results([a, part("d", ["lora"])])


def test_pissa_is_servable_as_a_rank_2r_lora(monkeypatch, small_chat_model, chat_tok):
    monkeypatch.setattr(methods, "load_base_model", lambda name=None, **kw: small_chat_model())
    spec = methods.MethodSpec(r=4, lora_alpha=8.0)
    pissa = methods.build_method("pissa", "tiny", spec, tokenizer_path=chat_tok.name_or_path)
    lora = methods.build_method("lora", "tiny", spec, tokenizer_path=chat_tok.name_or_path)
    sizes, plain = cm._adapter_bytes(pissa, "pissa"), cm._adapter_bytes(lora, "lora")
    assert abs(sizes["adapter_bytes"] - plain["adapter_bytes"]) < 100  # the same tensors; the configs differ a little
    tensors = 4 * methods.trainable_parameters(lora)  # fp32: the rank-r A and B; the folder adds a config and a card
    assert sizes["servable_bytes"] - sizes["adapter_bytes"] == pytest.approx(tensors, rel=0.05)  # rank 2r: twice


def test_one_method_end_to_end_on_a_tiny_model(monkeypatch, small_chat_model, chat_tok):
    monkeypatch.setattr(methods, "load_base_model", lambda name=None, **kw: small_chat_model())
    monkeypatch.setattr(cm, "load_base_model", lambda name=None, **kw: small_chat_model())
    monkeypatch.setattr(cm, "nf4_base", lambda name=None: small_chat_model(seed=1))  # a stand-in: no real checkpoint
    monkeypatch.setattr(cm, "load_tokenizer", lambda name: chat_tok)
    monkeypatch.setattr(cm, "build_method", lambda name, model, spec, seed=0: methods.build_method(
        name, model, spec, seed=seed, tokenizer_path=chat_tok.name_or_path))
    config = cm.CompareConfig(methods=["ia3", "prompt_tuning"], seeded_methods=["ia3"], train_rows=2, eval_rows=2,
                              test_rows=3, generate_rows=2, max_steps=2, per_device_train_batch_size=1,
                              max_new_tokens=3, retention_prompts=2, few_shot_k=1, max_extend=1, timing_rounds=2,
                              timing_steps=1, latency_tokens=2)
    state, saves = {}, []
    out = cm.compare_methods(config, state, lambda: saves.append(len(state.get("runs", []))))
    ia3 = [r for r in out["runs"] if r["method"] == "ia3"]
    chosen = [r for r in ia3 if r.get("chosen")]
    assert [r["seed"] for r in chosen] == [0, 1, 2]
    swept = sorted(r["learning_rate"] for r in ia3 if r["seed"] == 0)
    assert swept[:3] == sorted(cm.sweep_rates("ia3")) or len(swept) == 4  # three rungs, one more past an edge
    assert len(swept) in (3, 4)
    first = chosen[0]
    assert len(first["test"]["nll_rows"]) == 3 and len(first["test"]["rouge_rows"]) == 2
    assert len(first["retention"]["logprob_change_rows"]) == 2 and "rouge_rows" in chosen[1]["test"]
    prompt = [r for r in out["runs"] if r["method"] == "prompt_tuning" and r.get("chosen")]
    assert [r["seed"] for r in prompt] == [0]  # not seeded: the first seed only
    sizes = out["costs"]["sizes"]
    assert sizes["ia3"]["trainable_parameters"] == sizes["ia3"]["peft_trainable_parameters"] > 0
    assert sizes["ia3"]["adapter_bytes"] > 0 and sizes["ia3"]["tensor_peak_bytes"] > 0
    assert "vram_estimate_bytes" not in sizes["ia3"] and sizes["prompt_tuning"]["extra_positions"] == 8
    assert len(out["costs"]["rounds"]) == 2 and set(cm.BASELINES) <= set(out["costs"]["rounds"][0])
    assert out["costs"]["rounds"][0]["ia3"]["latency_merged_seconds"] is not None
    assert "latency_merged_seconds" not in out["costs"]["rounds"][0]["prompt_tuning"]
    assert set(cm.BASELINES) <= set(out["baselines"]) and "retention" in out["baselines"]["zero_shot_nf4"]
    assert out["baselines"]["retrieval_few_shot"]["extra_prompt_tokens"] > 0
    table = cm.method_table(out, reference="ia3")
    assert table["prompt_tuning"]["vs_reference"]["items_only"] and table["ia3"]["seeds"] == 3
    assert saves  # every piece was saved as it finished

    # resuming with everything kept runs nothing again
    calls = []
    monkeypatch.setattr(cm, "_one_run", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    again = cm.compare_methods(config, state, lambda: None)
    assert not calls and len(again["runs"]) == len(out["runs"])


def _shipped_file(r: dict) -> float:
    """The file that runs on the shared, unmodified base: PiSSA's servable rank-2r LoRA, any other's adapter."""
    return r["adapter_bytes"] if r.get("servable_bytes") is None else r["servable_bytes"]


def _decision(table: dict, rows: dict, files: float, forgetting: float, file_key=None,
              tied=None) -> tuple[list[str], str]:
    """Exercise 11 part 6's rule, written apart from the solution: the methods within both limits (the shipped file
    at most `files` bytes, the mean Δlogp at least `forgetting`), the lowest mean test NLL among them, the methods
    tied with it (`cm.versus(...)["tie"]`: not separated and the whole interval inside ±TIE_MARGIN), and of those
    the smallest tensor peak (then the first name)."""
    file_key, tied = file_key or _shipped_file, tied or (lambda v: v["tie"])
    ok = sorted(m for m, r in table.items() if r["kind"] == "method" and file_key(r) <= files
                and r["logprob_change"]["mean"] >= forgetting)
    if not ok:
        return ok, ""
    best = min(ok, key=lambda m: table[m]["nll"]["mean"])
    ties = [best] + [m for m in ok if m != best and tied(cm.versus(rows[best], rows[m]))]
    return ok, min(ties, key=lambda m: (table[m]["tensor_peak_bytes"], m))


def _round_between(low: float, high: float) -> float | None:
    """The roundest number v with low <= v < high (a limit that admits `low` and excludes `high`)."""
    for digits in range(1, 5):
        step = 10 ** (math.floor(math.log10(high)) - digits + 1)
        v = math.ceil(low / step) * step
        if v < high:
            return float(f"{v:.{digits + 2}g}")
    return None


def _is_real(table: dict, rows: dict, files: float, forgetting: float) -> bool:
    """At least two methods admissible, and dropping either limit changes the choice (each one excludes a winner)."""
    ok, chosen = _decision(table, rows, files, forgetting)
    return len(ok) >= 2 and chosen not in (_decision(table, rows, math.inf, forgetting)[1],
                                           _decision(table, rows, files, -math.inf)[1])


def _limits_that_work(table: dict, rows: dict) -> list[tuple[float, float, list[str], str]]:
    """Every pair of round limits, one in each gap of the measured files and of the mean Δlogp, under which the
    decision is real."""
    methods = [r for r in table.values() if r["kind"] == "method"]
    def gaps(values):
        v = sorted(set(values))
        return list(zip(v, v[1:]))
    files = [c for a, b in gaps([_shipped_file(r) for r in methods]) if (c := _round_between(a, b)) is not None]
    # a bound admits Δlogp ≥ it: between a < b it lies in (a, b], the negative of a cut in [−b, −a)
    bounds = [-c for a, b in gaps([r["logprob_change"]["mean"] for r in methods])
              if a < 0 and (c := _round_between(max(-b, 0.0), -a)) is not None]
    return [(f, g, *_decision(table, rows, f, g)) for f in files for g in bounds if _is_real(table, rows, f, g)]


def test_exercise_decision_is_a_real_choice():
    """Exercise 11 part 6 on the real results (its limits read from the solution): at least two methods pass both
    limits, each limit alone changes the answer (a method it excludes would otherwise be chosen), the job's words
    give the same limits as `LIMITS`, and the solution's hidden values are this decision's (EXERCISES.md: a decision
    with real alternatives). A failure prints the values to put in the solution, or the limits that would work."""
    import ast
    import re
    from pathlib import Path

    from course_lib.results import load_results

    source = (Path(__file__).resolve().parents[1] / "sources" / "solutions" / "11_which_method.py").read_text()
    limits = ast.literal_eval(re.search(r"^LIMITS = (\{.*?\})", source, re.M).group(1))
    files, forgetting = limits["file_bytes"], limits["logprob_change"]
    assert f"at most {files / 1e6:g} MB" in source and f"lose at most {-forgetting:g} nats per token" in source \
        and f"at least −{-forgetting:g}" in source, \
        "part 6's words must state LIMITS: 'at most N MB', 'lose at most X nats per token' and 'at least −X'"
    results = load_results("compare_methods")
    if "costs" not in results:
        pytest.skip("data/results/compare_methods.json predates the redesigned command (no per-row NLLs, no costs)")
    table = cm.method_table(results)
    rows = {m: [r["test"]["nll_rows"] for r in sorted((r for r in results["runs"] if r["method"] == m
                                                       and r.get("chosen")), key=lambda r: r["seed"])]
            for m, row in table.items() if row["kind"] == "method"}
    admissible, chosen = _decision(table, rows, files, forgetting)
    assert _is_real(table, rows, files, forgetting), (
        "part 6 is no real decision under LIMITS " + repr(limits) + ": admissible " + repr(admissible)
        + ", chosen " + repr(chosen)
        + ", without the file limit " + repr(_decision(table, rows, math.inf, forgetting)[1])
        + ", without the forgetting bound " + repr(_decision(table, rows, files, -math.inf)[1])
        + ". Limits that would work (file bytes, Δlogp bound, admissible, chosen): "
        + repr(_limits_that_work(table, rows)[:12]))
    hidden = {name: ast.literal_eval(value) for name, value in
              re.findall(r'check\.equal\("(real_admissible|real_choice)", \w+, (.+)\)$', source, re.M)}
    assert hidden == {"real_admissible": admissible, "real_choice": chosen}, (
        f'put the real results\' values in the solution\'s hidden tests: check.equal("real_admissible", ok, '
        f'{admissible!r}) and check.equal("real_choice", choice, {chosen!r})')


def test_exercise_decision_rule_on_made_up_rows():
    """The reference rule above on a tiny made-up comparison: the servable file, both limits (equal is within), the
    narrow item-by-item tie (a wide unseparated interval is none) and the smallest-peak tie rule each decide a case."""
    def run(method, k, shift, alt, logp, seed):
        nlls = [2.0 + 0.5 * (i % 4) + shift + alt * (-1) ** i + 0.01 * ((k + seed) % 3 - 1) for i in range(8)]
        return {"method": method, "learning_rate": 1e-3, "seed": seed, "chosen": True, "val_response_nll": 2.5,
                "train_loss": [3.0, 2.9], "train_tokens": 10,
                "test": {"nll_rows": nlls, "response_ppl": 9.0, "rouge_rows": [0.2, 0.3], "format_rows": [1, 0],
                         "answers": ["a", "b"]},
                "retention": {"kept_rows": [1, 0], "logprob_change_rows": [logp - 0.01, logp + 0.01]}}
    spec = {"x": (0.0, 0.0, -0.2), "y": (0.003, 0.01, -0.3), "u": (0.02, 0.3, -0.1), "z": (0.2, 0.01, 0.0),
            "b": (-0.1, 0.01, -0.6), "pissa": (-0.2, 0.01, -0.2)}
    result = {"runs": [run(m, k, *v, s) for k, (m, v) in enumerate(spec.items()) for s in range(3)], "baselines": {},
              "costs": {"sizes": {"x": {"adapter_bytes": 5, "tensor_peak_bytes": 5},
                                  "y": {"adapter_bytes": 10, "tensor_peak_bytes": 4},
                                  "u": {"adapter_bytes": 2, "tensor_peak_bytes": 2},
                                  "z": {"adapter_bytes": 1, "tensor_peak_bytes": 1},
                                  "b": {"adapter_bytes": 3, "tensor_peak_bytes": 3},
                                  "pissa": {"adapter_bytes": 5, "servable_bytes": 20, "tensor_peak_bytes": 5}},
                        "rounds": []}}
    table = cm.method_table(result)
    rows = {m: [r["test"]["nll_rows"] for r in result["runs"] if r["method"] == m] for m in spec}
    assert table["y"]["logprob_change"]["mean"] == -0.3  # y sits exactly at both limits below
    assert _decision(table, rows, 10, -0.3) == (["u", "x", "y", "z"], "y")
    assert _decision(table, rows, 9, -0.3) == (["u", "x", "z"], "x") and _decision(table, rows, 10, -0.29)[1] == "x"
    assert _decision(table, rows, 20, -0.3)[1] == "pissa" and _decision(table, rows, 10, -1)[1] == "b"
    assert _decision(table, rows, 10, -0.3, file_key=lambda r: r["adapter_bytes"])[1] == "pissa"
    u = cm.versus(rows["x"], rows["u"])
    assert u["verdict"] == "not separated" and u["high"] > cm.TIE_MARGIN  # wide: not shown different, yet no tie
    assert _decision(table, rows, 10, -0.3, tied=lambda v: v["verdict"] == "not separated")[1] == "u"
    assert _round_between(9.77e6, 14.7e6) == 1e7 and _round_between(2.312e9, 2.32e9) == 2.312e9


def test_sigterm_stops_the_command_like_ctrl_c_and_keeps_what_finished(tmp_path, monkeypatch):
    import os
    import signal

    monkeypatch.setattr(cm, "checkpoints_dir", lambda out="": tmp_path / "ck")

    def fake(config, state=None, save=None):
        state["runs"].append({"method": "lora", "learning_rate": 1e-3, "seed": 0})
        save()
        os.kill(os.getpid(), signal.SIGTERM)  # `kill PID` from another shell
        raise AssertionError("not reached")
    monkeypatch.setattr(cm, "compare_methods", fake)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="1 runs are kept"):
        cm._run(cm.CompareConfig(methods=["lora"], out=str(tmp_path / "out.json")))
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the caller's again
    kept = json.loads((tmp_path / "ck" / "runs.json").read_text())
    assert kept["runs"] and kept["processes"][0]["commit"] == cm.git_commit()["commit"]


def test_a_resume_may_seed_more_methods_but_not_fewer(tmp_path, monkeypatch):
    monkeypatch.setattr(cm, "checkpoints_dir", lambda out="": tmp_path / "ck")
    seen = {}

    def interrupted(config, state=None, save=None):
        state["runs"].append({"method": "rslora", "learning_rate": 1e-3, "seed": 0, "chosen": True, "test": {}})
        save()
        raise KeyboardInterrupt

    def finish(config, state=None, save=None):
        seen.update(runs=list(state["runs"]), seeded=config.seeded("rslora"))
        return {"model": "smollm2-135m-instruct", "runs": state["runs"], "baselines": {}}
    out = str(tmp_path / "out.json")
    monkeypatch.setattr(cm, "compare_methods", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cm._run(cm.CompareConfig(methods=["lora", "rslora"], seeded_methods=["lora"], out=out))
    with pytest.raises(ValueError, match="other options"):  # fewer seeded methods: the kept runs would not fit
        cm._run(cm.CompareConfig(methods=["lora", "rslora"], seeded_methods=[], out=out, resume=True))
    with pytest.raises(ValueError, match="other options"):  # another option: refused as before
        cm._run(cm.CompareConfig(methods=["lora", "rslora"], seeded_methods=["all"], max_steps=5, out=out,
                                 resume=True))
    monkeypatch.setattr(cm, "compare_methods", interrupted)
    with pytest.raises(KeyboardInterrupt):  # more seeded methods: the kept runs stay, the options are the new ones
        cm._run(cm.CompareConfig(methods=["lora", "rslora"], seeded_methods=["all"], out=out, resume=True))
    kept = json.loads((tmp_path / "ck" / "runs.json").read_text())
    assert kept["options"]["seeded_methods"] == ["all"] and len(kept["runs"]) == 2
    monkeypatch.setattr(cm, "compare_methods", finish)
    assert cm._run(cm.CompareConfig(methods=["lora", "rslora"], seeded_methods=["all"], out=out, resume=True)) == 0
    assert seen["seeded"] and seen["runs"][0]["method"] == "rslora"
