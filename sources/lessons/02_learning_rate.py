# %% [markdown]
# # Lesson 02 — The learning rate: finding it, scheduling it, splitting it by layer
#
# **Goal.** Choose a fine-tuning learning rate by measurement instead of folklore: run an LR range
# test, compare LRs on train and validation curves, see warm-up + cosine decay against its formula,
# watch a too-high LR diverge (and get told so), and test layer-wise learning rates.
#
# **Runtime.** About a minute on a 2-core CPU. The LR comparison, the schedule comparison and the
# layer-wise comparison (26 training runs) are cached in `data/results/lr_sweep.json`, made by
# `course lr-sweep`; this notebook plots them and re-runs a shortened piece live.

# %%
import transformers

from course_lib.doctor import versions_line
from course_lib.models import set_threads

transformers.logging.set_verbosity_error()  # the new head's "missing weights" report, once is enough
transformers.utils.logging.disable_progress_bar()
set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
print(versions_line())

# %% [markdown]
# ## 1. Why the learning rate matters more when fine-tuning
#
# The LR sets the size of each step away from the pretrained parameters. Too small and the model
# barely moves in the steps you can afford; too large and it leaves the region where the pretrained
# features live — it "forgets" them, or diverges outright. Published starting points
# (docs/references.md): BERT fine-tuning used 5e-5, 3e-5 or 2e-5 (Devlin et al. 2019); full fine-tuning of
# LLMs ≈1e-6 – 5e-5; LoRA/QLoRA ≈1e-4 – 2e-4 (up to 5e-4); warm-up over 3–10 % of the steps.
# These are for models with hundreds of millions of parameters or more. course-tiny is far smaller
# (lesson 01 counted its parameters), and small models tolerate (and need) larger steps — so
# rather than trust a table, we measure.
#
# ## 2. The LR range test
#
# Smith (2017, arXiv 1506.01186 §3.3): train briefly while the LR grows exponentially, record the
# loss, and pick an LR where the loss still falls fast, well below where it blows up.
# `course_lib.lr_finder.lr_find` follows fastai: an exponential sweep, a smoothed loss, an early
# stop once the loss exceeds 4× the best, NaN losses dropped, and the model's weights restored
# afterwards. It returns three suggestions: `valley` (fastai's default), `steep` (fastest descent)
# and `minimum` (the LR of the lowest loss, divided by 10).

# %% tags=["nbval-ignore-output"]
# The end of the sweep is chaotic (the loss is blowing up), so the last digits of `steep` and the
# number of recorded steps can change between runs: nbval does not compare this cell's output.
import matplotlib.pyplot as plt
import torch

from course_lib.data import load_course_dataset
from course_lib.lr_finder import LRFinderConfig, lr_find, plot_lr_find
from course_lib.models import default_model_name, load_tokenizer
from course_lib.encoding import collator_for, tokenize_classification
from course_lib.transfer import TransferConfig, build_classifier

ds = load_course_dataset("classification")
train_rows, val_rows = list(ds["train"]), list(ds["validation"])
tokenizer = load_tokenizer()
collate = collator_for(tokenizer, "classification")
train_enc = tokenize_classification(tokenizer, train_rows)
config = TransferConfig()

model = build_classifier("full", config, seed=0)
before = {k: v.clone() for k, v in model.state_dict().items()}
finder = lr_find(model, train_enc, LRFinderConfig(start_lr=1e-6, end_lr=10.0, num_steps=60, disable_tqdm=True),
                 collate_fn=collate)
print(finder)
print(f"{len(finder.lrs)} of 60 sweep steps recorded before the loss blew up")
restored = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
print("weights restored exactly:", restored)
assert restored

# %%
plot_lr_find(finder, title="LR range test: course-tiny classifier, full fine-tuning")
plt.show()

# %% [markdown]
# `valley` and `minimum` bracket a range of a few times 1e-4; `steep` points far higher, at the last
# drop of the curve just before it blows up. On a short, noisy sweep the steepest point is the
# least reliable of the three, which is why fastai's default is `valley`. Treat the suggestions as
# a range to try — section 3 tries it.
#
# ## 3. Comparing learning rates on train and validation curves
#
# A classic analysis exercise, made real: fine-tune the whole model with 1e-5, 2e-5 and 5e-5 (the
# BERT-style range), 1e-4 and 3e-4 (the LoRA-typical range), the larger values the range test points
# to, and one that is far too high. Everything else is fixed: constant LR, no warm-up, seed 0,
# the same batches. `course lr-sweep` saved a curve for each.

