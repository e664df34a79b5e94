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
base = methods.build_method("lora", name, spec).get_base_model()
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
del base
print(f"{'method':<15}{'by hand':>12}{'peft':>12}{'share of the model':>20}")
for m in by_hand:  # one model at a time: six fp32 copies of the model at once would hold about 3 GB
    model = methods.build_method(m, name, spec)
    peft_count = model.get_nb_trainable_parameters()[0]
    assert by_hand[m] == peft_count == methods.trainable_parameters(model), m
    print(f"{m:<15}{by_hand[m]:>12,}{peft_count:>12,}{by_hand[m] / total:>19.4%}")
    del model

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
# the noise from one seed to the next as well as the test items'. The run was stopped and resumed: the
# processes below ran the same code, some on one thread and the last on two, so some methods' later
# seeds ran on two threads — the same computation, up to rounding.
#
# Every run at the chosen rate is scored on 32 test rows (the response NLL of each row, so that two
# methods are compared item by item), answers greedily the first 8 (lesson 06's cap of 24 tokens:
# ROUGE-L and format rate) and answers 16 general questions (lesson 05's retention probe). The costs were
# measured apart from the training, in one process on 2 threads, method after method in the same order in
# each of three rounds (the medians are shown). What it all cost, and on what machine, is printed here; the same command runs
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
ran = [p for p in results["processes"] if p["wall_seconds"]]
share = [p["cpu_seconds"] / (p["wall_seconds"] * p["threads"]) for p in ran]
print(f"in all: {results['cpu_seconds'] / 3600:.1f} CPU-hours in {len(ran)} processes; the wall time, "
      f"{results['wall_seconds'] / 3600:.1f} h, is not what the command costs on an idle machine: the processes kept "
      f"their threads busy {min(share):.0%} to {max(share):.0%} of their wall time (why was not recorded)")
speed = results["machine"]
print(f"training: {speed['train_tokens']:,} tokens at {speed['train_tokens_per_second']:.0f} tokens/s "
      f"({speed['threads']} threads, {speed['cpu_cores']} cores)")
print("to run it again from nothing:", results["command"].replace(" --resume True", ""))
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
# (`seeds_by_items_difference`): negative is better. A difference whose interval excludes 0 is *lower* or
# *higher*; one whose interval contains 0 was not shown, and that is not the same as equal: it is a *tie*
# only when the whole interval lies within ±0.05 nats (`cm.TIE_MARGIN`, 5 % of perplexity), and
# *unresolved* when the interval is wider than that — the measurement cannot tell. ROUGE-L and format rate
# (the second table) are means over seeds × the answered rows, with their 95 % intervals; *Δlogp* is
# lesson 05's probe, the change of log-probability of the general questions' old answers (nats per token,
# < 0: they became less likely), with its interval.

# %%
def cell(iv, fmt="{:.3f}", bounds=(-math.inf, math.inf)):
    low, high = max(iv["low"], bounds[0]), min(iv["high"], bounds[1])  # a rate's t interval, clipped to [0, 1]
    return f"{fmt.format(iv['mean'])} [{fmt.format(low)}, {fmt.format(high)}]"


def nll_rows(m):
    """Method m's test response NLL per test row, one list per seed (its runs at the chosen rate)."""
    return [r["test"]["nll_rows"] for r in sorted((r for r in results["runs"] if r["method"] == m
                                                   and r.get("chosen")), key=lambda r: r["seed"])]


def word(v):
    """The verdict of a comparison: lower, higher, tie (not separated, all within ±TIE_MARGIN) or unresolved."""
    return v["verdict"] if v["verdict"] != "not separated" else "tie" if v["tie"] else "unresolved"


def versus_cell(row):
    v = row["vs_reference"]
    if v is None:
        return "reference"
    return f"{v['diff']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}] {word(v)}"


print(f"{'method':<20}{'LR':>7}{'seeds':>6}{'test ppl [95%]':>24}  {'Δ NLL vs LoRA [95%]':<38}")
for m in method_names + baseline_names:
    row = table[m]
    mark = "¹" if row["kind"] == "method" and row["seeds"] == 1 else " "
    lr = f"{row['learning_rate']:.0e}" if row["kind"] == "method" else "—"
    seeds = row["seeds"] if row["kind"] == "method" else "—"
    ppl = f"{row['ppl']:.2f} [{row['ppl_low']:.2f}, {row['ppl_high']:.2f}]"
    print(f"{m + mark:<20}{lr:>7}{seeds:>6}{ppl:>24}  {versus_cell(row):<38}")
