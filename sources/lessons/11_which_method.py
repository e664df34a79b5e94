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
# # 11 · Which method? Ten ways to fine-tune, and no training at all, measured side by side
#
# **Goal.** Put the methods this course has met (and a few it has not) on one table, measured on one
# model, one task and one budget: full fine-tuning, LoRA, rsLoRA, DoRA, PiSSA, QLoRA, AdaLoRA, IA3,
# prompt tuning and prefix tuning, each through peft's own implementation, beside three ways of not
# training at all (zero-shot, few-shot, and few-shot with examples retrieved by BM25). Every column is
# a measurement: trainable parameters, bytes on disk, the tensor peak of a training step, seconds per
# step, test quality with its interval over seeds, forgetting, and the cost of answering. Then read a
# common rule-of-thumb table against it, and turn the numbers into a decision table for your own job.
#
# **Runtime.** About a minute and a half on a 2-core CPU. The measurements come from
# `course compare-methods`, which wrote `data/results/compare_methods.json` (its wall time is printed
# in section 2); this notebook reads it, builds six of the methods on the real model to count their
# parameters, and repeats two of the runs live, shortened.
#
# **Model and task.** `smollm2-135m-instruct` (unless `COURSE_MODEL` names another chat model) on lesson
# 06's task: explain a standard-library function in the one-line style of its docstring, in lesson 06's
# train, validation and test splits and with its metrics (response perplexity, ROUGE-L, format rate).
#
# **You will use** `course_lib.tuning.methods` (each method through peft, the one training loop),
# `course_lib.tuning.prompting` (few-shot rows, BM25 retrieval with `bm25s`), lesson 04's MemTracker and
# `course vram` estimator, and lesson 05's retention probe.

# %%
from course_lib.notebook import quiet_notebook

quiet_notebook()  # first: peft, imported below, loads bitsandbytes, whose CPU notice this keeps out of the page

import math

import matplotlib.pyplot as plt
import torch

from course_lib.doctor import versions_line
from course_lib.experiments import compare_methods as cm
from course_lib.models import load_tokenizer, set_threads
from course_lib.results import load_results, require_results
from course_lib.tuning import methods, prompting, sft

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
print(versions_line())
require_results("compare_methods")  # what this lesson reads, checked before anything slow
sft.require_chat_template(sft.lesson_model())

# %% [markdown]
# ## 1 · What each method trains
#
# All ten start from the same frozen SmolLM2 and differ in what they add and train (peft's
# documentation and the papers in docs/references.md):
#
# - **Full fine-tuning** trains every weight (transformers alone, no peft).
# - **LoRA** (Hu et al. 2022) adds ΔW = (α/r)·B·A beside every linear layer; B starts at zero.
#   **rsLoRA** (Kalajdzievski 2023) only changes the scale to α/√r. **DoRA** (Liu et al. 2024) splits
#   each weight into a magnitude vector and a direction, LoRA adapting the direction, and trains the
#   magnitudes too. **PiSSA** (Meng et al. 2024) starts A and B from the top-r singular directions of W
#   and leaves the rest in the frozen base, so the model is unchanged at step 0 but the adapter starts
#   large. **QLoRA** (Dettmers et al. 2023) is LoRA on an NF4 base (lesson 04). **AdaLoRA** (Zhang et al.
#   2023) writes ΔW = P·Λ·Q and prunes singular values during training, moving rank to where it matters.
# - **IA3** (Liu et al. 2022) learns one scale per channel of the keys, the values and the feed-forward
#   input: nothing is added to the weights' shapes, only vectors.
# - **Prompt tuning** (Lester et al. 2021) learns the embeddings of a few virtual tokens placed before
#   every input; **prefix tuning** (Li & Liang 2021) learns a key and a value for each virtual token in
#   every layer.
#
# Two variants in the usual lists, DyLoRA and GLoRA, have no maintained implementation: neither is one
# of peft's tuners, only their authors' research code exists. They are left out.
#
# Each count below is written by hand from the model's shapes and checked against peft's own
# `get_nb_trainable_parameters` on the real model.