# %%
from course_lib.results import load_results

sweep = load_results("lr_sweep")
steps = sweep["config"]["max_steps"]
print(f"{sweep['model']}: full fine-tuning, {steps} steps, batch {sweep['config']['per_device_train_batch_size']}, "
      f"validation every {sweep['config']['eval_steps']} steps ({sweep['seconds']} s for the whole file)")
print(" LR      final val acc  best val loss (step)  final val loss  outcome")
for row in sweep["learning_rates"]:
    if row["diverged"]:
        print(f"{row['learning_rate']:7.0e}  {'—':>13s}  {'—':>20s}  {'—':>14s}  diverged at step {row['step'][-1] + 1 if row['step'] else 1}")
        continue
    vl = row["val_loss"]
    best = min(range(len(vl)), key=vl.__getitem__)
    overfit = vl[-1] > 1.05 * vl[best]
    print(f"{row['learning_rate']:7.0e}  {row['val_accuracy'][-1]:13.3f}  {vl[best]:12.3f} ({row['eval_step'][best]:3d})"
          f"  {vl[-1]:14.3f}  {'overfitting: val loss rising' if overfit else 'still improving' if best == len(vl) - 1 else 'flat'}")

# %%
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
for row in sweep["learning_rates"]:
    label = f"{row['learning_rate']:.0e}" + (" (diverged)" if row["diverged"] else "")
    line, = ax1.plot(row["step"], row["train_loss"], alpha=0.8, label=label)
    ax2.plot(row["eval_step"], row["val_loss"], marker=".", color=line.get_color(), label=label)
    ax3.plot(row["eval_step"], row["val_accuracy"], marker=".", color=line.get_color(), label=label)
ax1.set(title="training loss (every step)", xlabel="step", ylabel="cross-entropy", ylim=(0, 3))
ax2.set(title="validation loss", xlabel="step", ylabel="cross-entropy", ylim=(0, 3))
ax3.set(title="validation accuracy", xlabel="step", ylabel="accuracy", ylim=(0, 1))
ax3.legend(title="learning rate", fontsize=8)
fig.suptitle("Full fine-tuning of course-tiny with a constant learning rate")
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the three panels together. The BERT-style rates (1e-5 – 5e-5) barely move a model this
# small within the budget: their validation loss is still close to where it started. The loss falls
# faster as the LR grows up to 3e-4, which reaches the lowest validation loss and the best accuracy
# in the table; 1e-3 is close behind, 3e-3 is already worse (its steps are too large to settle),
# and 1e-1 diverges at once. No run overfits within these steps — every validation loss is still
# falling at the end — so the LR that converges fastest *without* overfitting is simply the one
# with the lowest final validation loss: 3e-4 here, the value `valley` and `minimum` bracketed.
# On larger models the same experiment moves the whole picture to smaller LRs (docs/references.md).
#
# A shortened live re-run checks the file: with a constant LR, the first 30 steps of a run are the
# same whatever its length, so the live loss must match the file's loss at each of those steps.

# %%
from dataclasses import replace

from course_lib.training import train

lr_live = 1e-3
row = next(r for r in sweep["learning_rates"] if r["learning_rate"] == lr_live)
tc = replace(config.train_config("full", 0), learning_rate=lr_live, lr_scheduler_type="constant",
             warmup_ratio=0.0, max_steps=30, eval_steps=0)
history = train(build_classifier("full", config, seed=0), train_enc, tc, collate_fn=collate)
print(f"LR {lr_live:g}, loss at step 30: live {history.loss[-1]:.3f}, file {row['train_loss'][29]:.3f}")
if sweep["model"] == default_model_name():  # the file was made with this model: it must agree
    assert max(abs(a - b) for a, b in zip(history.loss, row["train_loss"][:30])) < 0.02

# %% [markdown]
# ## 4. Divergence, made visible
#
# A learning rate far too high does not fail politely: the loss jumps, the weights grow, and a few
# steps later everything is NaN. A plot of NaNs is empty, which is easy to miss. The course's loop
# checks every loss and stops at the first NaN, infinity, or loss above 10× the first one, with a
# sentence saying which step and what to do; the history up to that step is kept on the exception.

# %%
from course_lib.training import TrainingDiverged

too_high = max(r["learning_rate"] for r in sweep["learning_rates"])
tc = replace(config.train_config("full", 0), learning_rate=too_high, lr_scheduler_type="constant",
             warmup_ratio=0.0, max_steps=40, max_grad_norm=0.0, eval_steps=0)
try:
    train(build_classifier("full", config, seed=0), train_enc, tc, collate_fn=collate)
