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
# # 05 · Catastrophic forgetting: what fine-tuning costs, and how to pay less
#
# **Goal.** Fine-tune a model on a narrow task and *measure* what it forgets: general
# perplexity and a skill probe before and after, as a curve over training steps. Then put full
# fine-tuning, LoRA at ranks 1–64 and a frozen body on one learn-vs-forget chart, run two tasks
# one after the other, and price the classic mitigations — replay, EWC, a lower learning rate.
# Finally, the same levers on a real pretrained model, SmolLM2-135M-Instruct, where a retention
# probe measures what it *says*: how many of its own answers to general questions survive.
#
# **Runtime.** About a minute on a 2-core CPU with course-tiny (the default). The full experiments
# take longer, so they are cached in `data/results/forgetting.json` (course-tiny, 10 configurations
# × 3 seeds) and `data/results/forgetting_smollm2-135m-instruct.json` (the real model, 5
# configurations × 3 seeds), made by `course forgetting`; this notebook plots both files and
# re-runs one configuration live. With `COURSE_MODEL=smollm2-135m-instruct` the live run is
# shrunk in proportion to the model's size, so the lesson still runs in a few minutes.
#
# **You will use** `course_lib.forgetting.measuring` (metrics, replay, EWC, the experiment runner), peft's
# `LoraConfig`, and the training loop `course_lib.training.loop.train` from lesson 01.

# %%
import matplotlib.pyplot as plt

from course_lib import forgetting as fg
from course_lib.data import prompt_of
from course_lib.experiments.forgetting import (ExperimentConfig, RunSpec, curve_point, learning_rates, run_one,
                                              scaled_config)
from course_lib.forgetting import GENERAL_PROMPTS, retention_reference
from course_lib.results import load_results, results_name, results_path
from course_lib.data import LABELS
from course_lib.doctor import versions_line
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook
from course_lib.models import count_parameters, default_model_name, get_device, load_base_model, load_tokenizer, set_seed

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %% [markdown]
# ## 1 · Two numbers, and which way is bad
#
# Forgetting is only visible against a yardstick the fine-tuning never touches. Ours is
# `data/general`: passages from standard-library files that course-tiny never saw during
# pre-training and that are in neither fine-tuning set. On it we measure
#
# - **general perplexity**, and
# - a **skill probe**: top-1 next-token accuracy, the share of tokens the model predicts exactly.
#   It is the one thing this 1.4M-parameter model genuinely does, and unlike perplexity it does
#   not reward hedging.
#
# The **target** (task A) is the course's instruction set (`load_course_dataset("alpaca")`), written as
# `### Instruction: … ### Response: …` — a narrow format the pre-training corpus never had.
#
# The lesson's sign convention, used in every table and chart below:
#
# $$\text{gain} = \ln \text{PPL}_\text{target}^\text{before} - \ln \text{PPL}_\text{target}^\text{after}, \qquad
#   \text{forgetting} = \ln \text{PPL}_\text{general}^\text{after} - \ln \text{PPL}_\text{general}^\text{before}$$
#
# Both are changes in mean loss, in nats per token, and **both are "bigger = more"**: gain > 0
# means the target was learned, forgetting > 0 means general text got harder. Forgetting of 0.1
# means general perplexity grew by a factor e^0.1 ≈ 1.105, whatever it started at.

# %% [markdown]
# The cached experiment was made on course-tiny. The live runs below repeat its settings on the
# model this notebook loaded; on a bigger model `scaled_config` shrinks them so that they cost
# about what they cost on course-tiny (compute grows with parameters × tokens): shorter rows, then
# fewer rows per step, then fewer steps, and fewer evaluation texts. Learning rates are the
# loaded model's own (`learning_rates`), never course-tiny's reused on a model 100× larger.

# %%
set_seed(0)
tokenizer = load_tokenizer()
model = load_base_model().to(get_device())
data = fg.load_task_data()
results = load_results("forgetting")
file_model = results.get("model", "course-tiny")
settings = {k: v for k, v in results["meta"]["config"].items() if k != "runs"}
file_params = next(r["trainable_params"] for r in results["runs"] if r["name"] == "full")
n_params = count_parameters(model)
config = scaled_config(ExperimentConfig(**settings), n_params)  # shrunk if bigger than course-tiny (the file's model)
rates = learning_rates(default_model_name(), n_params)
base = fg.measure(model, tokenizer, data, config.max_length, max_texts=config.eval_texts)
print(f"model: {default_model_name()}, {n_params:,} parameters ({n_params / file_params:.1f}x {file_model})")
print(f"live runs: {config.max_steps} steps x {config.per_device_train_batch_size} rows x {config.max_length} "
      f"tokens, {config.eval_texts or 'all'} texts per measure; learning rate {rates.full:g} (full), "
      f"{rates.lora:g} (LoRA)")
