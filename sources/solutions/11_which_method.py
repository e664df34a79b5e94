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
# Five graded parts, after lesson 11 (11 points in all): count a method's trainable parameters by hand,
# price prompt tuning's virtual tokens, find the methods that fit a memory budget in the results file,
# build a few-shot prompt by retrieval, and choose a method for a described job. Runtime: about half a
# minute on a CPU (nothing here trains; part 1 builds tiny peft models, the rest reads
# `data/results/compare_methods.json`, made by `course compare-methods`). In each answer cell your code
# replaces the lines `# YOUR CODE HERE` and `raise NotImplementedError()`; the test cell below it says
# what is wrong.

# %%
from course_lib.notebook import quiet_notebook

quiet_notebook()  # first: peft loads bitsandbytes, whose CPU notice this keeps out of the page

from peft import IA3Config, LoraConfig, get_peft_model
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
table = cm.method_table(load_results("compare_methods"))
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
# DoRA, one magnitude per output feature of each adapted layer. It must equal peft's count.

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
check.equal("matches_results", lora_trainable(smollm2, 8), table["lora"]["trainable_parameters"])
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
check.equal("matches_results", prompt_tuning_params(8, smollm2), table["prompt_tuning"]["trainable_parameters"],
            hint="one embedding (hidden_size numbers) per virtual token")
### BEGIN HIDDEN TESTS
check.equal("smollm2_kv_fp32", virtual_kv_bytes(8, smollm2, 4), 368640)
check.equal("tiny_kv_bf16", virtual_kv_bytes(3, tiny, 2), 3 * 2 * 2 * 16 * 2)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 · Which methods fit a memory budget? (2 points)
#
# `table` (above) is `cm.method_table` of the results file: one row per method and baseline. A training
# run needs at least its measured tensor peak (`tensor_peak_bytes`; the bytes on disk are what you ship,
# not what training holds). Write `fits(table, budget_bytes)`: the sorted names of the *methods* (rows
# with `kind == "method"`) whose tensor peak is at most `budget_bytes`.

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
check.equal("budget_case", fits(table, 9.0e8), ["ia3", "prefix_tuning", "prompt_tuning", "qlora"])
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 · A few-shot prompt built by retrieval (2 points)
#
# `prompting.Retriever(rows).scores(text)` gives the BM25 score of every row's question for `text`.
# Write `retrieved_row(row, retriever, k)`: the k rows with the highest scores (a tie goes to the earlier
# row), most similar first, placed before `row` as solved turns with `prompting.few_shot_row`.

# %%
def retrieved_row(row: dict, retriever, k: int) -> dict:
    ### BEGIN SOLUTION
    scores = retriever.scores(prompting.question(row))
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return prompting.few_shot_row(row, [retriever.rows[i] for i in order])
    ### END SOLUTION


# %% course={"grade_id": "q4_retrieval", "points": 2}
train_rows = sft.task_rows("train", 64)
retriever = prompting.Retriever(train_rows)
question_row = sft.task_rows("test", 3)[2]
built = retrieved_row(question_row, retriever, 2)
check.equal("turns", len(built["messages"]), 2 * 2 + 2, hint="two solved turns (user, assistant), then the question "
                                                           "and its reference")
check.equal("last_is_the_question", built["messages"][-2]["content"], prompting.question(question_row))
check.equal("same_as_library", built, prompting.few_shot_row(question_row, retriever.top(prompting.question(question_row), 2)),
            hint="the highest scores first: sort by −score")
### BEGIN HIDDEN TESTS
other = sft.task_rows("test", 6)[5]
check.equal("k3", retrieved_row(other, retriever, 3), prompting.few_shot_row(other, retriever.top(prompting.question(other), 3)))
check.equal("prompt_tokens", prompting.prompt_tokens(tokenizer, sft.prompt_for(tokenizer, built)), 156)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 · A method for a job (3 points)
#
# You will serve twenty tasks from one SmolLM2 base, each trained on a few rows like lesson 06's, and you
# ship one file per task: at most 1 MB each (`adapter_bytes`). Training must fit in 1 GB of tensor
# memory (`tensor_peak_bytes`). Among the *training methods* (rows with `kind == "method"`) that pass
# both limits, which has the lowest mean test perplexity (`ppl`)? Compute it from `table` and set
# `answer_q5` to its name. (More than one method passes; the file limit is the one people forget. When
# the intervals overlap, as the lesson shows they often do, the lower mean is a pointer, not a win.)

# %%
### BEGIN SOLUTION
passing = [m for m, r in table.items()
           if r["kind"] == "method" and r["adapter_bytes"] <= 1e6 and r["tensor_peak_bytes"] <= 1e9]
answer_q5 = min(passing, key=lambda m: table[m]["ppl"])
### END SOLUTION

# %% course={"grade_id": "q5_decision", "points": 3}
check.equal("a_name", answer_q5 in table, True, hint="one of the rows of the table")
check.equal("a_method", table[answer_q5]["kind"], "method", hint="a training method: a baseline ships no file")
### BEGIN HIDDEN TESTS
check.equal("choice", answer_q5, "ia3")
### END HIDDEN TESTS

# %% [markdown]
# ## Where this leads
#
# No method wins every column: a method is chosen for a job, under its constraints, from measurements
# like these — and a measurement on a 135M model at a few steps is a pointer for your model, not a law.
