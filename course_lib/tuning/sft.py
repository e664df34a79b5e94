"""Instruction tuning with a chat template: prompt formats, the assistant-only label mask, `course sft` (lesson 06).

The task: answer "Explain what the Python function `X` does." (data/instructions/chat) in the one-line
style of the standard library's own docstrings. `assistant_only_labels` writes the loss mask by hand
(labels −100 everywhere but the assistant's reply); tests/test_sft.py proves it equal to what TRL's
`SFTTrainer` builds from the same rows in its prompt–completion format with `completion_only_loss`.
`sft_run` is the long run behind `course sft`: TRL + a peft `LoraConfig`, early stopping on the
evaluation loss with the best checkpoint reloaded, before/after metrics, the adapter saved to disk.
`course sft` writes its adapters and sft.json together or not at all (`results.staged_outputs`), keeps
its checkpoints in data/checkpoints/sft until it ends, and `course sft --resume` continues from them.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import torch

from course_lib.data.datasets import TASK_PREFIX, data_dir, format_ok, instruction_text, load_course_dataset
from course_lib.forgetting.generation import greedy_ids
from course_lib.metrics import rouge_l
from course_lib.models.base import count_parameters, model_name, set_seed
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.notebook import known_notices

__all__ = ["DEFAULT_MODEL", "lesson_model", "NoChatTemplate", "require_chat_template", "TEMPLATES", "task_rows",
           "to_prompt_completion", "prompt_for", "generation_prompt", "assistant_only_labels", "whole_text_labels",
           "pad_batch", "response_nll", "greedy_answer_ids", "answers_and_cuts", "greedy_answers_and_cuts",
           "answer_cap", "answer_metrics", "SFTRunConfig",
           "sft_trainer", "sft_run", "dir_bytes", "write_adapter_card", "tidy_adapter_config", "quiet_command",
           "checkpoints_dir"]

DEFAULT_MODEL = "smollm2-135m-instruct"  # lesson 06's model unless COURSE_MODEL names another
Template = Literal["chat", "none", "alpaca"]
TEMPLATES: tuple[str, ...] = ("chat", "none", "alpaca")  # the model's own, none at all, another model's


def lesson_model() -> str:
    """COURSE_MODEL if set, else smollm2-135m-instruct: this lesson needs a model with a chat template."""
    return model_name(default=DEFAULT_MODEL)


class NoChatTemplate(ValueError):
    """The lesson's model has no chat template; rendered in a notebook as its one sentence."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def require_chat_template(model_name: str, tokenizer=None) -> None:
    """Stop at once, in one sentence, when `model_name`'s tokenizer has no chat template (a base model)."""
    if (tokenizer or load_tokenizer(model_name)).chat_template is None:
        raise NoChatTemplate(
            f"{model_name!r} has no chat template (a base model, never taught to chat), and this lesson trains and "
            "compares inside one: set COURSE_MODEL to a chat model (an -Instruct or -chat one), or give yours a "
            "template first as practitioners do — TRL's `clone_chat_template` adds ChatML's special tokens, whose "
            "new embedding rows LoRA must then train (`modules_to_save=['embed_tokens', 'lm_head']`) — and name "
            "the saved folder in COURSE_MODEL.")


def task_rows(split: str, n: int | None = None) -> list[dict]:
    """The first n chat rows of `split` whose user asks to explain a standard-library function."""
    rows = [r for r in load_course_dataset("chat", split) if r["messages"][0]["content"].startswith(TASK_PREFIX)]
    return rows[:n] if n else rows


def to_prompt_completion(row: dict) -> dict:
    """A chat row as TRL's conversational prompt–completion example: every turn but the last, and the last."""
    return {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]}