print(f"general text  : {len(data.general[:config.eval_texts or None])} passages, perplexity {base['general_ppl']:.2f}, next-token accuracy {base['general_acc']:.1%}")
print(f"task A target : perplexity {base['target_ppl']:.2f}  ({len(data.target_train)} training rows)")
print(f"forgetting if general perplexity grew 10 %: {fg.forgetting(100.0, 110.0):+.4f} nats/token")

# %% [markdown]
# ## 2 · Narrow fine-tuning, step by step
#
# The cached experiment's first configuration fine-tunes every weight of course-tiny (AdamW,
# learning rate 1e-3, batches of 16 rows) and scores a slice of the target and general sets every
# 10 steps. We re-run it live for seed 0 with the file's own settings: on the machine and thread
# count that made the file the numbers match exactly; elsewhere (another CPU, a GPU) they agree
# to a few thousandths. On another model the live run is that model's own (shrunk, at its own
# learning rate), and it is compared only with a file made on that model with the same settings,
# never with course-tiny's. The live run also answers a few
# held-out general questions before and after (the retention probe of section 7).

# %%
meta = results["meta"]
print(f"forgetting.json: made by `{meta['command']}` on {file_model}, "
      f"{len(results['runs'])} runs, seeds {settings['seeds']}, {settings['max_steps']} steps each, "
      f"{settings['curve_texts']} texts per curve point, {meta['seconds'] / 60:.0f} min")

base_curve = curve_point(model, tokenizer, data, config)  # step 0: the model before training
reference = retention_reference(model, tokenizer, GENERAL_PROMPTS[:8])  # the base model's own answers
live = run_one(model, tokenizer, data, RunSpec("full", learning_rate=rates.full), seed=0, config=config,
               base=base, reference=reference)
# compare like with like: a file made on this model, with the settings and learning rate of the live run
own_name = results_name("forgetting", default_model_name())
own = load_results(own_name) if results_path(own_name).exists() else None
same = ("max_steps", "per_device_train_batch_size", "max_length", "eval_texts")
cached = own and next((r for r in own["runs"] if r["name"] == "full" and r["seed"] == 0), None)
if cached and cached["learning_rate"] == rates.full and all(
        own["meta"]["config"].get(k, 0) == getattr(config, k) for k in same):
    print(f"compared with {own_name}.json, made on the same model with the same settings:")
    for key in ("gain", "forgetting", "acc_drop"):
        print(f"{key:11s} live {live[key]:+.3f}   file (seed 0) {cached[key]:+.3f}")
else:
    print(f"live on {default_model_name()} (no results file with these settings to compare with): "
          f"gain {live['gain']:+.3f}, forgetting {live['forgetting']:+.3f}, accuracy drop {live['acc_drop']:+.2%}")

# %%
steps = [0] + live["curve"]["step"]
target = [base_curve["target_nll"]] + live["curve"]["target_nll"]
general = [base_curve["general_nll"]] + live["curve"]["general_nll"]
fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
ax[0].plot(steps, target, "o-", color="tab:blue")
ax[0].set(title="Task A (target) loss falls", xlabel="optimizer step", ylabel="validation loss (nats/token)")
ax[1].plot(steps, general, "o-", color="tab:red")
ax[1].set(title="General-text loss rises", xlabel="optimizer step", ylabel="held-out loss (nats/token)")
fig.suptitle(f"Full fine-tuning of {default_model_name()} on the instruction set (live run, seed 0)")
fig.tight_layout()
plt.show()
for s, t, g in zip(steps, target, general):
    print(f"step {s:3d}: target {t:.3f}   general {g:.3f}")
rising = all(b > a for a, b in zip(general, general[1:]))
print(f"general loss rose at every checkpoint: {rising}; over the run it moved {general[-1] - general[0]:+.3f} "
      f"while the target moved {target[-1] - target[0]:+.3f} nats/token")

