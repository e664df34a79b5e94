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
# # 10 · Evaluation you can trust: the standard harness, error bars on every comparison, contamination
#
# **Goal.** Evaluate a fine-tuned model the way the field does, and know how much to believe the result.
# Run EleutherAI's lm-evaluation-harness — the tool most published scores come from — offline, on the
# course's own tasks, and check that its numbers are the course's own metrics where both compute the
# same thing; put a standard error on every score and a paired test on every comparison; work out how
# many test items a difference needs; re-test the headline comparisons of lessons 01–07; and check
# whether the test sets leaked into the training data, measuring what a leak does to a score.
#
# **Runtime.** Under a minute on a 2-core CPU. The full harness runs (three models, zero-
# and few-shot, 48–128 test items each) are `course evaluate`, and the leaked fine-tune is `course
# leak`; they wrote `data/results/evaluation.json` and `data/results/leakage.json`, which this notebook
# reads. Live, it runs the harness on a few items and checks them against the files.
#
# **Models.** SmolLM2-135M-Instruct (Allal et al. 2025), the same with lesson 06's adapter, and course-tiny.
#
# **You will use** `lm_eval` (`simple_evaluate`, its `HFLM` model with `peft=`, task YAML files),
# `course_lib.evaluation` (the harness runs, standard errors, paired tests, power, n-gram overlap).

# %%
from course_lib.notebook import quiet_notebook

quiet_notebook()  # first: peft, imported below, loads bitsandbytes, whose CPU notice this keeps out of the page

import math

from course_lib.data import task_rows
from course_lib.doctor import versions_line
from course_lib.evaluation import (choice_logprobs, choice_predictions, harness_model, items_needed, mcnemar,
                                   mean_stderr, paired_bootstrap, run_harness, sign_flip, tasks_dir,
                                   detectable_difference)
from course_lib.metrics import rouge_l
from course_lib.models import set_threads
from course_lib.notebook import below
from course_lib.results import load_results, require_adapter, require_results
from course_lib.tuning import sft

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
print(versions_line())
require_results("evaluation", "leakage", "sft")  # what this lesson reads, checked before anything slow
adapter_dir = require_adapter("sft-docstring")
name = sft.lesson_model()  # smollm2-135m-instruct unless COURSE_MODEL names another chat model
evaluation = load_results("evaluation")
runs = {(r["arm"], r["task"], r["num_fewshot"], r["apply_chat_template"]): r for r in evaluation["runs"]}
print(f"evaluation.json: `{evaluation['command']}`, {len(evaluation['runs'])} harness runs, "
      f"{evaluation['wall_seconds'] / 60:.0f} min")

# %% [markdown]
# ## 1 · The harness, offline, on the course's own tasks
#
# lm-evaluation-harness describes a task in a YAML file: where the data is, how to turn an item into a
# prompt, what the model must produce and how to score it. It runs Hugging Face models and loads data
# from local files, so it works here without a network. The course ships two tasks in that format under
# `data/tasks/` (built by `course build-data`, with a data card), both cut from the held-out functions of
# lesson 06's task:
#
# - `docstring_choice`, **multiple choice**: which of four one-line docstrings belongs to this function?
#   The model never writes anything: the harness scores each choice by its log-likelihood after the
#   prompt and the model "answers" with the most likely one.
# - `docstring_gen`, **generation** (`generate_until`): lesson 06's question, answered greedily, scored
#   against the real docstring by exact match, ROUGE-L and the docstring format.

# %%
print((tasks_dir() / "docstring_choice" / "docstring_choice.yaml").read_text())
item = task_rows("docstring_choice")[0]
print("test item 0:", item)

# %% [markdown]
# `dataset_path: json` with `data_files` is the harness's way to read local JSONL (the paths are relative
# to the course's folder, where the harness is run from); `doc_to_text` is a Jinja template; `test_split`
# holds the scored items and `fewshot_split` the examples a few-shot prompt shows first. `docstring_gen`'s
# YAML adds `generation_kwargs` (greedy, at most 24 new tokens, `until: []`: stop only at the end of the
# turn, as lesson 06 generated) and `process_results: !function metrics.process_results`, a hook that
# scores each answer with the course's own definitions (`course_lib.evaluation.score_answer`).
#
# **Offline, checked.** Nothing here may reach a network (`HF_HUB_OFFLINE=1`). The model, the adapter and
# the data are local folders; the metrics are the harness's own (`acc`, `acc_norm`, computed in
# `lm_eval/api/task.py`) or the course's. A metric the harness does not know would be looked up in
# Hugging Face's `evaluate` library, which downloads its scripts from the hub (`get_metric` in
# `lm_eval/api/registry.py`) — the reason `docstring_gen` scores through its own hook. The harness's
# `HFLM.get_model_info` asks the hub for the model's commit hash; given a local folder it gets a
# validation error, not a request. `tests/test_harness.py` runs the harness, with an adapter, while every
# socket call is refused and recorded, and fails if one is even tried — once with `HF_HUB_OFFLINE=1` and
# once with the variable unset, so that the local folder alone keeps it off the network.
#
# A live run: the base model, the multiple-choice task, zero-shot, on the first 4 test items (`limit=4`).
# `harness_model` builds the harness's own `HFLM` from the model's folder (`peft=` would add an adapter);
# `run_harness` calls `lm_eval.simple_evaluate` and keeps each item's outcome.

