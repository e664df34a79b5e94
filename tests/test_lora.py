"""course_lib.tuning.lora: the from-scratch layer keeps peft's names and numbers (lesson 03)."""

import math

import pytest
import torch
from torch import nn

from course_lib.tuning.lora import (LinearWithLoRA, LoraConfig, add_lora, lora_parameter_count, lora_state_dict,
                             merge_lora, unmerge_lora)


def test_parameter_count_is_exactly_128x_for_4096_r16():
    assert lora_parameter_count(4096, 4096, 16) == 131_072
    assert 4096 * 4096 // lora_parameter_count(4096, 4096, 16) == 128


@pytest.mark.parametrize("r", [0, -1])
def test_bad_rank_is_a_value_error(r):
    with pytest.raises(ValueError, match="positive"):
        LinearWithLoRA(nn.Linear(4, 4), r=r, lora_alpha=1)


def test_output_unchanged_at_init(tiny_llama):
    model, ids = tiny_llama(hidden_size=32, heads=4), torch.randint(0, 64, (2, 10))
    before = model(ids).logits
    add_lora(model, LoraConfig(r=4, target_modules="all-linear"))
    assert torch.equal(model(ids).logits, before)


def test_only_lora_parameters_train(tiny_llama):
    model = tiny_llama(hidden_size=32, heads=4)
    names = add_lora(model, LoraConfig(r=4, target_modules=("q_proj", "v_proj")))
    assert len(names) == 4  # 2 layers × (q, v)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    assert len(trainable) == 8
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    loss = model(torch.randint(0, 64, (2, 10)), labels=torch.randint(0, 64, (2, 10))).loss
    loss.backward()
    opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
    assert set(lora_state_dict(model)) == {n for n in dict(model.named_parameters()) if "lora_" in n}


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 5e-2)])
def test_merged_equals_unmerged(dtype, tol):
    torch.manual_seed(0)
    layer = LinearWithLoRA(nn.Linear(16, 24).to(dtype), r=4, lora_alpha=8)
    nn.init.normal_(layer.lora_B.weight, std=0.1)
    w0 = layer.base_layer.weight.detach().clone()
    x = torch.randn(3, 16, dtype=dtype)
    y = layer(x)
    layer.merge()
    assert layer.merged
    torch.testing.assert_close(layer(x), y, atol=tol, rtol=tol)
    layer.unmerge()
    torch.testing.assert_close(layer.base_layer.weight, w0, atol=tol, rtol=0)


def test_scaling_alpha_over_r_and_rslora():
    assert LinearWithLoRA(nn.Linear(4, 4), r=16, lora_alpha=32).scaling == 2.0
    assert LinearWithLoRA(nn.Linear(4, 4), r=16, lora_alpha=32, use_rslora=True).scaling == 8.0


def test_dropout_only_on_the_lora_path():
    torch.manual_seed(0)
    layer = LinearWithLoRA(nn.Linear(8, 8), r=2, lora_alpha=2, lora_dropout=0.5).train()
    x = torch.randn(4, 8)
    assert torch.equal(layer(x), layer.base_layer(x))  # B = 0: dropout cannot change anything yet
    nn.init.normal_(layer.lora_B.weight)
    # p = 1 drops every input of the LoRA path and none of the base path's: in training the
    # output is exactly the base layer's; in eval mode (no dropout) the LoRA update is back.
    layer.lora_dropout.p = 1.0
    assert torch.equal(layer(x), layer.base_layer(x)), "dropout must act on the LoRA path's input"
    assert not torch.equal(layer.eval()(x), layer.base_layer(x))
    layer.train().lora_dropout.p = 0.5
    torch.manual_seed(1)
    first = layer(x)
    torch.manual_seed(2)
    assert not torch.equal(first, layer(x)), "dropout at p = 0.5 should vary with the random draw"


@pytest.mark.parametrize("use_rslora", [False, True])
def test_matches_peft_lora_layer(use_rslora):
    import peft
    from peft.tuners.lora import Linear as PeftLoraLinear
    torch.manual_seed(0)
    base = nn.Linear(32, 48)
    ours = LinearWithLoRA(base, r=8, lora_alpha=16, use_rslora=use_rslora)
    nn.init.normal_(ours.lora_B.weight, std=0.2)
    cfg = peft.LoraConfig(r=8, lora_alpha=16, use_rslora=use_rslora, lora_dropout=0.0)
    theirs = PeftLoraLinear(nn.Linear(32, 48), "default", config=cfg, r=8, lora_alpha=16)
    theirs.base_layer.load_state_dict(base.state_dict())
    theirs.lora_A["default"].weight.data.copy_(ours.lora_A.weight)
    theirs.lora_B["default"].weight.data.copy_(ours.lora_B.weight)
    assert theirs.scaling["default"] == ours.scaling
    x = torch.randn(5, 32)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.get_delta_weight(), theirs.get_delta_weight("default"), atol=1e-5, rtol=0)