# %% [markdown]
# Read the two panels together. Every step that makes the instruction format more likely moves
# weights that also served general text, and nothing in the loss asks the model to keep that
# ability. On course-tiny the target loss makes most of its progress in the first 10 steps; the general loss
# climbs through the first 30 and then stays up (the small dip at the end is why "rose at every
# checkpoint" prints False). That is catastrophic forgetting in its plainest form — no error, no
# warning, only a number that gets worse on data the training never looks at. It is also why
# "fewer steps" is a mitigation: at step 10 the target had most of its final gain while general
# text had paid about half of its final price. Stopping early is choosing one of these points.

# %% [markdown]
# ## 3 · Learn vs forget: full fine-tuning, LoRA, a frozen body
#
# From course-tiny's file: each configuration over three seeds, mean ± standard deviation (sample, n = 3).
# LoRA (peft, all linear layers of the body) trains at 3e-3 — adapters usually need a larger
# learning rate than full fine-tuning. Its `lora_alpha = 2r`: peft multiplies the adapter's
# output by alpha / r (Hu et al. 2022, arXiv 2106.09685), so a fixed alpha would shrink the
# update 64-fold from rank 1 to rank 64 and mix rank with step size; alpha = 2r keeps alpha / r = 2
# at every rank (rsLoRA, Kalajdzievski 2023, arXiv 2312.03732, argues for alpha / √r instead, so
# that higher ranks are not held back). "Top block only"
# trains the last of the four decoder blocks and the final norm, with the embeddings (shared with
# the output head) frozen.

# %%
summary = fg.summarize(results)
print(f"{'configuration':20s} {'trainable':>10s} {'gain':>15s} {'forgetting':>15s} {'accuracy drop':>15s}")
for name, s in summary.items():
    trainable = next(r["trainable_params"] for r in results["runs"] if r["name"] == name)
    label = f"{name} (after A)" if name == "A then B" else name
    print(f"{label:20s} {trainable:10,d} {s['gain'][0]:+.3f} ± {s['gain'][1]:.3f}  "
          f"{s['forgetting'][0]:+.3f} ± {s['forgetting'][1]:.3f}  {s['acc_drop'][0]:+.2%} ± {s['acc_drop'][1]:.2%}")
print("\n(after A): the sequential runs measured before task B; they repeat the full row because until then they\n"
      "are the same run (same seeds, same steps). What task B does to them is section 4.")

# %%
families = {"full": "tab:red", "full, lr/10": "tab:orange", "top block only": "tab:purple"}
fig, ax = plt.subplots(figsize=(7.5, 5))
for name, s in summary.items():
    if name.startswith("LoRA"):
        color, marker = "tab:blue", "o"
    elif name in families:
        color, marker = families[name], "s"
    else:
        continue
    ax.errorbar(s["forgetting"][0], s["gain"][0], xerr=s["forgetting"][1], yerr=s["gain"][1],
                fmt=marker, color=color, capsize=3)
    ax.annotate(name, (s["forgetting"][0], s["gain"][0]), textcoords="offset points", xytext=(6, 4), fontsize=9)
ax.set(title="What each method learns and what it forgets (3 seeds, ±1 sd)",
       xlabel="forgetting: Δ general loss (nats/token, > 0 = worse)",
       ylabel="target gain: −Δ task-A loss (nats/token, > 0 = better)")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# Up and to the left is good: more gain, less forgetting. Biderman et al. ("LoRA Learns Less and
# Forgets Less", TMLR 2024, arXiv 2405.09673) found, on code and math with 7B models, that LoRA
# learns the target less than full fine-tuning *and* keeps more out-of-domain ability. Whether the
# second half is a property of LoRA or just of learning less is the real question, so we compare
# at equal gain: a method helps only if it forgets less **per nat it learns**, i.e. if its point
# lies above the straight line from the origin through full fine-tuning, not merely to its left.
# The numbers, for this model:

# %%
full = summary["full"]
full_ratio = full["forgetting"][0] / full["gain"][0]
print(f"{'configuration':20s} {'gain vs full':>13s} {'forgetting vs full':>19s} {'forgetting per nat learned':>27s}")
for name, s in summary.items():
    if name == "A then B":
        continue
    print(f"{name:20s} {s['gain'][0] / full['gain'][0]:13.0%} {s['forgetting'][0] / full['forgetting'][0]:19.0%} "
          f"{s['forgetting'][0] / s['gain'][0]:+27.3f}")
