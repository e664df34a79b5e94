# %% [markdown]
# # 06 · Exercises: instruction tuning with a chat template
#
# Five graded parts, after lesson 06 (11 points in all): render a conversation in ChatML by hand,
# build the assistant-only labels, check that a merge preserved a model, score answers, and choose a
# prompt format by measuring the tuned model. Runtime: about half a minute on a CPU (part 5 scores
# SmolLM2-135M-Instruct with lesson 06's adapter; nothing here trains it). In each answer cell your code replaces the lines
# `# YOUR CODE HERE` and `raise NotImplementedError()`; the test cell below it says what is wrong.

# %%
import math

import torch

from course_lib.tuning import sft
from course_lib.doctor import versions_line
from course_lib.grading import check
from course_lib.metrics import rouge_l
from course_lib.models import load_base_model, load_tokenizer, set_seed, set_threads
from course_lib.notebook import below, quiet_notebook

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())
tokenizer = load_tokenizer(sft.DEFAULT_MODEL)  # SmolLM2-135M-Instruct's tokenizer and its ChatML template

# %% [markdown]
# ## Part 1 · ChatML by hand (2 points)
#
# SmolLM2's chat template writes each message as `<|im_start|>` + role + a newline + content +
# `<|im_end|>` + a newline. When the first message is not a system message, it first adds a system
# turn with the content `SYSTEM_DEFAULT` below. With `add_generation_prompt=True` it ends with the
# assistant header, `<|im_start|>assistant` and a newline. Write `render_chatml` so that it returns
# exactly what `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` does.

