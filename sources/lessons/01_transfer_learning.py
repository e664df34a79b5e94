# %% [markdown]
# # Lesson 01 — Transfer learning: what fine-tuning buys you
#
# **Goal.** See, with measurements on this machine, why we fine-tune a pretrained model instead of
# training from scratch, and learn the four knobs of transfer learning: replace the head, freeze by
# name, count what trains, unfreeze gradually.
#
# **Runtime.** About a minute on a 2-core CPU with course-tiny. With a bigger model
# (`COURSE_MODEL=smollm2-135m-instruct`) every live run is reduced from the model's size (section 1). The full learning curve (4 methods × 4 sizes ×
# 3 seeds) takes several minutes, so it is cached in `data/results/learning_curve.json`, made by
# `course learning-curve`; this notebook plots it and re-runs one of its points live. The same
# command's reduced run on SmolLM2-135M-Instruct (`data/results/learning_curve_smollm2-135m-instruct.json`)
# is shown next to it.
#
# **You will use** `course_lib.training.freezing` (freezing helpers, parameter counts), `course_lib.training.loop`
# (the course's training loop) and `course_lib.training.transfer` (the experiment runner).

# %%
import transformers

from course_lib.doctor import versions_line
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %% [markdown]
# ## 1. What fine-tuning is — and what it is not
#
# A pretrained model comes with parameters $\theta_{pt}$ that already fit a large, general corpus.
# Fine-tuning continues gradient descent **from those parameters** on a task loss:
#
# $$\theta_{ft} = \theta_{pt} - \eta\,\nabla_\theta L_{task}(\theta_{pt})$$
#
# That is one step; in practice we take a few hundred, each starting from where the last one ended.
# The starting point is the whole idea. **Training from scratch** runs the same loop from random
# parameters $\theta_0$: same architecture, same data, none of the knowledge. It is not a kind of
# fine-tuning; it is the baseline fine-tuning has to beat.
#
# How different are the two phases? course-tiny's own training log says what its pre-training cost,
# and the labelled set says what we have for the task:

# %%
import json

from course_lib.data import LABELS, load_course_dataset
from course_lib.models import course_tiny_path, default_model_name

ds = load_course_dataset("classification")
print(f"task data: {len(ds['train'])} labelled training rows, {len(ds['validation'])} validation rows, "
      f"{len(LABELS)} labels: {LABELS}")
log_path = course_tiny_path() / "training_log.json"
if default_model_name() == "course-tiny" and log_path.exists():
    pt = json.loads(log_path.read_text())
    print(f"pre-training of course-tiny: {pt['train_tokens']:,} tokens of unlabelled text, "
          f"{pt['steps']:,} steps, {pt['tokens_seen']:,} tokens seen, {pt['train_seconds']:.0f} s of CPU")
else:
    print(f"{default_model_name()}: see its model card for its pre-training data and compute")
from dataclasses import replace

from course_lib.models import count_parameters, load_base_model
from course_lib.training import COURSE_TINY_PARAMS, METHODS, TransferConfig

base = load_base_model()
n_params = count_parameters(base)
config = TransferConfig().scaled_for(n_params)  # course-tiny's settings, reduced for a bigger model
print(f"one fine-tuning run in this lesson: {config.max_steps} steps of {config.per_device_train_batch_size} "
      f"labelled rows, texts cut at {config.max_length} tokens")
if config != TransferConfig():
    print(f"{default_model_name()} has {n_params:,} parameters, {n_params / COURSE_TINY_PARAMS:.0f}× course-tiny: "
          f"runs reduced and learning rates " + ", ".join(f"{m} {config.learning_rate(m):g}" for m in METHODS)
          + f" (course-tiny's: " + ", ".join(f"{TransferConfig().learning_rate(m):g}" for m in METHODS) + ")")