print(f"\n{'method':<20}{'ROUGE-L [95%]':>20}{'format rate [95%]':>20}  {'Δlogp [95%]':<22}")
for m in method_names + baseline_names:
    row = table[m]
    logp = cell(row["logprob_change"], "{:+.2f}") if "logprob_change" in row else "— (nothing trained)"
    print(f"{m:<20}{cell(row['rouge_l'], '{:.2f}', (0, 1)):>20}{cell(row['format_rate'], '{:.2f}', (0, 1)):>20}  {logp:<22}")

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
print("AdaLoRA's trainable count and file are those of the model as built, at rank "
      f"{methods.method_config('adalora', run_spec).init_r}; once trained, peft saves only the ranks its allocator kept")
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
print(f"timing: medians of {len(results['costs']['rounds'])} rounds, each timing every method in turn, always in "
      f"the order {', '.join(c['methods'])}, then the no-training arms ({c['timing_steps']} steps; answers of "
      f"{c['latency_tokens']} new tokens); "
      f"{results['machine']['threads']} threads; the machine's load average during them: {min(loads):.1f} to "
      f"{max(loads):.1f}")

# %% [markdown]
# How to read the costs: *peak* is the tensor peak of a training step measured by PyTorch's MemTracker
# (lesson 04: parameters, gradients, AdamW states, activations; fp32 here) on the first batch, *vram est*
# is `course vram`'s prediction for the same shapes where its estimator covers the method (full, LoRA and
# its plain variants, QLoRA). *s/step* is a training step of 4 rows; *answer* the seconds to write 8 new
# tokens after the first test question, with the adapter as trained (unmerged) and merged into the weights.
# QLoRA is not merged: peft can merge into the 4-bit weights (`Linear4bit.merge`, with a warning), but the
# merged weight is rounded to 4 bits again, a different model from the one trained and tested, so this run
# does not time it. Two things the timing does not control: every round times the methods in the
# same order, so a method's place in it is not balanced; and AdaLoRA's steps are timed before its
# allocator starts pruning (the step is printed in section 4). Prompt and prefix tuning have nothing to merge: their cost is *extra positions*, the
# virtual tokens every layer attends to (prompt tuning reads them through every layer like tokens; prefix
# tuning's are keys and values already, cached positions).
#
# ## 4 · The sweeps, and whether each run left its start
#
# The learning rate each method ran at is its own, chosen on the validation rows at the first seed. Below,
# each sweep (* = chosen), whether the chosen rate is interior, and the validation NLL of the untrained
# model (fp32; QLoRA's is its NF4 base) beside the chosen runs', per seed, each seed read three ways: it
# *left* its start (at least 0.05 nats below it), *stayed* (a run that stayed measures its initialisation,
# not the method), or ended *worse* than no training at all (a run that went astray at that rate).

# %%
print("the ladder of rates:", ", ".join(f"{lr:g}" for lr in cm.LR_LADDER))
for m in method_names:
    row = table[m]
    cells = "  ".join(f"{lr:.0e}: {nll:.3f}{'*' if lr == row['learning_rate'] else ''}"
                      for lr, nll in row["sweep"].items())
    print(f"{m:<15}{cells}   [{row['sweep_status']}]")
    print(f"{'':<15}validation NLL untrained {row['untrained_val_nll']:.3f} → "
          + ", ".join(f"{x:.3f} {where}" for x, where in zip(row["val_nll_by_seed"], row["start_by_seed"]))
          + " (by seed)")
for m in ("prompt_tuning", "prefix_tuning"):
    print(f"{m}: first training loss by seed {', '.join(f'{x:.2f}' for x in table[m]['first_loss_by_seed'])} "
          f"(LoRA's: {', '.join(f'{x:.2f}' for x in table['lora']['first_loss_by_seed'])})")
