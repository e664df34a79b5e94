"""Preference tuning with DPO: preference pairs, the DPO loss by hand, `course dpo` (lesson 07).

The pairs (data/preferences, written by `course build-data` through course_lib.data.preferences) ask lesson
06's question, "Explain what the Python function `X` does.", and prefer the first sentence of X's real
docstring (chosen) to another function's (kind "other-function") or to X's own sentence in a broken,
chatty format (kind "format"). Both preferences are checkable.

`dpo_loss` is Rafailov et al. (2023), eq. 7, written out; tests/test_dpo.py proves it, and the logged
rewards, equal to TRL's `DPOTrainer` on the same batch. `dpo_run` is the long run behind `course dpo`:
lesson 06's SFT adapter merged into the base (the reference), a fresh LoRA adapter trained by TRL on
top (the policy: the reference is the same model with the adapter disabled), several β and seeds.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from course_lib.tuning import sft
from course_lib.data.datasets import data_dir
from course_lib.data.datasets import format_ok
from course_lib.metrics import rouge_l
from course_lib.models.base import count_parameters, set_seed
from course_lib.models.loading import load_base_model, load_tokenizer
from course_lib.notebook import known_notices
from course_lib.results import require_adapter
from course_lib.data.preferences import PAIR_KINDS, SPLIT_SIZES, make_pairs, preference_rows, to_trl  # noqa: F401

__all__ = ["PAIR_KINDS", "SPLIT_SIZES", "make_pairs", "preference_rows", "to_trl", "pair_batch", "sequence_logps", "DPOLoss", "dpo_loss", "logged_rewards", "token_kl", "evaluate_pairs",
           "sft_reference", "DPORunConfig", "ORPORunConfig", "dpo_trainer", "win_rate", "dpo_run", "ORPO_SFT_TERMS",
           "orpo_trainer", "orpo_run", "checkpoints_dir"]

# ---------------------------------------------------------------- log-probabilities and the loss

def pair_batch(tokenizer, pairs: Sequence[dict]) -> dict[str, torch.Tensor]:
    """(2B, T) input_ids, attention_mask, completion_mask: B chosen sequences, then B rejected, right-padded.

    The completion is what follows the prompt rendered with its generation prompt: the reply, its
    <|im_end|> and newline. The layout is TRL's `DataCollatorForPreference`'s.
    """
    seqs, masks = [], []
    for side in ("chosen", "rejected"):
        for p in pairs:
            t = to_trl(p)
            prompt = tokenizer.apply_chat_template(t["prompt"], tokenize=True, return_dict=True,
                                                   add_generation_prompt=True)["input_ids"]
            full = tokenizer.apply_chat_template(t["prompt"] + t[side], tokenize=True, return_dict=True)["input_ids"]
            seqs.append(full)
            masks.append([0] * len(prompt) + [1] * (len(full) - len(prompt)))
    width = max(map(len, seqs))
    batch = {"input_ids": torch.full((len(seqs), width), tokenizer.pad_token_id),
             "attention_mask": torch.zeros((len(seqs), width), dtype=torch.long),
             "completion_mask": torch.zeros((len(seqs), width), dtype=torch.long)}
    for i, (s, m) in enumerate(zip(seqs, masks)):
        batch["input_ids"][i, :len(s)] = torch.tensor(s)
        batch["attention_mask"][i, :len(s)] = 1
        batch["completion_mask"][i, :len(s)] = torch.tensor(m)
    return batch


def sequence_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(2B,) log π(y | x): the sum of the completion tokens' log-probabilities, prompt and padding excluded."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    targets = batch["input_ids"][:, 1:]  # (2B, T-1): token t is predicted at position t-1
    token_logps = torch.gather(logits[:, :-1].log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)
    return (token_logps * batch["completion_mask"][:, 1:]).sum(dim=1)


class DPOLoss(NamedTuple):
    """The mean DPO loss and the per-pair implicit rewards β·log(π/π_ref) of chosen and rejected."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> DPOLoss:
    """−log σ(β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))]), averaged over pairs (lesson 07)."""
    chosen_logratio = policy_chosen - ref_chosen  # (B,) how much more likely the policy makes y_w
    rejected_logratio = policy_rejected - ref_rejected
    loss = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio)).mean()
    return DPOLoss(loss, beta * chosen_logratio.detach(), beta * rejected_logratio.detach())