lora = {n: s for n, s in summary.items() if n.startswith("LoRA")}
print(f"\nLoRA learns less than full fine-tuning at every rank: "
      f"{all(s['gain'][0] < full['gain'][0] for s in lora.values())}")
print(f"LoRA forgets less than full fine-tuning at every rank: "
      f"{all(s['forgetting'][0] < full['forgetting'][0] for s in lora.values())}")
print(f"LoRA forgets less per nat learned at every rank: "
      f"{all(s['forgetting'][0] / s['gain'][0] < full_ratio for s in lora.values())}")
low_lr = summary["full, lr/10"]
print(f"...and so does full fine-tuning at lr/10: {low_lr['forgetting'][0] / low_lr['gain'][0] < full_ratio}")

# %% [markdown]
# How to read these lines honestly. The first two are the paper's headline, and on course-tiny
# they hold: every rank learns a little less than full fine-tuning and forgets less, and
# forgetting grows with rank — the rank-1 adapter moves the model least, rank 64 (half as many
# trainable parameters as the model) moves it most. The third line is the stronger claim, and it
# holds too. The fourth line is the control, and it is the finding to remember: full fine-tuning
# at a tenth of the learning rate keeps most of the gain (the "gain vs full" column) while its
# forgetting is *negative* — general text got easier, not harder. So on this model the
# forgetting at lr 1e-3 comes from the size of the steps more than from learning the target, and a
# small rank is one way to take smaller steps, a small learning rate another — one that forgets
# less per nat learned than any rank here, though ranks 4–64 learn slightly more. Two caveats keep this modest: one learning rate per method (Biderman et al. tuned each),
# and a 1.4M-parameter model, whose "general ability" is mostly next-token statistics rather than
# skills spread over billions of weights.

# %% [markdown]
# ## 4 · Sequential fine-tuning: task A, then task B
#
# Task B asks for the area of a docstring ("Which area of the standard library is this from?"
# → `numbers`), in the same instruction format. The "A then B" runs fine-tune on A for 40 steps
# and then on B for 40 more (the file's settings, printed above); the drop on A is ln PPL_A(after B) − ln PPL_A(after A), same sign
# convention as forgetting.

# %%
seq = [r for r in results["runs"] if r["name"] == "A then B"]
mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
print(f"task A perplexity ({file_model}): base {results['base']['target_ppl']:.2f} -> after A "
      f"{mean([r['target_ppl'] for r in seq]):.2f} -> after B {mean([r['after_b']['target_ppl'] for r in seq]):.2f}")
print(f"task B perplexity ({file_model}): base {results['base']['task_b_ppl']:.2f} -> after A "
      f"{mean([r['task_b_ppl'] for r in seq]):.2f} -> after B {mean([r['after_b']['task_b_ppl'] for r in seq]):.2f}")
print(f"drop on A: {mean([r['drop_on_a'] for r in seq]):+.3f} nats/token; general forgetting after A "
      f"{mean([r['forgetting'] for r in seq]):+.3f}, after B {mean([r['forgetting_after_b'] for r in seq]):+.3f}")
print("\nGreedy answers to task-A prompts (seed 0):")
for prompt, a, b in zip(data.target_val, seq[0]["answers_after_a"], seq[0]["answers_after_b"]):
    print(f"  {prompt_of(prompt).splitlines()[1][:60]:60s}\n     after A: {a[:60]!r}\n     after B: {b[:60]!r}")

# %% [markdown]
# Task B uses the same `### Instruction … ### Response` frame as task A, so training on B rewrites
# what the frame predicts: after the response marker, an area name. The drop on A is that rewrite,
# measured; the three task-A perplexities show how much of A's gain survives it, and the greedy
# answers show it as text: after A they are docstring-like sentences (most open with "Return",
# like many function docstrings); after B they are area names — the model answers the question
# it was trained on last, whatever it is asked. General forgetting after B is measured from the
# same base as after A, and it rose further: a second narrow task moved the model further from
# what it was pre-trained to do. Sequences of tasks are the setting EWC was invented for: there
# its anchor θ* would be the weights after A, and its Fisher estimated on A's data.