ada = methods.method_config("adalora", run_spec)
print(f"AdaLoRA's allocator: ranks from {ada.init_r} to {ada.target_r} on average, pruned between step {ada.tinit} "
      f"and step {ada.total_step - ada.tfinal} of {ada.total_step}")
scale = {"lora": run_spec.lora_alpha / run_spec.r, "rslora": run_spec.lora_alpha / math.sqrt(run_spec.r)}
product = {m: scale[m] * table[m]["learning_rate"] for m in scale}
print(f"scale × rate: LoRA {scale['lora']:.2f} × {table['lora']['learning_rate']:.0e} = {product['lora']:.2e}, rsLoRA "
      f"{scale['rslora']:.2f} × {table['rslora']['learning_rate']:.0e} = {product['rslora']:.2e} "
      f"({abs(product['lora'] / product['rslora'] - 1):.0%} apart)")

# %% [markdown]
# The chosen rate is itself a measurement on one seed, and a noisy one: prompt tuning's sweep chose 3e-2
# over 1e-2 by a few hundredths of a nat, and at that rate one of its three seeds ended *worse* than the
# untrained model (printed above) — a rate that is best at one seed can be unstable at another; this run
# keeps it, and its interval shows what it cost. "Interior" says only that the best rate is not at an edge
# of its sweep: AdaLoRA's dips again at 3e-2. Prompt and prefix tuning are read against the base model's
# validation NLL too, but neither starts exactly there: prompt tuning's virtual tokens start as the
# embeddings of a short instruction ("Explain the Python function in one line."), and its first training
# losses are close to LoRA's; prefix tuning's prefix starts random, and its first losses (printed) are far
# above LoRA's, which starts from the unchanged model.
#
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
# scale acts, to first order, like a larger rate), so the two were expected to tie. The table above says
# they did not: rsLoRA's test NLL is higher than LoRA's (+0.076, interval [+0.040, +0.113]). The chosen
# rungs are not the reason: scale × rate is nearly the same for both (the last line of the sweeps'
# printout). A likelier one, a hypothesis this run does not test: the scale stands in for the rate only
# while A stays near its random start. Adam sizes A's steps by the rate, not by the scale, so once A has
# moved the two differ — and LoRA's rate, three times rsLoRA's, moves A about three times as far per
# step. Kalajdzievski 2023 shows the difference across ranks, which this run, at one rank, does not test.
#
# Every method against LoRA, with its interval:

# %%
order = sorted((m for m in method_names + baseline_names if table[m]["vs_reference"]),
               key=lambda m: table[m]["vs_reference"]["diff"])
fig, ax = plt.subplots(figsize=(8, 0.35 * len(order) + 1.2))
for i, m in enumerate(order):
    v = table[m]["vs_reference"]
    colour = "C2" if table[m]["kind"] == "baseline" else ("C1" if word(v) == "unresolved" else "C0")
    ax.errorbar(v["diff"], i, xerr=[[v["diff"] - v["low"]], [v["high"] - v["diff"]]], fmt="o", color=colour, capsize=3)
ax.axvline(0, color="grey", lw=1)
ax.set_yticks(range(len(order)), [m + ("¹" if table[m]["kind"] == "method" and table[m]["seeds"] == 1 else "")
                                  for m in order])
ax.set_xlabel("test response NLL minus LoRA's (nats per token; < 0 is better), 95 % interval")
ax.set_title(f"Each method at its own rate vs LoRA ({'/'.join(sorted({str(table[m]['seeds']) for m in method_names}))} "
             "seeds each; orange: unresolved; green: no training)")
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
zs, rs = table["zero_shot"]["vs_reference"], table["retrieval_few_shot"]["vs_reference"]
print(f"\nagainst LoRA: zero-shot {zs['diff']:+.3f}, retrieval few-shot {rs['diff']:+.3f} "
      f"[{rs['low']:+.3f}, {rs['high']:+.3f}]: retrieval closes {1 - rs['diff'] / zs['diff']:.0%} of the gap")
against = {m: cm.versus(nll_rows(m), [rf["nll_rows"]], b_fixed=True) for m in method_names}
print("retrieval few-shot minus each method, item by item:")
for verdict in ("lower", "tie", "unresolved", "higher"):
    names = [f"{m} {v['diff']:+.3f}" for m, v in against.items() if word(v) == verdict]
    label = {"lower": "lower (retrieval better)", "higher": "higher (retrieval worse)"}.get(verdict, verdict)
    print(f"  {label:<26}{', '.join(names) or '—'}")