def logged_rewards(out: DPOLoss) -> dict[str, float]:
    """What TRL logs from one batch: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies."""
    margins = out.chosen_rewards - out.rejected_rewards
    return {"rewards/chosen": out.chosen_rewards.mean().item(), "rewards/rejected": out.rejected_rewards.mean().item(),
            "rewards/margins": margins.mean().item(),
            "rewards/accuracies": (out.chosen_rewards > out.rejected_rewards).float().mean().item()}


def token_kl(policy_logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean KL(π ‖ π_ref) of the next-token distributions over the masked positions (nats per token)."""
    logp, logq = policy_logits.float().log_softmax(-1), ref_logits.float().log_softmax(-1)
    kl = (logp.exp() * (logp - logq)).sum(-1)  # (B, T)
    return ((kl * mask).sum() / mask.sum()).item()


@torch.no_grad()
def evaluate_pairs(model, tokenizer, pairs: Sequence[dict], beta: float, batch_size: int = 8) -> dict:
    """Held-out preference metrics of a peft model against itself with the adapter disabled (the reference).

    accuracy: share of pairs where the model gives the chosen reply the higher log-probability;
    reward_*: DPO's implicit rewards (0 before training); kl: mean per-token KL to the reference on the
    chosen replies' positions; logratio: mean log π/π_ref over all completions (a sampled drift).
    """
    was_training = model.training
    model.eval()
    pol, ref, kls = [], [], []
    for i in range(0, len(pairs), batch_size):
        b = pair_batch(tokenizer, pairs[i:i + batch_size])
        inputs = {"input_ids": b["input_ids"], "attention_mask": b["attention_mask"]}
        logits = model(**inputs).logits
        with model.disable_adapter():
            ref_logits = model(**inputs).logits
        for lg, out in ((logits, pol), (ref_logits, ref)):
            tok = torch.gather(lg[:, :-1].float().log_softmax(-1), 2, b["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
            out.append((tok * b["completion_mask"][:, 1:]).sum(1).view(2, -1))  # (2, b): chosen row, rejected row
        n = b["input_ids"].shape[0] // 2
        kls.append((token_kl(logits[:n, :-1], ref_logits[:n, :-1], b["completion_mask"][:n, 1:]),
                    int(b["completion_mask"][:n].sum())))
    model.train(was_training)
    pol, ref = torch.cat(pol, 1), torch.cat(ref, 1)
    out = dpo_loss(pol[0], pol[1], ref[0], ref[1], beta)
    kinds = [p["kind"] for p in pairs]
    by_kind = {k: (pol[0] > pol[1])[[x == k for x in kinds]].float().mean().item() for k in PAIR_KINDS if k in kinds}
    return {"accuracy": (pol[0] > pol[1]).float().mean().item(), "accuracy_by_kind": by_kind,
            "logp_margin": (pol[0] - pol[1]).mean().item(), "loss": out.loss.item(),
            **{k.replace("rewards/", "reward_"): v for k, v in logged_rewards(out).items()},
            "kl": sum(k * n for k, n in kls) / sum(n for _, n in kls), "logratio": (pol - ref).mean().item()}


# ---------------------------------------------------------------- training with TRL

def sft_reference(model_name: str | None = None, adapter: Path | str | None = None):
    """Lesson 06's model: the base with its SFT adapter merged in (float32, exact) — DPO's starting point."""
    from peft import PeftModel


    adapter = adapter or require_adapter("sft-docstring")  # missing or cut: one sentence, before the model loads
    base = load_base_model(model_name or sft.lesson_model())
    return PeftModel.from_pretrained(base, str(adapter)).merge_and_unload().eval()


@dataclass
class DPORunConfig:
    """What `course dpo` runs; names as in TRL's DPOConfig and peft's LoraConfig."""

    betas: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.5], metadata={"help": "DPO β values"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "LoRA init and batch order"})
    train_pairs: int = field(default=48, metadata={"help": "training pairs (data/preferences/train): one epoch"})
    eval_pairs: int = field(default=8, metadata={"help": "validation pairs, evaluated during training"})
    test_pairs: int = field(default=24, metadata={"help": "held-out pairs for before/after"})
    r: int = field(default=4, metadata={"help": "LoRA rank (as lesson 06)"})
    lora_alpha: float = field(default=8.0, metadata={"help": "LoRA scaling alpha / r = 2"})
    learning_rate: float = field(default=5e-4, metadata={"help": "constant LR (lesson 06's)"})
    max_steps: int = field(default=12, metadata={"help": "optimizer steps per run"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "pairs per step"})
    eval_steps: int = field(default=4, metadata={"help": "evaluate on the validation pairs every this many steps"})
    max_new_tokens: int = field(default=20, metadata={"help": "greedy tokens per held-out answer"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/dpo.json"})
    resume: bool = field(default=False, metadata={"help": "keep the β × seed runs an interrupted `course dpo` "
                                                          "finished (data/checkpoints/dpo) and run the rest; the "
                                                          "same options are needed"})

    def validate(self) -> None:
        """One sentence for options that would train nonsense (a β ≤ 0, no seeds, no steps)."""
        if not self.betas or not self.seeds:
            raise ValueError("--betas and --seeds must name at least one value.")
        if any(not b > 0 for b in self.betas):
            raise ValueError(f"--betas must be positive (got {' '.join(map(str, self.betas))}): β scales the "
                             "log-ratio to the reference; lesson 07 uses 0.05 to 0.5.")
        if min(self.max_steps, self.train_pairs, self.test_pairs, self.per_device_train_batch_size,
               self.eval_steps, self.r) <= 0:
            raise ValueError("--max_steps, --train_pairs, --test_pairs, --per_device_train_batch_size, "
                             "--eval_steps and --r must be positive.")
        if self.learning_rate <= 0 or any(s < 0 for s in self.seeds):
            raise ValueError("--learning_rate must be positive and --seeds at least 0.")

    def to_dpo_config(self, output_dir: str, beta: float, seed: int, **overrides):
        """TRL's DPOConfig for one run (loss_type sigmoid: the paper's loss)."""
        from trl import DPOConfig

        kwargs = dict(output_dir=output_dir, beta=beta, seed=seed, learning_rate=self.learning_rate,
                      max_steps=self.max_steps, per_device_train_batch_size=self.per_device_train_batch_size,
                      per_device_eval_batch_size=8, lr_scheduler_type="constant", logging_steps=1,
                      eval_strategy="steps", eval_steps=self.eval_steps, save_strategy="no",
                      bf16=False, activation_checkpointing=False, report_to="none", disable_tqdm=True,
                      use_cpu=not torch.cuda.is_available())
        return DPOConfig(**{**kwargs, **overrides})

    def lora_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                          task_type="CAUSAL_LM")


@dataclass
class ORPORunConfig(DPORunConfig):
    """What `course orpo` runs: DPORunConfig's options, with lesson 07's one λ and one seed as defaults."""

    betas: list[float] = field(default_factory=lambda: [0.1], metadata={
        "help": "ORPO's λ (TRL's ORPOConfig.beta), the weight of its odds-ratio term beside the SFT loss; only "
                "the first value is used"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "LoRA init and batch order, one run each"})
    out: str = field(default="", metadata={"help": "results file; '' = data/results/orpo.json"})


def dpo_trainer(model, tokenizer, train: Sequence[dict], evals: Sequence[dict], config: DPORunConfig,
                output_dir: str, beta: float = 0.1, seed: int = 0, **overrides):
    """TRL's DPOTrainer with a fresh LoRA adapter; ref_model=None, so the reference is the adapter disabled."""
    from datasets import Dataset
    from trl import DPOTrainer

    as_dataset = lambda rows: Dataset.from_list([to_trl(p) for p in rows])  # noqa: E731
    args = config.to_dpo_config(output_dir, beta, seed, **overrides)
    with known_notices():  # TRL still asks the model the deprecated `is_gradient_checkpointing`
        return DPOTrainer(model=model, ref_model=None, args=args, processing_class=tokenizer,
                          train_dataset=as_dataset(train), eval_dataset=as_dataset(evals) if evals else None,
                          peft_config=config.lora_config())


