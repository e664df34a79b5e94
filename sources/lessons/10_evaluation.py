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
# **Runtime.** About a minute and a half on a 2-core CPU. The full harness runs (three models, zero-
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
                                   mean_stderr, paired_bootstrap, run_harness, tasks_dir, detectable_difference)
from course_lib.metrics import rouge_l
from course_lib.models import set_threads
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
# socket call is refused and recorded, and fails if one is even tried.
#
# A live run: the base model, the multiple-choice task, zero-shot, on the first 8 test items (`limit=8`).
# `harness_model` builds the harness's own `HFLM` from the model's folder (`peft=` would add an adapter);
# `run_harness` calls `lm_eval.simple_evaluate` and keeps each item's outcome.

# %%
lm = harness_model(name)
live = run_harness(lm, "docstring_choice", num_fewshot=0, limit=8)
print(f"harness, {name}, docstring_choice 0-shot, {live['n']} items: "
      f"acc {live['metrics']['acc']:.3f} ± {live['metrics']['acc_stderr']:.3f}, "
      f"acc_norm {live['metrics']['acc_norm']:.3f} ± {live['metrics']['acc_norm_stderr']:.3f}")
print(f"\nwhat the model saw for item 0 ({live['items'][0]['prompt']!r}) and the log-likelihood of each choice:")
for choice, ll in zip(item["choices"], live["items"][0]["loglikelihoods"]):
    print(f"  {ll:8.2f}  {choice}{'   ← right' if choice == item['choices'][item['label']] else ''}")

# %% [markdown]
# **The harness's score by hand.** For each choice the harness encodes prompt + `" "` + choice, and
# sums the log-probabilities of the choice's tokens (`LM._encode_pair` and `HFLM._loglikelihood_tokens`).
# `acc` is 1 when the right choice has the highest sum; `acc_norm` divides each sum by the choice's
# length in characters first (`ConfigurableTask.process_results`). `choice_logprobs` does it with one
# forward pass per choice; the file's first 8 items are the same items, from the full run.

# %%
docs = task_rows("docstring_choice")
diff, agree = 0.0, 0
file_items = runs[("base", "docstring_choice", 0, False)]["items"]
for it, filed in zip(live["items"], file_items):
    doc = docs[it["doc_id"]]
    lls = choice_logprobs(lm.model, lm.tokenizer, it["prompt"], [" " + c for c in doc["choices"]])
    pred = choice_predictions(lls, doc["choices"])
    diff = max(diff, max(abs(a - b) for a, b in zip(lls, it["loglikelihoods"])))
    agree += (float(pred["acc"] == doc["label"]), float(pred["acc_norm"] == doc["label"])) == (it["acc"], it["acc_norm"])
    assert [it["acc"], it["acc_norm"]] == [filed["acc"], filed["acc_norm"]], "the live run differs from the file"
print(f"max |log-likelihood by hand − harness| over {len(live['items'])} items × 4 choices: {diff:.1e}")
print(f"acc and acc_norm by hand = the harness's on {agree} of {len(live['items'])} items; live = the file on all")
assert diff < 1e-3 and agree == len(live["items"])

# %% [markdown]
# **`acc` or `acc_norm`?** A sum of log-probabilities is lower for every extra token, so `acc` favours
# short choices whatever they say; `acc_norm` compares per character and removes that pull. Item 0 above
# shows it: the right answer is also the shortest, and `acc` takes it. How often does the length decide?
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
# Neither is "the" accuracy: a report says which one it gives (the SmolLM2 card's scores, section 5, are
# normalised ones), and a model that scores well on `acc` but not on `acc_norm` may just prefer short answers.
#
# **Generation: the harness = lesson 06.** `docstring_gen`'s first items are the test questions `course
# sft` answered (`data/results/sft.json`), and with `apply_chat_template=True` the harness renders each
# question with the model's chat template, as lesson 06 did. Live, the first 4, compared answer by answer
# with the file lesson 06 reads, and scored with lesson 06's ROUGE-L:

# %%
gen = run_harness(lm, "docstring_gen", num_fewshot=0, limit=4, apply_chat_template=True)
lesson06 = load_results("sft")
same = sum(it["answer"].strip() == a for it, a in zip(gen["items"], lesson06["before"]["chat"]["answers"]))
ours = [rouge_l([a], [r]) for a, r in zip(lesson06["before"]["chat"]["answers"], lesson06["references"])]
gap = max(abs(it["rouge_l"] - o) for it, o in zip(gen["items"], ours))
print(f"answers identical to lesson 06's: {same} of {gen['n']}; max |ROUGE-L harness − course| = {gap:.1e}")
print(f"harness: ROUGE-L {gen['metrics']['rouge_l']:.3f} ± {gen['metrics']['rouge_l_stderr']:.3f}, "
      f"format {gen['metrics']['format_ok']:.2f}, exact match {gen['metrics']['exact_match']:.2f}")
print("prompt the harness built:", repr(gen["items"][0]["prompt"]))

# %% [markdown]
# They agree because everything that could differ was made the same: the chat template with its default
# system turn, greedy decoding, the same cap, one item per forward pass (a batch would left-pad, which
# can move a float and flip a near-tie), stopping only at the end of the turn, and the answer stripped
# of the whitespace the harness keeps. Each is a choice a harness task makes: the harness's own default
# for `until` is the few-shot delimiter, a blank line, which would have cut the base model's multi-line
# answers short and scored different text.
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
# TEMPLATE_FINDING

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
# THREE_MODELS_FINDING

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
print(f"max |standard error by hand − harness| over every metric of {len(evaluation['runs'])} runs: {worst:.1e}")
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
    """Paired bootstrap (and McNemar for 0/1 metrics) of arm b − arm a on the same items of one task."""
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
        print(line)


compare("docstring_choice", "base", "adapter")
compare("docstring_gen", "base", "adapter")
compare("docstring_choice", "course-tiny", "base")

# %% [markdown]
# PAIRED_FINDING
#
# **How many items would settle it?** With the standard deviation of the per-item differences, sd, a
# paired test at 95 % detects a difference δ four times out of five (80 % power) with
# n = ((1.96 + 0.84) · sd / δ)² items (`items_needed`, the usual normal approximation). Turned around,
# n items detect differences down to (1.96 + 0.84) · sd / √n (`detectable_difference`).

# %%
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
# POWER_FINDING
#
# ### The course's own claims, re-tested
#
# Lessons 01–07 compare methods on a few seeds or a few test items. `course_lib.evaluation.claims`
# re-tests each headline comparison from the file it rests on, at 95 %: Welch's t over seeds where a file
# kept one number per seed; McNemar or a paired bootstrap where it kept each item (lesson 06's answers);
# a two-proportion test where one run's accuracy is all there is. Two noises are in play: the training
# run (the seed) and the test items (another sample of items would give other scores). The per-seed
# files kept each run's accuracy, not each item's outcome, so for them the items' part can only be
# bounded: adding both arms' binomial standard errors as if the items were independent, which overstates
# it. A claim that survives only the seed test is marked "seeds only": it holds for this validation set;
# whether it holds for the task needs each item's outcome, which the course's new results files keep.

# %%
from course_lib.evaluation.claims import claims_table

table = claims_table()
print(f"{'lesson':6s} {'verdict':16s} {'n':25s} {'b − a':>8s} {'95 % interval':>19s} {'p':>6s}  claim (a → b)")
for r in table:
    if "diff" not in r:
        print(f"{r['lesson']:6s} {r['verdict']:16s} {r['n']:25s} {'':>8s} {'':>19s} {'':>6s}  {r['says']} ({r['why']})")
        continue
    print(f"{r['lesson']:6s} {r['verdict']:16s} {r['n']:25s} {r['diff']:+8.3f} [{r['low']:+.3f}, {r['high']:+.3f}] "
          f"{r['p']:6.3f}  {r['says']} ({r['a']} → {r['b']})")
for r in (r for r in table if "p_with_items" in r):
    print(f"  with the items' unpaired bound, lesson {r['lesson']} '{r['says'][:48]}…': p = {r['p_with_items']:.3f}")