# %% [markdown]
# Where does prompting stop being enough? Here, later than one might think: choosing the examples by BM25
# beat taking the first training rows (lower, separated, above), it closes most of the gap between the bare
# question and LoRA (the share is printed), and its test NLL
# is not shown different from that of several trained methods (printed above, each compared item by item) —
# but LoRA itself stays separated from it, better.
# Every example in the prompt is paid for at every query, in tokens read (the extra column) and in the
# seconds of each answer; a trained adapter is paid for once. The *prompt tokens* column is a mean over
# the test questions; *s / answer* was timed on the first test question alone (its retrieved prompt is the
# one printed above, longer than the mean), in the same rounds as the methods' and always after them, so
# read the seconds as that one prompt's cost. Whether retrieval beats taking the first rows is printed above, with its interval: a difference
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
# reduction". The cell below checks each cell of it against the measurement, on the methods the table
# names ("adapters" are read on IA3, see *Adapters* below), with these rules. Quality: the item-by-item
# comparison with LoRA decides when it is separated or a tie ("good" is read as "not below LoRA", which a
# tie satisfies); when it is unresolved, each seed is compared alone, and the claim is decided only if every
# seed is separated the same way, else it stays *unresolved*. Speed: *held* or *did not hold* only when
# every timing round agrees, and a claim over several methods ("slowest") only when each of its
# comparisons does. Three rounds are few: two methods of equal speed agree in all three rounds one time in
# four (2 × ½³), so a speed verdict decided by two methods whose rounds' ranges overlap is weak evidence,
# and the cell marks it. The first print is the table itself, each cell's claim with its verdict; the
# second, the numbers behind each.

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


def per_seed(m):
    """m against LoRA one seed at a time (the same seed's batches), item by item: each seed's verdict."""
    return [word(cm.versus([a], [b])) for a, b in zip(nll_rows(cm.REFERENCE), nll_rows(m))]


def quality(m, claim_lower_is_worse=False):
    """A quality claim against LoRA: (verdict, why). A tie counts as 'not below' and as 'not lower'; an unresolved
    pooled interval is read seed by seed, and decides only if every seed alone is separated the same way."""
    v, why = word(table[m]["vs_reference"]), versus_cell(table[m])
    if v == "unresolved":
        seeds = per_seed(m)
        if len(set(seeds)) > 1 or seeds[0] not in ("lower", "higher"):
            return "unresolved", why
        v, why = seeds[0], f"{why}; but {seeds[0]} at each of its {len(seeds)} seeds alone"
    worse = v == "higher"
    if v == "tie":
        return ("did not hold" if claim_lower_is_worse else "held"), why
    return ("held" if worse == claim_lower_is_worse else "did not hold"), why


def speeds(*ms):
    return " vs ".join(f"{m} {table[m]['seconds_per_step']:.2f}" for m in ms) + " s/step"


def speed_claim(pairs, why):
    """'a faster than b' for every (a, b) in pairs: the verdict, and the why marked weak where the pair that decides
    it has overlapping round-to-round ranges (three agreeing rounds are weak evidence there)."""
    verdicts = [faster(a, b) for a, b in pairs]
    deciding = [p for p, v in zip(pairs, verdicts) if v == "did not hold"] or pairs
    weak = [f"{a}/{b}" for a, b in deciding if max(rounds(a)) > min(rounds(b)) and max(rounds(b)) > min(rounds(a))]
    return every(verdicts), why + (f" (ranges overlap, {', '.join(weak)}: weak)" if weak else "")


