"""LoRA from scratch, with peft's names, so its numbers can be checked against peft (lesson 03).

W' = W + (alpha / r) · B A, with A (r × k) and B (d × r), B = 0 at the start (Hu et al. 2022, §4.1).
`LinearWithLoRA` wraps one nn.Linear; `add_lora(model, config)` wraps the named target modules
of a model and freezes everything else. `course lora-ablation` trains course-tiny with LoRA at
several ranks and targets and writes data/results/lora_rank_ablation.json for lesson 03's plots.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

__all__ = ["LoraConfig", "LinearWithLoRA", "add_lora", "merge_lora", "unmerge_lora", "lora_parameter_count",
           "lora_state_dict", "ATTENTION_TARGETS", "ALL_LINEAR_TARGETS", "AblationConfig", "rank_ablation",
           "COMMANDS"]

ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR_TARGETS = ATTENTION_TARGETS + ("gate_proj", "up_proj", "down_proj")  # peft's "all-linear" on Llama


@dataclass
class LoraConfig:
    """The LoRA settings, named as in peft.LoraConfig."""

    r: int = 8  # rank of the update B A
    lora_alpha: float = 16.0  # the update is scaled by lora_alpha / r (or / sqrt(r) with use_rslora)
    lora_dropout: float = 0.0  # dropout applied to the input of the LoRA path only
    target_modules: Sequence[str] | str = ("q_proj", "v_proj")  # module-name suffixes, or "all-linear"
    use_rslora: bool = False  # rank-stabilised scaling alpha / sqrt(r) (Kalajdzievski 2023)


def _check_rank(r: int) -> None:
    if not isinstance(r, int) or r <= 0:
        raise ValueError(f"LoRA rank r must be a positive integer, got {r!r}.")


class LinearWithLoRA(nn.Module):
    """y = base(x) + scaling · B(A(dropout(x))); the base layer stays frozen (lesson 03)."""

    def __init__(self, base: nn.Linear, r: int, lora_alpha: float, lora_dropout: float = 0.0,
                 use_rslora: bool = False):
        super().__init__()
        _check_rank(r)
        self.base_layer = base
        self.r, self.lora_alpha = r, lora_alpha
        self.in_features, self.out_features = base.in_features, base.out_features
        weight = base.weight
        dtype = weight.dtype if weight.dtype.is_floating_point else torch.float32  # 4-bit bases: fp32 adapters
        self.lora_A = nn.Linear(self.in_features, r, bias=False, device=weight.device, dtype=dtype)  # (r, k)
        self.lora_B = nn.Linear(r, self.out_features, bias=False, device=weight.device, dtype=dtype)  # (d, r)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # as loralib and peft do
        nn.init.zeros_(self.lora_B.weight)  # B = 0, so B A = 0: the wrapped model starts unchanged
        self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.scaling = lora_alpha / (math.sqrt(r) if use_rslora else r)
        self.merged = False
        for p in base.parameters():
            p.requires_grad_(False)

    def get_delta_weight(self) -> torch.Tensor:
        """scaling · B A, shaped like the base weight (d, k)."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """W ← W + scaling · B A: inference then costs exactly what the base layer costs."""
        if not self.merged:
            self.base_layer.weight += self.get_delta_weight().to(self.base_layer.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W ← W − scaling · B A (exact up to rounding in the weight's dtype)."""
        if self.merged:
            self.base_layer.weight -= self.get_delta_weight().to(self.base_layer.weight.dtype)
            self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (..., k) -> (..., d)
        y = self.base_layer(x)
        if self.merged:
            return y
        lora = self.lora_B(self.lora_A(self.lora_dropout(x.to(self.lora_A.weight.dtype))))
        return y + (lora * self.scaling).to(y.dtype)

    def extra_repr(self) -> str:
        return f"r={self.r}, lora_alpha={self.lora_alpha}, scaling={self.scaling:.4g}, merged={self.merged}"


def _targets(config: LoraConfig) -> tuple[str, ...]:
    if config.target_modules == "all-linear":
        return ALL_LINEAR_TARGETS
    if isinstance(config.target_modules, str):
        return (config.target_modules,)
    return tuple(config.target_modules)


def add_lora(model: nn.Module, config: LoraConfig) -> list[str]:
    """Wrap every nn.Linear whose name ends with a target in LinearWithLoRA, freeze the rest; returns the names."""
    _check_rank(config.r)
    targets = _targets(config)
    for p in model.parameters():
        p.requires_grad_(False)
    names = [name for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and not isinstance(m, LinearWithLoRA) and name.split(".")[-1] in targets]
    if not names:
        raise ValueError(f"No nn.Linear module of the model is named like {list(targets)}; "
                         "print(model) shows the names to target.")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LinearWithLoRA(getattr(parent, child), config.r, config.lora_alpha,
                                              config.lora_dropout, config.use_rslora))
    return names


def _lora_layers(model: nn.Module) -> list[LinearWithLoRA]:
    return [m for m in model.modules() if isinstance(m, LinearWithLoRA)]


def merge_lora(model: nn.Module) -> None:
    """Merge every LoRA layer of the model into its base weight."""
    for m in _lora_layers(model):
        m.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Undo `merge_lora`."""
    for m in _lora_layers(model):
        m.unmerge()


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the lora_A / lora_B weights: what an adapter checkpoint stores."""
    return {k: v for k, v in model.state_dict().items() if "lora_" in k}