def prompt_for(tokenizer, row: dict, template: Template = "chat") -> str:
    """The text a model is asked to continue: its chat template, the bare question, or the Alpaca format."""
    user = row["messages"][0]["content"]
    if template == "chat":
        return tokenizer.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True)
    if template == "none":
        return user + "\n"
    if template == "alpaca":  # "### Instruction: … ### Response:" of lessons 03-05 (course_lib.data.datasets)
        return instruction_text({"instruction": user, "input": "", "output": ""})
    raise ValueError(f"template must be one of {TEMPLATES}, not {template!r}.")


def generation_prompt(tokenizer) -> str:
    """What add_generation_prompt=True appends: the header that opens an assistant turn."""
    probe = [{"role": "user", "content": "x"}]
    with_header = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    return with_header[len(tokenizer.apply_chat_template(probe, tokenize=False)):]


def assistant_only_labels(tokenizer, messages: list[dict]) -> dict[str, list[int]]:
    """input_ids of the templated conversation, and labels that are −100 except on the assistant's replies.

    By hand, on token ids: a reply starts after each assistant header (`generation_prompt`) and runs up
    to the next turn's first token, so the end-of-turn token is learned (the model must learn to stop).
    """
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    header = tokenizer(generation_prompt(tokenizer), add_special_tokens=False)["input_ids"]
    turn_start = header[0]  # ChatML: <|im_start|> opens every turn
    labels, inside = [-100] * len(ids), False
    for i, tok in enumerate(ids):
        if i + 1 >= len(header) and ids[i + 1 - len(header):i + 1] == header:
            inside = True  # the header itself stays masked; the reply starts at the next token
            continue
        if tok == turn_start:
            inside = False
        if inside:
            labels[i] = tok
    return {"input_ids": ids, "labels": labels}


def whole_text_labels(tokenizer, messages: list[dict]) -> dict[str, list[int]]:
    """The unmasked alternative: every token of the templated conversation is a target (lessons 03-05's way)."""
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    return {"input_ids": ids, "labels": list(ids)}


