# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Instruction tuning with a chat template: from a conversation to a shipped adapter
#
# **Goal.** Teach a real chat model, SmolLM2-135M-Instruct (Allal et al. 2025, arXiv 2502.02737), one
# narrow skill — explaining a standard-library function in the one-line style of Python's own
# docstrings — and measure every step: what the chat template does and what a wrong one costs, which
# tokens the loss should see, supervised fine-tuning with TRL's `SFTTrainer` and a peft LoRA adapter,
# and shipping the result (save, reload, merge, several adapters on one base).
#
# **Runtime.** About four minutes on a 2-core CPU; the first time, add a few minutes in which SmolLM2
# is converted, once, into `data/models/` (`course get-model smollm2-135m-instruct` does it ahead). The
# full run (training with early stopping, its whole-text twin, the held-out answers in three prompt
# formats) is `course sft`; it wrote
# `data/results/sft.json` and the adapters under `data/adapters/`, and this notebook reads them and
# repeats a few steps live.
#
# **Model.** `smollm2-135m-instruct` unless `COURSE_MODEL` names another model with a chat template
# (course-tiny has none: it was never taught to chat).
#
# **You will use** `course_lib.tuning.sft` (prompt formats, the label mask, the run), TRL's `SFTTrainer`,
# peft's `LoraConfig` / `PeftModel`, and Google's `rouge_score`.

# %%
from course_lib.notebook import below, quiet_notebook

quiet_notebook()  # first: peft, imported below, loads bitsandbytes, whose CPU notice this keeps out of the page

import math
import tempfile
import warnings

import matplotlib.pyplot as plt
import torch
from peft import PeftModel
from transformers import PrinterCallback

from course_lib.data import TASK_PREFIX, data_dir, format_ok
from course_lib.tuning import packing, sft
from course_lib.doctor import versions_line
from course_lib.metrics import rouge_l
from course_lib.models import count_parameters, load_base_model, load_tokenizer, set_seed, set_threads
from course_lib.results import load_results, require_adapter, require_results

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
print(versions_line())
# what this lesson reads, checked before anything slow: a missing or broken file stops here in one sentence
require_results("sft")
for adapter in ("sft-docstring", "sft-docstring-whole-text"):
    require_adapter(adapter)
sft.require_chat_template(sft.lesson_model())  # a base model without one: what to do, in one sentence

# %% [markdown]
# ## 1 · What a chat template turns a conversation into
#
# A chat model was trained on conversations written out in one exact text format, and it answers well
# only in that format. The tokenizer carries the format as a Jinja template; `apply_chat_template`
# renders a list of `{role, content}` messages with it (transformers docs, "Chat templates"). SmolLM2
# uses ChatML: each turn is `<|im_start|>role`, a newline, the content, `<|im_end|>`. Here is one row of
# the course's chat set (`data/instructions/chat`, built from the standard library's docstrings).

# %%
name = sft.lesson_model()
tokenizer = load_tokenizer(name)
set_seed(0)
model = load_base_model(name).eval()
train_rows, val_rows, test_rows = sft.task_rows("train"), sft.task_rows("validation"), sft.task_rows("test")
print(f"model: {name}, {count_parameters(model):,} parameters")
print(f"task rows (\"{TASK_PREFIX} …\"): train {len(train_rows)}, validation {len(val_rows)}, test {len(test_rows)}")
row = train_rows[0]
print("\nmessages:", row["messages"])
print("\nrendered for training (the whole conversation):")
print(tokenizer.apply_chat_template(row["messages"], tokenize=False))
print("rendered for answering (add_generation_prompt=True ends with the assistant header):")
print(tokenizer.apply_chat_template(row["messages"][:-1], tokenize=False, add_generation_prompt=True) + "▌")

# %% [markdown]
# Two things the messages do not say are in the text: a **system turn** the template adds on its own
# when the conversation has none, and, for answering, the **generation prompt** — the header
# `<|im_start|>assistant` plus a newline, after which the model writes its reply. The role markers are
# single tokens, not text the model has to spell:

# %%
ids = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]
pieces = tokenizer.convert_ids_to_tokens(ids)
print(f"{len(ids)} tokens; the special ones and their neighbours:")
print(" ".join(f"[{p}]" if p.startswith("<|") else p for p in pieces[:12]), "…")
print(f"<|im_start|> = id {tokenizer.convert_tokens_to_ids('<|im_start|>')}, "
      f"<|im_end|> = id {tokenizer.convert_tokens_to_ids('<|im_end|>')}, "
      f"end of sequence = {tokenizer.eos_token!r}, padding = {tokenizer.pad_token!r}")

# %% [markdown]
# ### The cost of a wrong template, as a number
#
# The same held-out test questions, asked three ways: with the model's own template (`chat`), as the
# bare question (`none`), and in the Alpaca-style `### Instruction: … ### Response:` format that lessons
# 03–05 used (`alpaca`, another model family's convention). The task metric is the **response
# perplexity**: how surprised the model is by the reference answer (the real docstring) placed after
# each prompt, counting the answer's tokens only. Lower is better. We recompute it live and compare
# with the file `course sft` wrote, which also holds the greedy answers' ROUGE-L against the reference
# and the share of answers in the docstring format (one line, at most 25 words, a full stop).