# %% [markdown]
# ## 5 · Replay, EWC and the learning rate
#
# **Replay** mixes old data into every batch: here a quarter of each batch of 16 is pre-training
# text (`data/corpus`, never the yardstick). `course_lib.forgetting.replay.replay_batches` builds the stream and
# `train(..., batches=...)` consumes it. At scale much less is enough: replaying about 1 % of old
# data preserved earlier tasks in CT0 (Scialom et al. 2022).
#
# **EWC** (Kirkpatrick et al., PNAS 2017, eq. 3) adds a spring from each weight back to its
# pre-trained value θ*, stiff where the diagonal Fisher information F says the weight matters for
# the old data: L(θ) = L_B(θ) + Σ_i (λ/2) F_i (θ_i − θ*_i)². F is estimated once, on 64
# pre-training sequences, as the mean squared per-sequence gradient.
#
# **The learning rate** is the cheapest lever: "full, lr/10" is the same run at 1e-4.

# %%
full = summary["full"]
print(f"{'configuration':20s} {'gain':>8s} {'forgetting':>11s} {'forgetting removed':>19s} {'gain kept':>10s}")
for name in ("full", "full + replay 25%", "full + EWC", "full, lr/10", "top block only", "LoRA r=4"):
    s = summary[name]
    print(f"{name:20s} {s['gain'][0]:+8.3f} {s['forgetting'][0]:+11.3f} "
          f"{1 - s['forgetting'][0] / full['forgetting'][0]:19.0%} {s['gain'][0] / full['gain'][0]:10.0%}")

# %% [markdown]
# Each mitigation buys back forgetting and charges for it in gain; the table is the price list.
# Replay costs almost nothing here: a quarter of each batch spent on pre-training text removes
# most of the forgetting and keeps nearly all of the gain — it adds a pull toward the old
# behaviour through data. EWC adds the same pull through the weights, strongest where the Fisher
# says they matter for old text; at λ = 10⁴ it removes all of the forgetting (above 100 % means
# the run ended *better* than the base on general text) for a few percent of gain. The top block
# alone, trained at full strength, lands between full fine-tuning and the mitigations.
#
# The learning rate is the cheapest lever and, on this model, the strongest. Why can a gentler
# fine-tune *improve* general text? Task A's answers are docstrings — the same kind of text as
# the general set — so a small step toward them is also a step toward general text; at 1e-3 the
# steps overshoot into what is specific to the instruction frame. What each lever needs: replay
# needs old data (rarely shipped with a downloaded model — any broad text is a stand-in), EWC
# needs one pass over old data for F plus a copy of the weights, a lower learning rate needs
# nothing but patience.

# %% [markdown]
# ## 6 · The failure modes, measured
#
# Guides on fine-tuning list four failure modes. Here is what this lesson measured for each —
# and where the usual one-line definitions are loose.

# %%
runs_full = [r for r in results["runs"] if r["name"] == "full"]
last_train = mean([mean(r["train_loss"][-5:]) for r in runs_full])
last_val = mean([r["curve"]["target_nll"][-1] for r in runs_full])
rows_seen = settings["max_steps"] * settings["per_device_train_batch_size"]
print(f"forgetting  : full fine-tuning, {full['forgetting'][0]:+.3f} nats/token on general text, "
      f"next-token accuracy {-full['acc_drop'][0]:+.2%}")
print(f"overfitting : training loss (last 5 steps) {last_train:.3f} vs validation {last_val:.3f}; "
      f"{rows_seen} rows seen of {len(data.target_train)} — less than one epoch")
after_b = seq[0]["answers_after_b"]
print(f"task interference: after task B, {sum(a in LABELS for a in after_b)} of {len(after_b)} task-A answers are an "
      f"area name; {len(set(after_b))} distinct answers to {len(after_b)} different prompts")
print(f"alignment tax: the instruction format (gain {full['gain'][0]:+.3f}) cost {full['forgetting'][0]:+.3f} "
      "nats/token of general text; replay paid back "
      f"{1 - summary['full + replay 25%']['forgetting'][0] / full['forgetting'][0]:.0%} of it")