def pad_batch(examples: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad input_ids (pad id), labels (−100) and an attention mask into (B, T) tensors."""
    width = max(len(e["input_ids"]) for e in examples)
    batch = {"input_ids": torch.full((len(examples), width), pad_token_id),
             "attention_mask": torch.zeros((len(examples), width), dtype=torch.long),
             "labels": torch.full((len(examples), width), -100)}
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        batch["input_ids"][i, :n] = torch.tensor(e["input_ids"])
        batch["attention_mask"][i, :n] = 1
        batch["labels"][i, :n] = torch.tensor(e["labels"])
    return batch


@torch.no_grad()
def response_nll(model, tokenizer, rows: Sequence[dict], template: Template = "chat", batch_size: int = 8) -> float:
    """Mean NLL (nats) per token of the reference answers only, each after its prompt in `template`."""
    examples = []
    for row in rows:
        prompt = tokenizer(prompt_for(tokenizer, row, template), add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["messages"][-1]["content"], add_special_tokens=False)["input_ids"]
        examples.append({"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer})
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in pad_batch(examples[i:i + batch_size], tokenizer.pad_token_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        targets = batch["labels"][:, 1:]  # (B, T-1): token t is predicted from positions < t
        total += torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100,
                                                   reduction="sum").item()
        count += int((targets != -100).sum())
    model.train(was_training)
    return total / count


@torch.no_grad()
def greedy_answer_ids(model, tokenizer, prompts: Sequence[str], max_new_tokens: int,
                      batch_size: int = 1) -> list[list[int]]:
    """Each prompt's greedy answer as token ids, up to and including its end of turn, at most `max_new_tokens`.

    batch_size 1 (the default, what `course sft` uses) generates one prompt at a time, without padding;
    a larger batch_size generates that many prompts at once, left-padded (lesson 06): on a CPU each step reads
    every weight once whatever the batch, so it is faster, and the answers agree with one at a time up to
    float rounding (tests/test_sft.py; the lesson checks its answers against the file's).
    """
    if batch_size == 1:
        return [greedy_ids(model, tokenizer, tokenizer(p)["input_ids"], max_new_tokens) for p in prompts]
    device, eos, out = next(model.parameters()).device, tokenizer.eos_token_id, []
    for i in range(0, len(prompts), batch_size):
        enc = tokenizer(list(prompts[i:i + batch_size]), padding=True, padding_side="left", return_tensors="pt")
        ids = model.generate(**enc.to(device), max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)[:, enc["input_ids"].shape[1]:].tolist()
        out += [row[:row.index(eos) + 1] if eos in row else row for row in ids]  # a finished row is padded after
    return out


def answers_and_cuts(tokenizer, answer_ids: Sequence[list[int]], max_new_tokens: int) -> tuple[list[str], list[bool]]:
    """The decoded answers at a cap of `max_new_tokens`, and for each whether the cap cut it (no end of turn).

    Greedy decoding writes the same tokens whatever the cap, so answers generated with a larger cap, cut to
    their first `max_new_tokens` tokens, are the answers at the smaller cap: one generation serves both.
    """
    answers, cut = [], []
    for ids in answer_ids:
        ids = list(ids[:max_new_tokens])
        answers.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
        cut.append(len(ids) >= max_new_tokens and tokenizer.eos_token_id not in ids)
    return answers, cut


@torch.no_grad()
def greedy_answers_and_cuts(model, tokenizer, prompts: Sequence[str], max_new_tokens: int,
                            batch_size: int = 1) -> tuple[list[str], list[bool]]:
    """Greedy answers, and for each whether the token cap cut it (no end of turn within `max_new_tokens`)."""
    return answers_and_cuts(tokenizer, greedy_answer_ids(model, tokenizer, prompts, max_new_tokens, batch_size),
                            max_new_tokens)


def answer_cap(tokenizer, references: Sequence[str], slack: float = 1.5) -> int:
    """A generation cap sized from the references: `slack` × the longest reference in tokens, plus its end of turn."""
    return math.ceil(slack * max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)) + 1


@torch.no_grad()
def answer_metrics(model, tokenizer, rows: Sequence[dict], template: Template = "chat",
                   max_new_tokens: int = 32) -> dict:
    """Greedy answers to each row's question in `template`, scored: ROUGE-L, exact match, format rate, response NLL.

    `truncated` counts the answers the token cap cut before the model ended its turn: a cut answer usually
    fails the format check for want of its final full stop, whatever the model would have written.
    """
    prompts = [prompt_for(tokenizer, r, template) for r in rows]
    answers, cut = greedy_answers_and_cuts(model, tokenizer, prompts, max_new_tokens)
    refs = [r["messages"][-1]["content"] for r in rows]
    return {"rouge_l": rouge_l(answers, refs), "exact": sum(a == r for a, r in zip(answers, refs)) / len(refs),
            "format_rate": sum(map(format_ok, answers)) / len(answers), "truncated": sum(cut),
            "response_nll": response_nll(model, tokenizer, rows, template), "answers": answers}


@dataclass
class SFTRunConfig:
    """What `course sft` runs; names as in TRL's SFTConfig / transformers' TrainingArguments and peft's LoraConfig."""

    train_rows: int = field(default=32, metadata={"help": "training rows (few, so that overfitting shows)"})
    eval_rows: int = field(default=16, metadata={"help": "validation rows for the evaluation loss"})
    test_rows: int = field(default=8, metadata={"help": "held-out test prompts answered before and after"})
    r: int = field(default=4, metadata={"help": "LoRA rank"})
    lora_alpha: float = field(default=8.0, metadata={"help": "LoRA scaling alpha / r = 2"})
    target_modules: str = field(default="all-linear", metadata={"help": "peft's shorthand: every linear layer "
                                                                           "of the body (QLoRA §4)"})
    learning_rate: float = field(default=5e-4, metadata={"help": "peak LR (LoRA: 1e-4 – 5e-4)"})
    max_steps: int = field(default=24, metadata={"help": "optimizer steps at most (early stopping may end sooner)"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "rows per step"})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "a transformers scheduler name"})
    eval_steps: int = field(default=4, metadata={"help": "evaluate (and checkpoint) every this many steps"})
    logging_steps: int = field(default=2, metadata={"help": "log the training loss every this many steps"})
    early_stopping_patience: int = field(default=2, metadata={"help": "stop after this many evaluations without "
                                                                      "a better eval loss; 0 disables"})
    max_length: int = field(default=192, metadata={"help": "tokens per example (the longest task row has 257)"})
    completion_only_loss: bool = field(default=True, metadata={"help": "loss on the assistant reply only"})
    compare_whole_text: bool = field(default=True, metadata={"help": "also train on the whole text "
                                                                     "(completion_only_loss=False) and compare"})
    max_new_tokens: int = field(default=24, metadata={"help": "greedy tokens per held-out answer"})
    seed: int = field(default=0, metadata={"help": "LoRA init and batch order"})
    adapter_dir: str = field(default="", metadata={"help": "where the adapter goes; '' = data/adapters/sft-docstring "
                                                           "(the whole-text twin: the same name + '-whole-text')"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/sft.json"})
    resume: bool = field(default=False, metadata={"help": "continue an interrupted run from its last checkpoint "
                                                          "(data/checkpoints/sft); the same options are needed"})

    def to_sft_config(self, output_dir: str, **overrides):
        """The same run as TRL's `SFTConfig` (a TrainingArguments): every shared name carried over."""
        from trl import SFTConfig

        stopping = self.early_stopping_patience > 0
        kwargs = dict(output_dir=output_dir, learning_rate=self.learning_rate, max_steps=self.max_steps,
                      per_device_train_batch_size=self.per_device_train_batch_size, per_device_eval_batch_size=8,
                      lr_scheduler_type=self.lr_scheduler_type, logging_steps=self.logging_steps,
                      eval_strategy="steps", eval_steps=self.eval_steps, seed=self.seed,
                      max_length=self.max_length, completion_only_loss=self.completion_only_loss,
                      save_strategy="steps", save_steps=self.eval_steps,  # checkpoints: the best, and --resume
                      load_best_model_at_end=stopping, metric_for_best_model="eval_loss", greater_is_better=False,
                      bf16=False, activation_checkpointing=False,  # TRL turns both on by default; not on a CPU
                      report_to="none", disable_tqdm=True, use_cpu=not torch.cuda.is_available())
        return SFTConfig(**{**kwargs, **overrides})

    def lora_config(self):
        """peft's LoraConfig for this run."""
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.lora_alpha, lora_dropout=0.0, target_modules=self.target_modules,
                          task_type="CAUSAL_LM")


def sft_trainer(model, tokenizer, train_rows, eval_rows, config: SFTRunConfig, output_dir: str, **overrides):
    """TRL's SFTTrainer on prompt–completion rows with a peft LoRA adapter (and early stopping if configured)."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    args = config.to_sft_config(output_dir, **overrides)
    callbacks = [EarlyStoppingCallback(config.early_stopping_patience)] if args.load_best_model_at_end else []
    as_dataset = lambda rows: Dataset.from_list([to_prompt_completion(r) for r in rows])  # noqa: E731
    with known_notices():  # TRL still asks the model the deprecated `is_gradient_checkpointing`
        return SFTTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=as_dataset(train_rows),
                          eval_dataset=as_dataset(eval_rows) if eval_rows else None,
                          peft_config=config.lora_config(), callbacks=callbacks)


def dir_bytes(path: Path | str) -> int:
    """Total size of the files in a folder (an adapter, a model)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _scores(model, tokenizer, test, templates=("chat",), max_new_tokens: int = 32) -> dict:
    out = {}
    for t in templates:
        m = answer_metrics(model, tokenizer, test, t, max_new_tokens)
        out[t] = {**{k: round(v, 4) for k, v in m.items() if k != "answers"},
                  "response_ppl": round(math.exp(m["response_nll"]), 3), "answers": m["answers"]}
    return out


def _last_checkpoint(folder: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def _phases(total: int, progress: bool):
    """A progress bar over the run's phases (ETA from the phases done), or a silent stand-in."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="[sft]", unit="phase", disable=not progress, dynamic_ncols=True)


def sft_run(config: SFTRunConfig | None = None, model_name: str | None = None, *, save_to: Path | None = None,
            twin_to: Path | None = None, checkpoints: Path | None = None, progress: bool = False) -> dict:
    """The long run: base scores in three formats, SFT with early stopping, after scores, the whole-text twin.

    The adapters are saved to `save_to` (default: config.adapter_dir) and `twin_to` (default: the same name
    + "-whole-text"); the
    trainers checkpoint into `checkpoints` (default: a folder removed at the end), and with config.resume
    each training continues from its last checkpoint there.
    """

    config = config or SFTRunConfig()
    model_name = model_name or lesson_model()
    if checkpoints is None:
        with tempfile.TemporaryDirectory() as tmp:
            return sft_run(config, model_name, save_to=save_to, twin_to=twin_to, checkpoints=Path(tmp),
                           progress=progress)
    start = time.perf_counter()
    bar = _phases(5 if config.compare_whole_text else 3, progress)
    shown = {} if progress else {"disable_tqdm": True}  # the trainer's own bar: steps, ETA
    tok = load_tokenizer(model_name)
    train, val, test = task_rows("train", config.train_rows), task_rows("validation", config.eval_rows), \
        task_rows("test", config.test_rows)
    set_seed(config.seed)
    model = load_base_model(model_name)
    bar.set_postfix_str(f"base answers to {len(test)} test questions in {len(TEMPLATES)} formats")
    before = _scores(model, tok, test, TEMPLATES, config.max_new_tokens)
    base_eval_nll = response_nll(model, tok, val)
    bar.update()
    bar.set_postfix_str(f"training on {len(train)} rows, at most {config.max_steps} steps")
    masked_dir = checkpoints / "reply-only"
    trainer = sft_trainer(model, tok, train, val, config, str(masked_dir), **shown)
    step0 = trainer.evaluate()["eval_loss"]  # TRL's eval_loss before training (B = 0): the curve's one metric
    trainer.train(resume_from_checkpoint=_last_checkpoint(masked_dir) if config.resume else None)
    tuned = trainer.model
    bar.update()
    logs = [e for e in trainer.state.log_history if e.get("step", 0) > 0 or "eval_loss" not in e]
    curve = {"step": [0] + [e["step"] for e in logs if "eval_loss" in e],
             "eval_loss": [step0] + [e["eval_loss"] for e in logs if "eval_loss" in e]}
    train_curve = {"step": [e["step"] for e in logs if "loss" in e], "loss": [e["loss"] for e in logs if "loss" in e]}
    bar.set_postfix_str("answers after training")
    after = _scores(tuned, tok, test, TEMPLATES, config.max_new_tokens)  # trained in chat, asked three ways
    bar.update()
    adapter_dir = Path(config.adapter_dir or data_dir() / "adapters" / "sft-docstring")
    save_to = Path(save_to or adapter_dir)
    tuned.save_pretrained(save_to)
    tidy_adapter_config(save_to, model_name)
    result = {"model": model_name, "config": {k: v for k, v in asdict(config).items() if k != "resume"}, "seed": config.seed, "train_rows": len(train), "eval_rows": len(val),
              "test_rows": len(test), "trainable_parameters": count_parameters(tuned, trainable_only=True),
              "eval_curve": curve, "base_eval_response_nll": base_eval_nll, "train_curve": train_curve, "best_step": trainer.state.best_global_step,
              "stopped_at_step": trainer.state.global_step, "before": before, "after": after,
              "references": [r["messages"][-1]["content"] for r in test],
              "questions": [r["messages"][0]["content"] for r in test],
              "adapter_dir": adapter_dir.relative_to(data_dir().parent).as_posix()
              if adapter_dir.is_relative_to(data_dir().parent) else str(adapter_dir),
              "adapter_bytes": dir_bytes(save_to)}
    bar.write(f"[sft] stopped at step {trainer.state.global_step}, best {trainer.state.best_global_step}")
    if config.compare_whole_text:  # same steps as the masked run took, every token a target, no early stopping
        set_seed(config.seed)
        whole = load_base_model(model_name)
        bar.set_postfix_str(f"the whole-text twin, {trainer.state.global_step} steps")
        twin_dir = checkpoints / "whole-text"
        twin = sft_trainer(whole, tok, train, [], config, str(twin_dir), completion_only_loss=False,
                           max_steps=trainer.state.global_step, eval_strategy="no", load_best_model_at_end=False,
                           **shown)
        twin.train(resume_from_checkpoint=_last_checkpoint(twin_dir) if config.resume else None)
        bar.update()
        twin_to = Path(twin_to or save_to.with_name(save_to.name + "-whole-text"))
        twin.model.save_pretrained(twin_to)
        tidy_adapter_config(twin_to, model_name)
        bar.set_postfix_str("the twin's answers")
        result["whole_text"] = {"steps": trainer.state.global_step,
                                "after": _scores(twin.model, tok, test, ("chat",), config.max_new_tokens),
                                "eval_response_nll": response_nll(twin.model, tok, val)}
        result["masked_eval_response_nll"] = response_nll(tuned, tok, val)
        bar.update()
    bar.close()
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    return result


def tidy_adapter_config(adapter_dir: Path | str, model_name: str) -> None:
    """adapter_config.json as the course commits it: the model's course name, not the path of the machine
    that made it, and target_modules sorted (peft writes a set, in an order that changes from run to run)."""
    path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = model_name if not Path(model_name).is_absolute() else Path(model_name).name
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_adapter_card(adapter_dir: Path | str, result: dict, kind: str = "reply-only loss") -> None:
    """README.md of a saved adapter: what it is, the command and seed that made it (replaces peft's template)."""
    c = result["config"]
    options = " ".join(f"--{k} {v}" for k, v in c.items() if v != getattr(SFTRunConfig, k, v) and k not in ("out",))
    Path(adapter_dir, "README.md").write_text(
        f"# LoRA adapter for {result['model']}: one-line docstring answers ({kind})\n\n"
        f"Made by `course sft{' ' + options if options else ''}` (course_lib/tuning/sft.py, seed {result['seed']}): "
        f"TRL's SFTTrainer, LoRA r={c['r']}, lora_alpha={c['lora_alpha']:g}, target_modules={c['target_modules']}, "
        f"learning rate {c['learning_rate']:g}, batches of {c['per_device_train_batch_size']}, "
        f"{result['train_rows']} rows of data/instructions/chat (\"{TASK_PREFIX} …\"), "
        f"{result['stopped_at_step']} steps (best checkpoint: step {result['best_step']}). "
        "Lesson 06 loads it with `peft.PeftModel.from_pretrained`; the figures are in data/results/sft.json.\n",
        encoding="utf-8")


def quiet_command() -> None:
    """For `course sft` / `dpo`: a bar per phase and nothing unexplained (no per-dataset bars, no notices)."""
    from datasets import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()  # TRL's tokenizing of each dataset
    hf_logging.disable_progress_bar()  # weight loading
    hf_logging.set_verbosity_error()


def checkpoints_dir() -> Path:
    """Where `course sft` keeps its checkpoints until it ends (git-ignored): what --resume continues from."""
    return data_dir() / "checkpoints" / "sft"