def test_model_matches_peft_get_peft_model(tiny_llama):
    import peft
    model = tiny_llama(hidden_size=32, heads=4)
    twin = tiny_llama(hidden_size=32, heads=4)
    add_lora(model, LoraConfig(r=4, lora_alpha=8, target_modules=("q_proj", "v_proj")))
    twin = peft.get_peft_model(twin, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    for name, m in model.named_modules():
        if isinstance(m, LinearWithLoRA):
            nn.init.normal_(m.lora_B.weight, std=0.1)
            peft_layer = twin.base_model.model.get_submodule(name)
            peft_layer.lora_A["default"].weight.data.copy_(m.lora_A.weight)
            peft_layer.lora_B["default"].weight.data.copy_(m.lora_B.weight)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == \
        sum(p.numel() for p in twin.parameters() if p.requires_grad)
    ids = torch.randint(0, 64, (2, 10))
    torch.testing.assert_close(model(ids).logits, twin(ids).logits, atol=1e-5, rtol=0)
    merge_lora(model)
    torch.testing.assert_close(model(ids).logits, twin(ids).logits, atol=1e-5, rtol=0)
    unmerge_lora(model)


def test_no_target_found_says_so(tiny_llama):
    with pytest.raises(ValueError, match="print\\(model\\)"):
        add_lora(tiny_llama(hidden_size=32, heads=4), LoraConfig(target_modules=("query",)))


def test_ablation_scalings_change_alpha_with_the_rank_as_named():
    from course_lib.experiments.lora_ablation import SCALINGS, AblationConfig, lora_config

    config = AblationConfig()
    for r in (1, 4, 64):
        assert LinearWithLoRA(torch.nn.Linear(4, 4), r, **_kw(lora_config(config, "alpha_2r", r))).scaling == 2.0
        rs = LinearWithLoRA(torch.nn.Linear(4, 4), r, **_kw(lora_config(config, "rslora", r)))
        assert math.isclose(rs.scaling, config.rslora_alpha / math.sqrt(r))
        assert lora_config(config, "fixed_alpha", r).lora_alpha == config.lora_alpha
    assert set(SCALINGS) == {"fixed_alpha", "alpha_2r", "rslora"}
    with pytest.raises(ValueError, match="scaling must be one of"):
        lora_config(config, "alpha=r", 4)


def _kw(lora):
    return {"lora_alpha": lora.lora_alpha, "use_rslora": lora.use_rslora}


def test_ablation_model_option_names_the_file_and_can_skip_the_budget_runs(tmp_path, capsys):
    import json

    from course_lib.cli import _parser, commands
    from course_lib.experiments.lora_ablation import _run
    from course_lib.models.base import course_tiny_path
    from course_lib.results import RESULTS, command_line, results_name

    name = "lora_rank_ablation_smollm2-135m-instruct"
    help_, types, _ = commands()["lora-ablation"]
    (config,) = _parser(types, "lora-ablation", help_).parse_args_into_dataclasses(RESULTS[name].split()[2:])
    assert config.model == "smollm2-135m-instruct" and config.ranks == [1, 8, 64] and config.budget is False
    assert command_line("lora-ablation", config) == RESULTS[name]
    assert results_name("lora_rank_ablation", config.model) == name
    if not (course_tiny_path() / "model.safetensors").exists():
        pytest.skip("course-tiny not built")
    out = tmp_path / "ablation.json"  # one step on course-tiny, the runner end to end
    (config,) = _parser(types, "lora-ablation", help_).parse_args_into_dataclasses(
        ["--model", str(course_tiny_path()), "--ranks", "2", "--scalings", "alpha_2r", "--budget", "False",
         "--max_steps", "1", "--per_device_train_batch_size", "2", "--eval_examples", "2", "--seeds", "0",
         "--out", str(out)])
    assert _run(config) == 0
    res = json.loads(out.read_text())
    assert res["model"] == str(course_tiny_path()) and res["budget"] == [] and len(res["runs"]) == 1
    assert "--budget False" in res["command"] and res["runs"][0]["r"] == 2