# %% [markdown]
# | | pre-training | fine-tuning (this lesson) |
# |---|---|---|
# | data | lots of **unlabelled** text (next-token prediction needs no labels) | a few hundred to a few thousand **labelled** rows |
# | start | random parameters | the pretrained parameters |
# | compute | the whole budget of the model (above: every token seen several times) | a small fraction (above: one run's steps) |
# | who pays | whoever publishes the base model, once | you, for each task |
#
# For models you would download, the same asymmetry holds at a much larger scale; lesson 03's
# numbers for GPT-3 (Hu et al. 2022) show how fine-tuning itself can be made cheaper still.
#
# ## 2. Replacing the head
#
# course-tiny was pretrained as a language model: its last layer (`lm_head`) scores every token of
# its vocabulary. For the 6-way classification we keep the **body** and put a new, randomly initialised **head** on
# top. `AutoModelForSequenceClassification` does that; `load_base_model(task="classification")`
# calls it with the course's model. The head is the one weight *missing from the checkpoint*
# (compare the classifier's weight names with the pretrained model's): that is expected, it is the new part.

# %%
from course_lib.training import layer_groups, trainable_report
from course_lib.models import set_seed

pretrained = set(base.state_dict())  # every weight name the checkpoint holds
set_seed(0)
model = load_base_model(task="classification", num_labels=len(LABELS))
print(type(model).__name__)
print("not in the checkpoint (newly initialised):", sorted(set(model.state_dict()) - pretrained))
print("new head:", model.score)
print(trainable_report(model))

# %% [markdown]
# The classifier pools the hidden state of the **last non-padding token** (a decoder sees the whole
# text only there) and multiplies it by `score.weight`, a matrix of shape (labels, d_model).
#
# `course_lib.training.freezing.layer_groups` splits the parameters bottom to top into groups: embeddings,
# one group per transformer block (the final norm joins the top block), and the head. Every
# strategy below is a choice of which groups train.

# %%
params = dict(model.named_parameters())
for i, group in enumerate(layer_groups(model)):
    size = sum(params[n].numel() for n in group)
    print(f"group {i}: {size:>9,} parameters  {group[0]}{' ...' if len(group) > 1 else ''}")

# %% [markdown]
# ## 3. Freezing by name and counting what trains
#
# Freezing a parameter means `requires_grad = False`: no gradient is computed for it and the
# optimizer never changes it. Names are how we choose: `freeze_all_but(model, patterns)` keeps only
# the parameters whose name matches a regular expression.

# %%
from course_lib.training import freeze_all_but, unfreeze_top_blocks

names = freeze_all_but(model, [r"^score\."])
print("linear probe trains:", names)
print(trainable_report(model))
d_model, n_labels = model.config.hidden_size, len(LABELS)
print(f"check: d_model × labels = {d_model} × {n_labels} = {d_model * n_labels}")

# %% [markdown]
# The four methods of the experiment, as trainable-parameter counts:

# %%
from course_lib.training import set_trainable_for

for method, label in METHODS.items():
    set_trainable_for(model, method, config.top_n)  # the call build_classifier makes for each method
    r = trainable_report(model)
    print(f"{label:40s} {r.trainable:>10,} trainable ({r.percent:6.2f} %)")

# %% [markdown]
# ## 4. The learning curve: what pretraining is worth
#
# How much labelled data does each method need? `course learning-curve` trains each of the four
# methods on nested random subsets of the training set (the same compute for each run:
# `TransferConfig.max_steps` optimizer steps of 16 examples), with three seeds per point, and
# records validation accuracy. The seed changes the subset, the head's initialisation and the
# data order, so the band around each line is the spread you would see by chance.

# %%
import matplotlib.pyplot as plt

from course_lib.results import load_results
from course_lib.training import curve_summary, plot_learning_curve

results = load_results("learning_curve")  # made with course-tiny
made_with = TransferConfig(**results["config"])
print(f"{results['model']}, {len(results['runs'])} runs, {results['seconds']} s when it was made; "
      f"learning rates: " + ", ".join(f"{m} {made_with.learning_rate(m):g}" for m in METHODS))