# %%
results = load_results("sft")
test = test_rows[:results["test_rows"]]
print(f"sft.json: made by `{results['command']}` on {results['model']}, seed {results['seed']}, "
      f"{results['wall_seconds'] / 60:.0f} min\n")


def compare_formats(m, scores: dict) -> dict[str, float]:
    """Live response perplexity of model m in each prompt format, beside the file's scores of its greedy answers."""
    print(f"{'prompt format':14s} {'response ppl (live)':>20s} {'(file)':>8s} {'ROUGE-L':>8s} {'format rate':>12s}")
    ppl = {t: math.exp(sft.response_nll(m, tokenizer, test, t)) for t in sft.TEMPLATES}
    for t in sft.TEMPLATES:
        print(f"{t:14s} {ppl[t]:20.2f} {scores[t]['response_ppl']:8.2f} {scores[t]['rouge_l']:8.3f} "
              f"{scores[t]['format_rate']:12.0%}")
    return ppl


live_ppl = compare_formats(model, results["before"])
print(f"\nwithout the template the reference answers are {live_ppl['none'] / live_ppl['chat']:.2f}× as surprising; "
      f"in Alpaca's format {live_ppl['alpaca'] / live_ppl['chat']:.2f}×")

# %%
print("question:", results["questions"][0].splitlines()[0])
print("reference:", results["references"][0])
for template in sft.TEMPLATES:
    print(f"  {template:7s}→ {results['before'][template]['answers'][0]!r}")

# %% [markdown]
# This goes against the usual advice, and it is measured: on this task the base model finds the
# reference docstrings *less* surprising after the bare question or in Alpaca's format than after its
# own ChatML template. The reason is what each frame predicts. After `<|im_start|>assistant` the model
# expects its own chat voice — the long, friendly answers printed above ("The `…` function takes …");
# after a bare `def f(x)` line, pre-training text continues with documentation, which is what a
# docstring is. ROUGE-L is low in every format and only the chat template produced any answer in the
# docstring format. So the template alone does not deliver the skill — and its real cost shows once a
# model has been *trained* in it (section 3, "The template, again").

# %% [markdown]
# ## 2 · Which tokens the loss should see
#
# A training example is the whole rendered conversation, but we want the model to learn to *answer*,
# not to predict the system prompt or the user's question. PyTorch's cross-entropy skips every
# position whose label is −100 (`ignore_index=-100`, the convention transformers follows), so the
# labels are the token ids on the assistant's reply and −100 everywhere else.
# `sft.assistant_only_labels` writes that mask by hand: it finds each assistant header in the token
# ids and keeps everything from there up to the next turn — including `<|im_end|>`, because a model
# that never sees it as a target never learns to stop.

# %%
example = sft.assistant_only_labels(tokenizer, row["messages"])
kept = [t for t in example["labels"] if t != -100]
print(f"{len(example['input_ids'])} tokens, {len(kept)} of them targets: {tokenizer.decode(kept)!r}")
print("last 8 positions (token → label):")
for tok_id, label in list(zip(example["input_ids"], example["labels"]))[-8:]:
    print(f"  {tokenizer.convert_ids_to_tokens(tok_id)!r:14s} → {label}")

# %% [markdown]
# A conversation with several turns gets one masked span per assistant reply: every reply is a target,
# every user turn and header is not. Here is a two-turn chat (the second question and answer are ours):

# %%
two_turns = row["messages"] + [{"role": "user", "content": "And in one word?"},
                               {"role": "assistant", "content": "Formatting."}]
multi = sft.assistant_only_labels(tokenizer, two_turns)
spans, current = [], []
for tok_id, label in zip(multi["input_ids"], multi["labels"]):
    if label != -100:
        current.append(label)
    elif current:
        spans.append(tokenizer.decode(current))
        current = []
spans += [tokenizer.decode(current)] if current else []  # a reply that ends the conversation
print(f"{len(multi['input_ids'])} tokens, {sum(t != -100 for t in multi['labels'])} targets, in {len(spans)} spans:")
for span in spans:
    print(f"  {span!r}")

# %% [markdown]
# **Padding is `<|im_end|>`.** SmolLM2's tokenizer pads with the same token that ends a turn (printed
# in section 1). Any collator that masks padding *by token id* — transformers'
# `DataCollatorForLanguageModeling` sets `labels[labels == pad_token_id] = -100` — therefore also masks
# every `<|im_end|>` target, and a model trained that way never learns to stop. trl 1.16's text collator
# (`DataCollatorForLanguageModeling.torch_call` in `trl/trainer/sft_trainer.py`) never looks at token ids:
# it pads the labels with −100 (`pad(labels, padding_value=-100, …)`), so the end of turn stays a target.
# Measured on the same rows:

# %%
from transformers import DataCollatorForLanguageModeling