# %%
name = sft.lesson_model()
tokenizer = load_tokenizer(name)
spec = methods.MethodSpec(r=8, lora_alpha=16.0, num_virtual_tokens=8)
built = {m: methods.build_method(m, name, spec) for m in ("lora", "dora", "ia3", "prompt_tuning", "prefix_tuning")}
base = built["lora"].get_base_model()
shapes = [(mod.base_layer.in_features, mod.base_layer.out_features) for n, mod in base.named_modules()
          if hasattr(mod, "lora_A")]
cfg = base.config
kv_width = cfg.num_key_value_heads * cfg.hidden_size // cfg.num_attention_heads
by_hand = {"lora": methods.lora_family_parameters(shapes, spec.r),
           "dora": methods.lora_family_parameters(shapes, spec.r, dora=True),
           "ia3": methods.ia3_parameters(cfg.num_hidden_layers, kv_width, cfg.intermediate_size),
           "prompt_tuning": methods.virtual_token_parameters(spec.num_virtual_tokens, cfg.hidden_size),
           "prefix_tuning": methods.virtual_token_parameters(spec.num_virtual_tokens, cfg.hidden_size,
                                                             cfg.num_hidden_layers, kv_width)}
total = sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)  # the model without the adapter
print(f"{name}: {total:,} parameters, {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
      f"keys/values {kv_width} wide (grouped-query attention), {len(shapes)} linear layers adapted\n")
print(f"{'method':<15}{'by hand':>12}{'peft':>12}{'share of the model':>20}")
for m, model in built.items():
    peft_count = model.get_nb_trainable_parameters()[0]
    assert by_hand[m] == peft_count == methods.trainable_parameters(model), m
    print(f"{m:<15}{by_hand[m]:>12,}{peft_count:>12,}{by_hand[m] / total:>19.4%}")
del built, base

# %% [markdown]
# LoRA trains r·(d_in + d_out) numbers per layer; DoRA adds one magnitude per output; IA3 one number
# per key, value and feed-forward channel; prompt tuning one embedding per virtual token; prefix tuning
# a key and a value per virtual token and layer — with grouped-query attention the keys are narrower
# than the hidden size, which a count from the hidden size gets wrong.
#
# ## 2 · The measured table
#
# `course compare-methods` trained each method on the same training rows, in the same batches, for the
# same number of steps (so the same training tokens), with AdamW at a constant rate and the loss on the
# reply only (lesson 06). Each method got its own learning rate: two rates at seed 0, the better one on
# the validation rows' response NLL, then two more seeds at that rate (lesson 02's rule; the seed-0 run
# of the sweep is the first seed). The test perplexity has its 95 % interval over the three seeds.
# Greedy answers (ROUGE-L, format rate), forgetting, memory and latency were measured once per method,
# at seed 0: the budget of the run is below, and what it cut is said in section 6.

# %%
results = load_results("compare_methods")
table = cm.method_table(results)
c = results["config"]
print(f"{results['command']}  ({results['model']})")
processes = sorted(set(results.get("ran_as", {}).values())) or [results["command"]]
print(f"wall time {results['wall_seconds'] / 60:.0f} min, in {len(processes)} processes of one thread each on a shared "
      f"2-core CPU (--methods split the list):", *processes, sep="\n  ")
print(f"every method: "
      f"{c['train_rows']} training rows, {c['max_steps']} steps of {c['per_device_train_batch_size']} rows "
      f"(≤ {c['max_length']} tokens), seeds {c['seeds']}; test: response perplexity on {c['test_rows']} rows, "
      f"greedy answers to {c['generate_rows']}; forgetting: {c['retention_prompts']} general questions\n")