summary = curve_summary(results)
print("size   " + "  ".join(f"{m:>14s}" for m in summary))
for size in summary["full"]:  # sizes as trained: the largest is the whole training set
    print(f"{size:5d}  " + "  ".join(f"{summary[m][size][0]:.3f} ± {summary[m][size][1]:.3f}" for m in summary))

# %%
ax = plot_learning_curve(results, chance=1 / len(LABELS))
plt.show()

# %% [markdown]
# Read the plot from left to right (the values are in the table above it). With 25 labelled
# examples the model trained from scratch is close to chance (0.204 against 1/6), while every
# pretrained method is above 0.3. With more data, training from scratch catches up with the
# linear probe — a frozen body limits what a head alone can learn. Full fine-tuning and the top blocks
# tie at 25 examples (0.325 ± 0.031 against 0.331 ± 0.023: the difference is inside the seed-to-seed
# spread) and still at 100 (0.467 ± 0.039 against 0.446 ± 0.017, by the same test); full fine-tuning
# pulls ahead by more than the seed-to-seed spread from 400 examples on (0.611 ± 0.026 against 0.545 ± 0.026),
# on this validation set: once the noise of its rows is counted as well, lesson 10's paired test
# no longer calls that lead significant.
# On the whole training set it reaches 0.662 against 0.482 for the
# same architecture, data and compute without pre-training. That gap is what pre-training is worth here; fine-tuning
# the top blocks sits in between, trading some accuracy for training 31 % of the parameters.
#
# The same command with `--model smollm2-135m-instruct` (the command is in its file) ran the curve
# on a real pretrained model, reduced to what one CPU thread trains in a few
# minutes per run: two sizes, one seed, and each run shortened by `TransferConfig.scaled_for` as in
# section 1 (its `--compute` option buys back some steps). Side by side at the sizes both files
# hold:

# %%
real = load_results("learning_curve_smollm2-135m-instruct")  # made by the command it prints
real_cfg = TransferConfig(**real["config"])
print(f"{real['model']}, {real['parameters']:,} parameters ({real['parameters'] / COURSE_TINY_PARAMS:.0f}× "
      f"course-tiny), {len(real['runs'])} runs, {real['seconds']} s; "
      f"command: {real['command']}")
print(f"{real_cfg.max_steps} steps of {real_cfg.per_device_train_batch_size} texts × {real_cfg.max_length} tokens, "
      f"seeds {real['seeds']}, {real_cfg.eval_rows} validation rows; learning rates: "
      + ", ".join(f"{m} {real_cfg.learning_rate(m):g}" for m in METHODS))
standard_error = (0.5 * 0.5 / real_cfg.eval_rows) ** 0.5  # of one accuracy on those rows, at its largest (0.5)
print(f"one run's accuracy on {real_cfg.eval_rows} rows: standard error up to {standard_error:.3f}; "
      f"the difference of two runs' accuracies: up to {2 ** 0.5 * standard_error:.3f}, "
      f"two standard errors {2 * 2 ** 0.5 * standard_error:.3f}")
real_summary = curve_summary(real)
print(f"{'accuracy: course-tiny / ' + real['model']:40s}" + "".join(f"{f'size {n}':>18s}" for n in real["sizes"]))
for method, label in METHODS.items():
    print(f"{label:40s}" + "".join(f"{summary[method][n][0]:9.3f} / {real_summary[method][n][0]:.3f}"
                                   for n in real["sizes"]))