by_id = DataCollatorForLanguageModeling(tokenizer, mlm=False)([{"input_ids": sft.assistant_only_labels(
    tokenizer, r["messages"])["input_ids"]} for r in train_rows[:8]])
im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
ours8 = sft.pad_batch([sft.assistant_only_labels(tokenizer, r["messages"]) for r in train_rows[:8]],
                      tokenizer.pad_token_id)
for label, batch in (("masks padding by id (transformers)", by_id), ("pads labels with −100 (ours = TRL)", ours8)):
    print(f"{label:36s} <|im_end|> targets in 8 rows: {int((batch['labels'] == im_end).sum())}")

# %% [markdown]
# The usual fix, when a collator masks by id, is a pad token that is not the end of turn (many recipes
# add one, or use another unused special token). A second trap of the same kind: a dataset in the
# **conversational** format (`messages` only) is trained on *every* token by trl 1.16 unless told
# otherwise — `completion_only_loss` defaults to `None`, which means "true only for prompt–completion
# rows", and `assistant_only_loss` defaults to `False` (`SFTConfig`, `trl/trainer/sft_trainer.py`).
#
# TRL does the job of our mask its own way. Given rows in its **prompt–completion** format (`prompt`: the
# turns before the answer, `completion`: the assistant's turn) and `completion_only_loss=True`, its
# `SFTTrainer` renders the prompt with the generation prompt, renders prompt + completion, and masks the
# common prefix. (Its other switch, `assistant_only_loss`, needs `{% generation %}` markers that
# SmolLM2's template does not have.) Built on the same 8 rows, the two batches must be equal, token for
# token. The trainer also gives the model its LoRA adapter — the run we then make, live, for 2 steps (one pass over
# the 8 rows).

# %%
live = sft.SFTRunConfig(max_steps=2, per_device_train_batch_size=4, eval_steps=2, logging_steps=1,
                        early_stopping_patience=0)
trainer = sft.sft_trainer(model, tokenizer, train_rows[:8], val_rows[:8], live, tempfile.mkdtemp())
trainer.remove_callback(PrinterCallback)  # the log is read from trainer.state below, rounded
theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
ours = sft.pad_batch([sft.assistant_only_labels(tokenizer, r["messages"]) for r in train_rows[:8]],
                     tokenizer.pad_token_id)
for key in ("input_ids", "attention_mask", "labels"):
    print(f"{key:15s} shape {tuple(ours[key].shape)}  hand-written == TRL: {torch.equal(ours[key], theirs[key])}")
print(f"target tokens in the batch: {int((ours['labels'] != -100).sum())} of {int(ours['attention_mask'].sum())}")

# %%
trainer.train()
logged = trainer.state.log_history
print(f"live run, {live.max_steps} steps of {live.per_device_train_batch_size} rows:")
print("  training loss:", [round(e["loss"], 3) for e in logged if "loss" in e])
print("  eval loss (8 validation rows):", [(e["step"], round(e["eval_loss"], 3)) for e in logged if "eval_loss" in e])

# %% [markdown]
# ### Padding not paid for
#
# The batch above is padded: every row is stretched to the longest one, and the model computes every
# pad position only for the loss to throw it away. TRL can put the examples of a batch end to end in a
# single row instead (`SFTConfig(padding_free=True)`; `packing=True` with its default best-fit-decreasing
# strategy does it too): no attention mask, and position ids that restart at 0 where each example begins.
# Does attention then leak from one example into the next (TRL users ask exactly this, trl issue `#3067`)?
# transformers reads the restarts as document boundaries and builds a block-diagonal causal mask, so it
# must not — but only when the model gets no attention mask and no KV cache (`_preprocess_mask_arguments`
# in `transformers/masking_utils.py`). TRL's `compute_loss` passes `use_cache=False` for this reason, and so
# does `packing.compare_batches`; called with its default `use_cache=True`, the model silently lets
# attention cross the examples (tests/test_packing.py shows it). The check: each example's per-token losses, padded vs padding-free, on the same 8 examples
# and the adapter just trained; and the control — the same row with positions that never restart, which
# lets every example see the ones before it.

# %%
examples = [trainer.train_dataset[i] for i in range(8)]
packed = packing.compare_batches(trainer.model, examples, tokenizer.pad_token_id, batch_size=4, repeats=1)
print(f"pad tokens: {packed['pad_fraction_padded']:.1%} of the padded batches' positions, "
      f"{packed['pad_fraction_padding_free']:.0%} padding-free ({packed['real_tokens']} real tokens)")
print(f"per-token loss, padded vs padding-free: max |diff| {below(packed['max_loss_diff'], 1e-4)}")
print(f"control, positions never restart:       max |diff| {packed['max_loss_diff_without_restarts']:.2f}")

# %% tags=["nbval-ignore-output"]
rate = packed["effective_tokens_per_second"]
print(f"forward + backward on one thread: {rate['padded']:.0f} real tokens/s padded, "
      f"{rate['padding_free']:.0f} padding-free ({rate['padding_free'] / rate['padded']:.2f}×)")