# %%
lm = harness_model(name)
live = run_harness(lm, "docstring_choice", num_fewshot=0, limit=4)
print(f"harness, {name}, docstring_choice 0-shot, {live['n']} items: "
      f"acc {live['metrics']['acc']:.3f} ± {live['metrics']['acc_stderr']:.3f}, "
      f"acc_norm {live['metrics']['acc_norm']:.3f} ± {live['metrics']['acc_norm_stderr']:.3f}")
print(f"\nwhat the model saw for item 0 ({live['items'][0]['prompt']!r}); each choice's log-likelihood, its length "
      "in characters and the two per character:")
for choice, ll in zip(item["choices"], live["items"][0]["loglikelihoods"]):
    print(f"  {ll:8.2f} {len(choice):4d} {ll / len(choice):7.3f}  {choice}"
          f"{'   ← right' if choice == item['choices'][item['label']] else ''}")

# %% [markdown]
# **The harness's score by hand.** For each choice the harness encodes prompt + `" "` + choice, and
# sums the log-probabilities of the choice's tokens (`LM._encode_pair` and `HFLM._loglikelihood_tokens`).
# `acc` is 1 when the right choice has the highest sum; `acc_norm` divides each sum by the choice's
# length in characters first (`ConfigurableTask.process_results`). `choice_logprobs` does it with one
# forward pass per choice; the file's first 4 items are the same items, from the full run.

# %%
docs = task_rows("docstring_choice")
diff, agree, as_filed = 0.0, 0, 0
file_items = runs[("base", "docstring_choice", 0, False)]["items"]
for it, filed in zip(live["items"], file_items):
    doc = docs[it["doc_id"]]
    lls = choice_logprobs(lm.model, lm.tokenizer, it["prompt"], [" " + c for c in doc["choices"]])
    pred = choice_predictions(lls, doc["choices"])
    diff = max(diff, max(abs(a - b) for a, b in zip(lls, it["loglikelihoods"])))
    agree += (float(pred["acc"] == doc["label"]), float(pred["acc_norm"] == doc["label"])) == (it["acc"], it["acc_norm"])
    as_filed += [it["acc"], it["acc_norm"]] == [filed["acc"], filed["acc_norm"]]  # shown, not asserted: a near-tie may flip on another CPU
print(f"max |log-likelihood by hand − harness| over {len(live['items'])} items × 4 choices: {below(diff, 1e-3)}")
print(f"acc and acc_norm by hand = the harness's on {agree} of {len(live['items'])} items; "
      + (f"live = the file on {as_filed}" if name == evaluation["model"] else f"the file holds {evaluation['model']}'s runs"))
assert diff < 1e-3 and agree == len(live["items"])

# %% [markdown]
# **`acc` or `acc_norm`?** A sum of log-probabilities is lower for every extra token, so `acc` favours
# short choices whatever they say; `acc_norm` compares per character and removes that pull. Item 0 above
# shows it: the right answer is also the shortest, and `acc` takes it; `acc_norm` takes the longest wrong
choice instead, whose log-likelihood per character is the highest of the four (printed above). How often does the length decide?
# On the full run's items, the choice each rule picks, against the shortest choice:

# %%
for arm in ("base", "course-tiny"):
    items = runs[(arm, "docstring_choice", 0, False)]["items"]
    picks = {"acc": [], "acc_norm": []}
    for it in items:
        doc = docs[it["doc_id"]]
        pred = choice_predictions(it["loglikelihoods"], doc["choices"])
        shortest = min(range(4), key=lambda i: len(doc["choices"][i]))
        for rule in picks:
            picks[rule].append(pred[rule] == shortest)
    short_right = sum(min(range(4), key=lambda i: len(docs[it["doc_id"]]["choices"][i])) == docs[it["doc_id"]]["label"]
                      for it in items) / len(items)
    print(f"{arm:12s} picks the shortest choice: acc {sum(picks['acc']) / len(items):.0%}, "
          f"acc_norm {sum(picks['acc_norm']) / len(items):.0%} of {len(items)} items "
          f"(always picking the shortest would score {short_right:.3f}; chance 0.25)")

# %% [markdown]
# Neither is "the" accuracy: a report says which one it gives, and a model that scores well on `acc` but
# not on `acc_norm` may just prefer short answers.
#
# **Generation: the harness = lesson 06.** `docstring_gen`'s first items are the test questions `course
# sft` answered (`data/results/sft.json`), and with `apply_chat_template=True` the harness renders each
# question with the model's chat template, as lesson 06 did. Live, the first 2, compared answer by answer
# with the file lesson 06 reads, and scored with lesson 06's ROUGE-L:

# %%
gen = run_harness(lm, "docstring_gen", num_fewshot=0, limit=2, apply_chat_template=True)
lesson06 = load_results("sft")
ours = [rouge_l([it["answer"].strip()], [r]) for it, r in zip(gen["items"], lesson06["references"])]
gap = max(abs(it["rouge_l"] - o) for it, o in zip(gen["items"], ours))
print(f"max |ROUGE-L harness − course (course_lib.metrics.rouge_l)| on the same answers: {below(gap, 1e-9)}")
if name == lesson06["model"]:
    same = sum(it["answer"].strip() == a for it, a in zip(gen["items"], lesson06["before"]["chat"]["answers"]))
    print(f"answers identical to the ones lesson 06's `course sft` generated: {same} of {gen['n']}")
print(f"harness: ROUGE-L {gen['metrics']['rouge_l']:.3f} ± {gen['metrics']['rouge_l_stderr']:.3f}, "
      f"format {gen['metrics']['format_ok']:.2f}, exact match {gen['metrics']['exact_match']:.2f}")
