"""`course lora-ablation`: LoRA at several ranks and two target sets on course-tiny (lesson 03).

`lora_run` is one point: the lesson calls it live with a reduced config, the command repeats it
for every rank and for the fixed-parameter-budget comparison (LoRA paper, Table 5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from course_lib.data import instruction_text, load_course_dataset
from course_lib.encoding import collator_for, tokenize_causal
from course_lib.lora import ALL_LINEAR_TARGETS, ATTENTION_TARGETS, LoraConfig, add_lora
from course_lib.metrics import perplexity
from course_lib.models import count_parameters, load_base_model, load_tokenizer, set_seed
from course_lib.results import save_results
from course_lib.training import TrainConfig, train

__all__ = ["AblationConfig", "lora_run", "rank_ablation", "COMMANDS"]


@dataclass
class AblationConfig:
    """What `course lora-ablation` runs: course-tiny + LoRA on the alpaca set, one run per rank."""

    ranks: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64],
                             metadata={"help": "ranks of attention-only LoRA (q, k, v, o)"})
    budget_rank_attention: int = field(default=20, metadata={"help": "attention-only at this rank has exactly "
                                                                     "the parameters of ..."})
    budget_rank_all_linear: int = field(default=8, metadata={"help": "... all-linear at this rank on course-tiny "
                                                                     "(81,920): Table 5's fixed budget"})
    lora_alpha: float = field(default=16.0, metadata={"help": "fixed alpha: the scaling alpha / r changes with r"})
    learning_rate: float = field(default=2e-3, metadata={"help": "LoRA on a 1.4M-parameter model tolerates a "
                                                                 "large LR"})
    max_steps: int = field(default=120, metadata={"help": "optimizer steps per run"})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "sequences per step"})
    max_length: int = field(default=128, metadata={"help": "tokens per example"})
    eval_examples: int = field(default=200, metadata={"help": "validation examples for the perplexity"})
    seed: int = field(default=0, metadata={"help": "LoRA init and batch order"})
    out: str = field(default="", metadata={"help": "output file; '' means data/results/lora_rank_ablation.json"})


def lora_run(config: AblationConfig, lora: LoraConfig, train_rows, eval_texts: list[str], tokenizer=None) -> dict:
    """Fine-tune a fresh base model with `lora` on Alpaca rows; its trainable parameters and validation perplexity."""
    tok = tokenizer or load_tokenizer()
    set_seed(config.seed)
    model = load_base_model()
    add_lora(model, lora)
    train_cfg = TrainConfig(learning_rate=config.learning_rate, max_steps=config.max_steps,
                            per_device_train_batch_size=config.per_device_train_batch_size, seed=config.seed,
                            disable_tqdm=True)
    texts = [instruction_text(r) for r in train_rows]
    train(model, tokenize_causal(tok, texts, config.max_length), train_cfg, collate_fn=collator_for(tok, "causal-lm"))
    return {"trainable_parameters": count_parameters(model, trainable_only=True),
            "perplexity": perplexity(model, tok, eval_texts, max_length=config.max_length)}


def rank_ablation(config: AblationConfig) -> dict:
    """Validation perplexity and trainable parameters of LoRA runs at each rank and target set."""
    ds = load_course_dataset("alpaca")
    tok = load_tokenizer()
    train_rows = list(ds["train"])
    eval_texts = [instruction_text(r) for r in list(ds["validation"])[: config.eval_examples]]
    base = perplexity(load_base_model(), tok, eval_texts, max_length=config.max_length)
    result = {"config": asdict(config), "base_perplexity": base, "ranks": [], "budget": []}
    for r in config.ranks:
        row = lora_run(config, LoraConfig(r=r, lora_alpha=config.lora_alpha, target_modules=ATTENTION_TARGETS),
                       train_rows, eval_texts, tok)
        result["ranks"].append({"r": r, "targets": "attention", **row})
        print(f"attention r={r:3d}: {row['trainable_parameters']:8d} trainable, perplexity {row['perplexity']:.2f}")
    for name, r, targets in (("attention", config.budget_rank_attention, ATTENTION_TARGETS),
                             ("all-linear", config.budget_rank_all_linear, ALL_LINEAR_TARGETS)):
        row = lora_run(config, LoraConfig(r=r, lora_alpha=config.lora_alpha, target_modules=targets),
                       train_rows, eval_texts, tok)
        result["budget"].append({"r": r, "targets": name, **row})
        print(f"{name:10s} r={r:3d}: {row['trainable_parameters']:8d} trainable, perplexity {row['perplexity']:.2f}")
    return result


def _run(config: AblationConfig) -> int:
    if config.max_steps <= 0:
        raise ValueError(f"--max_steps must be positive, got {config.max_steps}.")
    path = save_results("lora_rank_ablation", rank_ablation(config), out=config.out or None)
    print(f"wrote {path}")
    return 0


COMMANDS = {"lora-ablation": ("lesson 03: LoRA at ranks 1–64 and two target sets on course-tiny -> "
                              "data/results/lora_rank_ablation.json (3–6 min on 2 CPU cores)",
                              (AblationConfig,), _run)}