# %% [markdown]
# - **Forgetting** is the general-text loss rising while the target improves (sections 2–3). The
#   usual advice — lower learning rate, fewer steps, LoRA — is right in direction, and section 5
#   prices each. What the advice leaves out: it is worth measuring which lever is cheapest on
#   *your* model; here it was the learning rate.
# - **Overfitting** is a gap between training and validation loss on the *target*, and it needs
#   repeated data: each row seen here was new, so the gap printed above is near zero and this
#   experiment cannot show it. Forgetting is not overfitting — it happens on the first pass over
#   fresh data and is measured on *other* data. More epochs would add overfitting on top.
# - **Task interference**, not mode collapse. After task B every task-A prompt was answered with an
#   area name: the model answers the task it learned last, in the frame both tasks share. Mode
#   collapse would be one output whatever the input; here the answers still depend on the prompt
#   (the count of distinct answers above is more than one), they are just answers to the wrong task.
#   Task A alone already narrows the answers toward one template ("Return …", section 4): worth
#   watching for.
# - **Alignment tax** is sometimes used for any task trading off against others, but the term
#   comes from alignment training: InstructGPT (Ouyang et al. 2022, arXiv 2203.02155) called the
#   drop on public NLP benchmarks after RLHF an "alignment tax" and reduced it by mixing
#   pre-training gradients into training (PPO-ptx) — replay, in this lesson's words. Our
#   instruction tuning is the smallest version of that trade.

# %% [markdown]
# ## 7 · At scale: SmolLM2-135M-Instruct, and what it says
#
# course-tiny's "general ability" is next-token statistics of docstrings. A real pretrained model
# knows things and answers questions, so we can ask what fine-tuning does to *that*. The
# **retention probe** (`course_lib.forgetting.generation.retention`) asks the model held-out general
# questions ("What is the capital of Italy?", …) through its chat template before fine-tuning and
# keeps its own greedy answers as the reference — right or wrong, they are what it used to say.
# After fine-tuning it reports
#
# - **kept**: the share of questions answered token for token as before, and
# - **Δ log-prob**: the change in the mean log-probability per token of the old answers (nats,
#   < 0 = the old answers became less likely), which moves long before an answer flips.
#
# `course forgetting --model smollm2-135m-instruct` ran the four levers (full fine-tuning, LoRA,
# replay, EWC) and the lr/10 control on it, over three seeds, with the same task data. The model
# is far bigger than course-tiny, so the command shrank each run with `scaled_config` (to a small
# multiple of course-tiny's compute per run, so that the whole experiment fits one CPU core) and
# used the model's own learning rates; the file records both, printed below. Read the two models'
# columns as two experiments, not one: different tokenizers (so perplexities are not comparable,
# only their changes), different learning rates and a far shorter run on the big model.

# %%
real = load_results("forgetting_smollm2-135m-instruct")
rmeta, rconf = real["meta"], real["meta"]["config"]
scale = rmeta["scaled_from"]
print(f"{real['model']}: {rmeta['parameters']:,} parameters ({rmeta['parameters'] / scale['reference_parameters']:.0f}x "
      f"{scale['reference']}); runs shrunk to about {scale['compute']:g}x {scale['reference']}'s compute each")
print(f"made by `{real['command']}` in {rmeta['seconds'] / 60:.0f} min on {rmeta['threads']} thread")
print(f"reduced setting: {rconf['max_steps']} steps x {rconf['per_device_train_batch_size']} rows x "
      f"{rconf['max_length']} tokens, {rconf['eval_texts']} texts per measure, "
      f"{len(real['base']['probe']['questions'])} probe questions; learning rates "
      f"{rmeta['learning_rates']['full']:g} (full), {rmeta['learning_rates']['lora']:g} (LoRA)")
if not rmeta["complete"]:
    print(f"(stopped early: {len(real['runs'])} runs, seeds {sorted({r['seed'] for r in real['runs']})})")
real_summary = fg.summarize(real)
print(f"\n{'':20s} {'course-tiny':>31s}   {real['model']:>66s}")
print(f"{'configuration':20s} {'gain':>15s} {'forgetting':>15s}   {'gain':>15s} {'forgetting':>15s} "
      f"{'kept':>15s} {'Δ log-prob':>17s}")