print("prompt the harness built:", repr(gen["items"][0]["prompt"]))

# %% [markdown]
# The ROUGE-L agreement is circular by construction: the task's hook (`data/tasks/docstring_gen/metrics.py`)
# scores with `course_lib.evaluation.score_answer`, that is with the course's own `rouge_l`, so it only shows
# that the hook received the answers. The independent check is the answers themselves: the harness built
# the prompt, ran the model and cut the reply, and they come out identical to lesson 06's.
#
# The full run holds all 8 of lesson 06's test questions, for the base model and — through the harness's
# `peft=` — for the base with lesson 06's adapter, whose answers `course sft` also kept:

# %%
for arm, key in (("base", "before"), ("adapter", "after")):
    filed = runs[(arm, "docstring_gen", 0, True)]["items"][:len(lesson06["references"])]
    same = sum(it["answer"].strip() == a for it, a in zip(filed, lesson06[key]["chat"]["answers"]))
    harness_mean = sum(it["rouge_l"] for it in filed) / len(filed)
    print(f"{arm:8s} answers identical to sft.json's '{key}': {same} of {len(filed)}; ROUGE-L harness "
          f"{harness_mean:.4f}, lesson 06 {lesson06[key]['chat']['rouge_l']:.4f}")

# %% [markdown]
# They agree because everything that could differ was made the same: the chat template with its default
# system turn, greedy decoding, the same cap, stopping only at the end of the turn, and the answer
# stripped of the whitespace the harness keeps. The harness generates in batches, padded on the left;
# padding can move a float and flip a near-tie between two tokens, so "identical" is a check, not a given
# (here it held). Each is a choice a harness task makes: the harness's own default for `until` is the
# few-shot delimiter, a blank line, which would have cut the base model's multi-line answers short and
# scored different text.
#
# **The chat template, on or off.** For multiple choice the harness's default is a plain prompt; with
# `apply_chat_template=True` the prompt becomes a user turn and each choice the start of the assistant's
# reply (and the space before the choice goes: `target_delimiter` is dropped under a template). The
# full run scored the base model both ways on the same items:

# %%
off, on = runs[("base", "docstring_choice", 0, False)], runs[("base", "docstring_choice", 0, True)]
print("prompt with the template:", repr(on["prompt_0"]))
for label, run in (("template off", off), ("template on", on)):
    m = run["metrics"]
    print(f"{label:13s} acc {m['acc']:.3f} ± {m['acc_stderr']:.3f}   acc_norm {m['acc_norm']:.3f} ± "
          f"{m['acc_norm_stderr']:.3f}   ({run['n']} items)")
for metric in ("acc", "acc_norm"):
    t = mcnemar([i[metric] for i in off["items"]], [i[metric] for i in on["items"]])
    print(f"{metric}: on − off = {t['diff']:+.3f}; items only one gets right: off {t['a_only']}, on {t['b_only']}; "
          f"McNemar p = {t['p']:.3f}")

# %% [markdown]
# On this task the template moved little: +0.023 on both rules, from a handful of items that only one
# prompt gets right, well inside the noise (McNemar p above 0.4). It is not a free choice all the same:
# lesson 06 showed that the same base model finds the reference docstrings less surprising without its
# template, and a harness run must say which way it asked — `apply_chat_template` changes the prompt
# of every item.

# %% [markdown]
# ## 2 · Three models, zero- and few-shot
#
# `course evaluate` ran both tasks on SmolLM2-135M-Instruct (the base), on the base with lesson 06's
# adapter (`HFLM(..., peft="data/adapters/sft-docstring")`) and on course-tiny, with 0 and 2 examples in
# the prompt (`num_fewshot`; the examples come from the validation split, the same first two for every
# item). Generation uses the chat template for the two SmolLM2 arms (the adapter was trained inside it;
# few-shot examples become earlier turns of the conversation) and a plain prompt for course-tiny, whose
# template it never trained in. Every number has the harness's standard error; the few-shot runs use the
# first 48 items, as the generation runs do.

# %%
print(f"{'arm':12s} {'task':17s} {'shots':>5s} {'chat':>5s} {'n':>4s}   metrics (± the harness's standard error)")
for (arm, task, shots, chat), run in sorted(runs.items(), key=lambda kv: (kv[0][1], list(kv[0]))):
    m = run["metrics"]
    shown = ["acc", "acc_norm"] if task == "docstring_choice" else ["rouge_l", "format_ok", "exact_match"]
    print(f"{arm:12s} {task:17s} {shots:5d} {'on' if chat else 'off':>5s} {run['n']:4d}   "
          + "   ".join(f"{k} {m[k]:.3f} ± {m[k + '_stderr']:.3f}" for k in shown))

# %% [markdown]
# Three things stand out, each checked with a paired test below. SmolLM2 is far ahead of course-tiny,
# whose multiple-choice accuracy is within two standard errors of chance (0.25). Lesson 06's adapter,
# trained to *write* one-line docstrings, also *recognises* them better (`acc_norm` on the choice task,
# a task it never trained on) — and its answers are in the docstring format almost every time. And two
# examples in the prompt do for the base model part of what training did: the share of answers in the
# docstring format jumps. Exact match is zero everywhere: no model reproduces a real docstring word
# for word, which is why lesson 06 also scored ROUGE-L and the format.
#
# The few-shot runs cover the first 48 items only, so a fair zero- against few-shot comparison uses the
# zero-shot run's same 48 items:

# %%
def paired_line(label: str, x_items: list[dict], y_items: list[dict], metric: str) -> None:
    """One paired comparison: y − x on the same items, the bootstrap's 95 % interval, and McNemar for 0/1 scores."""
    x, y = [i[metric] for i in x_items], [i[metric] for i in y_items]
    boot = paired_bootstrap(x, y)
    line = (f"{label:44s} {metric:9s} {sum(x) / len(x):.3f} → {sum(y) / len(y):.3f}: {boot['diff']:+.3f} "
            f"[{boot['low']:+.3f}, {boot['high']:+.3f}]")
    if set(x) | set(y) <= {0.0, 1.0}:
        t = mcnemar(x, y)
        line += f", disagreements {t['a_only']} / {t['b_only']}, McNemar p = {t['p']:.3f}"
    print(line)


for arm in ("base", "adapter", "course-tiny"):
    chat = arm != "course-tiny"
    n = runs[(arm, "docstring_choice", 2, False)]["n"]
    paired_line(f"{arm}, 0 → 2 shots, docstring_choice ({n} items)", runs[(arm, "docstring_choice", 0, False)]["items"][:n],
                runs[(arm, "docstring_choice", 2, False)]["items"], "acc_norm")
    paired_line(f"{arm}, 0 → 2 shots, docstring_gen ({n} items)", runs[(arm, "docstring_gen", 0, chat)]["items"][:n],
                runs[(arm, "docstring_gen", 2, chat)]["items"], "format_ok")

# %% [markdown]
# The few-shot gain that is clear is the base model's docstring format (22 answers of 48 changed, all in
# one direction). Its `acc_norm` rose by five items, none the other way — a bootstrap interval that
# excludes zero, but an exact McNemar p of about 0.06: with five disagreements the bootstrap is too
# optimistic (section 3 comes back to this). The adapter and course-tiny gained nothing measurable from
# the examples.

# %% [markdown]
# ## 3 · How sure is a score?
#
# **The harness's standard error.** For a metric averaged over n items, the harness reports the sample
# standard deviation of the per-item scores (divided by n − 1) over √n (`mean_stderr` in
# `lm_eval/api/metrics.py`). For 0/1 scores with mean p that is √(p(1 − p)/(n − 1)), a little above the
# textbook √(p(1 − p)/n). By hand, from the items the file kept:

# %%
worst = 0.0
for run in evaluation["runs"]:
    for metric in run["metrics"]:
        if not metric.endswith("_stderr") and len(run["items"]) > 1:
            worst = max(worst, abs(mean_stderr([it[metric] for it in run["items"]]) - run["metrics"][metric + "_stderr"]))
print(f"max |standard error by hand − harness| over every metric of {len(evaluation['runs'])} runs: {below(worst, 1e-5)}")
p, n = off["metrics"]["acc"], off["n"]
print(f"base, docstring_choice: p = {p:.3f} on n = {n}: √(p(1−p)/(n−1)) = {math.sqrt(p * (1 - p) / (n - 1)):.4f}, "
      f"√(p(1−p)/n) = {math.sqrt(p * (1 - p) / n):.4f}")

# %% [markdown]
# **Comparing two models on the same items.** Two standard errors side by side overstate the
# uncertainty of a difference when both models answered the same items: what makes an item easy or hard
# for one makes it so for the other, and that shared part cancels in the difference. Two tests use the
# pairing. The **paired bootstrap** resamples items (with replacement), keeping each item's two scores
# together, and reads the 95 % interval of the mean difference off the resamples. **McNemar's test**
# (McNemar 1947), for 0/1 scores, looks only at the items the two models disagree on: under "no
# difference" each of them is a coin flip. Base against adapter, on every metric the two runs share:

# %%
def compare(task: str, a_arm: str, b_arm: str, shots: int = 0, chat: bool | None = None) -> None:
    """Paired bootstrap of arm b − arm a on the same items of one task, with McNemar (0/1) or sign flips (else)."""
    chat = task == "docstring_gen" if chat is None else chat
    a, b = runs[(a_arm, task, shots, chat)], runs[(b_arm, task, shots, chat)]
    for metric in (m for m in a["metrics"] if not m.endswith("_stderr") and m != "exact_match"):
        x, y = [i[metric] for i in a["items"]], [i[metric] for i in b["items"]]
        boot = paired_bootstrap(x, y)
        unpaired = math.sqrt(mean_stderr(x) ** 2 + mean_stderr(y) ** 2)
        line = (f"{task:17s} {metric:9s} {b_arm} − {a_arm}: {boot['diff']:+.3f}, 95 % interval "
                f"[{boot['low']:+.3f}, {boot['high']:+.3f}], p = {boot['p']:.3f} (paired); unpaired ± {1.96 * unpaired:.3f}")
        if set(x) | set(y) <= {0.0, 1.0}:
            line += f"; McNemar p = {mcnemar(x, y)['p']:.3f}"
        else:
            line += f"; sign flips p = {sign_flip(x, y)['p']:.3f}"
        print(line)


compare("docstring_choice", "base", "adapter")
compare("docstring_gen", "base", "adapter")
compare("docstring_choice", "course-tiny", "base")