# %% [markdown]
# The losses agree to float32 rounding, so padding-free batches train on exactly the same targets; without
# the restarts they do not, which is what the check is for. What padding-free can save on the linear layers
# is the pad share printed above. TRL documents `padding_free` for FlashAttention 2/3, whose variable-length
# kernel attends each example on its own; here (SDPA on a CPU) the packed row is attended as one long
# sequence under a block-diagonal mask, whose cost grows with the square of the row's length, so part of
# the saving goes back. The timing shows what is left on this machine: it is one run, not repeated, on a
# machine that may be doing other work (nbval does not compare it), so read it as an order of magnitude.

# %% [markdown]
# ### Masked or whole text?
#
# The full run trained twice from the same seed for the same number of steps: once with the mask
# (`completion_only_loss=True`), once on every token (`False`), as lessons 03–05 did. Both are judged
# on the reply only, on the same validation and test questions.

# %%
masked, whole = results["after"]["chat"], results["whole_text"]["after"]["chat"]
nll = torch.tensor([results["masked_eval_response_nll"], results["whole_text"]["eval_response_nll"]])
print(f"{'trained on':12s} {'val response ppl':>17s} {'test response ppl':>18s} {'ROUGE-L':>8s} {'format':>7s} {'exact':>6s}")
for label, m, v in (("reply only", masked, nll[0].exp()), ("whole text", whole, nll[1].exp())):
    print(f"{label:12s} {v:17.3f} {m['response_ppl']:18.3f} {m['rouge_l']:8.3f} {m['format_rate']:7.0%} {m['exact']:6.0%}")
print(f"({results['whole_text']['steps']} steps each, {results['train_rows']} training rows)")

# %% [markdown]
# With the same rows, seed, steps and learning rate, the reply-only run came out ahead on the reply
# metrics that moved: lower response perplexity on validation and test, higher ROUGE-L, more answers in
# the docstring format; exact match ties at 0 %. On 8 test questions none of these gaps is significant
# (lesson 10's paired tests put them well inside the noise). The whole-text run spent part of each step on other
# tokens: the system prompt and the template, the same in every row, and the question, which changes
# every row but is not what we want the model to write.
#
# **What this comparison cannot tell.** It is one seed, judged on 8 test questions. And both arms used
# one learning rate although their losses average over different tokens: in the live batch above the
# reply is 144 of 656 tokens, so in the whole-text loss the reply gets about a fifth of the weight it
# gets in the reply-only loss — lesson 02's rule is that each arm of a comparison gets its own learning
# rate. A fair version (three seeds, each arm at its best learning rate) was not run for this lesson.
# The literature does not back a blanket rule either: Shi et al. (2024, "Instruction Tuning With Loss
# Over Instructions") found that keeping the loss on the instruction tokens *helps* when the outputs are
# short and the training data small — this lesson's regime (one-sentence answers, 32 rows). Masking the
# prompt is the default of TRL's prompt–completion format and a sound starting point, not a law.
# The caveat for lessons 03–05 stands in a weaker form: part of their perplexity gains on
# `### Instruction … ### Response` text may be the model learning the frame.

# %% [markdown]
# ## 3 · Supervised fine-tuning: the long run
#
# `course sft` trained a LoRA adapter on every linear layer of the model with TRL's `SFTTrainer`, on
# few training rows on purpose, so that the data repeats every few steps and overfitting has a chance
# to show (its settings are printed below). At every evaluation it measured TRL's `eval_loss` on the
# validation rows — the mean NLL of the completion tokens, the reply *and* its `<|im_end|>` and newline —
# and saved a checkpoint; transformers' `EarlyStoppingCallback` would stop the run after
# `early_stopping_patience` evaluations without a better loss, and `load_best_model_at_end=True` would
# reload the best checkpoint. The curve's step 0 is the same metric on the untrained model, computed
# here live with TRL (a fresh adapter has B = 0, so it is the base model).

# %%
curve = results["eval_curve"]
cfg = results["config"]
print(f"LoRA r={cfg['r']}, lora_alpha={cfg['lora_alpha']:g} on {cfg['target_modules']} "
      f"({results['trainable_parameters']:,} trainable parameters); learning rate {cfg['learning_rate']:g}, "
      f"batches of {cfg['per_device_train_batch_size']}; {results['train_rows']} training rows "
      f"(one epoch = {results['train_rows'] // cfg['per_device_train_batch_size']} steps), evaluation every "
      f"{cfg['eval_steps']} steps on {results['eval_rows']} validation rows, patience {cfg['early_stopping_patience']}")
set_seed(cfg["seed"])
step0_trainer = sft.sft_trainer(load_base_model(name), tokenizer, train_rows[:results["train_rows"]],
                                val_rows[:results["eval_rows"]], sft.SFTRunConfig(**cfg), tempfile.mkdtemp())