peak = {m: table[m]["tensor_peak_bytes"] for m in method_names}
by_peak = sorted(method_names, key=peak.get)
cut = {m: 1 - peak[m] / peak["full"] for m in method_names if m != "full"}
share = {m: table[m]["trainable_parameters"] / table["full"]["trainable_parameters"] for m in method_names if m != "full"}
named = ["full", "lora", "qlora", "ia3", "prompt_tuning"]  # the methods the rule-of-thumb table names (IA3 for adapters)
held = lambda ok: "held" if ok else "did not hold"  # noqa: E731
claims = [  # (row, column, the claim, verdict, why)
    ("full", "memory", "highest", held(by_peak[-1] == "full"), f"highest: {by_peak[-1]}"),
    ("full", "speed", "slowest (of the table's methods)",
     *speed_claim([(m, "full") for m in named if m != "full"],
                  f"next: {speeds(max((m for m in named if m != 'full'), key=lambda m: table[m]['seconds_per_step']), 'full')}")),
    ("full", "quality", "best (vs LoRA)", *quality("full")),
    ("LoRA", "memory", "low (below full)", held(peak["lora"] < peak["full"]), f"{cut['lora']:.0%} below full"),
    ("LoRA", "speed", "fast (faster than full)", *speed_claim([("lora", "full")], speeds("lora", "full"))),
    ("LoRA", "quality", "good", "reference", "what the others are compared with"),
    ("QLoRA", "memory", "lowest", held(by_peak[0] == "qlora"),
     f"lowest: {by_peak[0]}, {1 - peak['qlora'] / peak['lora']:.0%} below LoRA"),
    ("QLoRA", "speed", "medium (LoRA to full)",
     *speed_claim([("lora", "qlora"), ("qlora", "full")], speeds("lora", "qlora", "full"))),
    ("QLoRA", "quality", "good (not below LoRA)", *quality("qlora")),
    ("adapters (IA3)", "memory", "low (below full)", held(peak["ia3"] < peak["full"]), f"{cut['ia3']:.0%} below full"),
    ("adapters (IA3)", "speed", "medium (LoRA to full)",
     *speed_claim([("ia3", "full"), ("lora", "ia3")], speeds("lora", "ia3", "full"))),
    ("adapters (IA3)", "quality", "good (not below LoRA)", *quality("ia3")),
    ("prompt tuning", "memory", "very low (below LoRA)", held(peak["prompt_tuning"] < peak["lora"]),
     f"{1 - peak['prompt_tuning'] / peak['lora']:.0%} below LoRA; rank {by_peak.index('prompt_tuning') + 1} of "
     f"{len(by_peak)} from the lowest"),
    ("prompt tuning", "speed", "fastest (of the table's methods)",
     *speed_claim([("prompt_tuning", m) for m in named if m != "prompt_tuning"],
                  f"fastest: {speeds(min(named, key=lambda m: table[m]['seconds_per_step']), 'prompt_tuning')}")),
    ("prompt tuning", "quality", "lower than LoRA", *quality("prompt_tuning", claim_lower_is_worse=True)),
    ("PEFT (tensor peak)", "memory", "90 %+ reduction", held(min(cut.values()) >= 0.9),
     f"cuts of the tensor peak vs full: {min(cut.values()):.0%} to {max(cut.values()):.0%}"),
    ("PEFT (trained weights)", "memory", "90 %+ reduction", held(max(share.values()) <= 0.1),
     f"trained share of full's: {min(share.values()):.4%} to {max(share.values()):.2%}"),
]
columns = ("memory", "speed", "quality")
print(f"{'rule of thumb → measured':<26}" + "".join(f"{col:<30}" for col in columns))
for row in dict.fromkeys(r for r, *_ in claims):
    cells = {col: next((f"{claim.split(' (')[0]}: {verdict}" for r, k, claim, verdict, _ in claims
                        if r == row and k == col), "—") for col in columns}
    print(f"{row:<26}" + "".join(f"{cells[col]:<30}" for col in columns))
print("\nthe numbers behind each cell:")
for row, col, claim, verdict, why in claims:
    if verdict != "reference":
        print(f"  {row + ', ' + col + ': ' + claim:<58} {verdict:<13} {why}")
