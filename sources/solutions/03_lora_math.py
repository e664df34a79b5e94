# %% [markdown]
# # Exercises 03 — The mathematics of LoRA
#
# Six graded parts, after lesson 03; the last one is a decision that the test checks by training.
# In each answer cell your code replaces the two lines `# YOUR CODE HERE` and
# `raise NotImplementedError()`; then run the test cell below it, whose visible tests explain what
# is wrong. Runtime: about a minute on a 2-core CPU.

# %%

from course_lib.doctor import versions_line
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %%
import math

import torch

from course_lib.grading import check
from course_lib.models import set_seed

set_seed(0)

# %% [markdown]
# ## Q1 (2 points) — LoRA parameter count
# Return the number of trainable parameters LoRA adds to one d × k matrix at rank r.

# %%
def count_lora_params(d: int, k: int, r: int) -> int:
    """Trainable parameters of B (d × r) and A (r × k)."""
    ### BEGIN SOLUTION
    return r * (d + k)
    ### END SOLUTION

# %% course={"grade_id": "q1_lora_params", "points": 2}
from course_lib.grading import check

check.equal("lora_params_4096_r16", count_lora_params(4096, 4096, 16), 131072,
            hint="B is d×r and A is r×k: r·(d+k), not d·k")
check.equal("lora_params_512_r128", count_lora_params(d=512, k=512, r=128), 131072, hint="r·(d+k)")
### BEGIN HIDDEN TESTS
check.equal("lora_params_rect", count_lora_params(d=256, k=1024, r=4), 5120)
check.equal("lora_params_r1", count_lora_params(d=11008, k=4096, r=1), 15104)
### END HIDDEN TESTS

# %% [markdown]
# ## Q2 (2 points) — scaling
# Return the factor LoRA multiplies BA by: alpha / r, or alpha / √r when `use_rslora` is True.

# %%
def lora_scaling(alpha: float, r: int, use_rslora: bool = False) -> float:
    """peft's `scaling`."""
    ### BEGIN SOLUTION
    return alpha / (math.sqrt(r) if use_rslora else r)
    ### END SOLUTION

# %% course={"grade_id": "q2_scaling", "points": 2}
from course_lib.grading import check

check.close("scaling_16_8", lora_scaling(16, 8), 2.0, rel_tol=1e-9, hint="alpha / r")
check.close("rs_scaling_16_16", lora_scaling(16, 16, use_rslora=True), 4.0, rel_tol=1e-9,
            hint="rsLoRA divides by the square root of r")