step0_trainer.remove_callback(PrinterCallback)
step0 = step0_trainer.evaluate()["eval_loss"]
del step0_trainer
file_step0 = "TRL's eval_loss" if "base_eval_response_nll" in results else "the reply-only NLL, another metric"
print(f"step 0: TRL's eval_loss {step0:.3f} (live); the file's step 0 is {curve['eval_loss'][0]:.3f}, {file_step0}")
eval_steps, eval_loss = [0] + curve["step"][1:], [step0] + curve["eval_loss"][1:]
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.plot(results["train_curve"]["step"], results["train_curve"]["loss"], ".-", color="tab:gray",
        label=f"training loss (batches of {cfg['per_device_train_batch_size']}, logged every {cfg['logging_steps']} steps)")
ax.plot(eval_steps, eval_loss, "o-", color="tab:blue", label=f"validation eval_loss ({results['eval_rows']} rows)")
ax.axvline(results["best_step"], color="tab:green", ls="--", label=f"best checkpoint, step {results['best_step']}")
for epoch in range(1, results["stopped_at_step"] * cfg["per_device_train_batch_size"] // results["train_rows"] + 1):
    ax.axvline(epoch * results["train_rows"] / cfg["per_device_train_batch_size"], color="k", alpha=0.1)
ax.set(title=f"SFT of {results['model']} on {results['train_rows']} rows (grey lines: epochs)", xlabel="optimizer step",
       ylabel="loss on completion tokens (nats/token)")
ax.legend()
plt.show()
print("step:      ", eval_steps)
print("eval loss: ", [round(x, 3) for x in eval_loss])
print("training loss at the same steps:", {st: round(l, 3) for st, l in zip(results["train_curve"]["step"],
                                                                        results["train_curve"]["loss"]) if st in eval_steps})
print(f"best step {results['best_step']}, stopped at step {results['stopped_at_step']} of {cfg['max_steps']}")

# %% [markdown]
# No overfitting appeared in this run: the validation loss fell at every evaluation, so early
# stopping never fired and the best checkpoint is the last one. The training loss is a noisy
# measurement — each point is a mean over the batches since the last log — and it is not consistently
# below the validation loss (compare the two printed rows): this run shows no clear train–validation
# gap either, only its beginning in the last steps. Early stopping and best-checkpoint reload are wired
# in, but this run does not show them act; lesson 01 (section 6) shows the same callback stopping a run
# and restoring its best checkpoint. More epochs on the same 32 rows would be the way to see it here.

# %%
b, a = results["before"]["chat"], results["after"]["chat"]
print(f"{str(len(test)) + ' held-out test questions':28s} {'before':>8s} {'after':>8s}")
for key, label, fmt in (("response_ppl", "response perplexity", "{:8.2f}"), ("rouge_l", "ROUGE-L (F)", "{:8.3f}"),
                        ("format_rate", "docstring format rate", "{:8.0%}"), ("exact", "exact match", "{:8.0%}")):
    print(f"{label:28s} {fmt.format(b[key])} {fmt.format(a[key])}")
print()
for q, ref, before_a, after_a in list(zip(results["questions"], results["references"], b["answers"], a["answers"]))[:4]:
    print(q.splitlines()[0])
    print(f"  reference: {ref}\n  before:    {before_a[:110]!r}\n  after:     {after_a!r}")

# %% [markdown]
# **How much of "before" is the token cap?** The answers were generated with at most
# `max_new_tokens` tokens (the file's config), and the format check needs a final full stop, so an
# answer the cap cut mid-sentence fails the format whatever the model would have written. The cap must
# be sized from the references: here they are in tokens, with whether each passes the format check
# itself, and then the base model's answers regenerated live with a cap of half as much again as the longest reference
# (`sft.answer_cap`), counting the answers the cap cut. One generation serves both caps: greedy decoding writes
# the same tokens whatever the cap, so the first 24 tokens of an answer generated with the larger cap are the
# answer at 24 (`sft.answers_and_cuts`). The 8 prompts go through in one left-padded batch, which is faster on
# a CPU than one at a time; the comparison with the file's answers, generated one at a time, checks that the
# padding changed none of them.

# %%
ref_tokens = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in results["references"]]
print(f"reference answers, tokens: {ref_tokens}; the file's cap: {cfg['max_new_tokens']}")
print(f"references that pass the format check themselves: {sum(map(format_ok, results['references']))} "
      f"of {len(ref_tokens)}")
cap = sft.answer_cap(tokenizer, results["references"])
base_model = load_base_model(name).eval()
prompts = [sft.prompt_for(tokenizer, r) for r in test]
answer_ids = sft.greedy_answer_ids(base_model, tokenizer, prompts, cap, batch_size=len(prompts))  # the larger cap
for max_new in (cfg["max_new_tokens"], cap):
    answers, cut = sft.answers_and_cuts(tokenizer, answer_ids, max_new)  # each answer's first max_new tokens
    same = f" (the file's answers: {answers == results['before']['chat']['answers']})" if max_new == cfg["max_new_tokens"] else ""
    print(f"base model, chat, cap {max_new:2d}: cut {sum(cut)} of {len(test)}; format rate "
          f"{sum(map(format_ok, answers)) / len(test):.0%}, ROUGE-L {rouge_l(answers, results['references']):.3f}{same}")