# %%
SYSTEM_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def render_chatml(messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The ChatML text of a conversation, as SmolLM2's template renders it."""
    ### BEGIN SOLUTION
    if messages[0]["role"] != "system":
        messages = [{"role": "system", "content": SYSTEM_DEFAULT}] + list(messages)
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")
    ### END SOLUTION


# %% course={"grade_id": "q1_render_chatml", "points": 2}
conversation = [{"role": "user", "content": "What does `len` return?"},
                {"role": "assistant", "content": "Return the number of items in a container."}]
check.equal("one_turn", render_chatml(conversation),
            tokenizer.apply_chat_template(conversation, tokenize=False),
            hint="each turn is <|im_start|>role\\ncontent<|im_end|>\\n, after the default system turn")
check.equal("generation_prompt", render_chatml(conversation[:1], add_generation_prompt=True),
            tokenizer.apply_chat_template(conversation[:1], tokenize=False, add_generation_prompt=True),
            hint="add_generation_prompt=True appends '<|im_start|>assistant\\n' and nothing else")
### BEGIN HIDDEN TESTS
with_system = [{"role": "system", "content": "Be brief."}] + conversation + [{"role": "user", "content": "More?"}]
check.equal("own_system", render_chatml(with_system, add_generation_prompt=True),
            tokenizer.apply_chat_template(with_system, tokenize=False, add_generation_prompt=True))
check.equal("no_default_twice", render_chatml(with_system).count("SmolLM"), 0)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 · Assistant-only labels (3 points)
#
# Given the token ids of a rendered conversation, return its labels: −100 everywhere except on the
# assistant's replies. A reply starts right after the assistant header (the token ids `header`, which
# stay masked themselves) and runs up to, not including, the next token `turn_start` (`<|im_start|>`),
# so the reply's `<|im_end|>` and the newline after it are targets. Work on the ids only.

# %%
def assistant_labels(input_ids: list[int], header: list[int], turn_start: int) -> list[int]:
    """Labels for causal-LM training: the token id on assistant replies, −100 elsewhere."""
    ### BEGIN SOLUTION
    labels, inside = [-100] * len(input_ids), False
    for i, tok in enumerate(input_ids):
        if i + 1 >= len(header) and input_ids[i + 1 - len(header):i + 1] == header:
            inside = True
            continue
        if tok == turn_start:
            inside = False
        if inside:
            labels[i] = tok
    return labels
    ### END SOLUTION


# %% course={"grade_id": "q2_assistant_labels", "points": 3}
header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
turn_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
ids = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
labels = assistant_labels(ids, header, turn_start)
check.equal("length", len(labels), len(ids), hint="one label per input token")
check.equal("targets", tokenizer.decode([t for t in labels if t != -100]),
            "Return the number of items in a container.<|im_end|>\n",
            hint="only the reply, its <|im_end|> and the newline after it; the header stays −100")
check.equal("same_as_course_lib", labels, sft.assistant_only_labels(tokenizer, conversation)["labels"],
            hint="compare with course_lib.tuning.sft.assistant_only_labels on the same conversation")
### BEGIN HIDDEN TESTS
two_turns = conversation + [{"role": "user", "content": "And `abs`?"}, {"role": "assistant", "content": "Absolute value."}]
ids2 = tokenizer.apply_chat_template(two_turns, tokenize=True, return_dict=True)["input_ids"]
check.equal("two_turns", assistant_labels(ids2, header, turn_start),
            sft.assistant_only_labels(tokenizer, two_turns)["labels"])
check.equal("no_assistant", assistant_labels(ids2[:20], header, turn_start), [-100] * 20)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 · Did the merge preserve the model? (2 points)
#
# Write `max_logit_diff(model_a, model_b, input_ids)`: the largest absolute difference between the two
# models' logits on the same input, as a Python float. Then write `merge_check(peft_model, input_ids)`:
# merge the adapter into the base with `merge_and_unload()` and return max |merged − adapted| on
# `input_ids`. Careful: merging changes the model in place (the peft model's layers become the merged
# ones), so take the adapter's logits first. Use it on a tiny Llama with a LoRA adapter whose B is not
# zero (so the adapter changes the output): set `adapter_effect` (max |adapted − adapter disabled|, to see
# that the adapter matters), `merge_diff` (what `merge_check` returns) and `merge_ok` (whether `merge_diff`
# is below `TOLERANCE`). The hidden tests also run your `merge_check` on a model whose merge is lossy.

# %%
from peft import LoraConfig, get_peft_model

TOLERANCE = 1e-5  # float32 rounding on a 16-wide model


def max_logit_diff(model_a, model_b, input_ids: torch.Tensor) -> float:
    """max |logits_a − logits_b| over every position and vocabulary entry."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        return (model_a(input_ids).logits - model_b(input_ids).logits).abs().max().item()
    ### END SOLUTION


def merge_check(peft_model, input_ids: torch.Tensor) -> float:
    """Merge peft_model's adapter into its base; return max |merged logits − adapted logits| (a Python float)."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        adapted_logits = peft_model(input_ids).logits  # before merging: merge_and_unload changes the model in place
        merged = peft_model.merge_and_unload()
        return (merged(input_ids).logits - adapted_logits).abs().max().item()
    ### END SOLUTION


def tiny_adapted_model(dtype: torch.dtype = torch.float32):
    """A tiny random Llama with a rank-2 LoRA adapter on q and v, B initialised randomly (not zero)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    set_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32))
    return get_peft_model(base.to(dtype), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                                     init_lora_weights=False)).eval()


ids_probe = torch.arange(1, 13).unsqueeze(0)
adapted = tiny_adapted_model()
### BEGIN SOLUTION
with torch.no_grad():
    with adapted.disable_adapter():
        base_logits = adapted(ids_probe).logits
    adapter_effect = (adapted(ids_probe).logits - base_logits).abs().max().item()
merge_diff = merge_check(adapted, ids_probe)
merge_ok = merge_diff < TOLERANCE
### END SOLUTION
print(f"adapter moved the logits by up to {adapter_effect:.3f}; merged vs adapter: {below(merge_diff, TOLERANCE)}; ok: {merge_ok}")

# %% course={"grade_id": "q3_merge_check", "points": 2}
a, b = tiny_adapted_model(), tiny_adapted_model()
check.close("same_model", max_logit_diff(a, b, ids_probe), 0.0, abs_tol=0.0,
            hint="the same seed gives the same model; return a Python float (.item()), not a tensor")
check.equal("merge_diff_type", type(merge_diff).__name__, "float", hint="merge_check returns a Python float")
check.equal("merge_ok", merge_ok, merge_diff < TOLERANCE, hint="merge_ok is merge_diff < TOLERANCE")
### BEGIN HIDDEN TESTS
c = tiny_adapted_model()
with torch.no_grad():
    with_adapter = c(ids_probe).logits
    with c.disable_adapter():
        no_adapter = c(ids_probe).logits
check.close("adapter_effect", adapter_effect, (with_adapter - no_adapter).abs().max().item(), rel_tol=1e-5)
check.equal("adapter_changes_output", adapter_effect > 1e-3, True)
check.equal("float32_merge_ok", merge_ok, True)
# bfloat16: the merged weight W + B·A is rounded to 8 bits of mantissa, so the merge is lossy; logits taken
# after merging compare the merged model with itself and report 0
with torch.no_grad():
    lossy = tiny_adapted_model(torch.bfloat16)
    adapted_bf16 = lossy(ids_probe).logits
    expected_bf16 = (lossy.merge_and_unload()(ids_probe).logits - adapted_bf16).abs().max().item()
check.equal("bf16_merge_is_lossy", expected_bf16 > 1e-3, True)
check.close("bf16_merge_diff", merge_check(tiny_adapted_model(torch.bfloat16), ids_probe), expected_bf16, rel_tol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 · Scoring answers (2 points)
#
# Lesson 06 scores answers two ways. Write `format_rate(answers)`: the share of answers in the
# docstring format — one line (no newline), between 1 and 25 words, ending with a full stop. Then
# set `rouge` to the mean ROUGE-L F-measure of `answers` against `references`, computed with Google's
# `rouge_score` library (`rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)`; `score(reference,
# prediction)`).

# %%
answers = ["Return the number of items in a container.",
           "The `len` function returns the length\nof an object.",
           "Absolute value of x",
           "Return the absolute value of the argument."]
references = ["Return the number of items in a container.", "Return the number of items in a container.",
              "Return the absolute value of the argument.", "Return the absolute value of the argument."]


def format_rate(answers: list[str]) -> float:
    """Share of answers that are one line of 1–25 words ending with '.'."""
    ### BEGIN SOLUTION
    ok = ["\n" not in a and 0 < len(a.split()) <= 25 and a.endswith(".") for a in answers]
    return sum(ok) / len(answers)
    ### END SOLUTION


### BEGIN SOLUTION
from rouge_score import rouge_scorer

scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
rouge = sum(scorer.score(r, a)["rougeL"].fmeasure for a, r in zip(answers, references)) / len(answers)
### END SOLUTION
print(f"format rate {format_rate(answers):.0%}, ROUGE-L {rouge:.3f}")

# %% course={"grade_id": "q4_scores", "points": 2}
check.close("format_rate", format_rate(answers), 0.5, rel_tol=1e-9,
            hint="answers 1 and 4 qualify; 2 has a line break, 3 has no full stop")
check.close("rouge", rouge, rouge_l(answers, references), rel_tol=1e-9,
            hint="mean over answers of score(reference, answer)['rougeL'].fmeasure, with use_stemmer=True")
### BEGIN HIDDEN TESTS
check.close("format_long", format_rate([" ".join(["word"] * 26) + ".", "Short."]), 0.5, rel_tol=1e-9)
check.close("format_25_words", format_rate([" ".join(["word"] * 25) + ".", "Short"]), 0.5, rel_tol=1e-9)
check.close("format_empty_string", format_rate(["", "."]), 0.5, rel_tol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 · Decision: which prompt format? (2 points)
#
# You fine-tuned SmolLM2-135M-Instruct on the docstring task and must choose the prompt format you serve
# lesson 06's adapter in. Lesson 06 showed that the untuned base model is the wrong judge of that:
# judge the tuned model. `tuned` below is lesson 06's adapter (`data/adapters/sft-docstring`, trained by
# `course sft`) on the base. For each format in `sft.TEMPLATES` (`"chat"`, `"none"`, `"alpaca"`):
# compute `ppl[format]`, the tuned model's response perplexity on the first 8 validation rows
# (`sft.task_rows("validation", 8)`; `sft.response_nll` returns the mean NLL, perplexity is its
# exponential), and read `format_rate[format]`, the share of the tuned model's greedy test answers in the
# docstring format, from `results["after"][format]["format_rate"]` (`results` is `data/results/sft.json`).
# Set `best_format`: the format with the highest format rate; on a tie, the lower perplexity. About 15 seconds.

# %%
from peft import PeftModel

from course_lib.data import data_dir
from course_lib.results import load_results

results = load_results("sft")
tuned = PeftModel.from_pretrained(load_base_model(sft.DEFAULT_MODEL), data_dir() / "adapters" / "sft-docstring").eval()
val8 = sft.task_rows("validation", 8)
### BEGIN SOLUTION
ppl = {t: math.exp(sft.response_nll(tuned, tokenizer, val8, t)) for t in sft.TEMPLATES}
format_rate = {t: results["after"][t]["format_rate"] for t in sft.TEMPLATES}
best_format = max(sft.TEMPLATES, key=lambda t: (format_rate[t], -ppl[t]))
### END SOLUTION
print({t: (round(ppl[t], 2), format_rate[t]) for t in ppl}, "->", best_format)

# %% course={"grade_id": "q5_choose_format", "points": 2}
check.equal("formats", sorted(ppl), sorted(sft.TEMPLATES), hint="one entry per format in sft.TEMPLATES")
check.equal("rates", sorted(format_rate), sorted(sft.TEMPLATES), hint="one format rate per format, from the file")
check.equal("ppl_range", all(1.0 < p < 1000.0 for p in ppl.values()), True,
            hint="a perplexity is exp(mean NLL): above 1")
check.equal("best_is_a_format", best_format in sft.TEMPLATES, True, hint="one of sft.TEMPLATES")
### BEGIN HIDDEN TESTS
check.close("chat_ppl_tuned", ppl["chat"], 25.1437, rel_tol=1e-3)  # the tuned model; the base model's is 53.7
check.close("alpaca_rate", format_rate["alpaca"], 0.5, abs_tol=1e-9)
check.equal("best_format", best_format, "chat")
### END HIDDEN TESTS

# %% [markdown]
# ## Where this leads
#
# Every chat model has its own template, and a prompt in the wrong one costs accuracy without any
# error message: render with `apply_chat_template`, mask the loss to the replies, and check a merged
# model against its adapter before you ship it.
