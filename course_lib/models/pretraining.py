"""`course pretrain`: train course-tiny's tokenizer and weights from scratch (lesson 00).

course-tiny is a LlamaForCausalLM, pretrained on the docstrings and documentation topics that
ship with Python (data/corpus). It is small enough that every lesson can fine-tune it several
times on a 2-core CPU, and it is genuinely pretrained: its validation perplexity is a small
fraction of the same architecture at random init (see the model card it writes).
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from course_lib.data.datasets import data_dir, read_jsonl
from course_lib.metrics import perplexity
from course_lib.models.base import count_parameters, set_seed

__all__ = ["PretrainConfig", "train_tokenizer", "build_model", "pretrain"]

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]  # ids 0, 1, 2, 3, as in Llama
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@dataclass
class PretrainConfig:
    """Recipe of course-tiny. The defaults are the shipped model's."""

    seed: int = field(default=0, metadata={"help": "one seed for the tokenizer sample order, init and batches"})
    num_threads: int = field(default=1, metadata={"help": "CPU threads; results repeat bit for bit only at the "
                                                          "same count"})
    vocab_size: int = field(default=4096, metadata={"help": "byte-level BPE; a small vocabulary keeps the "
                                                            "embedding cheap"})
    hidden_size: int = field(default=128, metadata={"help": "d_model"})
    intermediate_size: int = field(default=384, metadata={"help": "SwiGLU width (3 × d_model)"})
    num_hidden_layers: int = field(default=4, metadata={"help": "decoder blocks"})
    num_attention_heads: int = field(default=4, metadata={"help": "head_dim = hidden_size / heads = 32"})
    num_key_value_heads: int = field(default=4, metadata={"help": "no grouped-query attention at this size"})
    max_position_embeddings: int = field(default=256, metadata={"help": "longest context"})
    seq_len: int = field(default=128, metadata={"help": "tokens per training window"})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "windows per step: 2,048 tokens"})
    max_steps: int = field(default=2000, metadata={"help": "≈ 4.1 M tokens, about 6 passes over the corpus"})
    learning_rate: float = field(default=2e-3, metadata={"help": "peak LR: tiny models tolerate (and need) "
                                                                 "a large one"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine decays to learning_rate × this"})
    warmup_steps: int = field(default=100, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW decoupled weight decay (matrices only)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    eval_steps: int = field(default=250, metadata={"help": "validation loss and a resumable checkpoint this "
                                                           "often"})
    eval_texts: int = field(default=200, metadata={"help": "validation documents for the running validation "
                                                           "loss"})
    out_dir: str = field(default="", metadata={"help": "'' means data/models/course-tiny"})
    checkpoint_dir: str = field(default=".pretrain", metadata={"help": "where the resumable checkpoint lives "
                                                                       "(git-ignored)"})
    corpus_dir: str = field(default="", metadata={"help": "'' means data/corpus"})


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (the `tokenizers` library), wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", model_max_length=256)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(config: PretrainConfig):
    """A randomly initialised LlamaForCausalLM with course-tiny's shape."""
    from transformers import LlamaConfig, LlamaForCausalLM

    set_seed(config.seed)
    cfg = LlamaConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                      intermediate_size=config.intermediate_size, num_hidden_layers=config.num_hidden_layers,
                      num_attention_heads=config.num_attention_heads,
                      num_key_value_heads=config.num_key_value_heads,
                      max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, pad_token_id=3)
    return LlamaForCausalLM(cfg)


def _token_stream(tokenizer, texts: list[str]) -> torch.Tensor:
    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, verbose=False)["input_ids"] + [tokenizer.eos_token_id]
    return torch.tensor(ids, dtype=torch.long)


def _lr_at(step: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    t = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    return config.learning_rate * (config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def pretrain(config: PretrainConfig | None = None, resume: bool = True) -> dict:
    """Train tokenizer and model, save both in Hugging Face format with a model card; returns the card's figures."""
    config = config or PretrainConfig()
    previous = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(config.num_threads)
    try:
        return _pretrain(config, resume)
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])


def _pretrain(config: PretrainConfig, resume: bool) -> dict:
    """The run behind `pretrain`, about 90 lines on purpose: tokenizer, model, the resumable loop and the
    card in the order the model card tells them; what stands alone (train_tokenizer, build_model, _lr_at,
    _samples, _model_card) is already apart."""
    corpus = Path(config.corpus_dir) if config.corpus_dir else data_dir() / "corpus"
    out = Path(config.out_dir) if config.out_dir else data_dir() / "models" / "course-tiny"
    ckpt_dir = Path(config.checkpoint_dir)
    train_texts = [r["text"] for r in read_jsonl(corpus / "train.jsonl", {"text": str})]
    val_texts = [r["text"] for r in read_jsonl(corpus / "validation.jsonl", {"text": str})]
    general_path = data_dir() / "general" / "test.jsonl"
    general_texts = [r["text"] for r in read_jsonl(general_path, {"text": str})] if general_path.exists() else []

    start = time.perf_counter()
    print(f"[pretrain] tokenizer: byte-level BPE, vocab {config.vocab_size}, on {len(train_texts)} documents")
    tokenizer = train_tokenizer(train_texts, config.vocab_size)
    stream = _token_stream(tokenizer, train_texts)
    print(f"[pretrain] training stream: {len(stream):,} tokens")

    model = build_model(config)
    n_params = count_parameters(model)
    ppl_random_val = perplexity(model, tokenizer, val_texts)
    ppl_random_general = perplexity(model, tokenizer, general_texts) if general_texts else float("nan")
    print(f"[pretrain] {n_params:,} parameters; random-init validation perplexity {ppl_random_val:,.1f}")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(config.seed)
    step, log, elapsed_before = 0, [], 0.0
    ckpt = ckpt_dir / "checkpoint.pt"
    if resume and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if state["config"] == asdict(config):
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            step, log, elapsed_before = state["step"], state["log"], state["elapsed"]
            print(f"[pretrain] resuming from step {step} ({ckpt})")
        else:
            print(f"[pretrain] {ckpt} was made with another recipe: starting over")

    train_start = time.perf_counter() - elapsed_before
    model.train()
    bar = tqdm(total=config.max_steps, initial=step, desc="pretrain", unit="step")
    while step < config.max_steps:
        starts = torch.randint(0, len(stream) - config.seq_len - 1, (config.per_device_train_batch_size,), generator=gen)
        batch = torch.stack([stream[s:s + config.seq_len + 1] for s in starts.tolist()])  # (B, T+1)
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, config)
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss  # HF shifts the labels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % config.eval_steps == 0 or step == config.max_steps:
            val_loss = math.log(perplexity(model, tokenizer, val_texts[: config.eval_texts]))
            model.train()
            log.append({"step": step, "train_loss": round(loss.item(), 4), "val_loss": round(val_loss, 4),
                        "lr": _lr_at(step - 1, config)})
            bar.write(f"[pretrain] step {step}: train loss {loss.item():.3f}, validation loss {val_loss:.3f}")
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"config": asdict(config), "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "generator": gen.get_state(), "step": step, "log": log,
                        "elapsed": time.perf_counter() - train_start}, ckpt)
    bar.close()
    train_seconds = time.perf_counter() - train_start

    model.eval()
    ppl_val = perplexity(model, tokenizer, val_texts)
    ppl_general = perplexity(model, tokenizer, general_texts) if general_texts else float("nan")
    samples = _samples(model, tokenizer, config.seed)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    figures = {"parameters": n_params, "train_tokens": len(stream), "steps": config.max_steps,
               "tokens_seen": config.max_steps * config.per_device_train_batch_size * config.seq_len,
               "train_seconds": round(train_seconds, 1), "total_seconds": round(time.perf_counter() - start, 1),
               "validation_perplexity": round(ppl_val, 2), "random_init_validation_perplexity": round(ppl_random_val, 1),
               "general_perplexity": round(ppl_general, 2),
               "random_init_general_perplexity": round(ppl_random_general, 1),
               "machine": f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}",
               "samples": samples, "config": asdict(config), "log": log}
    (out / "training_log.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    (out / "README.md").write_text(_model_card(figures), encoding="utf-8")
    print(f"[pretrain] done in {train_seconds:.0f} s: validation perplexity {ppl_val:.2f} "
          f"(random init {ppl_random_val:,.0f}); saved to {out}")
    return figures


@torch.no_grad()
def _samples(model, tokenizer, seed: int, prompts=("Return the", "The socket", "This module")) -> list[dict]:
    out = []
    for prompt in prompts:
        set_seed(seed)
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        gen = model.generate(ids, max_new_tokens=40, do_sample=True, top_k=40, temperature=0.8,
                             pad_token_id=tokenizer.pad_token_id)
        out.append({"prompt": prompt, "completion": tokenizer.decode(gen[0], skip_special_tokens=True)})
    return out


def _model_card(f: dict) -> str:
    c = f["config"]
    samples = "\n".join(f"- *{s['prompt']}* → {s['completion']!r}" for s in f["samples"])
    return f"""# course-tiny

A small **LlamaForCausalLM** pretrained from scratch by this course (`course pretrain`,
`course_lib/models/pretraining.py`) on English text that ships with every CPython install. It exists so that
every lesson can fine-tune a *genuinely pretrained* model several times on a laptop CPU, offline.
Its module names are Llama's (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`,
`down_proj`), so LoRA configurations written for Llama models apply unchanged.

## Corpus and licence

`data/corpus/train.jsonl`: docstrings of the Python standard library and the documentation topics in
`pydoc_data`, {f['train_tokens']:,} tokens. Validation: `data/corpus/validation.jsonl`, from *other
source files* (split by file, see `data/corpus/README.md`). The general held-out set
`data/general/test.jsonl` comes from a third group of files, never trained on. The text is
Copyright © Python Software Foundation under the PSF License Agreement (PSF-2.0); this model is
shared under the same terms.

## Recipe

| setting | value |
|---|---|
| architecture | Llama: {c['num_hidden_layers']} layers, d_model {c['hidden_size']}, {c['num_attention_heads']} heads, SwiGLU {c['intermediate_size']}, RoPE, RMSNorm, tied embeddings |
| parameters | {f['parameters']:,} |
| tokenizer | byte-level BPE (`tokenizers`), vocabulary {c['vocab_size']}, trained on the train split |
| training | {c['max_steps']} steps × {c['per_device_train_batch_size']} windows × {c['seq_len']} tokens = {f['tokens_seen']:,} tokens |
| optimiser | AdamW (β = 0.9, 0.95), weight decay {c['weight_decay']}, peak LR {c['learning_rate']}, {c['warmup_steps']} warm-up steps, cosine to {c['min_lr_ratio']} × peak, gradient clip {c['max_grad_norm']} |
| seed | {c['seed']} (deterministic on one machine) |
| wall time | {f['train_seconds']:.0f} s of training ({f['total_seconds']:.0f} s in all) on {f['machine']} |

## Results

Perplexity (`course_lib.metrics.perplexity`, windows of 128 tokens), lower is better:

| text | random init (same architecture, same seed) | course-tiny |
|---|---|---|
| validation split (`data/corpus/validation.jsonl`) | {f['random_init_validation_perplexity']:,.1f} | {f['validation_perplexity']:.2f} |
| general held-out set (`data/general/test.jsonl`) | {f['random_init_general_perplexity']:,.1f} | {f['general_perplexity']:.2f} |

Samples (top-k 40, temperature 0.8, seed {c['seed']}):

{samples}

Reproduce every figure here with `course pretrain` (about the same wall time on a 2-core CPU).
The loss curve is in `training_log.json`.
"""