# %% [markdown]
# Pairing is what makes these differences measurable: on the choice task the unpaired ± (1.96 times the
# two standard errors combined) is several times the half-width of the paired interval, because the items both models find
# hard dominate each one's spread (less so for ROUGE-L, whose items vary less). The adapter's gains in `acc_norm`, ROUGE-L and the format are real by
# every test. Its `acc` gain is not: four items changed, all in its favour, and the bootstrap's interval
# excludes zero, but McNemar's exact p is 0.125. For 0/1 scores with few disagreements the bootstrap's
# percentile interval is too narrow (it never resamples a world where the disagreements went the other
# way); McNemar's exact test is the one to trust there. For scores that are not 0/1 (ROUGE-L) the exact
# counterpart is the **sign-flip permutation test** (`sign_flip`, Fisher 1935): under "no difference" each
# item's difference could as well have had the other sign, so the observed mean is compared with the means
# under every pattern of signs — all 2ⁿ of them for a few items, a random 100,000 for 48.
#
# **How many items would settle it?** With the standard deviation of the per-item differences, sd, a
# paired test at 95 % detects a difference δ four times out of five (80 % power) with
# n = ((1.96 + 0.84) · sd / δ)² items (`items_needed`, the usual normal approximation). Turned around,
# n items detect differences down to (1.96 + 0.84) · sd / √n (`detectable_difference`).

# %%
from statistics import NormalDist

print(f"z for 95 % (two-sided) = {NormalDist().inv_cdf(0.975):.2f}, z for 80 % power = {NormalDist().inv_cdf(0.8):.2f}")
for task, metric in (("docstring_choice", "acc"), ("docstring_gen", "rouge_l")):
    a, b = runs[("base", task, 0, task == "docstring_gen")], runs[("adapter", task, 0, task == "docstring_gen")]
    d = [y[metric] - x[metric] for x, y in zip(a["items"], b["items"])]
    sd, delta = mean_stderr(d) * math.sqrt(len(d)), sum(d) / len(d)
    print(f"{task} {metric}: observed difference {delta:+.3f}, per-item sd {sd:.3f} on {len(d)} items; "
          f"detectable with {len(d)} items: ±{detectable_difference(sd, len(d)):.3f}")
    for target in (0.05, 0.02):
        print(f"  a difference of {target:.2f} needs {items_needed(sd, target):,} items")
print(f"lesson 06 judged on 8 items: with the same per-item sd, it detects ±{detectable_difference(sd, 8):.3f} in ROUGE-L")

# %% [markdown]
# 128 items detect a difference in `acc` of about four points between these two models; the observed
# three points are below that, consistent with McNemar's verdict. Lesson 06 judged its fine-tune on 8
# questions: with this spread, 8 items can only detect a ROUGE-L difference above about 0.13 — its
# before/after gain was about that size (and, re-tested below, not significant), its reply-only against
# whole-text difference far below.
#
# ### The course's own claims, re-tested
#
# Lessons 01–07 compare methods on a few seeds or a few test items. `course_lib.evaluation.claims`
# re-tests each headline comparison from the file it rests on, at 95 %: Welch's t over seeds where a file
# kept one number per seed; both noises at once where it kept each seed's outcome on each item (lesson 07's
# win rates: the items paired, each arm's seeds adding their own part, t with Satterthwaite's degrees of
# freedom — the same standard error lesson 07 prints); McNemar or the exact sign-flip test where it kept each item (lesson 06's
# answers; the interval shown is the paired bootstrap's); a two-proportion test where one run's accuracy
# is all there is. Two noises are in play: the training
# run (the seed) and the test items (another sample of items would give other scores). The files with
# one number per seed kept each run's accuracy, not each item's outcome, so for them the items' part can only be
# bounded: adding both arms' binomial standard errors as if the items were independent, which overstates
# it. A claim that survives only the seed test is marked "seeds only": it holds for this validation set;
# whether it holds for the task needs each item's outcome, which the course's new results files keep. The
# other way round, a comparison of one training run each tests the items' noise only: another seed could
# move it. One that passes is marked "items only (1 seed)".

# %%
from collections import Counter

from course_lib.evaluation.claims import claims_table

table = claims_table()
print(f"{'lesson':6s} {'verdict':19s} {'n':25s} {'a → b':>15s} {'b − a':>8s} {'95 % interval':>19s} {'p':>6s}  claim (a → b)")
for r in table:
    if "diff" not in r:
        print(f"{r['lesson']:6s} {r['verdict']:19s} {r['n']:25s} {'':>15s} {'':>8s} {'':>19s} {'':>6s}  {r['says']} ({r['why']})")
        continue
    print(f"{r['lesson']:6s} {r['verdict']:19s} {r['n']:25s} {r['mean_a']:6.3f} → {r['mean_b']:6.3f} {r['diff']:+8.3f} "
          f"[{r['low']:+.3f}, {r['high']:+.3f}] {r['p']:6.3f}  {r['says']} ({r['a']} → {r['b']})")
for r in (r for r in table if "p_with_items" in r):
    print(f"  with the items' unpaired bound, lesson {r['lesson']} '{r['says'][:48]}…': p = {r['p_with_items']:.3f}")
for r in (r for r in table if r.get("one_run")):
    print(f"  lesson {r['lesson']} '{r['says'][:48]}…': {r['test']}")
verdicts = Counter(r["verdict"] for r in table)
print(f"{len(table)} claims: " + ", ".join(f"{v} {verdicts[v]}" for v in sorted(verdicts, key=verdicts.get, reverse=True)))