except TrainingDiverged as exc:
    print(exc)
    diverged = exc.history

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(diverged.step, diverged.loss, marker="o", label=f"LR {too_high:g}, no clipping")
ax.set(title="A too-high learning rate: training stops at the blow-up", xlabel="step",
       ylabel="training loss (cross-entropy)", yscale="log")
ax.legend()
plt.show()

# %% [markdown]
# ## 5. Warm-up and cosine decay
#
# Schedules change the LR during training. **Warm-up** starts at 0 and rises linearly for the first
# few percent of the steps, so that the first updates — made while the new head is still random and
# Adam's moment estimates are still poor — are small. **Cosine decay** then lowers it smoothly:
#
# $$\eta_t = \eta_{min} + \tfrac12(\eta_{max} - \eta_{min})\left(1 + \cos\frac{\pi t}{T}\right)$$
#
# with $t$ counted from the end of warm-up and $T$ the number of steps after it (Loshchilov & Hutter
# 2017). transformers' `get_cosine_schedule_with_warmup` uses $\eta_{min} = 0$. The schedule the
# course's loop uses is exactly transformers', so we can check it against the formula:

# %%
import math

from course_lib.training import TrainConfig, make_scheduler


def scheduled_lrs(config: TrainConfig) -> list[float]:
    """The LR at each step under `config`'s schedule (no training)."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    sched, lrs = make_scheduler(opt, config), []
    for _ in range(config.max_steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def cosine_with_warmup(t: int, eta_max: float, warmup: int, total: int, eta_min: float = 0.0) -> float:
    """The formula above, with linear warm-up first."""
    if t < warmup:
        return eta_max * t / warmup
    return eta_min + 0.5 * (eta_max - eta_min) * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))


base = TrainConfig(learning_rate=1e-3, max_steps=150, warmup_ratio=0.1)
schedules = {name: scheduled_lrs(replace(base, lr_scheduler_type=name)) for name in ("constant", "linear", "cosine")}
schedules["constant"] = scheduled_lrs(replace(base, lr_scheduler_type="constant", warmup_ratio=0.0))
formula = [cosine_with_warmup(t, 1e-3, 15, 150) for t in range(150)]
gap = max(abs(a - b) for a, b in zip(schedules["cosine"], formula))
print(f"largest |transformers cosine − formula| over 150 steps: {gap:.0e} (rounding error only: {gap < 1e-12})")

fig, ax = plt.subplots(figsize=(7, 3.5))
for name, lrs in schedules.items():
    ax.plot(lrs, label=f"{name}" + (" (no warm-up)" if name == "constant" else " with 10 % warm-up"))
ax.plot(range(0, 150, 5), formula[::5], "k.", label="cosine formula")
ax.set(title="Learning-rate schedules (peak 1e-3, 150 steps)", xlabel="step", ylabel="learning rate")
ax.legend()
plt.show()

# %% [markdown]
# Do schedules matter on this task? `course lr-sweep` ran the same full fine-tuning with each
# schedule and three seeds:

# %%
import statistics


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


print(f"peak LR {sweep['config']['lr_full']:g}, warm-up {sweep['config']['warmup_ratio']:.0%} for linear and cosine")
fig, ax = plt.subplots(figsize=(7, 3.5))
for name in ("constant", "linear", "cosine"):
    runs = [r for r in sweep["schedules"] if r["schedule"] == name]
    print(f"{name:8s}  final validation accuracy {mean_std([r['val_accuracy'][-1] for r in runs])}, "
          f"final validation loss {mean_std([r['val_loss'][-1] for r in runs])}")
    mean_curve = [statistics.mean(v) for v in zip(*(r["val_loss"] for r in runs))]
    ax.plot(runs[0]["eval_step"], mean_curve, marker=".", label=name)
ax.set(title="Validation loss by schedule (mean of 3 seeds)", xlabel="step", ylabel="cross-entropy")
ax.legend()
plt.show()

# %% [markdown]
# Compare the differences between schedules with the spread between seeds (the ± values): a
# difference smaller than the spread is not evidence of anything. Here the constant LR wins by more
# than the spread: these runs are short and still improving when they stop, so every step spent
# warming up or decaying is a step of less progress. Warm-up and decay earn their place in longer
# runs, where a constant LR would keep bouncing around the minimum or start to overfit, and with
# large models, whose first updates from a random head can be destructive.
#
# ## 6. Discriminative (layer-wise) learning rates
#
# ULMFiT (Howard & Ruder 2018) argues that lower layers hold more general features and should move
# less: give the top layer group the LR η and each group below it η/2.6. In PyTorch that is one
# optimizer with a **parameter group** per layer group, each with its own `lr`:

# %%
from course_lib.freezing import discriminative_lr_groups

groups = discriminative_lr_groups(model, lr=config.lr_full, factor=2.6)
for g in groups:
    print(f"{g['name']}: lr {g['lr']:.2e}, {sum(p.numel() for p in g['params']):>9,} parameters")
print(f"head LR / embeddings LR = {groups[-1]['lr'] / groups[0]['lr']:.1f}")

# %% [markdown]
# The embeddings' LR is 2.6⁵ times smaller than the head's (the ratio printed above). Together with gradual unfreezing
# (lesson 01) this is ULMFiT's recipe. Does it beat one LR here? Three seeds of each:

# %%
single = [r["accuracy"] for r in sweep["layerwise"] if r["layerwise"] == "none"]
for name, label in (("none", "one LR for all"), ("discriminative", "discriminative LRs (÷2.6 per group)"),
                    ("gradual", "discriminative + gradual unfreezing")):
    acc = [r["accuracy"] for r in sweep["layerwise"] if r["layerwise"] == name]
    diff = statistics.mean(acc) - statistics.mean(single)
    print(f"{label:40s} validation accuracy {mean_std(acc)}  (vs one LR: {diff:+.3f})")

# %% [markdown]
# No: here a single LR is clearly better, by much more than the ± spread. Layer-wise LRs were
# designed for a large pretrained body and a task far from its pre-training, where protecting the
# lower layers matters; here the body is small, the task's text is the pre-training domain, and
# with the top LR unchanged the lower groups get LRs 2.6 to 119 times smaller, so they barely move
# in 60 steps — gradual unfreezing keeps them still for even longer. ULMFiT pairs the recipe with
# many more epochs; within a short budget it costs accuracy. On another model or task, measure
# again.
#
# ## 7. Try it: a learning-rate slider
#
# Move the sliders to rerun a short fine-tuning (20 steps, from the same start) and redraw its loss.
# Find the LR where the loss falls fastest, then push it until training stops with the divergence
# message.

# %% tags=["nbval-ignore-output"]
import ipywidgets as widgets


def short_run(log10_lr: float = -3.0, warmup_ratio: float = 0.0) -> None:
    lr = 10 ** log10_lr
    tc = replace(config.train_config("full", 0), learning_rate=lr, lr_scheduler_type="constant" if not warmup_ratio
                 else "constant_with_warmup", warmup_ratio=warmup_ratio, max_steps=20, eval_steps=0)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    try:
        h = train(build_classifier("full", config, seed=0), train_enc, tc, collate_fn=collate)
        ax.plot(h.step, h.loss, marker=".", label=f"LR {lr:.1e}, warm-up {warmup_ratio:.0%}")
    except TrainingDiverged as exc:
        ax.plot(exc.history.step, exc.history.loss, marker=".", color="red", label="diverged")
        ax.set_yscale("log")  # the blow-up spans orders of magnitude: keep all of it on the chart
        print(exc)
    ax.set(title="20 steps of full fine-tuning", xlabel="step", ylabel="training loss")
    ax.legend()
    plt.show()


# continuous_update=False: one 20-step run when you release a slider, not one per pixel
widgets.interact(short_run,
                 log10_lr=widgets.FloatSlider(value=-3.0, min=-6.0, max=1.0, step=0.5, description="log10 LR",
                                              continuous_update=False),
                 warmup_ratio=widgets.FloatSlider(value=0.0, min=0.0, max=0.5, step=0.05, description="warm-up",
                                                  continuous_update=False));  # `;`: no repr of short_run

# %% [markdown]
# ## Summary
#
# - Measure the LR: `lr_find` sweeps, restores the weights, and suggests a range
#   (`valley`, `steep`, `minimum`); the train/validation curves then pick within it.
# - Published LR ranges belong to their model sizes; course-tiny wants much larger LRs than BERT.
# - Warm-up + cosine is a formula you can check; on these short runs a constant LR did better
#   (0.661 ± 0.017 against 0.598 ± 0.012), by more than the seed-to-seed spread.
# - A too-high LR is a loud, named failure in the course's loop, with the step and the fix.
# - Layer-wise LRs are parameter groups; whether they help is an experiment, not a rule.
#
# **Exercises:** [exercises/02_learning_rate.ipynb](../exercises/02_learning_rate.ipynb) — write the exponential sweep and the cosine
# formula, and answer questions about this lesson's measurements.