slowest = max(method_names, key=lambda m: table[m]["seconds_per_step"])
print(f"\nnot in the table: {slowest}, {table[slowest]['seconds_per_step']:.2f} s/step, is slower than full "
      f"({table['full']['seconds_per_step']:.2f}) in {sum(x > y for x, y in zip(rounds(slowest), rounds('full')))} of "
      f"{len(rounds('full'))} rounds")
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
# - **Speed.** Seconds per step are medians of three rounds in one process on 2 threads, the methods always
#   in the same order. Full fine-tuning pays for its weight gradients and the update of every weight; QLoRA
#   for dequantizing each layer at every pass. On this CPU QLoRA landed between LoRA and full, as the table
#   says, but close to LoRA (its rounds overlap LoRA's: weak). Of all the methods, GLoRA is the slowest, and
#   its code shows why: `GloraLinear.forward` (`peft/tuners/glora/layer.py`) runs the frozen layer, then
#   builds the full-size `weight_eff` and runs a second full matrix product `F.linear(x, weight_eff)`, and
#   subtracts the first result — two full products per adapted layer where LoRA has one and two thin ones.
#   The same second product makes its unmerged answers slow; merged, it is a plain model again. Unmerged
#   DoRA pays at inference too: every forward rebuilds B·A and the norm of every adapted weight, for each
#   new token (peft caches neither by default: `ENABLE_DORA_CACHING = False`, `peft/tuners/lora/dora.py`);
#   merging removes that. Two things the latency columns do not control: within a round the unmerged answer
#   is timed first and the merged one second, on the same model, so the merged one runs warm; and prompt
#   and prefix tuning answer through the course's greedy loop (`VirtualTokenGreedy`, the end of section 10
#   says why), the others through transformers' `generate`. Section 10 reads a merging gain against the
#   noise of two answers that do the same work.
# - **Quality.** Read from the plot: a method is better or worse than LoRA only where its interval
#   excludes zero. At this budget "good" held for DoRA and AdaLoRA (ties with LoRA) and for no other method:
#   full fine-tuning at its chosen rate, IA3, QLoRA, GLoRA, rsLoRA and PiSSA are all separated from LoRA,
#   worse, by amounts the first table prints — and the best no-training arm, retrieval few-shot, is not
#   shown different from IA3 or QLoRA (section 5). Full fine-tuning's 135 million weights, 32 rows and 24
#   steps are the setting where its "best (potentially)" is least likely; the claim is about more data.
#   Prompt tuning's pooled interval is wide because one seed went astray (section 4), and each seed alone
#   is worse than LoRA: consistent with Lester et al. 2021 (Figure 1), who find prompt tuning matches full
#   fine-tuning only at billions of parameters; at 135M this table tests the small end of that curve.
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
# least, LoRA's changed more (−0.41), and both learned less than LoRA (section 3). Prefix tuning, which
# changes no weight, forgot most (−1.52): its virtual keys and values sit in front of every input, the
# general questions included. Prompt tuning's interval is too wide to place (one seed went astray,
# section 4). Read the
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
ax.set_title(f"Learning against forgetting, 95 % intervals "
             f"({'/'.join(sorted({str(table[m]['seeds']) for m in method_names}))} seeds each"
             + ("; orange: one seed)" if any(table[m]["seeds"] == 1 for m in method_names) else ")"))
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
# them; a difference inside its interval is never printed as a win, and counts as a tie only when the
# whole interval is within ±0.05 nats.

# %%
def tie_set(names):
    """The best of `names` (lowest mean test NLL) and the names tied with it (tie: not separated, all within ±0.05)."""
    best = min(names, key=lambda m: table[m]["nll"]["mean"])
    return best, [m for m in names if m == best or cm.versus(nll_rows(best), nll_rows(m))["tie"]]


def merge_gain(m):
    """Unmerged over merged answer time, per round."""
    return [r[m]["latency_unmerged_seconds"] / r[m]["latency_merged_seconds"] for r in results["costs"]["rounds"]]


best_all, top = tie_set(method_names)
small_files = sorted((m for m in method_names if table[m]["adapter_bytes"] < 1e6), key=lambda m: table[m]["adapter_bytes"])
rf_vs_fs = cm.versus([fs["nll_rows"]], [rf["nll_rows"]], a_fixed=True, b_fixed=True)  # section 5's comparison
shots_choice = {"lower": "retrieval few-shot", "higher": "few-shot, the first rows"}.get(
    rf_vs_fs["verdict"], "few-shot (retrieval not separated from the first rows), then measure")