def win_rate(after: Sequence[str], before: Sequence[str], references: Sequence[str]) -> dict:
    """Pairwise after-vs-before by a checkable rule: in the docstring format first, then higher ROUGE-L; ties ½.

    `se` is the standard error of the win rate over the questions (sample std of the per-question scores
    1, ½, 0, divided by √n); `changed` counts the questions whose two answers differ at all.
    """
    key = lambda a, r: (format_ok(a), round(rouge_l([a], [r]), 6))  # noqa: E731
    scores = []
    for a, b, r in zip(after, before, references):
        ka, kb = key(a, r), key(b, r)
        scores.append(1.0 if ka > kb else 0.5 if ka == kb else 0.0)
    n = len(references)
    wins, ties = scores.count(1.0), scores.count(0.5)
    mean = sum(scores) / n
    se = math.sqrt(sum((x - mean) ** 2 for x in scores) / (n - 1) / n) if n > 1 else float("nan")
    return {"win_rate": mean, "se": se, "wins": wins, "ties": ties, "losses": n - wins - ties,
            "changed": sum(a != b for a, b in zip(after, before))}


def _curve(logs: list[dict]) -> dict:
    keys = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "loss")
    train, evals = [e for e in logs if "rewards/margins" in e], [e for e in logs if "eval_loss" in e]
    return {"train": {"step": [e["step"] for e in train], **{k: [e[k] for e in train] for k in keys}},
            "eval": {"step": [e["step"] for e in evals], **{k: [e["eval_" + k] for e in evals] for k in keys}}}