del base_model

# %% [markdown]
# Three things the numbers above say. One reference is longer than the file's cap (45 tokens against
# 24), so no model could have written it within the cap, and one reference fails the format check
# itself: the format rate is a property of the answers' shape, not agreement with the reference. Every
# one of the base model's answers ran into the 24-token cap — and the base model's low format rate is
# *not* an artefact of the cap: given room for half as much again as the longest reference, 7 of its 8 answers still
# run to the end of the cap, and its format rate drops to 12 % (two of the answers cut at 24 tokens
# happened to end on a full stop). The base model is verbose, as section 1 showed. `course sft` now
# records the truncations (`truncated`) beside each format rate; the file above predates that.
#
# After a few minutes of training on a few dozen rows, every answer is in the docstring format,
# ROUGE-L about doubled and the response perplexity fell by half — on 8 test questions, where only the
# format gain is clear: the ROUGE-L gain, seen question by question, is not significant (lesson 10's
# exact sign-flip test; lesson 10 re-scores the base and the adapter on more items, where it is). Exact matches stay at zero: the
# adapter learned the *style* (an imperative verb, one short line, a full stop — "Return the filename
# of the given extension."), not the facts of functions it never saw, and some answers are fluent and
# wrong (`doModuleCleanups`, `platform.node`). ROUGE-L rewards the shared words either way, which is
# why the generations are printed beside it.
#
# ### The template, again: ask the tuned model the wrong way
#
# The adapter learned the task inside ChatML. We put it back on a fresh base
# (`PeftModel.from_pretrained`, more in section 4) and ask the same test questions in the three
# formats of section 1: response perplexity live, the answers' scores from the file.

# %%
adapter_dir = data_dir() / "adapters" / "sft-docstring"
tuned = PeftModel.from_pretrained(load_base_model(name).eval(), adapter_dir, adapter_name="docstring").eval()
tuned_ppl = compare_formats(tuned, results["after"])
print("\nlive answer (chat):", sft.answer_metrics(tuned, tokenizer, test[:1], max_new_tokens=24)["answers"][0])
for template in ("none", "alpaca"):
    print(f"file answer ({template}):", repr(results["after"][template]["answers"][0]))

# %% [markdown]
# Now the template matters, in the direction the advice says: asked in ChatML, the tuned model answers
# in the docstring format every time; asked without the template, or in Alpaca's format, it falls back
# to its old habits for part of the questions, and ROUGE-L drops. Response perplexity moves less than
# the answers do: the weights learned the task, the prompt format decides whether it is used. A model
# served with a different template from the one it was fine-tuned in loses part of its fine-tuning
# without any error message.

# %% [markdown]
# ## 4 · Shipping the adapter
#
# The adapter is a folder with a config and the LoRA matrices only: `save_pretrained` on the trained
# peft model wrote it, and `PeftModel.from_pretrained` put it back on a fresh base in section 3, where
# the live perplexities matched the file's.

# %%
lora_params = sum(p.numel() for n, p in tuned.named_parameters() if "lora_" in n)
adapter_mb = sft.dir_bytes(adapter_dir) / 1e6
model_file = data_dir() / "models" / name / "model.safetensors"
model_mb = model_file.stat().st_size / 1e6 if model_file.exists() else 4 * count_parameters(tuned.get_base_model()) / 1e6
print(f"adapter on disk: {adapter_mb:.1f} MB ({lora_params:,} parameters) vs the full model: {model_mb:.0f} MB "
      f"(float32) — {model_mb / adapter_mb:.0f}× smaller")
print("files:", sorted(p.name for p in adapter_dir.iterdir()))

# %% [markdown]
# **Merging.** `merge_and_unload()` adds the scaled product B·A into each base weight and drops the
# adapter layers: one ordinary model, no extra latency (Hu et al. 2022, §4.1). On a float32 base the
# merged model must give the adapter's logits up to float32 rounding. We state the tolerance before
# measuring: 1e-3. Float32 keeps about 7 significant digits, a few millionths of a logit as large as
# the largest one printed below; but the merged model rounds differently in every one of its layers,
# and those roundings add up, so we allow 1e-3 — about four and a half significant digits of that
# logit, still far below any difference that would change an answer.

# %%
probe = sft.pad_batch([sft.assistant_only_labels(tokenizer, r["messages"]) for r in test[:4]], tokenizer.pad_token_id)
inputs = {"input_ids": probe["input_ids"], "attention_mask": probe["attention_mask"]}
keep = probe["attention_mask"].bool()
with torch.no_grad():
    adapter_logits = tuned(**inputs).logits[keep]
    with tuned.disable_adapter():
        base_logits = tuned(**inputs).logits[keep]
    merged = tuned.merge_and_unload()
    merged_logits = merged(**inputs).logits[keep]