def lora_parameter_count(d: int, k: int, r: int) -> int:
    """Trainable parameters of LoRA on one d × k matrix: r·(d + k) instead of d·k (lesson 03)."""
    _check_rank(r)
    return r * (d + k)


# ---------------------------------------------------------------- rank ablation (cached for lesson 03)

@dataclass
class AblationConfig:
    """What `course lora-ablation` runs: course-tiny + LoRA on the alpaca set, one run per rank."""

    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)  # attention-only LoRA (q, k, v, o) at each rank
    budget_rank_attention: int = 20  # attention-only at r=20 has exactly the parameters of ...
    budget_rank_all_linear: int = 8  # ... all-linear at r=8 on course-tiny (81,920) (Table 5's fixed-budget question)
    lora_alpha: float = 16.0  # fixed alpha, so the scaling alpha / r changes with r (as in most recipes)
    learning_rate: float = 2e-3  # LoRA on a 1.4M-parameter model tolerates a large LR
    max_steps: int = 120  # optimizer steps per run (was 150 × 16: ≈ 3 min per run on a busy 2-core machine)
    batch_size: int = 8  # 120 × 8 sequences per run: all 9 runs ≈ 3 CPU-minutes, 6 min wall on a shared 2-core box
    max_length: int = 128  # tokens per example
    eval_examples: int = 200  # validation examples for the perplexity
    seed: int = 0
    out: str = "data/results/lora_rank_ablation.json"  # relative to the repository root


def _alpaca_texts(rows) -> list[str]:
    from course_lib.forgetting import instruction_text  # the course's one Alpaca prompt format
    return [instruction_text(r) for r in rows]


def _one_run(config: AblationConfig, lora: LoraConfig | None, train_rows, eval_texts) -> dict:
    from course_lib.metrics import perplexity
    from course_lib.models import count_parameters, load_base_model, load_tokenizer, set_seed
    from course_lib.training import TrainConfig, collator_for, tokenize_causal, train

    set_seed(config.seed)
    tok, model = load_tokenizer(), load_base_model()
    if lora is not None:
        add_lora(model, lora)
    train_cfg = TrainConfig(learning_rate=config.learning_rate, max_steps=config.max_steps,
                            per_device_train_batch_size=config.batch_size, seed=config.seed, disable_tqdm=True)
    train(model, tokenize_causal(tok, _alpaca_texts(train_rows), config.max_length), train_cfg,
          collate_fn=collator_for(tok, "causal-lm"))
    return {"trainable_parameters": count_parameters(model, trainable_only=True),
            "perplexity": perplexity(model, tok, eval_texts, max_length=config.max_length)}


def rank_ablation(config: AblationConfig = AblationConfig()) -> dict:
    """Validation perplexity and trainable parameters of LoRA runs at each rank and target set."""
    from course_lib.data import load_course_dataset
    from course_lib.metrics import perplexity
    from course_lib.models import load_base_model, load_tokenizer

    ds = load_course_dataset("alpaca")
    train_rows, eval_texts = list(ds["train"]), _alpaca_texts(list(ds["validation"])[: config.eval_examples])
    base = perplexity(load_base_model(), load_tokenizer(), eval_texts, max_length=config.max_length)
    result = {"config": asdict(config), "base_perplexity": base, "ranks": [], "budget": []}
    for r in config.ranks:
        row = _one_run(config, LoraConfig(r=r, lora_alpha=config.lora_alpha, target_modules=ATTENTION_TARGETS),
                       train_rows, eval_texts)
        result["ranks"].append({"r": r, "targets": "attention", **row})
        print(f"attention r={r:3d}: {row['trainable_parameters']:8d} trainable, perplexity {row['perplexity']:.2f}")
    for name, r, targets in (("attention", config.budget_rank_attention, ATTENTION_TARGETS),
                             ("all-linear", config.budget_rank_all_linear, ALL_LINEAR_TARGETS)):
        row = _one_run(config, LoraConfig(r=r, lora_alpha=config.lora_alpha, target_modules=targets),
                       train_rows, eval_texts)
        result["budget"].append({"r": r, "targets": name, **row})
        print(f"{name:10s} r={r:3d}: {row['trainable_parameters']:8d} trainable, perplexity {row['perplexity']:.2f}")
    return result


def _ablation_args(p) -> None:
    p.add_argument("--max-steps", type=int, default=AblationConfig.max_steps, help="optimizer steps per run")
    p.add_argument("--out", default=AblationConfig.out, help="where to write the JSON results")


def _ablation_run(args) -> int:
    from course_lib.data import data_dir
    if args.max_steps <= 0:
        raise ValueError(f"--max-steps must be positive, got {args.max_steps}.")
    result = rank_ablation(AblationConfig(max_steps=args.max_steps, out=args.out))
    out = Path(args.out)
    out = out if out.is_absolute() else data_dir().parent / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


COMMANDS = {
    "lora-ablation": ("train course-tiny with LoRA at ranks 1-64 and two target sets; writes "
                      "data/results/lora_rank_ablation.json (lesson 03, ~3-6 min on 2 CPU cores)",
                      _ablation_args, _ablation_run),
}