### BEGIN HIDDEN TESTS
check.close("scaling_big", lora_scaling(64, 4), 16.0, rel_tol=1e-9)
check.close("rs_scaling_odd", lora_scaling(8, 3, use_rslora=True), 8 / math.sqrt(3), rel_tol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Q3 (3 points) — a LoRA forward pass
# Given x (n × k), the frozen W (d × k), A (r × k), B (d × r) and `scaling`, return
# y = x Wᵀ + scaling · x Aᵀ Bᵀ (n × d). Do not form W + BA.

# %%
def lora_forward(x: torch.Tensor, W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scaling: float) -> torch.Tensor:
    """The output of a LoRA-adapted linear layer without bias."""
    ### BEGIN SOLUTION
    return x @ W.T + scaling * (x @ A.T) @ B.T
    ### END SOLUTION

# %% course={"grade_id": "q3_forward", "points": 3}
from course_lib.grading import check
from course_lib.tuning import LinearWithLoRA

torch.manual_seed(0)
x, W, A, B = torch.randn(5, 12), torch.randn(8, 12), torch.randn(4, 12), torch.randn(8, 4)
y = lora_forward(x, W, A, B, 0.5)
check.shape("y_shape", y, (5, 8), hint="(n, k) in, (n, d) out")
ref = LinearWithLoRA(torch.nn.Linear(12, 8, bias=False), r=4, lora_alpha=2)
with torch.no_grad():
    ref.base_layer.weight.copy_(W); ref.lora_A.weight.copy_(A); ref.lora_B.weight.copy_(B)
    check.close("y", y, ref(x), abs_tol=1e-5, hint="x Wᵀ + scaling · (x Aᵀ) Bᵀ")
check.close("y_at_init", lora_forward(x, W, A, torch.zeros(8, 4), 2.0), x @ W.T, abs_tol=1e-6,
            hint="with B = 0 the output must equal the base layer's")
### BEGIN HIDDEN TESTS
x2, W2, A2, B2 = torch.randn(3, 6), torch.randn(7, 6), torch.randn(2, 6), torch.randn(7, 2)
check.close("y_hidden", lora_forward(x2, W2, A2, B2, 3.0), x2 @ W2.T + 3.0 * (x2 @ A2.T) @ B2.T, abs_tol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ## Q4 (3 points) — merge
# Return the merged weight W + scaling · B A, a new tensor (W itself must not change).

# %%
def merge_weight(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scaling: float) -> torch.Tensor:
    """The weight that makes the adapter free at inference."""
    ### BEGIN SOLUTION
    return W + scaling * (B @ A)
    ### END SOLUTION

# %% course={"grade_id": "q4_merge", "points": 3}
from course_lib.grading import check

torch.manual_seed(1)
x, W, A, B = torch.randn(5, 12), torch.randn(8, 12), torch.randn(4, 12), torch.randn(8, 4)
W_before = W.clone()
merged = merge_weight(W, A, B, 0.25)
check.shape("merged_shape", merged, (8, 12), hint="the merged weight has W's shape, d × k")
check.close("merged_output", x @ merged.T, x @ W.T + 0.25 * (x @ A.T) @ B.T, abs_tol=1e-5,
            hint="merged and unmerged layers must give the same output")
check.close("W_unchanged", W, W_before, abs_tol=0.0, hint="return a new tensor; don't add into W in place")
### BEGIN HIDDEN TESTS
check.close("merged_hidden", merge_weight(torch.ones(3, 2), torch.ones(1, 2), torch.ones(3, 1), 2.0),
            torch.full((3, 2), 3.0))
### END HIDDEN TESTS

# %% [markdown]
# ## Q5 (2 points) — a parameter budget
# course-tiny has 4 layers, hidden size 128 and MLP width 384. LoRA on all seven linear layers
# (q, k, v, o: 128 × 128; gate, up: 384 × 128; down: 128 × 384) at r = 8 trains how many
# parameters? Which rank on q, k, v, o only trains exactly as many? Set both variables.

# %%
### BEGIN SOLUTION
all_linear_r8 = 4 * (4 * count_lora_params(128, 128, 8) + 3 * count_lora_params(384, 128, 8))
attention_rank_same_budget = all_linear_r8 // (4 * 4 * (128 + 128))
### END SOLUTION

# %% course={"grade_id": "q5_budget", "points": 2}
from course_lib.grading import check

check.equal("all_linear_r8", all_linear_r8, hint="an int: 4 layers × (4 attention + 3 MLP matrices) × r·(d+k)")
check.equal("attention_rank_same_budget", attention_rank_same_budget,
            hint="an int: the attention-only parameter count per unit of rank, times the rank, must equal the budget")
### BEGIN HIDDEN TESTS
check.equal("all_linear_r8_value", all_linear_r8, 81920)
check.equal("attention_rank_same_budget_value", attention_rank_same_budget, 20)
### END HIDDEN TESTS

# %% [markdown]
# ## Q6 (3 points) — a decision: rank, alpha and targets within a budget
# You may train at most **40,000** LoRA parameters on course-tiny, for **30 steps** of the lesson's
# set-up (Alpaca rows, batch 8, 128 tokens, LR 2e-3, seed 0). Choose the configuration — rank `r`,
# `lora_alpha`, `use_rslora`, and `target_modules` (a tuple of module names such as `ATTENTION_TARGETS`
# or `ALL_LINEAR_TARGETS`) — that brings the validation perplexity on 64 held-out examples to at
# most **10.0**. Section 5 of the lesson and Q5 above are your evidence; `perplexity_after(lora)`
# runs one try (about 10 s) if you want to check a candidate. Set `my_lora` to a `LoraConfig`.
# A hidden test checks that your choice also works with another seed.

# %%
from course_lib.data import instruction_text, load_course_dataset
from course_lib.experiments.lora_ablation import AblationConfig, lora_run
from course_lib.tuning import ALL_LINEAR_TARGETS, ATTENTION_TARGETS, LoraConfig

alpaca = load_course_dataset("alpaca")
eval_texts = [instruction_text(r) for r in alpaca["validation"].select(range(64))]


def perplexity_after(lora: LoraConfig, seed: int = 0) -> dict:
    """Trainable parameters and validation perplexity after 30 steps with `lora` (about 10 s on course-tiny)."""
    return lora_run(AblationConfig(max_steps=30), lora, alpaca["train"], eval_texts, seed=seed)


# %%
### BEGIN SOLUTION
my_lora = LoraConfig(r=3, lora_alpha=24.0, target_modules=ALL_LINEAR_TARGETS)
### END SOLUTION
print(my_lora)

# %% course={"grade_id": "q6_lora_decision", "points": 3}
from course_lib.data import instruction_text, load_course_dataset
from course_lib.experiments.lora_ablation import AblationConfig, lora_run
from course_lib.grading import check


def measured(lora, seed: int) -> dict:
    rows = load_course_dataset("alpaca")
    texts = [instruction_text(r) for r in rows["validation"].select(range(64))]
    return lora_run(AblationConfig(max_steps=30), lora, rows["train"], texts, seed=seed)


check.equal("my_lora_type", type(my_lora).__name__, "LoraConfig",
            hint="my_lora = LoraConfig(r=..., lora_alpha=..., ...)")
run = measured(my_lora, seed=0)
print(f"{run['trainable_parameters']:,} trainable parameters, validation perplexity {run['perplexity']:.2f} "
      f"(target 10.0)")
check.equal("within_budget", run["trainable_parameters"] <= 40_000, True,
            hint="over budget: Q5's count r·(d+k) per matrix × matrices × 4 layers must stay at most 40,000")
check.equal("reaches_target", run["perplexity"] <= 10.0, True,
            hint="the rank ablation and the fixed-budget comparison of lesson 03 (section 5) show where a budget "
                 "buys most; the scale alpha/r sets how far 30 steps move the adapter")
### BEGIN HIDDEN TESTS
check.equal("reaches_target_seed1", measured(my_lora, seed=1)["perplexity"] <= 10.2, True)
### END HIDDEN TESTS