diff = (merged_logits - adapter_logits).abs().max().item()
print(f"max |merged − adapter| {below(diff, 1e-3)} over {keep.sum().item()} positions × "
      f"{merged_logits.shape[-1]:,} logits")
print(f"(for scale: largest |logit| {adapter_logits.abs().max().item():.1f}; "
      f"max |adapter − base| = {(adapter_logits - base_logits).abs().max().item():.1f})")

# %% [markdown]
# **A 4-bit base.** QLoRA trains the adapter on an NF4-quantized base (lesson 04). Put the same adapter
# on a 4-bit copy of the base and the logits move by the quantization error; merge into the 4-bit base
# and peft has to dequantize each weight, add B·A and *quantize again*, rounding the update away in
# part (peft warns about exactly this).

# %%
from transformers import BitsAndBytesConfig

from course_lib.memory import keep_cpu_4bit_trainable

nf4 = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)


def adapter_on_4bit_base(repack: bool = False):
    """The adapter on an NF4 copy of the base. repack=False keeps bitsandbytes' standard 4-bit layout on
    every CPU (lesson 04's keep_cpu_4bit_trainable), so these numbers are the same on any machine."""
    model = PeftModel.from_pretrained(load_base_model(name, quantization_config=nf4), adapter_dir).eval()
    if not repack:
        keep_cpu_4bit_trainable(model)
    return model


def stored_q_proj(model) -> tuple:
    """Shape of layer 0's q_proj 4-bit weight as bitsandbytes stores it (packed bytes)."""
    return tuple(model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.shape)


with torch.no_grad(), warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*4-bit.*rounding", category=UserWarning)
    merged_first = adapter_on_4bit_base().merge_and_unload()  # merged before any forward pass
    ppl4_merged_first = math.exp(sft.response_nll(merged_first, tokenizer, test))
    del merged_first
    tuned4 = adapter_on_4bit_base()
    adapter4_logits = tuned4(**inputs).logits[keep]
    ppl4 = math.exp(sft.response_nll(tuned4, tokenizer, test))
    with tuned4.disable_adapter():  # the control: the NF4 base alone
        base4_logits = tuned4(**inputs).logits[keep]
        ppl4_base = math.exp(sft.response_nll(tuned4, tokenizer, test))
    merged4 = tuned4.merge_and_unload()  # merged after forward passes
    ppl4_merged = math.exp(sft.response_nll(merged4, tokenizer, test))
print(f"max |adapter on 4-bit base − adapter on float32 base| = {(adapter4_logits - adapter_logits).abs().max().item():.2f}")
print(f"max |4-bit base − float32 base| (adapter off)        = {(base4_logits - base_logits).abs().max().item():.2f}")
print(f"test response ppl: float32 base {live_ppl['chat']:.2f}, adapter on float32 base "
      f"{tuned_ppl['chat']:.2f}; 4-bit base alone {ppl4_base:.2f}, adapter on 4-bit base {ppl4:.2f}, "
      f"merged into 4-bit before any forward pass {ppl4_merged_first:.2f}, after forward passes {ppl4_merged:.2f}")

# %% tags=["nbval-ignore-output"]
import bitsandbytes.functional

# What depends on this machine: on a CPU with AVX512-BF16, bitsandbytes repacks each 4-bit weight for a fast
# inference kernel the first time the layer runs in evaluation mode without gradients (lesson 04)
repacks = bool(bitsandbytes.functional.has_avx512bf16()) and next(tuned.parameters()).device.type == "cpu"
print(f"bitsandbytes repacks 4-bit weights on this machine (a CPU with AVX512-BF16): {repacks}")
if repacks:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*4-bit.*rounding", category=UserWarning)
        repacked = adapter_on_4bit_base(repack=True)
        loaded_shape = stored_q_proj(repacked)
        sft.response_nll(repacked, tokenizer, test)  # forward passes: each layer repacks its weight
        used_shape = stored_q_proj(repacked)
        ppl_repacked_merge = math.exp(sft.response_nll(repacked.merge_and_unload(), tokenizer, test))
    print(f"layer 0 q_proj, 4-bit weight as stored: {loaded_shape} after loading, {used_shape} after a forward pass")
    print(f"merged after forward passes in the repacked layout: test response ppl {ppl_repacked_merge:.3g}")