# %% [markdown]
# CLAIMS_FINDING

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

from course_lib.evaluation import ngrams, normalize, overlap_table, split_texts

with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    from lm_eval.decontamination.janitor import Janitor, word_ngrams  # prints that its C++ helper is missing
janitor = Janitor()
rows = split_texts("chat", "test")[:50]
same = sum(ngrams(t) == set(word_ngrams(janitor.normalize_string(t), 13)) and normalize(t) == janitor.normalize_string(t)
           for t in rows)
print(f"13-grams by hand = lm-eval's on {same} of {len(rows)} rows")
assert same == len(rows)

# %% [markdown]
# Every training split the course trains on, against every test split it scores on (the chat set stands
# for its Alpaca twin: the same rows in another form). "short" counts rows under 13 words, which this
# rule can never flag.

# %%
overlap = overlap_table()
tests = list(dict.fromkeys(r["test"] for r in overlap))
trains = list(dict.fromkeys(r["train"] for r in overlap))
print(f"{'test split (rows, short)':40s}" + "".join(f"{t:>22s}" for t in trains))
for test in tests:
    cells = {r["train"]: r for r in overlap if r["test"] == test}
    label = f"{test} ({cells[trains[0]]['rows']}, {cells[trains[0]]['short']})"
    print(f"{label:40s}" + "".join(f"{cells[t]['flagged']:>14d} = {cells[t]['share']:5.1%}" for t in trains))

# %% [markdown]
# CONTAMINATION_FINDING
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
for arm in ("leaked", "clean"):
    nll = leak["arms"][arm]["response_nll"]
    test = paired_bootstrap(leak["arms"]["base"]["response_nll"][:k], nll[:k])
    held = paired_bootstrap(leak["arms"]["base"]["response_nll"][k:], nll[k:])
    print(f"{arm} arm, response NLL change from the base model: leaked items {test['diff']:+.3f} "
          f"[{test['low']:+.3f}, {test['high']:+.3f}], clean items {held['diff']:+.3f} [{held['low']:+.3f}, {held['high']:+.3f}]")

# %% [markdown]
# LEAK_FINDING

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
# (SmolLM2-135M-Instruct model card, 2024). With the hub reachable,
# this harness runs the same benchmark on the same model with
#
# ```bash
# lm_eval --model hf --model_args pretrained=HuggingFaceTB/SmolLM2-135M-Instruct,dtype=float32 \
#   --tasks hellaswag --num_fewshot 0 --batch_size 8 --device cpu --output_path data/results/hellaswag
# ```
#
# and reports `acc` and `acc_norm` with their standard errors. Expect its number to differ from the
# card's: a benchmark's score depends on the prompt wording, the normalisation and the few-shot
# examples, and lighteval and lm-eval format HellaSwag differently — compare models only under one
# harness and one task version (the `version` in a task's YAML). The course's SmolLM2 is also not the
# card's model: it is dequantized from a 4-bit GGUF file (data/models/smollm2-135m-instruct/README.md).
# Offline, the course's two tasks stand in, in the same format and through the same code path.

# %% [markdown]
# ## 6 · A metric, a judge or a person?
#
# - **A metric is enough when the answer can be checked.** Multiple choice (`acc`), an exact answer, a
#   format a program verifies (lesson 06's docstring format; IFEval's instructions), a unit test. It is
#   cheap, exact and repeatable — and it measures only what it checks. ROUGE-L, a metric against a
#   reference, is weaker: it counts shared words, so a fluent wrong answer scores well (lesson 06 shows
#   wrong answers with ROUGE-L above right ones), and a correct answer in other words scores badly.
#   JUDGE_EXAMPLE
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
# SUMMARY
#
# **Exercises:** [exercises/10_evaluation.ipynb](../exercises/10_evaluation.ipynb) — write a task YAML the
# harness accepts, compute the harness's standard error by hand, a paired bootstrap and a 13-gram overlap,
# and decide from two results files whether one model is better than another and how many more items
# would settle it.