MB = 1e6
head = (f"{'method':<19}{'LR':>7}{'trainable':>12}{'on disk':>9}{'peak':>8}{'vram est':>9}{'s/step':>7}"
        f"{'test ppl ± 95%':>17}{'ROUGE-L':>8}{'format':>7}{'kept':>6}{'Δlogp':>7}")
print(head)
for m, row in table.items():
    if row["kind"] == "method":
        est = f"{row['vram_estimate_bytes'] / MB:.0f}" if row["vram_estimate_bytes"] else "—"
        print(f"{m:<19}{row['learning_rate']:>7.0e}{row['trainable_parameters']:>12,}"
              f"{row['adapter_bytes'] / MB:>8.2f}M{row['tensor_peak_bytes'] / MB:>7.0f}M{est:>8}M"
              f"{row['seconds_per_step']:>7.1f}{row['ppl']:>10.2f} ± {row['ppl_ci95']:<5.2f}{row['rouge_l']:>8.3f}"
              f"{row['format_rate']:>7.2f}{row['kept']:>6.2f}{row['logprob_change']:>7.2f}")
    else:
        print(f"{m:<19}{'—':>7}{0:>12}{'—':>9}{'—':>8}{'—':>9}{'—':>7}{row['ppl']:>10.2f}{'':>8}"
              f"{row['rouge_l']:>8.3f}{row['format_rate']:>7.2f}{'1.00':>6}{'0.00':>7}")

# %%
print(f"{'answering':<19}{'extra prompt tokens':>20}{'latency unmerged':>18}{'merged':>8}   (seconds for 8 new tokens)")
for m, row in table.items():
    if row["kind"] == "method":
        merged = f"{row['latency_merged_seconds']:.2f}" if row["latency_merged_seconds"] is not None else "—"
        print(f"{m:<19}{row['extra_prompt_tokens']:>20}{row['latency_unmerged_seconds']:>18.2f}{merged:>8}")

# %% [markdown]
# How to read it: *peak* is the tensor peak of a training step measured by PyTorch's MemTracker
# (lesson 04: parameters, gradients, AdamW states, activations; fp32 here), *vram est* is `course vram`'s
# prediction for the same shapes where its estimator covers the method (full, LoRA and its plain
# variants, QLoRA). *kept* and *Δlogp* are lesson 05's retention probe: the share of greedy answers to
# general questions that stayed the same, and the change of their log-probability (nats per token; a
# baseline changes nothing by construction). The intervals and the sweeps are plotted next.

# %%
methods_only = [m for m, r in table.items() if r["kind"] == "method"]
fig, ax = plt.subplots(figsize=(9, 3.8))
for i, m in enumerate(methods_only):
    r = table[m]
    ax.errorbar(i, r["ppl"], yerr=r["ppl_ci95"], fmt="o", color="C0", capsize=4)
    ax.plot([i] * len(r["ppl_by_seed"]), r["ppl_by_seed"], ".", color="C0", alpha=0.4)
for j, b in enumerate(m for m, r in table.items() if r["kind"] == "baseline"):
    ax.axhline(table[b]["ppl"], color=f"C{j + 1}", ls="--", lw=1, label=f"{b} (no training)")
