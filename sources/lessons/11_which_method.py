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
# # 11 · Which method? Eleven ways to fine-tune, and no training at all, measured side by side
#
# **Goal.** Put the methods this course has met (and a few it has not) on one table, measured on one
# model, one task and one budget: full fine-tuning, LoRA, rsLoRA, DoRA, PiSSA, QLoRA, AdaLoRA, GLoRA, IA3,
# prompt tuning and prefix tuning, each through peft's own implementation, beside four ways of not
# training at all (zero-shot, few-shot, few-shot with examples retrieved by BM25, and zero-shot on the
# 4-bit base QLoRA starts from). Every column is a measurement: trainable parameters, bytes on disk, the
# tensor peak of a training step, seconds per step, test quality compared item by item with LoRA,
# forgetting, and the cost of answering. Then read a common rule-of-thumb table against it, and turn the
# numbers into a decision table for your own job.
#
# **Runtime.** About half a minute on a 2-core CPU. The measurements come from
# `course compare-methods`, which wrote `data/results/compare_methods.json` (what it ran and what it cost
# are printed in section 2); this notebook reads it, builds six of the methods on the real model to count
# their parameters, and repeats two of the runs live, shortened.
#
# **Model and task.** `smollm2-135m-instruct` (unless `COURSE_MODEL` names another chat model) on lesson
# 06's task: explain a standard-library function in the one-line style of its docstring, in lesson 06's
# train, validation and test splits and with its metrics (response perplexity, ROUGE-L, format rate).
#
# **You will use** `course_lib.tuning.methods` (each method through peft, the one training loop),
# `course_lib.tuning.prompting` (few-shot rows, BM25 retrieval with `bm25s`), lesson 04's MemTracker and
# `course vram` estimator, lesson 05's retention probe and lesson 10's item-by-item intervals
# (`course_lib.evaluation.uncertainty`).

# %%
from course_lib.notebook import quiet_notebook

quiet_notebook()  # first: peft, imported below, loads bitsandbytes, whose CPU notice this keeps out of the page

import math
import statistics

import matplotlib.pyplot as plt

from course_lib.doctor import versions_line
from course_lib.evaluation.uncertainty import mcnemar
from course_lib.experiments import compare_methods as cm
from course_lib.models import get_device, load_tokenizer, set_threads
from course_lib.results import load_results, require_results
from course_lib.tuning import methods, prompting, sft

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
print(versions_line())
require_results("compare_methods", "sft")  # what this lesson reads, checked before anything slow
sft.require_chat_template(sft.lesson_model())

# %% [markdown]
# ## 1 · What each method trains
#
# All eleven start from the same frozen SmolLM2 and differ in what they add and train (peft's
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
#   **GLoRA** (Chavan et al. 2023; peft's `glora` tuner) makes the weight W0 + W0 ⊙ A + B, with A and B both
#   of rank r and ⊙ the product element by element (`weight_eff = self.weight + self.weight * A + B` in
#   `GloraLinear.forward`, `peft/tuners/glora/layer.py`): a multiplicative and an additive correction (the
#   bias paths it also has need a bias, and Llama's linear layers have none).
# - **IA3** (Liu et al. 2022) learns one scale per channel of the keys, the values and the feed-forward
#   input: nothing is added to the weights' shapes, only vectors.
# - **Prompt tuning** (Lester et al. 2021) learns the embeddings of a few virtual tokens placed before
#   every input; **prefix tuning** (Li & Liang 2021) learns a key and a value for each virtual token in
#   every layer.
#
# One variant in the usual lists, DyLoRA, has no maintained implementation (it is not among the installed
# peft's tuners, only its authors' research code exists) and is left out.
#
# Each count below is written by hand from the model's shapes and checked against peft's own
# `get_nb_trainable_parameters` on the real model, for six of the methods; tests/test_methods.py checks the
# others on a tiny model, and the results file holds peft's count beside the course's for every method.

# %%
name = sft.lesson_model()
tokenizer = load_tokenizer(name)
spec = methods.MethodSpec(r=8, lora_alpha=16.0, num_virtual_tokens=8)
built = {m: methods.build_method(m, name, spec) for m in ("lora", "dora", "glora", "ia3", "prompt_tuning",
                                                          "prefix_tuning")}
base = built["lora"].get_base_model()
shapes = [(mod.base_layer.in_features, mod.base_layer.out_features) for n, mod in base.named_modules()
          if hasattr(mod, "lora_A")]