# %% [markdown]
# Most of the course's claims survive, most with room to spare: pre-training's worth (lesson 01), every
# rank step and the fixed-budget result (lesson 03), each forgetting result (lesson 05). Ties claimed as
# ties stay ties. Two one-run claims pass on their items only — lesson 01's probe at 100 examples and
# lesson 06's format gain (2 of 8 answers in the format before, 8 after) — and say nothing about another
# seed. What does not survive at 95 %, and what changed:
#
# - **Lesson 01, SmolLM2:** the linear probe's lead over full fine-tuning (one seed, 128 validation rows)
#   has p = 0.060 at 25 examples — not shown — and p = 0.031 at 100 (items only). The lesson's rule of
#   thumb, "differences under 0.088 are within two standard errors", used the standard error of *one*
#   accuracy; a difference of two independent accuracies has √2 times that, about 0.125 at p = 0.5 on
#   128 rows. Lesson 01 now says so (0.125, printed there), and names the probe's lead at 100 examples
#   only, "just outside two standard errors".
# - **Lesson 01, full fine-tuning against the top blocks at 400 examples,** and **lesson 02, a constant LR
#   against warm-up + cosine and against warm-up + linear decay:** significant over the three seeds, not
#   once the 495 validation rows' own sampling noise is bounded (p with the items' bound printed above).
#   Both lessons now say the lead holds on this validation set and is not significant once its rows'
#   noise is counted; a claim about the task needs each item's outcome (a paired test), which those
#   results files did not keep.
# - **Lesson 06, ROUGE-L "about doubled" after SFT:** 0.137 → 0.275 on 8 questions, and the bootstrap's
#   interval excludes zero — but the exact sign-flip test gives p = 0.062: two of the 8 items went the
#   other way, and 8 items cannot do better than p = 2/2⁸ even if all agree. The doubling is what was
#   measured, not a significant gain; the format gain is the one that holds.
# - **Lesson 06, reply-only against whole-text training:** not significant on 8 questions (p = 0.64 for
#   ROUGE-L, 0.25 for the format); lesson 06 now says none of these gaps is significant.
# - **Lesson 07, DPO + SFT against plain DPO** (win rates against lesson 06's answers on 48 held-out
#   prompts, three seeds each): lesson 07 finds DPO + SFT ahead of lesson 06's model and cannot place
#   plain DPO, but that does not make DPO + SFT the better of the two. Their gap, 0.472 → 0.604, has
#   p = 0.450: plain DPO's three seeds disagree with each other by more than it. One arm significant and
#   the other not is no evidence that the two differ; that takes a test of their difference, and more seeds.
# - Lessons 03 (SmolLM2's single-seed rank curve) and 04 (QLoRA against 16-bit LoRA, one live run) kept no
#   spread at all: their claims cannot be tested from what was recorded, only rerun with seeds.

# %% [markdown]
# ## 4 · Contamination: is the test set in the training data?
#
# A model that saw a test item in training scores it from memory. The field's standard check is n-gram
# overlap: lm-eval's decontamination tool lower-cases a text, deletes its punctuation, splits it into
# words and flags a test item when any run of 13 consecutive words also occurs in the training data, as
# GPT-3 did (Brown et al. 2020). `course_lib.evaluation.contamination` writes it out; first, the same
# n-grams as the harness's own `Janitor` on a few test rows:

# %%
import contextlib
import io

from course_lib.evaluation import contaminated, ngram_set, ngrams, normalize, overlap_table, split_texts
from course_lib.experiments.leakage import LeakConfig, arm_rows, leak_rows

with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    from lm_eval.decontamination.janitor import Janitor, word_ngrams  # prints that its C++ helper is missing
janitor = Janitor()
rows = split_texts("chat", "test")[:50]
same = sum(ngrams(t) == set(word_ngrams(janitor.normalize_string(t), 13)) and normalize(t) == janitor.normalize_string(t)
           for t in rows)
print(f"13-grams by hand = lm-eval's on {same} of {len(rows)} rows")
assert same == len(rows)

# %% [markdown]
# Every training split the course trains on, against every split it scores on — the validation splits
# too, since lessons 01–05 report on them (the chat set stands for its Alpaca twin: the same rows in
# another form). "short" counts rows under 13 words, which this rule can never flag; for them GPT-3 used
# another rule (Brown et al. 2020, appendix C): flagged when the whole normalized text occurs in the
# training data. Each cell gives the rows the 13-gram rule flags, their share, and "+ k" short rows
# contained whole.

# %%
overlap = overlap_table()
tests = list(dict.fromkeys(r["test"] for r in overlap))
trains = list(dict.fromkeys(r["train"] for r in overlap))
print(f"{'scored split (rows, short)':40s}" + "".join(f"{t:>27s}" for t in trains))
for test in tests:
    cells = {r["train"]: r for r in overlap if r["test"] == test}
    label = f"{test} ({cells[trains[0]]['rows']}, {cells[trains[0]]['short']})"
    print(f"{label:40s}" + "".join(f"{cells[t]['flagged']:>13d} = {cells[t]['share']:5.1%} + {cells[t]['short_contained']:3d}"
                                   for t in trains))

