"""GRPO with verifiable rewards: the rewards, group-relative advantages and the loss by hand (= TRL) (lesson 09).

A reward here is a program: `checked_reward` reads the reply's final number and compares it with the answer.
`contains_reward` and `lenient_reward` are two flawed checkers (any number equal to the answer; any arithmetic
expression that evaluates to it), for lesson 09's reward-hacking run.

`group_advantages` and `grpo_loss` are Shao et al. (2024) as trl 1.16's `GRPOTrainer` computes them
(`_generate_and_score_completions`, `_compute_loss`): (r − group mean) / (group std + 1e-4), the clipped
per-token surrogate, the k3 estimate of the KL to the reference, and the normalisation of each `loss_type`.
tests/test_grpo.py proves them equal to TRL's on the same batch. `grpo_trainer` is TRL's trainer with a LoRA
adapter, timed: it logs the seconds spent generating in each step beside TRL's own `step_time`.
"""

from __future__ import annotations

import ast
import re
import time
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import torch

from course_lib.notebook import known_notices

__all__ = ["reply_text", "final_number", "checked_reward", "contains_reward", "lenient_reward", "REWARDS",
           "group_advantages", "zero_std_fraction", "zero_std_probability", "completion_logps", "GRPOLoss",
           "grpo_loss", "LOSS_TYPES", "GRPORunConfig", "to_trl", "grpo_trainer", "log_curve", "chat_batch",
           "greedy_answers", "sample_answers", "accuracy"]

NUMBER = re.compile(r"\d+")
EXPRESSION = re.compile(r"\d+(?:\s*[-+*×x]\s*\d+)*")  # 7 * 8, 12 x 4, 7 × 11, 56: integers and + − × only
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")


# ---------------------------------------------------------------- rewards: programs that check a reply

def reply_text(completion) -> str:
    """A completion as TRL passes it to a reward function (a list of messages when the prompt is one) -> its text."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def final_number(text: str) -> str | None:
    """The last integer written in `text`, as written ("56"), or None: the answer a checker reads."""
    found = NUMBER.findall(text)
    return found[-1] if found else None


def checked_reward(completions: Sequence, answer: Sequence[str], **kwargs) -> list[float]:
    """1.0 where the reply's final number is the answer, else 0.0 (a TRL reward function: `answer` is a column)."""
    return [float(final_number(reply_text(c)) == a) for c, a in zip(completions, answer)]


def contains_reward(completions: Sequence, answer: Sequence[str], **kwargs) -> list[float]:
    """Flawed: 1.0 where any number in the reply is the answer (a reply that lists several numbers can win)."""
    return [float(a in NUMBER.findall(reply_text(c))) for c, a in zip(completions, answer)]


def _value(expression: str) -> int | None:
    tree = ast.parse(expression.replace("×", "*").replace("x", "*"), mode="eval")
    ok = all(isinstance(n, (ast.Expression, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Constant)) for n in ast.walk(tree))
    return eval(compile(tree, "<reply>", "eval")) if ok else None  # noqa: S307 - integers and + − × only, checked above


def lenient_reward(completions: Sequence, answer: Sequence[str], **kwargs) -> list[float]:
    """Flawed: 1.0 where any arithmetic expression in the reply evaluates to the answer, as a checker that accepts
    an unsimplified answer would ("7 * 8" for 56): restating the question scores without computing anything."""
    return [float(any(_value(e) == int(a) for e in EXPRESSION.findall(reply_text(c))))
            for c, a in zip(completions, answer)]


REWARDS = {"checked": checked_reward, "contains": contains_reward, "lenient": lenient_reward}


# ---------------------------------------------------------------- advantages

def group_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: str = "group") -> torch.Tensor:
    """(N,) rewards, groups of `group_size` consecutive completions of one prompt -> (N,) advantages.

    A = r − mean(group); divided by (std + 1e-4) with the group's std ("group", TRL's default), the whole
    batch's ("batch") or not at all ("none", Dr. GRPO). std is the sample standard deviation (n − 1), as TRL's.
    """
    grouped = rewards.view(-1, group_size)  # (prompts, G)
    advantages = (grouped - grouped.mean(dim=1, keepdim=True)).flatten()
    if scale_rewards == "group":
        return advantages / (grouped.std(dim=1).repeat_interleave(group_size) + 1e-4)
    if scale_rewards == "batch":
        return advantages / (rewards.std() + 1e-4)
    if scale_rewards == "none":
        return advantages
    raise ValueError(f"scale_rewards must be 'group', 'batch' or 'none', got {scale_rewards!r}")


def zero_std_fraction(rewards: torch.Tensor, group_size: int) -> float:
    """The share of groups whose completions all got the same reward: advantage 0, nothing learned from them."""
    return (rewards.view(-1, group_size).std(dim=1) == 0).float().mean().item()


def zero_std_probability(pass_rate: float, group_size: int) -> float:
    """P(a group of G independent 0/1 rewards is all equal) for a prompt answered right with probability p."""
    return pass_rate ** group_size + (1 - pass_rate) ** group_size


# ---------------------------------------------------------------- the loss