# %% [markdown]
# What changed with scale: SmolLM2's frozen features are worth more — its linear probe reaches 0.500
# with 100 examples against 0.409 on course-tiny, and 0.227 from scratch — but with the body's learning
# rate scaled down to 5.1e-05, which also trains the new head, 39 steps leave full fine-tuning behind the
# probe (0.367) and the top blocks close to chance (0.219 against 1/6), so on a bigger model the
# same compute buys fewer steps and a fresh head needs a larger learning rate than the body (lesson 02's
# discriminative rates). One seed on 128 validation rows: a difference between two methods under 0.125 is
# within two standard errors of a difference (printed above), so the probe's lead over full fine-tuning at
# 100 examples (0.500 against 0.367) is just outside the noise, and smaller gaps here are not evidence.
#
# Re-running one point of the file live checks that the cached numbers are what this code produces
# (same seed, same subset, same steps; a different CPU thread count can move an accuracy by an
# example or two, hence the tolerance). Only a run of the same model with the same settings is
# compared with the file; on another model the live run is printed alone.

# %%
from course_lib.training import fine_tune_classifier, subset

size, seed = results["sizes"][1], 0
train_rows, val_rows = list(ds["train"]), list(ds["validation"])
val_live = subset(val_rows, config.eval_rows, seed=0) if config.eval_rows else val_rows  # the rows runs evaluate
live = {}
for method in ("full",):  # one point live; the other methods work the same way
    run = fine_tune_classifier(method, subset(train_rows, size, seed), val_rows, config, seed)
    live[method] = run
    if results["model"] == default_model_name() and made_with == config:
        cached = next(r for r in results["runs"] if (r["method"], r["size"], r["seed"]) == (method, size, seed))
        print(f"{METHODS[method]:40s} size {size}, seed {seed}: live {run.accuracy:.3f}, file {cached['accuracy']:.3f}")
        assert abs(run.accuracy - cached["accuracy"]) <= 0.02, "the live run disagrees with the file"
    else:  # another model, or reduced settings: the file's numbers are not this run's
        print(f"{METHODS[method]:40s} size {size}, seed {seed}: live {run.accuracy:.3f} on {default_model_name()} "
              f"({len(val_live)} validation rows); the file holds {results['model']}'s runs, not comparable")

# %% [markdown]
# ## 5. The same run with transformers' `Trainer`
#
# `course_lib.training.loop.train` is a small loop you can read in one screen. The standard API is
# transformers' `Trainer`; `TrainConfig` uses the names of `TrainingArguments`, so the translation
# is one line per setting. Here is the full fine-tuning run above, with `Trainer`:

# %%
import tempfile

from transformers import PrinterCallback, Trainer

from course_lib.models import load_tokenizer
from course_lib.data import collator_for, tokenize_classification
from course_lib.metrics import evaluate_classifier
from course_lib.training import build_classifier