ax.set_xticks(range(len(methods_only)), methods_only, rotation=30)
ax.set_ylabel("test response perplexity (log scale)")
ax.set_yscale("log")
ax.set_title("Each method at its own learning rate: mean and 95 % interval over 3 seeds (dots: seeds)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

best = min(methods_only, key=lambda m: table[m]["ppl"])
lo = table[best]["ppl"] + table[best]["ppl_ci95"]
tied = [m for m in methods_only if table[m]["ppl"] - table[m]["ppl_ci95"] <= lo]
print(f"lowest mean test perplexity: {best}; intervals overlapping its interval (a tie at this budget): "
      f"{', '.join(tied)}")
print("\nlearning-rate sweep at seed 0 (validation response NLL; * = chosen):")
for m in methods_only:
    cells = "  ".join(f"{lr:.0e}: {nll:.3f}{'*' if lr == table[m]['learning_rate'] else ''}"
                      for lr, nll in table[m]["sweep"].items())
    edge = " (at the edge of the sweep)" if table[m]["learning_rate"] in (min(table[m]["sweep"]),
                                                                         max(table[m]["sweep"])) else ""
    print(f"  {m:<15}{cells}{edge}")

# %% [markdown]
# With two rates per method every chosen rate is at an edge of its sweep: the optimum may lie beyond it.
# This is a short sweep, a guard against comparing a method at a bad rate, not a search for its best.
#
# ## 3 · No training at all: where does prompting stop being enough?
#
# The same test questions, the untouched model, three prompts: the question alone (zero-shot), the
# same first training rows before every question (few-shot), and the training rows most similar to the
# question under BM25 (Robertson & Zaragoza 2009; the `bm25s` package, Lù 2024) — retrieval-augmented
# few-shot, retrieving from the very rows the methods trained on. Here is the retrieved prompt for one
# test question, built live.

# %%
train_rows = sft.task_rows("train", c["train_rows"])
test_row = sft.task_rows("test", 1)[0]
retriever = prompting.Retriever(train_rows)
shots = retriever.top(prompting.question(test_row), c["few_shot_k"])
row = prompting.few_shot_row(test_row, shots)
prompt = sft.prompt_for(tokenizer, row)
print(prompt)
print(f"prompt tokens: zero-shot {prompting.prompt_tokens(tokenizer, sft.prompt_for(tokenizer, test_row))}, "
      f"retrieved few-shot {prompting.prompt_tokens(tokenizer, prompt)}\n")
print(f"{'no training':<22}{'prompt tokens':>14}{'extra':>7}{'s / answer':>11}{'test ppl':>10}{'ROUGE-L':>9}{'format':>8}")
for b in ("zero_shot", "few_shot", "retrieval_few_shot"):
    r = table[b]
    print(f"{b:<22}{r['prompt_tokens']:>14.0f}{r['extra_prompt_tokens']:>7.0f}{r['seconds_per_query']:>11.1f}"
          f"{r['ppl']:>10.2f}{r['rouge_l']:>9.3f}{r['format_rate']:>8.2f}")

# %% [markdown]
# Every example in the prompt is paid for at every query, in tokens read (the extra column); a trained
# adapter is paid for once. The seconds per answer cannot show that cost here: they are wall times
# measured at different moments of a shared machine's load (the zero-shot answers, measured first,
# took longest), so only the token counts compare.
#
# ## 4 · Two of the runs again, live and shortened
#
# The same functions the command used — `build_method`, `training_batches`, `train_steps`,
# `response_nll` — on two methods at the rates the sweep chose, cut to two steps on two rows and
# scored on two validation rows. The numbers are smaller than the table's (fewer steps); the point is
# that the table's runs are this code, nothing else.

# %%
val_rows = sft.task_rows("validation", 2)
batches = methods.training_batches(tokenizer, train_rows[:2], 1, 2, seed=0, max_length=c["max_length"])
for m in ("lora", "ia3"):
    model = methods.build_method(m, name, cm.CompareConfig(**{k: v for k, v in c.items()
                                                               if k in cm.CompareConfig.__dataclass_fields__}).spec())
    before = sft.response_nll(model, tokenizer, val_rows)
    log = methods.train_steps(model, batches, table[m]["learning_rate"])
    after = sft.response_nll(model, tokenizer, val_rows)
    print(f"{m:<6} lr {table[m]['learning_rate']:.0e}: training loss {' → '.join(f'{x:.3f}' for x in log['loss'])}; "
          f"validation response NLL {before:.3f} → {after:.3f}")
    del model

# %% tags=["nbval-ignore-output"]
print("seconds per step, this machine, now:", [round(s, 1) for s in log["seconds"]])

# %% [markdown]
# ## 5 · A rule-of-thumb table, read against the measurement
#
# Guides to fine-tuning often hand over a table like this one: full fine-tuning "highest memory,
# slowest, best (potentially)"; LoRA "low memory, fast, good"; QLoRA "lowest memory, medium speed,
# good"; adapters "low, medium, good"; prompt tuning "very low memory, fastest, lower quality". The
# cell below ranks each method on each of those axes from the measured table and prints which
# adjectives held here.

# %%
def rank(key, reverse=False):
    order = sorted(methods_only, key=lambda m: table[m][key], reverse=reverse)
    return {m: i + 1 for i, m in enumerate(order)}


peak_rank, speed_rank, ppl_rank = rank("tensor_peak_bytes"), rank("seconds_per_step"), rank("ppl")
n = len(methods_only)
print(f"ranks among the {n} methods (1 = least memory / fastest step / lowest test perplexity)")
print(f"{'method':<15}{'peak':>6}{'s/step':>8}{'ppl':>6}")
for m in methods_only:
    print(f"{m:<15}{peak_rank[m]:>6}{speed_rank[m]:>8}{ppl_rank[m]:>6}")
claims = {"full: highest memory": peak_rank["full"] == n, "full: slowest": speed_rank["full"] == n,
          "full: best quality": ppl_rank["full"] == 1 or "full" in tied,
          "QLoRA: lowest memory": peak_rank["qlora"] == 1,
          "LoRA: lower memory than full": table["lora"]["tensor_peak_bytes"] < table["full"]["tensor_peak_bytes"],
          "LoRA: faster than full": table["lora"]["seconds_per_step"] < table["full"]["seconds_per_step"],
          "prompt tuning: fastest": speed_rank["prompt_tuning"] == 1,
          "prompt tuning: lower quality than LoRA": table["prompt_tuning"]["ppl"] - table["prompt_tuning"]["ppl_ci95"]
          > table["lora"]["ppl"] + table["lora"]["ppl_ci95"]}
for claim, held in claims.items():
    print(f"  {claim:<42} {'held' if held else 'did not hold'}")
saving = 1 - table["lora"]["tensor_peak_bytes"] / table["full"]["tensor_peak_bytes"]
print(f"\nLoRA's tensor peak is {saving:.0%} below full fine-tuning's here "
      f"(full: {table['full']['tensor_peak_bytes'] / MB:.0f} MB, LoRA: {table['lora']['tensor_peak_bytes'] / MB:.0f} MB)")

# %% [markdown]
# What held and what did not, and why:
#
# - **Memory.** Full fine-tuning's peak is the largest, as the table promises: its AdamW states and
#   gradients cover every weight (lesson 04). QLoRA's is the smallest even on this CPU: its frozen
#   linear layers are stored in 4 bits, and only one layer at a time is dequantized to fp32 to compute.
#   The other PEFT methods sit close together — at 135M parameters the fp32 embedding matrix and the
#   activations weigh as much as the linear layers they leave frozen — except DoRA, above them: to take
#   the norm of each weight's columns it materializes W + ΔW for every adapted layer
#   (`peft/tuners/lora/dora.py`). `course vram`'s predictions for
#   full, LoRA and QLoRA land near the measured peaks.
# - **Speed.** Seconds per step on a shared CPU are noisy (the machine ran other jobs while these ran):
#   read only large gaps. QLoRA pays for dequantizing every layer at every pass, full fine-tuning for
#   its weight gradients and the AdamW update of every weight. Merging an adapter into the weights
#   removes its extra matrix products at inference, which the latency column shows for the methods
#   that can merge.
# - **Quality.** At this budget (a few rows seen once) full fine-tuning, LoRA, rsLoRA, DoRA, PiSSA and
#   prompt tuning tie within their intervals (the list printed under the plot): "lower quality" for prompt tuning is not
#   separated from LoRA here, because with so little training no method moves far from where it
#   started. Lester et al. 2021 (Figure 1) find prompt tuning matches full fine-tuning only at billions
#   of parameters — a test this budget cannot make. QLoRA starts from a quantized base that is worse
#   than the fp32 one on a model this small (lesson 04) and stays behind. AdaLoRA barely moved: peft
#   starts its singular values E at zero and A, B at a standard deviation of 0.02
#   (`peft/tuners/adalora/layer.py`), so the first updates of ΔW = B·diag(E)·A are tiny, and three
#   steps leave it next to the untouched model.
# - **Prefix tuning** starts from random keys and values in every layer, which makes the model worse at
#   step 0, and its seeds scatter (the plot's dots): Li & Liang 2021 (§4.3) report that optimizing the
#   prefix directly is unstable and reparametrize it through an MLP (peft's `prefix_projection=True`,
#   not used here). Its interval is so wide that it "ties" with everything: that is no evidence of a
#   tie, only of instability.
# - **Nothing trained beats everything trained here.** Retrieval few-shot has the lowest test
#   perplexity and by far the best format rate of the whole table: with a handful of rows, showing the
#   model the closest solved examples does more than a few gradient steps on them.
#
# ## 6 · More data: lesson 06's run beside this table
#
# Every method here saw the same handful of rows once. Lesson 06's `course sft` trained LoRA on the
# same task for longer, and scored the same first test rows with the same metric: its result is the
# missing point of the comparison, "fine-tuning with more data".

# %%
sft_run = load_results("sft")
sft_cfg = sft_run["config"]
print(f"lesson 06 (`{sft_run['command']}`): LoRA r={sft_cfg['r']}, {sft_run['stopped_at_step']} steps of "
      f"{sft_cfg['per_device_train_batch_size']} rows from {sft_run['train_rows']} rows; "
      f"test response perplexity on the first {sft_run['test_rows']} test rows: "
      f"{sft_run['before']['chat']['response_ppl']:.2f} before, {sft_run['after']['chat']['response_ppl']:.2f} after; "
      f"format rate {sft_run['after']['chat']['format_rate']:.2f}")
print(f"this table, same rows: zero-shot {table['zero_shot']['ppl']:.2f}, retrieval few-shot "
      f"{table['retrieval_few_shot']['ppl']:.2f}, best method ({best}) {table[best]['ppl']:.2f}")

# %% [markdown]
# ## 7 · A decision table for your own job
#
# Each row names a job, the method the measurements point to, and the number behind it (from the
# tables above, lesson 06's run, or a paper in docs/references.md). It is printed from the results so
# that it cannot drift from them.

# %%
small = min(("ia3", "prompt_tuning", "prefix_tuning"), key=lambda m: table[m]["ppl"])
learned = [m for m in methods_only  # test perplexity at least 5 % below the untouched model's, beyond its interval
           if table[m]["ppl"] + table[m]["ppl_ci95"] < 0.95 * table["zero_shot"]["ppl"]]
least_forgetting = max(learned, key=lambda m: (table[m]["kept"], table[m]["logprob_change"]))  # among those that learned
most_forgetting = min(learned, key=lambda m: (table[m]["kept"], table[m]["logprob_change"]))
rows = [
    ("a handful of examples, one task", "retrieval few-shot (no training)",
     f"test ppl {table['retrieval_few_shot']['ppl']:.1f} and format {table['retrieval_few_shot']['format_rate']:.2f} "
     f"vs the best method's {table[best]['ppl']:.1f} / {table[best]['format_rate']:.2f}; costs "
     f"+{table['retrieval_few_shot']['extra_prompt_tokens']:.0f} prompt tokens on every query"),
    ("hundreds of examples, one task", "LoRA (or full fine-tuning if memory allows)",
     f"lesson 06: LoRA on {sft_run['train_rows']} rows reached {sft_run['after']['chat']['response_ppl']:.1f}; "
     f"on this table's few rows these tie within their intervals: {', '.join(tied)}"),
    ("training memory is the limit", "QLoRA, if its quality cost is acceptable",
     f"tensor peak: full {table['full']['tensor_peak_bytes'] / MB:.0f} MB, LoRA "
     f"{table['lora']['tensor_peak_bytes'] / MB:.0f} MB, QLoRA {table['qlora']['tensor_peak_bytes'] / MB:.0f} MB; "
     f"test ppl QLoRA {table['qlora']['ppl']:.1f} vs LoRA {table['lora']['ppl']:.1f} on this 135M model"),
    ("many tasks served from one base", f"{small} (files of kilobytes)",
     f"{small}: {table[small]['adapter_bytes'] / 1e3:.0f} kB per task vs LoRA's "
     f"{table['lora']['adapter_bytes'] / 1e6:.1f} MB; test ppl {table[small]['ppl']:.1f} ± {table[small]['ppl_ci95']:.1f}"),
    ("general answers must not change", f"{least_forgetting} (or no training)",
     f"among the methods that learned ({', '.join(learned)}): log-prob change of the old answers "
     f"{table[least_forgetting]['logprob_change']:.2f} vs {most_forgetting}'s "
     f"{table[most_forgetting]['logprob_change']:.2f} nats/token (seed 0); Biderman et al. 2024: LoRA forgets "
     "less than full fine-tuning"),
    ("prefix tuning at this scale", "avoid (or reparametrize it)",
     f"test ppl by seed {table['prefix_tuning']['ppl_by_seed']}; Li & Liang 2021"),
]
for job, choice, why in rows:
    print(f"- {job:<34} -> {choice}\n    {why}")

# %% [markdown]
# Where prompting stops being enough: not within this table's budget, but by lesson 06's run, which saw
# more rows for more steps and ends below retrieval few-shot's perplexity at no cost per query. The
# crossing point depends on your data size, and measuring both is cheap.
#
# What this comparison cut, to fit its budget on a shared 2-core CPU (`course compare-methods` with
# its defaults runs all of it in one process; more rows and steps are options):
#
# - every run saw the same few rows for three steps — a small-data regime, not the thousands of examples
#   the papers and peft's method comparison (MetaMathQA on a GPU, docs/references.md) train on;
# - the learning-rate sweep has two points per method, at seed 0 only;
# - greedy answers (ROUGE-L, format rate), forgetting, memory and latency are from seed 0 only, on six
#   test questions and four general questions: pointers, without intervals; the perplexity has three
#   seeds;
# - latency is one measurement of eight tokens on a shared CPU;
# - PiSSA uses peft's fast randomized SVD (`pissa_niter_4`), not the exact one;
# - prefix tuning's answers are decoded without a key/value cache, because peft's `generate` ignores the
#   prefix in the installed versions (tests/test_methods.py shows it).
#
# ## Summary
#
# - Ten methods, each through peft (full fine-tuning through transformers), trained on the same rows,
#   steps and tokens, each at its own learning rate, three seeds: every trainable-parameter count written
#   by hand equals peft's.
# - At this small budget full fine-tuning, LoRA, rsLoRA, DoRA, PiSSA and prompt tuning tie; QLoRA's quantized
#   base, AdaLoRA's zero start and prefix tuning's unstable one put them behind; retrieval few-shot,
#   which trains nothing, is ahead of all of them — until more data (lesson 06's run) turns it around.
# - Memory: full fine-tuning needs the most, QLoRA the least, the rest sit together; `course vram`
#   predicts full, LoRA and QLoRA close to the measured tensor peaks.
# - Files: LoRA's family ships megabytes per task, IA3 and prompt tuning kilobytes — the number that
#   matters when one base serves many tasks.
# - A rule-of-thumb table is a prior; a measurement on your model, task and budget decides.
#
# **Exercises:** [exercises/11_which_method.ipynb](../exercises/11_which_method.ipynb) — count a method's
# trainable parameters by hand, price prompt tuning's virtual tokens, pick the methods that fit a memory
# budget from the results file, build a retrieved few-shot prompt, and choose a method for a described
# job.
