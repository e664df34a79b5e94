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
# # 11 · Exercises: which method?
#
# Six graded parts, after lesson 11 (13 points in all): count a method's trainable parameters by hand,
# price prompt tuning's virtual tokens, find the methods that fit a memory budget, score documents with
# BM25 by hand, build a few-shot prompt by retrieval with your scores, and choose the method for a described
# job (two limits, a quality comparison and a tie rule) from the measurements. Runtime: about half a minute on a CPU (nothing here trains; part 1 builds
# tiny peft models, parts 3 and 6 read `data/results/compare_methods.json`, made by
# `course compare-methods`). In each answer cell your code replaces the lines `# YOUR CODE HERE` and
# `raise NotImplementedError()`; the test cell below it says what is wrong.

# %%
from course_lib.notebook import quiet_notebook

quiet_notebook()  # first: peft loads bitsandbytes, whose CPU notice this keeps out of the page

import math
import re

from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

from course_lib.doctor import versions_line
from course_lib.experiments import compare_methods as cm
from course_lib.grading import check
from course_lib.models import load_tokenizer, set_threads
from course_lib.models.loading import resolve_model
from course_lib.results import load_results
from course_lib.tuning import prompting, sft

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
print(versions_line())
tokenizer = load_tokenizer(sft.DEFAULT_MODEL)
smollm2 = AutoConfig.from_pretrained(resolve_model(sft.DEFAULT_MODEL))  # its shapes; no weights loaded
results = load_results("compare_methods")
table = cm.method_table(results)
print({k: getattr(smollm2, k) for k in ("num_hidden_layers", "hidden_size", "intermediate_size",
                                         "num_attention_heads", "num_key_value_heads")})

# %% [markdown]
# ## Part 1 · LoRA's trainable parameters by hand (2 points)
#
# A Llama layer has seven linear layers: `q_proj` and `o_proj` (hidden → hidden), `k_proj` and `v_proj`
# (hidden → the key/value width), `gate_proj` and `up_proj` (hidden → intermediate) and `down_proj`
# (intermediate → hidden). The key/value width is `num_key_value_heads × head_dim` with
# `head_dim = hidden_size // num_attention_heads` (grouped-query attention). Write `lora_trainable(config, r,
# dora)`: the parameters LoRA of rank r on all seven layers of every decoder layer trains, plus, for
# DoRA, one magnitude per output feature of each adapted layer. It must equal peft's count, from the
# config's numbers alone (the hidden tests use a model far too large to build).

# %%
def lora_trainable(config, r: int, dora: bool = False) -> int:
    """Trainable parameters of LoRA (or DoRA) of rank r on every linear layer of a Llama's decoder."""
    ### BEGIN SOLUTION
    h, i = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    shapes = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]  # (in, out): q k v o gate up down
    per_layer = sum(r * (d_in + d_out) + (d_out if dora else 0) for d_in, d_out in shapes)
    return config.num_hidden_layers * per_layer
    ### END SOLUTION


# %% course={"grade_id": "q1_lora_params", "points": 2}
tiny = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2)
for use_dora in (False, True):
    peft_model = get_peft_model(LlamaForCausalLM(tiny), LoraConfig(r=4, target_modules="all-linear", use_dora=use_dora))
    check.equal(f"tiny_dora_{use_dora}", lora_trainable(tiny, 4, use_dora), peft_model.get_nb_trainable_parameters()[0],
                hint="r·(d_in + d_out) per layer; k_proj and v_proj output the key/value width, not the hidden size; "
                     "DoRA adds d_out per layer")