# %% [markdown]
# Reading the table from the top:
#
# - **course-tiny's corpus contains many test answers.** 27.5 % of the chat test rows (and 29.8 % of
#   `docstring_gen`'s) share a 13-gram with `corpus/train`. The instruction set is split by a hash of the
#   *prompt*, but its answers are docstrings of files that were in the pre-training corpus (the data card
#   says how the splits were made). The validation split, on which lessons 03 and 05 measure course-tiny's
#   perplexity, was cut the same way (26.9 % of its rows flagged): part of what they call held-out text,
#   it had read in pre-training. The classification set's card says so openly: course-tiny saw those texts
#   without their labels. `general/test`, cut from files course-tiny never saw, is
#   the set the course keeps clean for it — and even there 9.5 % of the passages share a 13-gram with the
#   corpus: the standard library documents some things twice, in two files (an asyncio transport's
#   methods, `Executor.map`), and one copy fell in a held-out file. A flag says that some of an item's
#   text is in the training data — sometimes most of it, sometimes one shared phrase; the share of its
#   13-grams found says which.
# - **The fine-tuning splits are nearly clean.** 4.0 % of chat test rows share a 13-gram with chat
#   training rows (the same docstring on sibling classes' methods, such as the mailbox classes' `remove`),
#   1.4 % for the classification set, none for
#   the preference pairs (cut from disjoint splits).
# - **Short rows are invisible to the 13-gram rule.** 381 of the 511 classification test rows and 92 of
#   the 206 choice items have fewer than 13 words: it cannot flag them, however leaked they are. GPT-3's
#   rule for short rows finds 332 of those 381 classification rows whole in course-tiny's corpus (as the
#   card says: it read the texts) and 170 inside the chat training rows — a few words of a docstring
#   recur inside longer answers — while none of the 92 short choice items occurs whole anywhere. For a
#   text of a few words, "contained" can be a shared phrase rather than a leak: the rule errs the other
#   way.
# - **What no overlap table here can see:** SmolLM2's own pre-training data. Its model card lists The
#   Stack, a corpus of source code, among it (docs/references.md); the standard library's docstrings may
#   well be in it. A published model's scores on public text carry that doubt unless its data can be
#   searched.
#
# ### A leak, on purpose
#
# `course leak` fine-tuned lesson 06's LoRA adapter twice, from the same seed, for the same steps, on
# the same number of rows: lesson 06's training rows plus either the first test items of
# `docstring_choice` (question and real docstring — the **leak**) or as many further training rows (the
# **control**). Both models, and the base model, were then scored on the leaked items and on the next test
# items, which neither arm saw: the harness's accuracy, and lesson 06's response perplexity of the real
# docstring.

# %%
leak = load_results("leakage")
k = leak["options"]["leaked"]
print(f"leakage.json: `{leak['command']}`, {leak['wall_seconds'] / 60:.0f} min; {k} leaked items, {k} clean ones")
print(f"{'model':8s} {'acc: leaked':>12s} {'clean':>14s} {'response ppl: leaked':>21s} {'clean':>8s}")
for arm, r in leak["arms"].items():
    acc = [sum(r["acc"][s]) / k for s in (slice(0, k), slice(k, 2 * k))]
    se = [mean_stderr(r["acc"][s]) for s in (slice(0, k), slice(k, 2 * k))]
    ppl = [math.exp(sum(r["response_nll"][s]) / k) for s in (slice(0, k), slice(k, 2 * k))]
    print(f"{arm:8s} {acc[0]:6.3f} ± {se[0]:.3f} {acc[1]:7.3f} ± {se[1]:.3f} {ppl[0]:21.2f} {ppl[1]:8.2f}")
for part, s in (("leaked items", slice(0, k)), ("clean items", slice(k, 2 * k))):
    gap = paired_bootstrap(leak["arms"]["clean"]["response_nll"][s], leak["arms"]["leaked"]["response_nll"][s])
    acc = mcnemar(leak["arms"]["clean"]["acc"][s], leak["arms"]["leaked"]["acc"][s])
    print(f"leak − control on the {part}: response NLL {gap['diff']:+.3f} nats [{gap['low']:+.3f}, {gap['high']:+.3f}]; "
          f"accuracy {acc['diff']:+.3f} (McNemar p = {acc['p']:.2f})")
leaked_rows, clean_rows = leak_rows(k)  # the chat rows `course leak` used, and the 13-gram check on them
trained = ngram_set("\n".join(m["content"] for m in r["messages"]) for r in arm_rows("leaked", LeakConfig(**leak["options"])))
for part, part_rows in (("leaked", leaked_rows), ("clean", clean_rows)):
    flags = contaminated(["\n".join(m["content"] for m in r["messages"]) for r in part_rows], trained)
    print(f"13-gram check against the leaked arm's training rows: {sum(flags)} of {len(flags)} {part} items flagged")

# %% [markdown]
# Training on anything of the task lowered the response perplexity on every item (the control arm), so
# "it improved" says nothing; the leak shows in the comparison. On the items it trained on, the leaked
# arm's reference docstrings are far less surprising than the control's; on the clean held-out items the
# two arms are level. **That is how a learner notices a leak: the score on the test set runs ahead of the
# score on fresh items from the same distribution**, while a clean model's response perplexity is about
# the same on both — in perplexity; in accuracy the first 24 items happen to be easier for every model,
# the base and the control included (printed above), which is why the comparison is leak against control
# on the same items rather than leaked items against clean ones. One seed: a pointer to how a leak shows,
# not a measurement of its size. The 13-gram check flags the leaked items against the training rows, and
# none of the clean ones (printed above). The multiple-choice accuracy barely moved (one item): the leak taught the whole docstring as
# a chat answer, and the cloze prompt scores one sentence after another prompt — and 24 items could not
# show a change of a few points anyway (section 3). A leak inflates most the metrics that score the
# leaked text in the leaked form.