tokenizer = load_tokenizer()
collate = collator_for(tokenizer, "classification")
tc = config.train_config("full", seed)
hf_model = build_classifier("full", config, seed)
args = tc.to_training_arguments(  # every shared setting carried over by name; then Trainer-only options
    tempfile.mkdtemp(), logging_steps=max(1, tc.max_steps // 4), remove_unused_columns=False,
    dataloader_pin_memory=False)
trainer = Trainer(model=hf_model, args=args, data_collator=collate,
                  train_dataset=tokenize_classification(tokenizer, subset(train_rows, size, seed), config.max_length))
trainer.remove_callback(PrinterCallback)  # its log lines include timings; we print what we need below
trainer.train()
hf_acc = evaluate_classifier(hf_model, tokenizer, val_live, config.max_length)["accuracy"]
last_loss = [h["loss"] for h in trainer.state.log_history if "loss" in h][-1]
print(f"Trainer: training loss at step {tc.max_steps} {last_loss:.3f}, validation accuracy {hf_acc:.3f}")
print(f"course loop (same settings): validation accuracy {live['full'].accuracy:.3f}")

# %% [markdown]
# The two agree closely but not exactly: `Trainer` draws its batches in its own order. What carries
# over is the vocabulary — `learning_rate`, `max_steps`, `per_device_train_batch_size`,
# `lr_scheduler_type`, warm-up, `weight_decay`, `max_grad_norm` — so a run designed with the course's
# loop moves to `Trainer` (and to multi-GPU training, which `Trainer` handles) unchanged.
#
# ## 6. Overfitting, and stopping early
#
# Section 4's smallest point trains on 25 labelled examples for the same number of steps as every
# other point, so each example is seen dozens of times. Evaluating every few steps shows what the
# model does with them: the training loss is measured on the batch it is about to learn from, the
# validation loss and accuracy on rows it never trains on.

# %%
watch = replace(TransferConfig(eval_steps=5).scaled_for(n_params), eval_rows=0)  # evaluate every 5 steps (course-tiny)
val_by_length = sorted(val_live, key=lambda r: len(r["text"]))  # same rows, less padding per batch: faster
small = subset(train_rows, 25, seed)
run25 = fine_tune_classifier("full", small, val_by_length, watch, seed, keep_model=True)
h = run25.history
print(f"{len(small)} examples, {watch.max_steps} steps of {watch.per_device_train_batch_size}: "
      f"{watch.max_steps * watch.per_device_train_batch_size / len(small):.0f} epochs")
print("step  training loss (mean since the last evaluation)  validation loss  validation accuracy")
for i, (step, ev) in enumerate(zip(h.eval_step, h.eval)):
    since = [l for s, l in zip(h.step, h.loss) if (h.eval_step[i - 1] if i else 0) < s <= step]
    print(f"{step:4d}  {sum(since) / len(since):44.3f}  {ev['loss']:15.3f}  {ev['accuracy']:19.3f}")
val_loss, val_acc = h.eval_metric("loss"), h.eval_metric("accuracy")
low_loss, top_acc = h.eval_step[val_loss.index(min(val_loss))], h.eval_step[val_acc.index(max(val_acc))]
print(f"lowest validation loss at step {low_loss} ({min(val_loss):.3f}); "
      f"highest validation accuracy at step {top_acc} ({max(val_acc):.3f}); "
      f"at the end: training loss {h.loss[-1]:.3f}, validation loss {val_loss[-1]:.3f}, accuracy {val_acc[-1]:.3f}")

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
left.plot(h.step, h.loss, label="training loss (each batch)", alpha=0.7)
left.plot(h.eval_step, val_loss, marker="o", label="validation loss")
left.set_yscale("log")
left.set_xlabel("step")
left.set_ylabel("cross-entropy (log scale)")
left.legend(fontsize=8)
right.plot(h.eval_step, val_acc, marker="o", color="C2")
right.axvline(top_acc, color="grey", linestyle=":", label=f"best validation accuracy (step {top_acc})")
right.set_xlabel("step")
right.set_ylabel("validation accuracy")
right.legend(fontsize=8)
fig.suptitle(f"Full fine-tuning on {len(small)} labelled examples")
plt.show()

# %% [markdown]
# This is **overfitting**, and the two curves show where it starts. On course-tiny the validation
# loss is lowest at the first evaluation and, apart from a small dip at step 15 (1.931 after 1.941),
# climbs from then on, while the training loss keeps falling
# towards zero: the model memorises its 25 examples and grows ever more confident, also on the
# validation rows it gets wrong. Accuracy lags behind the loss: it peaks a few evaluations later
# (the step and value are printed above) and then settles lower, where it stays until the end.
# More steps on the same few examples buy nothing on new data. (With a bigger model, section 1's
# reduced run is far shorter, a few epochs instead of dozens: the table then shows how far it got,
# which may be short of overfitting.)
#
# **Early stopping** keeps the best model seen on the validation set and stops when it has not
# improved for `patience` evaluations. In transformers it is three `TrainingArguments` — evaluate
# and save on the same schedule (`eval_strategy`, `save_strategy`), `load_best_model_at_end=True`,
# `metric_for_best_model` with `greater_is_better` — plus the `EarlyStoppingCallback`.
# `TrainConfig` carries the same names and `config.callbacks()` gives the callback. Which metric
# picks "best" matters: here the validation loss would pick the first evaluation, before the model
# has learned anything, so we stop on accuracy, the number we care about.

# %%
import numpy as np

stop = replace(watch, load_best_model_at_end=True, metric_for_best_model="accuracy", early_stopping_patience=2)
tc = stop.train_config("full", seed)
hf_model = build_classifier("full", stop, seed)
args = tc.to_training_arguments(tempfile.mkdtemp(), logging_steps=stop.eval_steps, save_only_model=True,
                                remove_unused_columns=False, dataloader_pin_memory=False)
print(f"eval_strategy={args.eval_strategy.value!r} save_strategy={args.save_strategy.value!r} "
      f"eval_steps={args.eval_steps} load_best_model_at_end={args.load_best_model_at_end} "
      f"metric_for_best_model={args.metric_for_best_model!r} greater_is_better={args.greater_is_better}; "
      f"callbacks: {[type(c).__name__ for c in tc.callbacks()]} (patience {stop.early_stopping_patience})")
trainer = Trainer(model=hf_model, args=args, data_collator=collate, callbacks=tc.callbacks(),
                  train_dataset=tokenize_classification(tokenizer, small, stop.max_length),
                  eval_dataset=tokenize_classification(tokenizer, val_by_length, stop.max_length),
                  compute_metrics=lambda p: {"accuracy": float(np.mean(p.predictions.argmax(-1) == p.label_ids))})
trainer.remove_callback(PrinterCallback)
trainer.train()
print(f"Trainer: stopped at step {trainer.state.global_step} of {tc.max_steps}, best at step "
      f"{trainer.state.best_global_step} (validation accuracy {trainer.state.best_metric:.3f}), restored")
es = fine_tune_classifier("full", small, val_by_length, stop, seed, keep_model=True)  # the course loop, same settings
print(f"course loop: stopped at step {es.history.stopped_step or stop.max_steps} of {stop.max_steps}, "
      f"best at step {es.history.best_step} (validation accuracy {es.accuracy:.3f}), restored")

# %% [markdown]
# Both stop well before the end and hand back the weights of their best evaluation; the Trainer
# draws its batches in its own order, so its best step and accuracy differ a little from the
# course loop's. Keep in mind what the validation accuracy of an early-stopped model is: the best
# of several evaluations, chosen **on** the validation set, so it flatters the model. The honest
# comparison is on rows that chose nothing, the test split:

# %%
test_rows = list(ds["test"])
test_live = subset(test_rows, config.eval_rows, seed=0) if config.eval_rows else test_rows
test_live = sorted(test_live, key=lambda r: len(r["text"]))  # less padding per batch, as above
print(f"test split: {len(test_live)} rows")
for name, m in ((f"all {watch.max_steps} steps", run25.model), ("early stopping (course loop)", es.model),
                ("early stopping (Trainer)", hf_model)):
    print(f"{name:30s} test accuracy {evaluate_classifier(m, tokenizer, test_live, watch.max_length)['accuracy']:.3f}")

# %% [markdown]
# On the test split both early-stopped models are a little ahead of the model trained to the
# end, by a few rows out of 511 — and they stopped after 25 and 30 of the 80 steps. That is what early
# stopping buys on 25 examples: the same or slightly better accuracy for less compute, and
# protection against the run that goes on too long. It does not turn 25 examples into more: the cure
# for overfitting a tiny training set is more labelled data (section 4's curve). The exercise asks
# you to choose the stopping rule and measures what it gives.
#
# ## 7. Gradual unfreezing
#
# ULMFiT (Howard & Ruder 2018) does not unfreeze everything at once: it trains the head first, then
# opens one more layer group from the top at a time, so the random head cannot send large, noisy
# gradients into the pretrained layers before it has learned anything. In the course's loop this
# is a hook called at the start of every step; the optimizer holds all parameters and simply skips
# those without gradients.

# %%
from course_lib.training import gradual_unfreezing

hook = gradual_unfreezing(every=10)
for step in (1, 11, 21, 31, 41, 51):
    hook(step, model)
    r = trainable_report(model)
    print(f"step {step:2d}: {r.trainable:>9,} trainable parameters ({r.percent:6.2f} %)")

# %% [markdown]
# In `train` it is `train(model, data, config, optimizer=make_optimizer(model, config,
# [{"params": list(model.parameters())}]), on_step_begin=gradual_unfreezing(every=...))`.
# Lesson 02 measures whether it (with layer-wise learning rates) beats a single learning rate here.
#
# ## 8. Fine-tune or prompt? And how close is the domain?
#
# Fine-tuning is not the first tool to reach for. **Prompt** (or retrieve) when you have few
# labelled examples, the task is general, you need to iterate quickly, or compute is scarce.
# **Fine-tune** when you have at least a few hundred good examples, the output needs a specific
# format or domain knowledge a prompt cannot carry, or you want short prompts (no few-shot examples
# on every call) and lower latency. The learning curve above is the evidence to look at: if the
# linear probe on a few dozen examples is already good enough, you need little more.
#
# **Domain similarity** decides how much the pretrained body helps. course-tiny was pretrained on
# Python docstrings, and the task classifies Python docstrings: the body's features already
# separate the areas, which is why a head alone does well. On text unlike its pre-training data
# the same body would help much less, and the full fine-tuning / scratch gap would shrink.
#
# *A worked case.* A law firm has 2,000 annotated contracts and wants a clause classifier, without
# a large bill and without a model that forgets ordinary English.
# - **Base model:** one pretrained on text as close to contracts as possible (a legal-domain model
#   if one exists); if not, consider continued pre-training on unlabelled contracts first
#   (domain-adaptive pre-training), which uses the text they have without labels.
# - **Strategy:** start with a linear probe as the baseline (minutes, no risk to the body), then
#   LoRA or top-block fine-tuning (lessons 03–04); gradual unfreezing if full fine-tuning is used.
#   The learning rate follows the method: ≈1e-4 – 2e-4 for LoRA, ≈1e-6 – 5e-5 for full
#   fine-tuning of large models (docs/references.md; lesson 02 measures it for course-tiny).
# - **Validation:** split by contract, not by clause (70/15/15), so that no contract is in two
#   splits; report accuracy and per-class F1; keep a general-text set to measure forgetting
#   (lesson 05); review errors by hand.
#
# ## Summary
#
# - Fine-tuning continues training from pretrained parameters; training from scratch starts from
#   random ones and, on the same data and compute, is far behind (section 4's plot). On SmolLM2 the
#   frozen pretrained features alone (the linear probe) led every other method at 100 examples in a short
#   run (one seed, just outside two standard errors);
#   training the body and a new head at a learning rate scaled down for the body needs more steps.
# - A classifier is a pretrained body plus a new head; freezing is `requires_grad = False`, chosen
#   by parameter name; `trainable_report` tells you what will actually train.
# - Linear probe, top blocks, full fine-tuning and gradual unfreezing are choices of trainable
#   layer groups; the course loop and `Trainer` express the same run.
# - Many passes over few examples overfit: training loss goes to zero while validation loss rises.
#   Evaluate during training, and stop early on the metric you care about
#   (`EarlyStoppingCallback` with `load_best_model_at_end=True`); judge the result on a test split.
#
# **Exercises:** [exercises/01_transfer_learning.ipynb](../exercises/01_transfer_learning.ipynb) — write a freezing helper and a
# trainable-parameter count, answer questions about this lesson's measurements, and choose an
# early-stopping rule that the test then trains and measures.