for name, s in real_summary.items():
    t = summary[name]
    print(f"{name:20s} {t['gain'][0]:+.3f} ± {t['gain'][1]:.3f}  {t['forgetting'][0]:+.3f} ± {t['forgetting'][1]:.3f}"
          f"   {s['gain'][0]:+.3f} ± {s['gain'][1]:.3f}  {s['forgetting'][0]:+.3f} ± {s['forgetting'][1]:.3f}"
          f"  {s['kept'][0]:6.0%} ± {s['kept'][1]:4.0%}  {s['logprob_change'][0]:+.3f} ± {s['logprob_change'][1]:.3f}")

# %%
probe = real["base"]["probe"]
full_seed0 = next(r for r in real["runs"] if r["name"] == "full" and r["seed"] == 0)
lora_seed0 = next(r for r in real["runs"] if r["name"].startswith("LoRA") and r["seed"] == 0)
print(f"Answers of {real['model']} that changed (seed 0), of {len(probe['questions'])} questions:")
for q, before, after_full, after_lora in zip(probe["questions"], probe["answers"], full_seed0["probe_answers"],
                                             lora_seed0["probe_answers"]):
    if before == after_full == after_lora:
        continue
    print(f"  {q}\n     {'before':>9s}: {before[:64]!r}")
    for label, after in (("full", after_full), ("LoRA", after_lora)):
        print(f"     {label:>9s}: {'(kept)' if after == before else repr(after[:64])}")
print(f"\nlive probe on {default_model_name()} (section 2's run, {len(reference.questions)} questions): "
      f"kept {live['kept']:.0%}, Δ log-prob {live['logprob_change']:+.3f} nats/token")

# %% [markdown]
# **What changed with scale:** on course-tiny, full fine-tuning at its learning rate made general
# text harder (forgetting +0.358) and each lever bought part of that back, while on
# SmolLM2-135M-Instruct — at its own, far smaller learning rate and in a far shorter run — no
# configuration made the held-out Python text harder (every forgetting mean in the table is at or
# below zero), yet the retention probe shows the model no longer saying all it used to: full
# fine-tuning kept 81% of its answers and LoRA, at its ten times higher learning rate, only 56%.
#
# Three things to take from it. Perplexity on one kind of general text is not general ability:
# the instruction data is docstrings, the same kind of text as the general set, so learning it
# made that set easier, not harder; what the model says to everyday questions moved anyway. The
# probe measures *change*, not correctness: a changed answer is sometimes a better one (LoRA's
# answer about the capital of Italy above). And replay and EWC here use the course's Python corpus
# as the "old data", so they protect what that corpus covers: replay made the Python text easier
# still, but kept *fewer* of the everyday answers than plain full fine-tuning (65% ± 10% against
# 81%), and EWC no more (75% ± 6%). For a real model the
# old data to replay, and to estimate the Fisher on, should be the kind of text whose behaviour
# you want to keep — which, for a downloaded model, you rarely have (section 5).

# %% [markdown]
# ## Summary
#
# - Forgetting is measured, not assumed: a held-out general set, a sign convention
#   (`fg.forgetting` > 0 = worse), a skill probe beside perplexity, and the target gain next to it.
# - Narrow full fine-tuning of course-tiny raises general loss step after step while the target
#   loss falls; every point of that curve is a compromise you can choose by stopping.
# - On the learn-vs-forget chart, judge a method by forgetting *per nat learned*, against full
#   fine-tuning at a lower learning rate as the control. On course-tiny LoRA does learn less and
#   forget less, but full fine-tuning at lr/10 forgets less than every rank (general text even
#   improved) while learning almost as much.
# - Sequential fine-tuning on a second task in the same format damages the first task most.
# - Replay (25 %) and EWC removed most or all of the forgetting for a few percent of gain or
#   less; a ten times lower learning rate removed all of it for a little more. Re-run everything with
#   `course forgetting` (about 20 minutes on 2 cores, as printed above); this notebook re-checks one run live.
# - On a real pretrained model, measure what it *says* as well: the retention probe keeps the
#   model's own answers to held-out general questions as the reference and reports the share kept
#   and the change in their log-probability (section 7, `course forgetting --model
#   smollm2-135m-instruct`, with the time printed there).
#
# **Exercises:** [exercises/05_catastrophic_forgetting.ipynb](../exercises/05_catastrophic_forgetting.ipynb) — write the forgetting metric with
# its sign convention, the replay batch mixer, the EWC penalty, read the learn-vs-forget chart, and
# choose a learning rate and a replay fraction that learn the target while forgetting almost nothing.