# %% [markdown]
# ## 5 · The benchmarks the field reports
#
# Papers and model cards report a handful of public benchmarks, most of them run by a harness like this
# one:
#
# - **HellaSwag** (Zellers et al. 2019): pick the sensible ending of an everyday scene out of four; the
#   wrong endings were machine-written and filtered to fool models. Multiple choice by log-likelihood,
#   usually reported as `acc_norm`.
# - **ARC** (Clark et al. 2018): grade-school science questions, four choices; an Easy and a Challenge set.
# - **MMLU** (Hendrycks et al. 2021): four-choice questions in 57 subjects, from elementary mathematics to
#   law; reported zero- or five-shot, as a letter to pick (A–D) or, for small models, as a "cloze" where
#   each answer's text is scored — the format `docstring_choice` uses.
# - **IFEval** (Zhou et al. 2023): prompts with instructions a program can check (all in lower case, no
#   commas, a given number of paragraphs); the score is the share of prompts, or of instructions, followed.
# - **MT-Bench** (Zheng et al. 2023): 80 multi-turn questions whose answers a strong LLM grades from 1 to
#   10 — a judge, not a metric (section 6).
#
# The SmolLM2-135M-Instruct model card (see docs/references.md) reports, measured with Hugging Face's
# lighteval rather than this harness: IFEval 29.9, HellaSwag 40.9, ARC 37.3, BBH 28.2 and GSM8K 1.4
# (SmolLM2-135M-Instruct model card, 2024). Its table has no MMLU or MT-Bench row for this model, so
# there is no published figure of either to quote here. With the hub reachable,
# this harness runs the same benchmark on the same model with
#
# ```bash
# lm_eval --model hf --model_args pretrained=HuggingFaceTB/SmolLM2-135M-Instruct,dtype=float32 \
#   --tasks hellaswag --num_fewshot 0 --batch_size 8 --device cpu --output_path runs/hellaswag
# ```
#
# and reports `acc` and `acc_norm` with their standard errors. Expect its number to differ from the
# card's: a benchmark's score depends on the prompt wording, the normalisation and the few-shot
# examples, and two harnesses need not format a benchmark the same way — compare models only under one
# harness and one task version (the `version` in a task's YAML). The course's SmolLM2 is also not the
# card's model: it is dequantized from a 4-bit GGUF file (data/models/smollm2-135m-instruct/README.md).
# Offline, the course's two tasks stand in, in the same format and through the same code path.

# %% [markdown]
# ## 6 · A metric, a judge or a person?
#
# - **A metric is enough when the answer can be checked.** Multiple choice (`acc`), an exact answer, a
#   format a program verifies (lesson 06's docstring format; IFEval's instructions), a unit test. It is
#   cheap, exact and repeatable — and it measures only what it checks. ROUGE-L, a metric against a
#   reference, is weaker: it counts shared words, so a fluent wrong answer can score like a right one
#   (lesson 06 found such answers among its tuned model's), and a right answer in other words scores low.
# - **A judge** (a strong LLM grading or comparing answers: MT-Bench, AlpacaEval) when the answer is
#   open-ended and there is no reference. Zheng et al. (2023) found GPT-4's verdicts agree with human
#   experts about as often as experts agree with each other, and measured its biases: position (the
#   first answer of a pair is favoured), verbosity (longer answers are), self-enhancement (its own
#   answers are). Lesson 07 measures the position bias of a small local judge: swap the order of every
#   pair and count the verdicts that flip. A judge is a model, so its verdicts need the same error bars
#   as any score, and a check against people on a sample.
# - **People** when the question is what people want (helpfulness, tone, safety), when metric and judge
#   disagree, or when the stakes are high: the final reference, and the most expensive one, so it is
#   spent on a sample, with two raters per item to measure how often people agree with each other.
#
# The same statistics apply to all three: a win rate over n questions has a standard error of about
# √(p(1 − p)/n), and two judges (or a judge and a person) compared on the same items call for a paired
# test.

# %% [markdown]
# ## Summary
#
# - lm-evaluation-harness runs offline on the course's own tasks: YAML + local JSONL (`dataset_path:
#   json`), a local model folder and `peft=` for an adapter; nothing reaches a network, and a test refuses
#   every socket to prove it. Where the harness and the course compute the same thing they agree: the
#   choices' log-likelihoods to float32 rounding, `acc` and `acc_norm` exactly, and lesson 06's answers
#   word for word once the prompt, decoding, cap and stop were made the same.
# - `acc` favours short choices, `acc_norm` divides by the choice's characters; the chat template and the
#   few-shot examples change the prompt of every item — a score is only comparable under one harness,
#   task version and prompt.
# - Every score gets its standard error (the harness's: n − 1 in the variance); every comparison of two
#   models on the same items a paired test — McNemar for 0/1 scores and sign flips for others, exact
#   where the bootstrap is too optimistic on few items or few disagreements; and `items_needed` says how
#   many items a difference needs.
# - Re-tested, 12 of lessons 01–07's 24 headline claims hold (3 of them ties), 2 more on their items
#   only (one seed); 8 do not at 95 % once the test items' noise is counted — 3 of them hold over seeds
#   on their validation set only — and 2 cannot be tested from what was recorded. Lessons 01, 02 and 06
#   now say so where it changes their text (section 3 lists them).
# - 13-gram overlap found course-tiny's corpus holding about a quarter of the instruction test answers;
#   the fine-tuning splits are nearly clean; short rows escape the rule. A deliberate leak showed itself
#   as a test score running ahead of a fresh held-out set's.
# - Metric when the answer can be checked, a judge when it cannot, people when the question is what people
#   want — each with its error bars.
#
# **Exercises:** [exercises/10_evaluation.ipynb](../exercises/10_evaluation.ipynb) — write a task YAML the
# harness accepts, compute the harness's standard error by hand, a paired bootstrap and a 13-gram overlap,
# and decide from two results files whether one model is better than another and how many more items
# would settle it.