as_good = [m for m in method_names if m == cm.REFERENCE or word(table[m]["vs_reference"]) in ("lower", "tie")]
lean = min(as_good, key=peak.get)
lighter = sorted((m for m in method_names if peak[m] < peak[lean]), key=peak.get)
least_forgetting = sorted(method_names, key=lambda m: -table[m]["logprob_change"]["mean"])[:2]
# two answers that do the same work (a plain model, the same prompt): full fine-tuning's and the untouched base's
floor = max(max(r["full"]["latency_unmerged_seconds"], r["zero_shot"]["latency_seconds"])
            / min(r["full"]["latency_unmerged_seconds"], r["zero_shot"]["latency_seconds"])
            for r in results["costs"]["rounds"])
mergeable = [m for m in method_names if table[m]["latency_merged_seconds"] is not None]
pays = [m for m in mergeable if min(merge_gain(m)) > floor]
decisions = [
    ("the best quality at this budget", " = ".join(top),
     f"lowest mean test NLL: {best_all}; tied with it (item by item, 95 %, within ±{cm.TIE_MARGIN} nats): "
     f"{', '.join(m for m in top if m != best_all) or 'none'}"),
    ("a handful of examples, no training budget", shots_choice,
     f"retrieval minus the first rows: {rf_vs_fs['diff']:+.3f} [{rf_vs_fs['low']:+.3f}, {rf_vs_fs['high']:+.3f}] "
     f"({word(rf_vs_fs)}); retrieval vs LoRA: {versus_cell(table['retrieval_few_shot'])}; costs "
     f"+{table['retrieval_few_shot']['extra_prompt_tokens']:.0f} prompt tokens on every query"),
    ("thousands of rows, quality first", "full fine-tuning or LoRA at a higher rank, then measure",
     f"not measured here ({c['train_rows']} training rows); Biderman et al. 2024: on large code and math data full "
     f"fine-tuning learns more than LoRA, and forgets more"),
    ("training memory is the limit", f"{lean} (tensor peak {peak[lean] / MB:.0f} MB)",
     f"the lowest peak among the methods as good as LoRA or better ({', '.join(as_good)}); lower peaks cost quality: "
     + "; ".join(f"{m} {peak[m] / MB:.0f} MB ({peak[m] / peak[lean] - 1:+.0%}), {quality(m)[1]}" for m in lighter)),
    ("many tasks from one base: file per task", f"files below 1 MB: {', '.join(small_files) or 'none'}",
     "; ".join([f"{m} {table[m]['adapter_bytes'] / 1e3:.0f} kB ({quality(m)[1]})" for m in small_files]
               + [f"LoRA {table['lora']['adapter_bytes'] / MB:.1f} MB", "full fine-tuning ships the model, "
                  f"{table['full']['adapter_bytes'] / MB:.0f} MB"])),
    ("general answers must not change", " or ".join(least_forgetting) + " (least forgetting here), at a quality cost",
     "; ".join(f"{m} Δlogp {cell(table[m]['logprob_change'], '{:+.2f}')}, test NLL vs LoRA {versus_cell(table[m])}"
               for m in least_forgetting)
     + f"; LoRA Δlogp {cell(table['lora']['logprob_change'], '{:+.2f}')}. Biderman et al. 2024 found LoRA forgetting "
       "less than full fine-tuning on large data; this small run does not reproduce it"),
    ("fast answers", "merge the adapter: " + (", ".join(pays) or "no gain shown"),
     f"unmerged / merged time, every round above {floor:.2f}× (the most two plain answers of the same work differed): "
     + ", ".join(pays) + "; not shown (inside that noise): "
     + ", ".join(f"{m} {min(merge_gain(m)):.2f}–{max(merge_gain(m)):.2f}×" for m in mergeable if m not in pays)),
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
# - Quality is read item by item against LoRA with Student's t intervals; a difference that is not separated
#   is a tie only when its whole interval lies within ±0.05 nats, and unresolved when it is wider.
# - Memory, seconds and latency are measured in one process, in three rounds; the rule-of-thumb
#   table's adjectives are checked one by one.
# - A rule-of-thumb table is a prior; a measurement on your model, task and budget decides.
#
# **Exercises:** [exercises/11_which_method.ipynb](../exercises/11_which_method.ipynb) — count a method's
# trainable parameters by hand, price prompt tuning's virtual tokens, pick the methods that fit a memory
# budget, score documents with BM25 by hand and retrieve with it, and choose methods for a described job.