# %% [markdown]
# Read these against the control, the 4-bit base with the adapter off. NF4 alone moves the logits by
# about as much as the adapter does (25.80 against the adapter's 24.1 on the float32 base) and, on its
# own, raises the response perplexity from 42.25 to 58.58. One more caveat on "float32": this course's
# SmolLM2 is itself dequantized from a Q4_1 GGUF file (`course get-model`), so NF4 here re-quantizes
# weights that were 4-bit once already.
#
# - **The adapter on the 4-bit base** scores 27.64: far better than that base alone (58.58), worse than
#   the same adapter on the float32 base it was trained on (21.03). That is *not* QLoRA's setting:
#   QLoRA trains the adapter against the NF4 base, so that it learns to correct for the quantized
#   weights; this adapter was trained in float32 and is only served on a 4-bit base.
# - **Merged into the 4-bit base**, before or after the model has run, it scores 56.68 — the 4-bit base
#   alone scores 58.58, so the merge kept almost nothing of the adapter. peft dequantizes each weight,
#   adds B·A and quantizes the sum again; an update small next to one NF4 step likely rounds away (not
#   isolated here).
# - **A trap on some CPUs.** These numbers were measured with bitsandbytes' standard 4-bit layout kept
#   (`keep_cpu_4bit_trainable`, lesson 04), so they are the same on every machine. Left alone, on a CPU
#   with AVX512-BF16 (`bitsandbytes.functional.has_avx512bf16()`), bitsandbytes repacks each 4-bit weight
#   into its inference kernel's layout the first time the layer runs in evaluation mode without
#   gradients (`Linear4bit.forward`), and computes in bfloat16 from then on. peft's merge then
#   dequantizes those bytes as if they still had the standard layout, and the merged model is broken:
#   its perplexity explodes. The last cell above runs exactly that when your CPU has the instruction
#   set, and prints the stored weight's shape before and after the first forward pass; the machine that
#   saved this page does not have it. A version-specific pitfall (peft 0.21, bitsandbytes 0.50, CPU).
#
# What outlives the versions is the check itself: measure a merged model, against its unmerged adapter
# *and* against the base it was merged into, before shipping it; keep the adapter separate on a 4-bit
# base, or merge into a float copy of the base (reload it unquantized, merge, then quantize the result
# if you must).

# %% [markdown]
# **Two adapters, one base.** An adapter is a few megabytes beside a base of hundreds, so one base can
# hold several and switch between them. We load the task adapter and its whole-text twin from
# section 2 onto one fresh base, and measure the same test questions with each, and with adapters off.

# %%
multi = PeftModel.from_pretrained(load_base_model(name).eval(), adapter_dir, adapter_name="docstring")
multi.load_adapter(data_dir() / "adapters" / "sft-docstring-whole-text", adapter_name="whole-text")
multi.eval()
for adapter in ("docstring", "whole-text"):
    multi.set_adapter(adapter)
    print(f"set_adapter({adapter!r:13s}): test response ppl {math.exp(sft.response_nll(multi, tokenizer, test)):.2f}")
with multi.disable_adapter():
    print(f"disable_adapter():           test response ppl {math.exp(sft.response_nll(multi, tokenizer, test)):.2f}")
print("adapters held:", list(multi.peft_config))

# %% [markdown]
# Switching costs nothing but a pointer: the base weights are shared. Serving systems build on
# exactly this — one base model in memory, many adapters, each request naming its adapter; peft itself
# can mix adapters inside one batch (`adapter_names=[...]` in `generate`, peft docs "Mixed adapter
# batches"), and inference servers such as vLLM (`--enable-lora`) do the same at scale. Merging is the
# other way to ship: fastest for one task, but it gives up the switch.

# %% [markdown]
# ## Summary
#
# - A chat template is the exact text a chat model was trained on; `apply_chat_template` writes it,
#   adds a default system turn, and with `add_generation_prompt=True` opens the assistant's turn.
# - Against the textbook, the *base* model found the reference docstrings least surprising without its
#   template (section 1); after fine-tuning in ChatML, the template is what makes the tuned behaviour
#   appear, and the other formats lose part of it (section 3).
# - Loss masking: labels −100 on everything but the replies (and their `<|im_end|>`), one span per
#   assistant turn. The hand-written mask equals TRL's prompt–completion `completion_only_loss` batch
#   token for token; a `messages` dataset is trained on every token unless told otherwise, and a
#   collator that masks the pad id (here `<|im_end|>`) drops the end of turn. Reply-only came out
#   ahead of whole-text training at equal steps in one seed on 8 questions, with one shared LR — a
#   pointer, not a verdict (Shi et al. 2024 find the opposite in a similar regime).
# - SFT with TRL's `SFTTrainer` and a rank-4 LoRA on 32 rows turned long chatty answers into one-line
#   docstrings (format rate, ROUGE-L and response perplexity above; the base model's low format rate is
#   its verbosity, not the token cap — checked with a cap sized from the references). No overfitting within its 24 steps, so early
#   stopping, wired in, never fired. `course sft` reproduces it (its wall time is printed in section 1,
#   on a shared 2-core machine).
# - Shipping: the adapter is about a hundredth of the model on disk; merged = adapter within 1e-3 on a
#   float32 base; merged into a 4-bit base, the adapter rounds away (the merged model scores like the
#   4-bit base alone, the control); on a CPU with AVX512-BF16, a merge after the model has run breaks
#   it (bitsandbytes repacks its weights; peft's merge misreads them), which only a check reveals;
#   one base holds several adapters, switched with `set_adapter` / `disable_adapter`.
#
# **Exercises:** [exercises/06_instruction_tuning.ipynb](../exercises/06_instruction_tuning.ipynb) — render a
# conversation in ChatML by hand, build the assistant-only labels, check a merge, score answers, and
# choose a prompt format by measurement.