def dpo_run(config: DPORunConfig | None = None, model_name: str | None = None, *, finished: Sequence[dict] = (),
            on_run=None) -> dict:
    """The long run: before metrics of the SFT model, then DPO for every β × seed, after metrics of each.

    `finished`: runs already done (by an interrupted `course dpo`), kept and not run again; `on_run(run)`
    is called after each new run.
    """
    from tqdm.auto import tqdm

    from peft import get_peft_model


    config = config or DPORunConfig()
    model_name = model_name or sft.lesson_model()
    start = time.perf_counter()
    tok = load_tokenizer(model_name)
    train, val, test = (preference_rows("train", config.train_pairs), preference_rows("validation", config.eval_pairs),
                        preference_rows("test", config.test_pairs))
    rows = [{"messages": [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": p["chosen"]}]}
            for p in test]
    refs = [p["chosen"] for p in test]
    set_seed(0)
    base = get_peft_model(sft_reference(model_name), config.lora_config())  # B = 0: the policy is the reference
    print(f"[dpo] {model_name}: before, on {len(test)} held-out pairs", flush=True)
    before = {**evaluate_pairs(base, tok, test, 0.1), **_answers(base, tok, rows, refs, config)}
    ref_bytes = sum(p.numel() * p.element_size() for p in base.get_base_model().parameters())
    result = {"config": {k: v for k, v in asdict(config).items() if k != "resume"}, "model": model_name, "train_pairs": len(train), "eval_pairs": len(val),
              "test_pairs": len(test), "trainable_parameters": count_parameters(base, trainable_only=True),
              "reference_copy_bytes": ref_bytes, "before": before, "runs": []}
    kept = {(r["beta"], r["seed"]): r for r in finished}
    bar = tqdm(total=len(config.betas) * len(config.seeds), desc="[dpo] β × seed runs", unit="run",
               initial=len(kept), disable=on_run is None, dynamic_ncols=True)  # ETA from the runs done
    for beta in config.betas:
        for seed in config.seeds:
            if (beta, seed) in kept:
                result["runs"].append(kept[(beta, seed)])
                continue
            t0 = time.perf_counter()
            set_seed(seed)
            with tempfile.TemporaryDirectory() as tmp:
                trainer = dpo_trainer(sft_reference(model_name), tok, train, val, config, tmp, beta, seed)
                trainer.train()
            policy = trainer.model
            run = {"beta": beta, "seed": seed, "curve": _curve(trainer.state.log_history),
                   "after": evaluate_pairs(policy, tok, test, beta)}
            if seed == config.seeds[0]:  # greedy answers: one seed per β (generation is the slow part)
                run["after"].update(_answers(policy, tok, rows, refs, config))
                run["win_rate_vs_before"] = win_rate(run["after"]["answers"], before["answers"], refs)
            run["wall_seconds"] = round(time.perf_counter() - t0, 1)
            bar.write(f"[dpo] β={beta} seed={seed}: accuracy {run['after']['accuracy']:.3f}, "
                      f"margin {run['after']['reward_margins']:.3f}, kl {run['after']['kl']:.4f} "
                      f"({run['wall_seconds']:.0f} s)")
            result["runs"].append(run)
            bar.update()
            if on_run is not None:
                on_run(run)
    bar.close()
    result["references"] = refs
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    return result


ORPO_SFT_TERMS = ("completion-only", "whole-text")


def orpo_trainer(model, tokenizer, train: Sequence[dict], config: DPORunConfig, output_dir: str, beta: float = 0.1,
                 seed: int = 0, sft_term: str = "completion-only"):
    """TRL's experimental ORPOTrainer with a fresh LoRA adapter; `beta` is ORPO's λ.

    sft_term "whole-text" is TRL 1.16 as shipped: its SFT term is the NLL "over the full prompt and response"
    (labels = input ids, only padding masked) and `add_eos_token_if_needed` appends a second <|im_end|> after the
    template's "<|im_end|>\n". "completion-only" tokenizes as `pair_batch` (and DPOTrainer) do and takes the
    SFT term over the completion tokens only — the masking lesson 06 trains with, so that ORPO and DPO differ
    by their loss alone. The odds-ratio term is the same in both: TRL's, on length-normalised log-probabilities.
    """
    from datasets import Dataset
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    if sft_term not in ORPO_SFT_TERMS:
        raise ValueError(f"sft_term must be one of {ORPO_SFT_TERMS}, got {sft_term!r}")

    class CompletionOnlyORPOTrainer(ORPOTrainer):
        def tokenize_row(self, feature, model=None):
            row = super().tokenize_row(feature, model)
            eos = self.processing_class.eos_token_id
            for side in ("chosen", "rejected"):
                ids = row[f"{side}_input_ids"]
                if len(ids) >= 3 and ids[-1] == eos and ids[-3] == eos:  # "<|im_end|>\n" + the appended <|im_end|>
                    for key in ("input_ids", "attention_mask", "labels"):
                        row[f"{side}_{key}"] = row[f"{side}_{key}"][:-1]
            return row

        def concatenated_forward(self, model, batch):
            out = super().concatenated_forward(model, batch)  # (chosen_logps, rejected_logps, chosen_logits, ...)
            labels = self.concatenated_inputs(batch, is_encoder_decoder=False, padding_value=self.padding_value,
                                              device=self.accelerator.device)["concatenated_labels"]
            chosen_logits = out[2]  # (B, T-1, V): position t predicts token t+1
            nll = F.cross_entropy(chosen_logits.flatten(0, 1), labels[: len(chosen_logits), 1:].flatten(),
                                  ignore_index=-100)  # the prompt's labels are -100: completion tokens only
            return (*out[:4], nll, *out[5:])

    cls = CompletionOnlyORPOTrainer if sft_term == "completion-only" else ORPOTrainer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the experimental-API notice
        args = ORPOConfig(**{k: v for k, v in vars(config.to_dpo_config(output_dir, beta, seed, eval_strategy="no"))
                             .items() if k in ORPOConfig.__dataclass_fields__ and k not in ("loss_type",)})
        return cls(model=model, args=args, processing_class=tokenizer,
                   train_dataset=Dataset.from_list([to_trl(p) for p in train]), peft_config=config.lora_config())


def orpo_run(config: DPORunConfig | None = None, model_name: str | None = None) -> dict:
    """ORPO (Hong et al. 2024) on the same pairs and adapter, one run per seed: no reference forward pass.

    `beta` is ORPO's λ, the weight of its odds-ratio term beside the SFT loss (TRL's ORPOConfig.beta). Two arms,
    each seed: "completion-only" (the SFT term on the reply tokens, DPO's tokenization: `runs`) and "whole-text"
    (TRL 1.16's default: `whole_text_runs`). Evaluated as `dpo_run` evaluates DPO, against the adapter-off
    model, with the first β of the config.
    """
    config = config or DPORunConfig(betas=[0.1])
    model_name = model_name or sft.lesson_model()
    start, tok, beta = time.perf_counter(), load_tokenizer(model_name), config.betas[0]
    train, test = preference_rows("train", config.train_pairs), preference_rows("test", config.test_pairs)
    rows = [{"messages": [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": p["chosen"]}]}
            for p in test]
    arms = {}
    for sft_term in ORPO_SFT_TERMS:
        arms[sft_term] = []
        for seed in config.seeds:
            t0 = time.perf_counter()
            set_seed(seed)
            with tempfile.TemporaryDirectory() as tmp:
                trainer = orpo_trainer(sft_reference(model_name), tok, train, config, tmp, beta, seed, sft_term)
                trainer.train()
            logs = [e for e in trainer.state.log_history if "loss" in e]
            run = {"seed": seed, "sft_term": sft_term, "after": evaluate_pairs(trainer.model, tok, test, beta),
                   "train_loss": [e["loss"] for e in logs], "train_nll": [e.get("nll_loss") for e in logs]}
            if seed == config.seeds[0]:
                run["after"].update(_answers(trainer.model, tok, rows, [p["chosen"] for p in test], config))
            run["wall_seconds"] = round(time.perf_counter() - t0, 1)
            print(f"[orpo {sft_term}] seed={seed}: accuracy {run['after']['accuracy']:.3f}, "
                  f"kl {run['after']['kl']:.4f}", flush=True)
            arms[sft_term].append(run)
    return {"config": asdict(config), "model": model_name, "lambda": beta, "runs": arms["completion-only"],
            "whole_text_runs": arms["whole-text"], "wall_seconds": round(time.perf_counter() - start, 1)}


def _answers(model, tok, rows, refs, config: DPORunConfig) -> dict:
    m = sft.answer_metrics(model, tok, rows, "chat", config.max_new_tokens)
    return {"rouge_l": m["rouge_l"], "exact": m["exact"], "format_rate": m["format_rate"],
            "response_ppl": math.exp(m["response_nll"]), "answers": m["answers"]}


def checkpoints_dir() -> Path:
    """Where `course dpo` keeps the runs it finished until it ends (git-ignored): what --resume keeps."""
    return data_dir() / "checkpoints" / "dpo"