### BEGIN HIDDEN TESTS
check.equal("smollm2_lora_r8", lora_trainable(smollm2, 8), 2442240)
check.equal("smollm2_dora_r8", lora_trainable(smollm2, 8, dora=True), 2597760)
llama3_8b = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                        num_attention_heads=32, num_key_value_heads=8)  # never instantiated: 8 billion parameters
check.equal("llama3_8b_lora_r16", lora_trainable(llama3_8b, 16), 41943040)
check.equal("llama3_8b_dora_r16", lora_trainable(llama3_8b, 16, dora=True), 43319296)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 · What prompt tuning's virtual tokens cost (2 points)
#
# Prompt tuning with n virtual tokens trains n embeddings of `hidden_size` numbers. At inference the
# model reads those n tokens before every input: each of them has a key and a value in every layer's
# cache, each `num_key_value_heads × head_dim` wide. Write `prompt_tuning_params(n, config)` and
# `virtual_kv_bytes(n, config, bytes_per_value)`: the bytes the virtual tokens add to the key/value cache
# of one query.

# %%
def prompt_tuning_params(n: int, config) -> int:
    ### BEGIN SOLUTION
    return n * config.hidden_size
    ### END SOLUTION


def virtual_kv_bytes(n: int, config, bytes_per_value: int = 4) -> int:
    ### BEGIN SOLUTION
    kv = config.num_key_value_heads * (config.hidden_size // config.num_attention_heads)
    return n * config.num_hidden_layers * 2 * kv * bytes_per_value
    ### END SOLUTION


# %% course={"grade_id": "q2_virtual_tokens", "points": 2}
check.equal("params_type", isinstance(prompt_tuning_params(8, smollm2), int), True, hint="a count is an int")
check.equal("kv_type", isinstance(virtual_kv_bytes(8, smollm2), int), True, hint="bytes are an int")
check.equal("kv_linear_in_n", virtual_kv_bytes(16, smollm2), 2 * virtual_kv_bytes(8, smollm2),
            hint="twice the virtual tokens, twice the cache")
check.equal("kv_half_in_bf16", virtual_kv_bytes(8, smollm2, 2) * 2, virtual_kv_bytes(8, smollm2, 4),
            hint="bytes_per_value multiplies everything")
### BEGIN HIDDEN TESTS
check.equal("smollm2_params", prompt_tuning_params(8, smollm2), 4608)
check.equal("tiny_params", prompt_tuning_params(5, tiny), 5 * 32)
check.equal("matches_results", prompt_tuning_params(8, smollm2), table["prompt_tuning"]["trainable_parameters"])
check.equal("smollm2_kv_fp32", virtual_kv_bytes(8, smollm2, 4), 368640)
check.equal("tiny_kv_bf16", virtual_kv_bytes(3, tiny, 2), 3 * 2 * 2 * 16 * 2)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 · Which methods fit a memory budget? (2 points)
#
# `table` (above) is `cm.method_table` of the results file: one row per method and baseline. A training
# run needs at least its measured tensor peak (`tensor_peak_bytes`; the bytes on disk, `adapter_bytes`, are
# what you ship, not what training holds). Write `fits(table, budget_bytes)`: the sorted names of the
# *methods* (rows with `kind == "method"`) whose tensor peak is at most `budget_bytes`.

# %%
def fits(table: dict, budget_bytes: float) -> list[str]:
    ### BEGIN SOLUTION
    return sorted(m for m, row in table.items() if row["kind"] == "method" and row["tensor_peak_bytes"] <= budget_bytes)
    ### END SOLUTION


# %% course={"grade_id": "q3_budget", "points": 2}
everything = fits(table, float("inf"))
check.equal("type", isinstance(everything, list), True, hint="a list of names")
check.equal("no_baselines", all(table[m]["kind"] == "method" for m in everything), True,
            hint="only the training methods: a baseline trains nothing")
check.equal("sorted", everything, sorted(everything), hint="sorted names")
check.equal("nothing_fits_zero", fits(table, 0), [], hint="no method trains in zero bytes")
### BEGIN HIDDEN TESTS
made_up = {"a": {"kind": "method", "tensor_peak_bytes": 2.0e9, "adapter_bytes": 1e6},
           "b": {"kind": "method", "tensor_peak_bytes": 0.9e9, "adapter_bytes": 5e8},
           "c": {"kind": "baseline"},
           "d": {"kind": "method", "tensor_peak_bytes": 1.0e9, "adapter_bytes": 2e4}}
check.equal("made_up_1e9", fits(made_up, 1.0e9), ["b", "d"])
check.equal("made_up_0.95e9", fits(made_up, 0.95e9), ["b"])
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 · BM25 by hand (2 points)
#
# The lesson's retriever scores each training question for a query with BM25 (the `bm25s` package's
# default variant). With N documents, `avgdl` their mean length in words, and for a query word w:
# `df(w)` the number of documents that contain w, `tf(w, d)` how often document d contains it,
#
# score(d) = Σ over the query's words w (repeats included) that occur in at least one document of
#   idf(w) · tf(w, d) / (tf(w, d) + k1 · (1 − b + b · len(d) / avgdl)),  with idf(w) = ln(1 + (N − df(w) + 0.5) / (df(w) + 0.5)),
#
# k1 = 1.5 and b = 0.75. Words are what `words(text)` below returns. Write `bm25_scores(query, documents)`:
# one score per document, in their order (`query` is a list of words, `documents` a list of lists of words).

# %%
def words(text: str) -> list[str]:
    """Lower-cased words of at least two letters or digits: the retriever's tokens."""
    return re.findall(r"(?u)\b\w\w+\b", text.lower())


def bm25_scores(query: list[str], documents: list[list[str]], k1: float = 1.5, b: float = 0.75) -> list[float]:
    ### BEGIN SOLUTION
    n, avgdl = len(documents), sum(map(len, documents)) / len(documents)
    scores = []
    for doc in documents:
        score = 0.0
        for w in query:
            df = sum(w in d for d in documents)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = doc.count(w)
            score += idf * tf / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(score)
    return scores
    ### END SOLUTION


# %% course={"grade_id": "q4_bm25", "points": 2}
docs = [words("push an item onto a heap"), words("pop the smallest item from the heap heap"),
        words("join two paths"), words("join two paths into one longer path of many words here")]
s = bm25_scores(["heap"], docs)
check.equal("one_per_document", (isinstance(s, list), len(s)), (True, 4), hint="a list: one score per document")
check.close("absent_word_scores_zero", [s[2], s[3]], [0.0, 0.0], abs_tol=1e-12,
            hint="a document without the word gets nothing")
check.equal("more_occurrences_more_score", s[1] > s[0], True, hint="tf(w, d) counts the occurrences")
j = bm25_scores(["join"], docs)
check.equal("shorter_document_first", j[2] > j[3] > 0, True, hint="the same tf weighs more in a shorter document (b)")
check.close("unknown_word_ignored", bm25_scores(["zzz"], docs), [0.0] * 4, abs_tol=1e-12,
            hint="a word no document has adds nothing")
### BEGIN HIDDEN TESTS
pool = sft.task_rows("train", 32)
retriever = prompting.Retriever(pool)
pool_words = [words(prompting.question(r)) for r in pool]
check.close("toy_heap_scores", s[:2], [0.31388, 0.37383], abs_tol=1e-4)  # df counts documents, not occurrences
for i, q in enumerate([prompting.question(sft.task_rows("test", 3)[2]), "os os path join", "the explain the",
                       prompting.question(pool[6])]):  # the last names its function twice
    check.close(f"as_bm25s_{i}", max(abs(x - y) for x, y in zip(bm25_scores(words(q), pool_words),
                                                                 retriever.scores(q))), 0.0, abs_tol=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 · A few-shot prompt built by retrieval (2 points)
#
# Write `retrieved_row(row, pool, k)`: score every row of `pool` by the BM25 of its question (its first
# message, `prompting.question`) for `row`'s question, with your `bm25_scores`; take the k highest (a tie goes
# to the earlier row of the pool), most similar first, and place them before `row` as solved turns with
# `prompting.few_shot_row(row, examples)`.

# %%
def retrieved_row(row: dict, pool: list[dict], k: int) -> dict:
    ### BEGIN SOLUTION
    scores = bm25_scores(words(prompting.question(row)), [words(prompting.question(p)) for p in pool])
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return prompting.few_shot_row(row, [pool[i] for i in order])
    ### END SOLUTION


# %% course={"grade_id": "q5_retrieval", "points": 2}
pool = sft.task_rows("train", 32)
tests = sft.task_rows("test", 8)
built = retrieved_row(tests[0], pool, 2)
check.equal("turns", len(built["messages"]), 2 * 2 + 2, hint="two solved turns (user, assistant), then the question "
                                                           "and its reference")
check.equal("last_is_the_question", built["messages"][-2]["content"], prompting.question(tests[0]))
check.equal("examples_from_the_pool", all(m in pool for m in ({"messages": built["messages"][i:i + 2]}
                                                               for i in (0, 2))), True,
            hint="each solved turn is a row of the pool: its question and its answer")
### BEGIN HIDDEN TESTS
def picked(row, k):
    out = retrieved_row(row, pool, k)["messages"]
    return [next(j for j, p in enumerate(pool) if p["messages"][0]["content"] == out[i]["content"])
            for i in range(0, 2 * k, 2)]
check.equal("test0_k2", picked(tests[0], 2), [23, 17])
check.equal("test3_tie_to_the_earlier", picked(tests[3], 2), [22, 27])
check.equal("test5_k3", picked(tests[5], 3), [27, 10, 18])
check.equal("prompt_tokens", prompting.prompt_tokens(tokenizer, sft.prompt_for(tokenizer, built)), 298)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 6 · A method for a job (3 points)
#
# The job: you will serve twenty tasks from one SmolLM2 base, each trained on a few dozen rows like lesson
# 06's, and every task's users also ask it general questions through that task's adapter.
#
# - **One file per task, at most 12 MB**, the file that runs on the *shared, unmodified* base. PiSSA rewrites
#   the base it starts from, so on a shared base it ships as the plain LoRA of rank 2r it converts to:
#   its row's `servable_bytes`; every other method's file is its `adapter_bytes` (`servable_bytes` is
#   `None` there).
# - **General answers may lose at most 0.36 nats per token** on average: the mean change of log-probability
#   of the general questions' old answers, `table[m]["logprob_change"]["mean"]` (lesson 05's retention probe),
#   must be at least −0.36. The bound is on the measured mean, a point estimate, not on its interval.
# - **Quality first**: among the methods within both limits, the one with the lowest mean test response
#   NLL (`table[m]["nll"]["mean"]`) is the best. A method is tied with the best only when the item-by-item
#   comparison `v = cm.versus(rows[best], rows[m])` is not separated (`v["verdict"] == "not separated"`)
#   *and* its whole 95 % interval lies inside ±0.05 nats (`-0.05 < v["low"]` and `v["high"] < 0.05`, 5 %
#   perplexity). A wide interval that is not separated only failed to show a difference: it is no tie.
# - **Tie rule**: among the best and the methods tied with it, take the one whose training measured the
#   smallest tensor peak, `table[m]["tensor_peak_bytes"]` (a deterministic measurement, where the means above
#   carry the noise from one seed to the next); an exact tie goes to the first name in alphabetical order.
#
# The limits are in `LIMITS`: the file in bytes, the forgetting bound in nats per token. Write
# `admissible(table, limits)`: the sorted names of the methods (`kind == "method"`) within both limits (a
# value equal to a limit is within it), and `choose(table, rows, limits)`: the one method the job gets.
# `rows[m]` is method m's test response NLL per test row, one list per seed (`nll_rows` below builds it from
# the results file). Both must work on any table of this shape: the tests also use made-up ones.

# %%
LIMITS = {"file_bytes": 12e6, "logprob_change": -0.36}  # 12 MB per task's file; lose at most 0.36 nats per token


def nll_rows(method: str) -> list[list[float]]:
    """The test response NLL of each test row, one list per seed, of `method`'s runs at its chosen rate."""
    runs = sorted((r for r in results["runs"] if r["method"] == method and r.get("chosen")), key=lambda r: r["seed"])
    return [r["test"]["nll_rows"] for r in runs]


rows = {m: nll_rows(m) for m, r in table.items() if r["kind"] == "method"}


def admissible(table: dict, limits: dict) -> list[str]:
    """The sorted names of the methods whose shipped file and mean forgetting are within `limits`."""
    ### BEGIN SOLUTION
    return sorted(m for m, r in table.items() if r["kind"] == "method"
                  and (r["servable_bytes"] or r["adapter_bytes"]) <= limits["file_bytes"]
                  and r["logprob_change"]["mean"] >= limits["logprob_change"])
    ### END SOLUTION


def choose(table: dict, rows: dict, limits: dict) -> str:
    """The admissible method the job gets: the lowest mean test NLL, narrow ties item by item to the smallest peak."""
    ### BEGIN SOLUTION
    ok = admissible(table, limits)
    best = min(ok, key=lambda m: table[m]["nll"]["mean"])
    versus = {m: cm.versus(rows[best], rows[m]) for m in ok if m != best}
    tied = [best] + [m for m, v in versus.items()
                     if v["verdict"] == "not separated" and -0.05 < v["low"] and v["high"] < 0.05]
    return min(tied, key=lambda m: (table[m]["tensor_peak_bytes"], m))
    ### END SOLUTION


print("admissible:", admissible(table, LIMITS), "→ the job gets", choose(table, rows, LIMITS))

# %% course={"grade_id": "q6_decision", "points": 3}
ok = admissible(table, LIMITS)
check.equal("types", (isinstance(ok, list), all(isinstance(m, str) for m in ok)), (True, True), hint="a list of names")
check.equal("methods_only", all(table[m]["kind"] == "method" for m in ok), True, hint="a baseline ships no file")
check.equal("sorted", ok, sorted(ok), hint="sorted names")
check.equal("everything_fits_no_limit", admissible(table, {"file_bytes": math.inf, "logprob_change": -math.inf}),
            sorted(m for m, r in table.items() if r["kind"] == "method"), hint="with no limits every method fits")
check.equal("nothing_fits_zero", admissible(table, {"file_bytes": 0, "logprob_change": -math.inf}), [],
            hint="no method ships an empty file")
check.equal("nothing_gains_everything", admissible(table, {"file_bytes": math.inf, "logprob_change": math.inf}), [],
            hint="the bound is the lowest change allowed: no method's answers gain infinitely many nats")
check.equal("more_room_more_methods",
            set(ok) <= set(admissible(table, {"file_bytes": 2 * LIMITS["file_bytes"],
                                              "logprob_change": 2 * LIMITS["logprob_change"]})),
            True, hint="a larger file and a looser forgetting bound can only admit more methods")
choice = choose(table, rows, LIMITS)
check.equal("choice_type", isinstance(choice, str), True, hint="one method's name")
check.equal("choice_admissible", choice in ok, True, hint="the job gets a method within both limits")
### BEGIN HIDDEN TESTS
# the real results (tests/test_compare_methods.py::test_exercise_decision_is_a_real_choice checks that more than one
# method is admissible, that each limit changes the answer, and that these are the values of its own rule)
check.equal("real_admissible", ok, ["ia3", "rslora"])
check.equal("real_choice", choice, "rslora")
# a made-up comparison where each wrong rule gives another answer: a is the best but its file is too large, b the
# next but it forgets beyond the bound, p's adapter is small but its servable file is not; c is the best admissible
# one; d is tied with c (a narrow interval), sits exactly at both limits and has the smallest peak of the two, while
# c has the smaller file and forgets less; w is not separated from c but its interval is wide (no tie), with a smaller
# peak than d; e is separated from c item by item although their intervals overlap, forgets nothing, and answers
# with the highest ROUGE-L; s is separated from c by less than 0.05 (inside the margin, yet no tie) with a smaller
# peak still; q is tied with c and has the smallest peak of all, but forgets beyond the bound
def made_up_results():
    spec = {  # name: (NLL shift per item, alternating part, Δlogp, ROUGE-L, adapter, servable, peak)
        "a": (-0.30, 0.01, -0.1, 0.2, 30e6, None, 1.9e9), "b": (-0.20, 0.01, -0.6, 0.2, 8e6, None, 1.5e9),
        "p": (-0.10, 0.01, -0.1, 0.2, 5e6, 15e6, 1.5e9), "c": (0.0, 0.0, -0.2, 0.2, 1e6, None, 1.6e9),
        "d": (0.004, 0.01, -0.3, 0.2, 10e6, None, 1.4e9), "w": (0.02, 0.3, -0.1, 0.2, 2e6, None, 1.3e9),
        "e": (0.15, 0.01, 0.0, 0.5, 2e5, None, 1.0e9), "s": (0.025, 0.01, -0.2, 0.2, 1e6, None, 0.9e9),
        "q": (0.002, 0.01, -0.5, 0.2, 1e6, None, 0.8e9)}
    base = [2.0 + 0.8 * ((7 * i) % 12) / 11 for i in range(12)]
    runs, sizes = [], {}
    for k, (name, (shift, alt, logp, rouge, disk, servable, peak)) in enumerate(spec.items()):
        for seed in range(3):
            noise = 0.01 * ((k + seed) % 3 - 1)
            nlls = [round(x + shift + alt * (-1) ** i + noise, 5) for i, x in enumerate(base)]
            runs.append({"method": name, "learning_rate": 1e-3, "seed": seed, "chosen": True, "val_response_nll": 2.5,
                         "train_loss": [3.0, 2.9, 2.8, 2.7], "train_tokens": 100,
                         "test": {"nll_rows": nlls, "response_ppl": math.exp(sum(nlls) / 12), "answers": ["x", "y"],
                                  "rouge_rows": [rouge - 0.05, rouge + 0.05], "format_rows": [1, 0]},
                         "retention": {"kept_rows": [1, 0], "logprob_change_rows": [logp - 0.01, logp + 0.01]}})
        sizes[name] = {"adapter_bytes": disk, "servable_bytes": servable, "tensor_peak_bytes": peak}
    return {"runs": runs, "baselines": {}, "costs": {"sizes": sizes, "rounds": []}}
fake = made_up_results()
fake_table, fake_rows = cm.method_table(fake), {m: [r["test"]["nll_rows"] for r in fake["runs"] if r["method"] == m]
                                                for m in "abpcdwesq"}
tight, loose = {"file_bytes": 10e6, "logprob_change": -0.3}, {"file_bytes": 40e6, "logprob_change": -1.0}
check.equal("made_up_admissible", admissible(fake_table, tight), ["c", "d", "e", "s", "w"])
check.equal("made_up_choice", choose(fake_table, fake_rows, tight), "d")
check.equal("made_up_loose", (admissible(fake_table, loose), choose(fake_table, fake_rows, loose)),
            (["a", "b", "c", "d", "e", "p", "q", "s", "w"], "a"))
# an exact tie of peaks goes to the first name: c renamed zc (still the best) with d's peak
renamed = {("zc" if m == "c" else m): dict(r) for m, r in fake_table.items()}
renamed["zc"]["tensor_peak_bytes"] = renamed["d"]["tensor_peak_bytes"]
check.equal("exact_tie_to_the_first_name",
            choose(renamed, {("zc" if m == "c" else m): v for m, v in fake_rows.items()}, tight), "d")
### END HIDDEN TESTS

# %% [markdown]
# ## Where this leads
#
# No method wins every column: a method is chosen for a job, under its constraints, from measurements
# like these — and a measurement on a 135M model at lesson 06's budget is a pointer for your model, not a law.