cfg = base.config
kv_width = cfg.num_key_value_heads * cfg.hidden_size // cfg.num_attention_heads
by_hand = {"lora": methods.lora_family_parameters(shapes, spec.r),
           "dora": methods.lora_family_parameters(shapes, spec.r, dora=True),
           "glora": methods.glora_parameters(shapes, spec.r),
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
# LoRA trains r·(d_in + d_out) numbers per layer; DoRA adds one magnitude per output; GLoRA two rank-r
# pairs, twice LoRA's; IA3 one number per key, value and feed-forward channel; prompt tuning one
# embedding per virtual token; prefix tuning a key and a value per virtual token and layer — with
# grouped-query attention the keys are narrower than the hidden size, which a count from the hidden size
# gets wrong.
#
# ## 2 · What this run is
#
# A comparison can only separate methods if each of them has left its starting point, so the run trains
# at lesson 06's budget: 24 steps of 4 rows drawn from the same 32 training rows (three passes over them),
# reply tokens only, AdamW at a constant rate, the same batches in the same order for every method at a
# given seed. Each method gets its own learning rate (lesson 02's rule): three rates one rung apart on a
# ladder (1e-5, 3e-5, 1e-4, 3e-4, …) around its usual range, at the first seed, chosen on the validation
# rows' response NLL, and one more rung past an edge for as long as the best rate sits at that edge, so
# that the chosen rate is interior to its sweep or printed as not. That costs every method three to six
# runs before its seeds.
#
# Every method then runs three seeds at its chosen rate (the cell below prints which): its interval counts
# the noise from one seed to the next as well as the test items'.
#
# Every run at the chosen rate is scored on 32 test rows (the response NLL of each row, so that two
# methods are compared item by item), answers greedily the first 8 (lesson 06's cap of 24 tokens:
# ROUGE-L and format rate) and answers 16 general questions (lesson 05's retention probe). The costs were
# measured apart from the training, in one process, method after method, in interleaved rounds (the
# medians are shown). What it all cost, and on what machine, is printed here; the same command runs
# unchanged on a GPU.

# %%
results = load_results("compare_methods")
table = cm.method_table(results)
c = results["config"]
run_spec = cm.CompareConfig(**{k: v for k, v in c.items() if k in cm.CompareConfig.__dataclass_fields__}).spec()
method_names = [m for m in methods.METHOD_NAMES if m in table]
baseline_names = [b for b in cm.BASELINES if b in table]
print(results["command"], f"({results['model']}, {results['device']})")
for p in results["processes"]:
    changed = " + uncommitted changes" if p.get("course_lib_changed") else ""
    if not p["wall_seconds"]:
        continue  # a process that stopped before it ran anything
    print(f"  process: {p['command']}  [commit {(p.get('commit') or '?')[:7]}{changed}]  "
          f"{p['wall_seconds'] / 60:.0f} min wall, {p['cpu_seconds'] / 60:.0f} min CPU, {p.get('threads', '?')} thread(s)")
    if p.get("commit_note"):
        print(f"    note: {p['commit_note']}")
print(f"in all: {results['wall_seconds'] / 3600:.1f} h wall, {results['cpu_seconds'] / 3600:.1f} CPU-hours, "
      f"{len(results['processes'])} process(es)")
seeded = [m for m in method_names if table[m]["seeds"] > 1]
one_seed = [m for m in method_names if m not in seeded]
print(f"every method: {c['train_rows']} training rows, {c['max_steps']} steps of {c['per_device_train_batch_size']} "
      f"rows (≤ {c['max_length']} tokens); seeds {c['seeds']} for {', '.join(seeded)}"
      + (f"; the first seed for {', '.join(one_seed)}" if one_seed else ""))
print(f"test: response NLL of {c['test_rows']} rows, greedy answers to {c['generate_rows']} (≤ {c['max_new_tokens']} "
      f"tokens); forgetting: {c['retention_prompts']} general questions; reference for the comparisons: {cm.REFERENCE}")


# %% [markdown]
# ## 3 · The measured table
#
# *test ppl* is exp of the mean response NLL over seeds × test rows (each row's NLL per token, then a plain
# mean over rows, so that rows can be paired; lesson 06 weights the rows by their tokens, see section 9),
# with its 95 % interval (lesson 10's `seeds_by_items`: the noise of the items and from seed to seed,
# Student's t). *vs LoRA* is the difference of mean NLL against LoRA, test row by test row
# (`seeds_by_items_difference`): negative is better, and a difference whose interval contains 0 is *not
# separated*. (A row marked `¹` would be one seed, its interval the items' noise only; this run has none.) ROUGE-L and format are means over seeds × the answered rows; *Δlogp* is
# lesson 05's probe, the change of log-probability of the general questions' old answers (nats per token,
# < 0: they became less likely), with its interval.

# %%
def cell(iv, fmt="{:.3f}"):
    return f"{fmt.format(iv['mean'])} [{fmt.format(iv['low'])}, {fmt.format(iv['high'])}]"


def versus_cell(row):
    v = row["vs_reference"]
    if v is None:
        return "reference"
    return f"{v['diff']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}] {v['verdict']}"


print(f"{'method':<20}{'LR':>7}{'seeds':>6}{'test ppl [95%]':>24}  {'Δ NLL vs LoRA [95%]':<38}{'ROUGE-L':>8}"
      f"{'format':>7}  {'Δlogp [95%]':<22}")
for m in method_names + baseline_names:
    row = table[m]
    mark = "¹" if row["kind"] == "method" and row["seeds"] == 1 else " "
    lr = f"{row['learning_rate']:.0e}" if row["kind"] == "method" else "—"
    seeds = row["seeds"] if row["kind"] == "method" else "—"
    logp = cell(row["logprob_change"], "{:+.2f}") if "logprob_change" in row else "— (nothing trained)"
    ppl = f"{row['ppl']:.2f} [{row['ppl_low']:.2f}, {row['ppl_high']:.2f}]"
    print(f"{m + mark:<20}{lr:>7}{seeds:>6}{ppl:>24}  {versus_cell(row):<38}{row['rouge_l']['mean']:>8.3f}"
          f"{row['format_rate']['mean']:>7.2f}  {logp:<22}")

# %%
MB = 1e6
print(f"{'method':<16}{'trainable':>12}{'on disk':>10}{'peak':>9}{'vram est':>10}{'s/step':>8}"
      f"{'answer, unmerged':>18}{'merged':>8}{'extra positions':>17}")
for m in method_names:
    row = table[m]
    est = f"{row['vram_estimate_bytes'] / MB:.0f}M" if row["vram_estimate_bytes"] else "—"
    merged = f"{row['latency_merged_seconds']:.2f}" if row["latency_merged_seconds"] is not None else "—"
    disk = f"{row['adapter_bytes'] / MB:.2f}M"
    print(f"{m:<16}{row['trainable_parameters']:>12,}{disk:>10}{row['tensor_peak_bytes'] / MB:>8.0f}M{est:>10}"
          f"{row['seconds_per_step']:>8.2f}{row['latency_unmerged_seconds']:>18.2f}{merged:>8}"
          f"{row['extra_positions']:>17}")
print(f"\nPiSSA's file needs the residual base PiSSA rewrote; as a plain LoRA for the original base it is rank 2r: "
      f"{table['pissa']['servable_bytes'] / MB:.2f} MB")
print("the estimate for LoRA is what this prints:", table["lora"]["vram_command"])


def spread(values):
    return f"{min(values):.2f} to {max(values):.2f}" if values else "—"


print("\nround to round (lowest to highest of the timing rounds): s/step; answer unmerged; merged")
for m in method_names:
    rs = [rnd[m] for rnd in results["costs"]["rounds"] if m in rnd]
    print(f"  {m:<16}{spread([statistics.median(r['step_seconds']) for r in rs]):>14}"
          f"{spread([r['latency_unmerged_seconds'] for r in rs]):>14}"
          f"{spread([r['latency_merged_seconds'] for r in rs if r.get('latency_merged_seconds') is not None]):>14}")
loads = [x for rnd in results["costs"]["rounds"] for x in rnd["load_average"] if x is not None]
print(f"timing: medians of {len(results['costs']['rounds'])} rounds, each timing every method in turn "
      f"({c['timing_steps']} steps; answers of {c['latency_tokens']} new tokens); the machine's load average "
      f"during them: {min(loads):.1f} to {max(loads):.1f}")

# %% [markdown]
# How to read the costs: *peak* is the tensor peak of a training step measured by PyTorch's MemTracker
# (lesson 04: parameters, gradients, AdamW states, activations; fp32 here) on the first batch, *vram est*
# is `course vram`'s prediction for the same shapes where its estimator covers the method (full, LoRA and
# its plain variants, QLoRA). *s/step* is a training step of 4 rows; *answer* the seconds to write 8 new
# tokens after a test question, with the adapter as trained (unmerged) and merged into the weights where
# peft can merge it. Prompt and prefix tuning have nothing to merge: their cost is *extra positions*, the
# virtual tokens every layer attends to (prompt tuning reads them through every layer like tokens; prefix
# tuning's are keys and values already, cached positions).
#
# ## 4 · The sweeps, and whether each run left its start
#
# The learning rate each method ran at is its own, chosen on the validation rows at the first seed. Below,
# each sweep (* = chosen), whether the chosen rate is interior, and the validation NLL of the untrained
# model (fp32; QLoRA's is its NF4 base) beside the chosen runs', per seed: a run that stayed at its start
# measures its initialisation, not the method.

# %%
print("the ladder of rates:", ", ".join(f"{lr:g}" for lr in cm.LR_LADDER))
for m in method_names:
    row = table[m]
    cells = "  ".join(f"{lr:.0e}: {nll:.3f}{'*' if lr == row['learning_rate'] else ''}"
                      for lr, nll in row["sweep"].items())
    print(f"{m:<15}{cells}   [{row['sweep_status']}]")
    print(f"{'':<15}validation NLL untrained {row['untrained_val_nll']:.3f} → "
          f"{', '.join(f'{x:.3f}' for x in row['val_nll_by_seed'])} (by seed): "
          f"{'left its start' if row['left_start'] else 'did NOT leave its start'}")
ada = methods.method_config("adalora", run_spec)
print(f"AdaLoRA's allocator: ranks from {ada.init_r} to {ada.target_r} on average, pruned between step {ada.tinit} "
      f"and step {ada.total_step - ada.tfinal} of {ada.total_step}")

# %% [markdown]
# AdaLoRA's training loss is not comparable with the others': `AdaLoraModel.forward`
# (`peft/tuners/adalora/model.py`) adds its orthogonality penalty on P and Q to the loss it returns
# (`orth_reg_weight=0.5`, its default in `peft/tuners/adalora/config.py`), so AdaLoRA also trains under a
# regularizer the others do not have; like every sweep, its sweep chooses on the validation NLL, which has
# no penalty. AdaLoRA's sweep starts higher than LoRA's for another reason: peft starts its singular values
# Λ at zero and P, Q small (`nn.init.zeros_(lora_E)`, `nn.init.normal_(lora_A, std=0.02)` in
# `peft/tuners/adalora/layer.py`), so early on ΔW = P·Λ·Q is a product of small factors, and a sweep at
# LoRA's rates risks measuring the initialisation (the check above says whether the chosen runs left it).
# Its allocator (`RankAllocator.budget_schedule`) keeps every rank up to the first step printed above,
# prunes on a cubic schedule until the second, and keeps the final ranks fixed after it; which ranks it
# kept is not recorded in the results file.
#
# rsLoRA is LoRA with the scale α/√r instead of α/r. At one rank, with each method at its own rate, the scale
# is largely absorbed by the rate (AdamW's step is set by the rate, not by the gradient's size, so a larger
# scale acts, to first order, like a larger rate), so the two were expected to tie. The table below says
# they did not: rsLoRA's test NLL is higher than LoRA's (+0.076, interval [+0.040, +0.113]), at every seed.
# Two reasons a one-rank comparison can still differ: the ladder's rungs (×3.16) do not match the ratio of
# the two scales (√8 ≈ 2.83), so rsLoRA's best rung is not LoRA's best rate translated; and the scale
# stands in for the rate only while B is near zero — once it is not, the updates of A (set by the rate,
# not the scale) enter the product. Kalajdzievski 2023 shows the difference across ranks, which this run,
# at one rank, does not test.
#
# Every method against LoRA, with its interval:

# %%
order = sorted((m for m in method_names + baseline_names if table[m]["vs_reference"]),
               key=lambda m: table[m]["vs_reference"]["diff"])
fig, ax = plt.subplots(figsize=(8, 0.35 * len(order) + 1.2))
for i, m in enumerate(order):
    v = table[m]["vs_reference"]
    colour = "C2" if table[m]["kind"] == "baseline" else ("C1" if v["items_only"] else "C0")
    ax.errorbar(v["diff"], i, xerr=[[v["diff"] - v["low"]], [v["high"] - v["diff"]]], fmt="o", color=colour, capsize=3)
ax.axvline(0, color="grey", lw=1)
ax.set_yticks(range(len(order)), [m + ("¹" if table[m]["kind"] == "method" and table[m]["seeds"] == 1 else "")
                                  for m in order])
ax.set_xlabel("test response NLL minus LoRA's (nats per token; < 0 is better), 95 % interval")
ax.set_title("Each method at its own rate vs LoRA (blue: 3 seeds, orange: 1 seed¹, green: no training)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5 · No training at all: where does prompting stop being enough?
#
# The same test questions, the untouched model, four prompts: the question alone (zero-shot), the same
# first training rows before every question (few-shot), the training rows BM25 ranks highest for the
# question (Robertson & Zaragoza 2009; the `bm25s` package, Lù 2024) — retrieval-augmented few-shot, from the
# very rows the methods trained on —, and the question alone on the NF4 base without an adapter: the
# starting point of QLoRA, which tells the cost of quantizing from what training did. Here is the retrieved
# prompt for one test question, built live.

# %%
train_rows = sft.task_rows("train", c["train_rows"])
test_row = sft.task_rows("test", 1)[0]
retriever = prompting.Retriever(train_rows)
shots = retriever.top(prompting.question(test_row), c["few_shot_k"])
row = prompting.few_shot_row(test_row, shots)
prompt = sft.prompt_for(tokenizer, row)
print(prompt)
print(f"prompt tokens: zero-shot {prompting.prompt_tokens(tokenizer, sft.prompt_for(tokenizer, test_row))}, "
      f"retrieved few-shot {prompting.prompt_tokens(tokenizer, prompt)} (the retrieval pool: {len(train_rows)} rows)\n")
print(f"{'no training':<20}{'prompt tokens':>14}{'extra':>7}{'s / answer':>11}{'test ppl':>10}{'ROUGE-L':>9}"
      f"{'format':>8}")
for b in baseline_names:
    r = table[b]
    print(f"{b:<20}{r['prompt_tokens']:>14.0f}{r['extra_prompt_tokens']:>7.0f}{r['latency_seconds']:>11.2f}"
          f"{r['ppl']:>10.2f}{r['rouge_l']['mean']:>9.3f}{r['format_rate']['mean']:>8.2f}")
fs, rf = results["baselines"]["few_shot"]["test"], results["baselines"]["retrieval_few_shot"]["test"]
v = cm.versus([fs["nll_rows"]], [rf["nll_rows"]], a_fixed=True, b_fixed=True)
fmt = mcnemar(fs["format_rows"], rf["format_rows"])
print(f"\nretrieval few-shot minus plain few-shot, test NLL: {v['diff']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}] "
      f"({v['verdict']}); format: {sum(rf['format_rows'])} vs {sum(fs['format_rows'])} of {len(fs['format_rows'])} "
      f"answers, McNemar p = {fmt['p']:.2f}")
nf4 = cm.versus([results["baselines"]["zero_shot"]["test"]["nll_rows"]],
                [results["baselines"]["zero_shot_nf4"]["test"]["nll_rows"]], a_fixed=True, b_fixed=True)
print(f"NF4 base minus fp32 base, zero-shot test NLL: {nf4['diff']:+.3f} [{nf4['low']:+.3f}, {nf4['high']:+.3f}] "
      f"({nf4['verdict']}): what quantizing costs before any training")

# %% [markdown]
# Every example in the prompt is paid for at every query, in tokens read (the extra column) and in the
# seconds of each answer (measured in the same rounds as the methods'); a trained adapter is paid for
# once. Whether retrieval beats taking the first rows is printed above, with its interval: a difference
# inside it is no evidence that choosing the examples by similarity matters here. QLoRA is read against the
# NF4 line, not the fp32 one: the difference between the two bases is quantization's, before any training.
#
# ## 6 · Two of the runs again, live and shortened
#
# The same functions the command used — `build_method`, `place` (the model on the GPU if there is one),
# `training_batches`, `train_steps`, and its validation score, the mean of `row_nlls` — on two methods at the
# rates the sweep chose, cut to two steps on two rows and scored on two validation rows. The numbers are
# smaller than the table's (fewer steps); the point is that the table's runs are this code, nothing else.

# %%
val_rows = sft.task_rows("validation", 2)
batches = methods.training_batches(tokenizer, train_rows[:2], 1, 2, seed=0, max_length=c["max_length"])
for m in ("lora", "ia3"):
    model = methods.place(methods.build_method(m, name, run_spec), m)
    before = statistics.fmean(cm.row_nlls(cm.prepared(model, m), tokenizer, val_rows))
    log = methods.train_steps(model, batches, table[m]["learning_rate"])
    after = statistics.fmean(cm.row_nlls(cm.prepared(model, m), tokenizer, val_rows))
    print(f"{m:<6} lr {table[m]['learning_rate']:.0e} on {get_device()}: training loss "
          f"{' → '.join(f'{x:.2f}' for x in log['loss'])}; validation response NLL {before:.2f} → {after:.2f}")
    del model

# %% tags=["nbval-ignore-output"]
print("seconds per one-row step, this machine, now:", [round(s, 1) for s in log["seconds"]])

# %% [markdown]
# ## 7 · A rule-of-thumb table, read against the measurement
#
# A rule-of-thumb table says: full fine-tuning "highest memory, slowest, best (potentially)"; LoRA "low
# memory, fast, good"; QLoRA "lowest memory, medium speed, good"; adapters "low, medium, good"; prompt
# tuning "very low memory, fastest, lower quality, limited portability"; and PEFT as a whole "90 %+ memory
# reduction". The cell below checks each cell of it against the measurement with one rule: quality is
# *held* or *did not hold* only when the item-by-item interval against LoRA excludes zero, else *not
# separated* ("good" is read as "not below LoRA": a tie is not separated, not held); speed is *held* or
# *did not hold* only when every timing round agrees, and a claim over several methods ("slowest") holds
# only when each of its comparisons does. "Adapters" are read on IA3 (see *Adapters* below).

# %%
def rounds(m):
    return [statistics.median(rnd[m]["step_seconds"]) for rnd in results["costs"]["rounds"]]


def faster(a, b):
    """a faster than b in every round: 'held'; slower in every round: 'did not hold'; else 'not separated'."""
    pairs = list(zip(rounds(a), rounds(b)))
    return "held" if all(x < y for x, y in pairs) else "did not hold" if all(x > y for x, y in pairs) else "not separated"


def every(verdicts):
    """One verdict from several: 'held' if all held, 'did not hold' if one did not, else 'not separated'."""
    return "held" if all(v == "held" for v in verdicts) else "did not hold" if "did not hold" in verdicts \
        else "not separated"


def quality(m, claim_lower_is_worse=False):
    v = table[m]["vs_reference"]["verdict"]
    if v == "not separated":
        return "not separated"
    worse = v == "higher"
    return "held" if worse == claim_lower_is_worse else "did not hold"


def speeds(*ms):
    return " vs ".join(f"{m} {table[m]['seconds_per_step']:.2f}" for m in ms) + " s/step"


peak = {m: table[m]["tensor_peak_bytes"] for m in method_names}
by_peak = sorted(method_names, key=peak.get)
cut = {m: 1 - peak[m] / peak["full"] for m in method_names if m != "full"}
share = {m: table[m]["trainable_parameters"] / table["full"]["trainable_parameters"] for m in method_names if m != "full"}
others = [m for m in method_names if m != "full"]
claims = [
    ("full: highest memory", "held" if by_peak[-1] == "full" else "did not hold", f"highest: {by_peak[-1]}"),
    ("full: slowest", every([faster(m, "full") for m in others]),
     f"slowest other: {speeds(max(others, key=lambda m: table[m]['seconds_per_step']), 'full')}"),
    ("full: best quality (vs LoRA)", quality("full"), versus_cell(table["full"])),
    ("LoRA: low memory (below full)", "held" if peak["lora"] < peak["full"] else "did not hold",
     f"{cut['lora']:.0%} below full"),
    ("LoRA: fast (faster than full)", faster("lora", "full"), speeds("lora", "full")),
    ("QLoRA: lowest memory", "held" if by_peak[0] == "qlora" else "did not hold", f"lowest: {by_peak[0]}"),
    ("QLoRA: medium speed (slower than LoRA)", faster("lora", "qlora"), speeds("lora", "qlora")),
    ("QLoRA: good quality (not below LoRA)", quality("qlora"), versus_cell(table["qlora"])),
    ("adapters (IA3): low memory (below full)", "held" if peak["ia3"] < peak["full"] else "did not hold",
     f"{cut['ia3']:.0%} below full"),
    ("adapters (IA3): medium speed (LoRA to full)", every([faster("ia3", "full"), faster("lora", "ia3")]),
     speeds("lora", "ia3", "full")),
    ("adapters (IA3): good quality (not below LoRA)", quality("ia3"), versus_cell(table["ia3"])),
    ("prompt tuning: very low memory (below LoRA)", "held" if peak["prompt_tuning"] < peak["lora"] else "did not hold",
     f"rank {by_peak.index('prompt_tuning') + 1} of {len(by_peak)} from the lowest"),
    ("prompt tuning: fastest", every([faster("prompt_tuning", m) for m in method_names if m != "prompt_tuning"]),
     f"fastest: {min(method_names, key=lambda m: table[m]['seconds_per_step'])}"),
    ("prompt tuning: lower quality than LoRA", quality("prompt_tuning", claim_lower_is_worse=True),
     versus_cell(table["prompt_tuning"])),
    ("PEFT: 90 %+ memory reduction (tensor peak)", "held" if min(cut.values()) >= 0.9 else "did not hold",
     f"cuts of the tensor peak vs full: {min(cut.values()):.0%} to {max(cut.values()):.0%}"),
    ("PEFT: 90 %+ fewer trained parameters", "held" if max(share.values()) <= 0.1 else "did not hold",
     f"trained share of full's: {min(share.values()):.4%} to {max(share.values()):.2%}"),
]
for claim, verdict, why in claims:
    print(f"  {claim:<47} {verdict:<15} {why}")
print("\nthe tensor peak's parts at its moment (MemTracker):")
for m in ("full", "lora", "qlora", "prompt_tuning"):
    parts = results["costs"]["sizes"][m]["by_category"]
    print(f"  {m:<15}" + ", ".join(f"{k} {v / MB:.0f}" for k, v in parts.items() if v >= 1e6) + " MB")

# %% [markdown]
# Why, cell by cell (the numbers are the ones printed above):
#
# - **Memory.** Full fine-tuning keeps a gradient and two AdamW moments for every weight (lesson 04); every
#   PEFT method keeps them only for its few parameters, so its peak is the frozen weights plus the activations
#   (the peak's parts are printed below the claims). What PEFT cuts by "90 %" and more is what it trains and
#   ships — the trainable-parameter and on-disk columns of section 3 —, not the peak: the frozen weights and
#   the activations stay. Larger models do not change that by much: Hu et al. 2022 (§4.2) report GPT-3's
#   training memory falling by two thirds with LoRA, not by nine tenths, and peft's own method comparison on
#   Llama-3.2-3B (docs/references.md) measures LoRA's peak at more than half of full fine-tuning's. QLoRA
#   stores its frozen linear layers in 4 bits and dequantizes one at a time to compute. DoRA's peak is above
#   LoRA's for a reason its code shows (`DoraLinearLayer.forward`, `peft/tuners/lora/dora.py`): the norm
#   of W + ΔW is computed per layer but detached (DoRA §4.3), so it is a temporary; what stays is
#   `(mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result * scaling`, which makes autograd keep
#   each adapted layer's base output and LoRA output for the magnitude's gradient: two extra activations of
#   every adapted layer. GLoRA's effective weight W0 + W0 ⊙ A + B is a full-size matrix per layer, built at
#   every forward and kept for the backward pass.
# - **Speed.** Seconds per step are medians of interleaved rounds in one process, and a claim holds only if
#   every round agrees. QLoRA pays for dequantizing each layer at every pass; full fine-tuning for its
#   weight gradients and the update of every weight. Unmerged DoRA pays at inference too: every forward
#   rebuilds B·A and the norm of every adapted weight, for each new token (peft caches neither by default:
#   `ENABLE_DORA_CACHING = False`, `peft/tuners/lora/dora.py`); merging removes that.
#   bitsandbytes' 4-bit kernels are made for GPUs: on a CPU QLoRA's dequantization is slow (lesson 04),
#   and the "medium speed" of the table is a GPU's. Two things the latency columns do not control: within
#   a round the unmerged answer is timed first and the merged one second, on the same model, so the merged
#   one runs warm; and prompt and prefix tuning answer through the course's greedy loop
#   (`VirtualTokenGreedy`, the end of section 10 says why), the others through transformers' `generate`.
#   Read a latency difference inside the round-to-round spread printed in section 3 as a tie.
# - **Quality.** Read from the plot: a method is better or worse than LoRA only where its interval
#   excludes zero. Lester et al. 2021 (Figure 1) find prompt tuning matches full fine-tuning only at
#   billions of parameters; at 135M this table tests the small end of that curve.
# - **Adapters** ("low, medium, good") in their original sense were not measured: peft has no bottleneck
#   adapter (Houlsby et al. 2019) among its tuners. IA3, which rescales activations instead of adding
#   layers, is the nearest method here, and the table's adapter rows are IA3's: a stand-in, not the method.
# - **Portability** (prompt tuning's "limited") is not a number this run measures: its file, like every
#   adapter's, works only with the base model and tokenizer it was trained on.
#
# ## 8 · Learning and forgetting
#
# Biderman et al. 2024 ("LoRA Learns Less and Forgets Less") find, on large code and math data, that the
# two go together and that LoRA forgets less than full fine-tuning. Here, on 32 rows and 24 steps, the
# printout below says otherwise: full fine-tuning (Δlogp −0.19) and IA3 (−0.20) changed the old answers
# least and learned less than LoRA (−0.41); prompt and prefix tuning learned least and forgot most (−0.92,
# −1.52) — their virtual tokens sit in front of every input, the general questions included. Read the
# paper's result as a large-data finding that this small run does not reproduce, not as a rule. Each
# method's gain on the task (test NLL below the untouched
# model's) against its change on general questions (Δlogp; `kept`, the share of greedy answers still the
# same, is printed too: on so few short answers it moves, per seed, in steps of a sixteenth, and here it is
# 0 for every PEFT method, so Δlogp is the measure to read). Both are
# measured against the fp32 base's old answers, so QLoRA's Δlogp includes what quantizing alone does: read
# it against the NF4 base's point, not against zero.

# %%
zero = table["zero_shot"]["nll"]["mean"]
fig, ax = plt.subplots(figsize=(7, 4.5))
for m in method_names:
    r = table[m]
    gain, lp = zero - r["nll"]["mean"], r["logprob_change"]
    ax.errorbar(gain, lp["mean"], xerr=[[r["nll"]["high"] - r["nll"]["mean"]], [r["nll"]["mean"] - r["nll"]["low"]]],
                yerr=[[lp["mean"] - lp["low"]], [lp["high"] - lp["mean"]]], fmt="o",
                color="C1" if r["seeds"] == 1 else "C0", capsize=2)
    ax.annotate(m, (gain, lp["mean"]), fontsize=8, xytext=(3, 3), textcoords="offset points")
nf4_row = table["zero_shot_nf4"]
ax.plot(zero - nf4_row["nll"]["mean"], nf4_row["logprob_change"]["mean"], "s", color="C2")
ax.annotate("NF4 base, untrained", (zero - nf4_row["nll"]["mean"], nf4_row["logprob_change"]["mean"]), fontsize=8)
ax.axhline(0, color="grey", lw=1)
ax.set_xlabel("learned: zero-shot test NLL minus the method's (nats per token)")
ax.set_ylabel("forgot: Δ log-prob of old general answers")
ax.set_title("Learning against forgetting, 95 % intervals (orange: 1 seed)")
plt.tight_layout()
plt.show()
for m in method_names:
    print(f"{m:<15} kept {table[m]['kept']:.2f}   Δlogp {cell(table[m]['logprob_change'], '{:+.2f}')}")

# %% [markdown]
# ## 9 · Lesson 06's run beside this table
#
# Lesson 06's `course sft` trained LoRA (rank 4, its own default rate) on the same 32 rows for the same
# 24 steps of 4 rows, one seed, and scored the first 8 test rows with the same cap; this table's LoRA is
# rank 8 at the rate its sweep chose, over three seeds. Its result is a pointer from a neighbouring
# configuration, not a row of the comparison.

# %%
sft_run = load_results("sft")
sft_cfg = sft_run["config"]
print(f"lesson 06 (`{sft_run['command']}`, one seed): LoRA r={sft_cfg['r']}, lr {sft_cfg['learning_rate']:g}, "
      f"{sft_run['stopped_at_step']} steps of {sft_cfg['per_device_train_batch_size']} rows from "
      f"{sft_run['train_rows']} rows; first {sft_run['test_rows']} test rows: response ppl "
      f"{sft_run['before']['chat']['response_ppl']:.2f} before, {sft_run['after']['chat']['response_ppl']:.2f} after; "
      f"format {sft_run['after']['chat']['format_rate']:.2f} (cap {sft_cfg['max_new_tokens']})")
test_rows = sft.task_rows("test", c["test_rows"])
n = sft_run["test_rows"]
tokens = [len(tokenizer(r["messages"][-1]["content"], add_special_tokens=False)["input_ids"]) for r in test_rows[:n]]


def weighted_ppl(nll_rows):  # lesson 06's response perplexity: the NLL per token over all the rows' tokens
    return math.exp(sum(x * t for x, t in zip(nll_rows[:n], tokens)) / sum(tokens))


lora_runs = [r for r in results["runs"] if r["method"] == "lora" and r.get("chosen")]
by_seed = ", ".join(f"{weighted_ppl(r['test']['nll_rows']):.2f}" for r in lora_runs)
print(f"this table on the same first {n} rows: LoRA {by_seed} "
      f"(by seed); retrieval few-shot {weighted_ppl(results['baselines']['retrieval_few_shot']['test']['nll_rows']):.2f}; "
      f"zero-shot {weighted_ppl(results['baselines']['zero_shot']['test']['nll_rows']):.2f}")
print(f"retrieval few-shot vs LoRA on all {c['test_rows']} test rows: {versus_cell(table['retrieval_few_shot'])}")

# %% [markdown]
# ## 10 · A decision table for your own job
#
# Each row names a situation, what the measurements point to, and the number behind it (from the tables
# above, or a paper in docs/references.md). It is printed from the results, so that it cannot drift from
# them; a verdict inside an interval is printed as a tie, not a win.

# %%
def tie_set(names):
    """The names whose NLL is not separated from the best of them (the best included)."""
    best = min(names, key=lambda m: table[m]["nll"]["mean"])
    rows_ = {m: [r["test"]["nll_rows"] for r in sorted((r for r in results["runs"] if r["method"] == m
                                                          and r.get("chosen")), key=lambda r: r["seed"])]
             for m in names}
    return best, [m for m in names if m == best or cm.versus(rows_[best], rows_[m])["verdict"] == "not separated"]


best_all, top = tie_set(seeded)
small_files = sorted((m for m in seeded if table[m]["adapter_bytes"] < 1e6), key=lambda m: table[m]["adapter_bytes"])
rf_vs_fs = cm.versus([fs["nll_rows"]], [rf["nll_rows"]], a_fixed=True, b_fixed=True)  # section 5's comparison
shots_choice = {"lower": "retrieval few-shot", "higher": "few-shot, the first rows"}.get(
    rf_vs_fs["verdict"], "few-shot (retrieval not separated from the first rows), then measure")
lean = min((m for m in seeded if m == cm.REFERENCE or table[m]["vs_reference"]["verdict"] != "higher"), key=peak.get)
decisions = [
    ("the best quality at this budget", " = ".join(top),
     f"lowest mean test NLL: {best_all}; not separated from it: {', '.join(m for m in top if m != best_all) or 'none'} "
     f"(3-seed methods; item-by-item 95 % intervals)"),
    ("a handful of examples, no training budget", shots_choice,
     f"retrieval minus the first rows: {rf_vs_fs['diff']:+.3f} [{rf_vs_fs['low']:+.3f}, {rf_vs_fs['high']:+.3f}] "
     f"({rf_vs_fs['verdict']}); retrieval vs LoRA: {versus_cell(table['retrieval_few_shot'])}; costs "
     f"+{table['retrieval_few_shot']['extra_prompt_tokens']:.0f} prompt tokens on every query"),
    ("thousands of rows, quality first", "full fine-tuning or LoRA at a higher rank, then measure",
     f"not measured here ({c['train_rows']} training rows); Biderman et al. 2024: on large code and math data full "
     f"fine-tuning learns more than LoRA, and forgets more"),
    ("training memory is the limit", f"{lean} (tensor peak {peak[lean] / MB:.0f} MB)",
     f"the lowest peak among the 3-seed methods not worse than LoRA; full {peak['full'] / MB:.0f} MB, LoRA "
     f"{peak['lora'] / MB:.0f} MB, QLoRA {peak['qlora'] / MB:.0f} MB, quality vs LoRA {versus_cell(table['qlora'])}"),
    ("many tasks from one base: file per task", f"files below 1 MB: {', '.join(small_files) or 'none'}",
     "; ".join([f"{m} {table[m]['adapter_bytes'] / 1e3:.0f} kB ({versus_cell(table[m])})" for m in small_files]
               + [f"LoRA {table['lora']['adapter_bytes'] / MB:.1f} MB", "full fine-tuning ships the model, "
                  f"{table['full']['adapter_bytes'] / MB:.0f} MB"])),
    ("general answers must not change", "trade-off: see section 8",
     "; ".join(f"{m} Δlogp {table[m]['logprob_change']['mean']:+.2f}" for m in seeded)
     + " — here full fine-tuning forgot less than LoRA; Biderman et al. 2024 found the opposite on large data"),
    ("fast answers", "merge the adapter (or full fine-tuning)",
     "; ".join(f"{m} {table[m]['latency_unmerged_seconds']:.2f} s → {table[m]['latency_merged_seconds']:.2f} s merged"
               for m in ("lora", "dora") if table[m]["latency_merged_seconds"] is not None)),
]
for job, choice, why in decisions:
    print(f"- {job:<42} -> {choice}\n    {why}")

# %% [markdown]
# What this comparison cut, to fit a 2-core CPU (`course compare-methods` options give more):
#
# - one task, one small model, 32 training rows: the papers and peft's method comparison (MetaMathQA on a
#   GPU, docs/references.md) train on thousands of examples and billions of parameters;
# - three seeds per method, and each rate chosen on the first seed alone; one rank and one count of virtual
#   tokens for all;
# - 8 answered test rows for ROUGE-L and format, 16 general questions for forgetting;
# - PiSSA uses peft's fast randomized SVD (`pissa_niter_4`), not the exact one.
#
# Two library paths are broken in the installed versions and are not used (`methods.VirtualTokenGreedy`'s
# docstring, tests/test_methods.py). transformers 5.24 renamed the cache keyword `past_key_values` to `cache`,
# and peft 0.21.2's `prepare_inputs_for_generation` still reads and writes the old name. For prompt tuning
# it finds no cache at any step and puts the virtual tokens in front of every new token again; for prefix
# tuning the model receives both names and `deprecate_kwarg` keeps `cache`, the empty one, so the prefix is
# never seen. Both are decoded here by a greedy loop that fills the cache as peft's `forward` does, checked
# token for token against greedy decoding by `forward`.
#
# ## Summary
#
# - Eleven methods, each through peft (full fine-tuning through transformers), trained on the same rows,
#   steps and tokens at lesson 06's budget, each at its own learning rate from a sweep that extends until
#   its best rate is interior (or says that it is not); three seeds each.
# - Quality is read item by item against LoRA with Student's t intervals; a difference inside the interval
#   is a tie, and the table prints it as one.
# - Memory, seconds and latency are measured in one process, in interleaved rounds; the rule-of-thumb
#   table's adjectives are checked one by one.
# - A rule-of-thumb table is a prior; a measurement on your model, task and budget decides.
#
# **Exercises:** [exercises/11_which_method.ipynb](../exercises/11_which_method.ipynb) — count a method's
# trainable parameters by hand, price prompt tuning's virtual tokens, pick the methods that fit a memory
# budget, score documents with BM25 by hand and retrieve with it, and choose methods for a described job.