def completion_logps(model, batch: dict[str, torch.Tensor], temperature: float = 1.0) -> torch.Tensor:
    """(B, C) log π(o_t | q, o_<t) of each completion token, from logits divided by the sampling temperature.

    `batch` holds TRL's prompt_ids, prompt_mask (left-padded) and completion_ids, completion_mask (right-padded).
    """
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    c = batch["completion_ids"].shape[1]
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, -c - 1:-1].float()  # (B, C, V)
    logps = (logits / temperature).log_softmax(-1).gather(2, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    return logps * batch["completion_mask"]  # padding after the end of a completion counts 0


class GRPOLoss(NamedTuple):
    """The loss, the per-token KL term as added to the loss, before β (ρ·KL with the bias correction, as TRL
    logs `kl`; None without β) and the share of tokens whose ratio was clipped."""

    loss: torch.Tensor
    per_token_kl: torch.Tensor | None
    clip_ratio: float


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
              loss_type: str = "dapo", epsilon: float = 0.2, beta: float = 0.0, ref_logps: torch.Tensor | None = None,
              max_completion_length: int | None = None, num_items: float | None = None,
              bias_correction_kl: bool = True) -> GRPOLoss:
    """The GRPO objective of one batch (Shao et al. 2024, §4.1), negated, with TRL's normalisations.

    logps, old_logps, ref_logps, mask: (B, C), per completion token; advantages: (B,). Per token,
    −min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A) with ρ = π/π_old, plus β·ρ·(π_ref/π − log(π_ref/π) − 1): trl 1.16's
    `use_bias_correction_kl` (default True; DeepSeek-V3.2) multiplies the KL estimate by the ratio, and so does
    `bias_correction_kl` here (False: the paper's β·KL). Then
    grpo: the mean over each completion's tokens, then over completions (a short completion's tokens weigh more);
    bnpo / dapo: the sum over every token / the number of completion tokens (`num_items`: the whole generation
    batch's; equal to mask.sum() for one step on one process); dr_grpo: the sum / (B · max_completion_length).
    """
    ratio = torch.exp(logps - old_logps)  # (B, C): 1 everywhere when the batch was sampled by this very policy
    a = advantages.unsqueeze(1)  # (B, 1)
    per_token = -torch.min(ratio * a, ratio.clamp(1 - epsilon, 1 + epsilon) * a)
    kl = None
    if beta != 0.0:
        kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1  # k3: unbiased, always ≥ 0
        if bias_correction_kl:  # TRL's default: weighted by the ratio to the sampling policy (1 when on-policy)
            kl = kl * ratio
        per_token = per_token + beta * kl
    masked = per_token * mask
    if loss_type == "grpo":
        loss = (masked.sum(1) / mask.sum(1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = masked.sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = masked.sum() / (mask.shape[0] * max_completion_length)
    elif loss_type == "dapo":
        loss = masked.sum() / max(num_items if num_items is not None else mask.sum().item(), 1.0)
    else:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    clipped = ((ratio < 1 - epsilon) & (a < 0)) | ((ratio > 1 + epsilon) & (a > 0))
    return GRPOLoss(loss, kl, ((clipped * mask).sum() / mask.sum().clamp(min=1.0)).item())


# ---------------------------------------------------------------- training with TRL

@dataclass
class GRPORunConfig:
    """One GRPO run; names as in TRL's GRPOConfig and peft's LoraConfig."""

    task: str = field(default="times-table", metadata={"help": "a task of data/verifiable"})
    num_generations: int = field(default=4, metadata={"help": "G: completions sampled per prompt (a group)"})
    prompts_per_step: int = field(default=2, metadata={"help": "prompts per optimizer step; the step trains on "
                                                               "prompts_per_step × num_generations completions"})
    max_completion_length: int = field(default=12, metadata={"help": "tokens per completion at most"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature (TRL's default is 1.0)"})
    learning_rate: float = field(default=3e-4, metadata={"help": "constant LR of the LoRA adapter"})
    max_steps: int = field(default=16, metadata={"help": "optimizer steps (one generation batch each)"})
    loss_type: str = field(default="dapo", metadata={"help": f"one of {LOSS_TYPES} (TRL's default: dapo)"})
    scale_rewards: str = field(default="group", metadata={"help": "group, batch or none (TRL's default: group)"})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient (TRL's default 0.0: no reference pass)"})
    epsilon: float = field(default=0.2, metadata={"help": "clipping range of the ratio π/π_old"})
    r: int = field(default=4, metadata={"help": "LoRA rank (as lessons 06 and 07)"})
    lora_alpha: float = field(default=8.0, metadata={"help": "LoRA scaling alpha / r = 2"})

    def to_grpo_config(self, output_dir: str, seed: int = 0, **overrides):
        """TRL's GRPOConfig for this run: one generation batch per optimizer step, float32, no checkpointing."""
        from trl import GRPOConfig

        kwargs = dict(output_dir=output_dir, seed=seed, learning_rate=self.learning_rate, max_steps=self.max_steps,
                      per_device_train_batch_size=self.prompts_per_step * self.num_generations,
                      num_generations=self.num_generations, max_completion_length=self.max_completion_length,
                      temperature=self.temperature, loss_type=self.loss_type, scale_rewards=self.scale_rewards,
                      beta=self.beta, epsilon=self.epsilon, lr_scheduler_type="constant", logging_steps=1,
                      save_strategy="no", bf16=False, activation_checkpointing=False, report_to="none",
                      disable_tqdm=True, use_cpu=not torch.cuda.is_available())
        return GRPOConfig(**{**kwargs, **overrides})

    def lora_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                          task_type="CAUSAL_LM")


def to_trl(row: dict) -> dict:
    """A task row in TRL's conversational prompt format; `answer` stays a column for the reward function."""
    return {"prompt": [{"role": "user", "content": row["prompt"]}], "answer": row["answer"]}


def grpo_trainer(model, tokenizer, rows: Sequence[dict], config: GRPORunConfig, output_dir: str,
                 reward: str = "checked", seed: int = 0, monitor: Sequence[str] = (), **overrides):
    """TRL's GRPOTrainer with a fresh LoRA adapter, trained on `reward`; the `monitor` rewards are computed and
    logged with weight 0 (they move nothing). It logs `generation_time` per step, keeps every step's
    completions, rewards and advantages in `trainer.samples` and the last batch TRL built in `trainer.last_batch`."""
    from datasets import Dataset
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        samples: list[dict] = []

        def _generate(self, prompts):  # sampling the completions (and tokenizing them): the generation half
            start = time.perf_counter()
            out = super()._generate(prompts)
            self._metrics["train" if self.model.training else "eval"]["generation_time"].append(
                time.perf_counter() - start)
            return out

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            n = len(inputs)  # this step's entries are the last n of TRL's logs
            self.samples.append({"completions": [reply_text(c) for c in list(self._logs["completion"])[-n:]],
                                 "rewards": {k: list(v)[-n:] for k, v in self._logs["rewards"].items()},
                                 "advantages": list(self._logs["advantages"])[-n:]})
            self.last_batch = out  # the tensors the next optimizer step trains on
            return out

    names = [reward, *monitor]
    args = config.to_grpo_config(output_dir, seed, reward_weights=[1.0] + [0.0] * len(monitor), **overrides)
    with known_notices():
        trainer = TimedGRPOTrainer(model=model, reward_funcs=[REWARDS[k] for k in names], args=args,
                                   processing_class=tokenizer, train_dataset=Dataset.from_list([to_trl(r) for r in rows]),
                                   peft_config=config.lora_config())
    trainer.samples = []
    return trainer


LOGGED = ("reward", "reward_std", "rewards/checked_reward/mean", "rewards/contains_reward/mean",
          "rewards/lenient_reward/mean", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio",
          "entropy", "step_time", "generation_time", "loss")


def log_curve(log_history: list[dict]) -> dict[str, list[float]]:
    """TRL's per-step log as lists: step, reward, frac_reward_zero_std, step_time, generation_time, ..."""
    steps = [e for e in log_history if "reward" in e]
    return {"step": [e["step"] for e in steps], **{k: [e.get(k) for e in steps] for k in LOGGED}}


# ---------------------------------------------------------------- scoring replies

def chat_batch(tokenizer, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
    """The prompts rendered with the chat template and a generation prompt, left-padded (as TRL generates)."""
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        return tokenizer.apply_chat_template([to_trl(r)["prompt"] for r in rows], add_generation_prompt=True,
                                             padding=True, return_tensors="pt", return_dict=True)
    finally:
        tokenizer.padding_side = side


@torch.no_grad()
def _generate(model, tokenizer, rows, max_new_tokens, batch_size, **sampling) -> list[str]:
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(rows), batch_size):
        batch = {k: v.to(model.device) for k, v in chat_batch(tokenizer, rows[i:i + batch_size]).items()}
        ids = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
        out += tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    model.train(was_training)
    return out


def greedy_answers(model, tokenizer, rows: Sequence[dict], max_new_tokens: int = 12, batch_size: int = 16) -> list[str]:
    """The model's greedy reply to each row's prompt, cut at `max_new_tokens` (the budget the task allows)."""
    return _generate(model, tokenizer, rows, max_new_tokens, batch_size, do_sample=False)


def sample_answers(model, tokenizer, rows: Sequence[dict], n: int, config: GRPORunConfig,
                   batch_size: int = 16) -> list[list[str]]:
    """n sampled replies per row, at the run's temperature and length (as GRPO samples a group)."""
    flat = _generate(model, tokenizer, [r for r in rows for _ in range(n)], config.max_completion_length, batch_size,
                     do_sample=True, temperature=config.temperature, top_k=0, top_p=1.0)
    return [flat[i * n:(i + 1) * n] for i in range(len(rows))]


def accuracy(replies: Sequence[str], rows: Sequence[dict], reward: str = "checked") -> float:
    """The mean reward of one reply per row, by `reward` ("checked": the share answered right)."""
    return sum(REWARDS[reward](list(replies), [r["answer"] for r in rows])) / len(rows)
