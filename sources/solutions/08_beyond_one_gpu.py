# %% [markdown]
# # 08 · Exercises: beyond one GPU
#
# Five graded parts, after lesson 08 (12 points in all): ZeRO's memory per GPU by hand, the global
# batch, reading a DDP log, choosing a ZeRO stage and a GPU count for Llama-2-70B, and diagnosing a
# run that does not match. Runtime: a few seconds on a CPU (no training runs here). In each answer cell
# your code replaces the lines `# YOUR CODE HERE` and `raise NotImplementedError()`; the test cell below
# it says what is wrong.

# %%
from course_lib.doctor import versions_line
from course_lib.models import set_threads
from course_lib.notebook import quiet_notebook

set_threads()  # one CPU thread (COURSE_THREADS): the same numbers on every machine
quiet_notebook()  # no progress bars, known notices or DeepSpeed's CPU warning in the saved outputs
print(versions_line())

# %%
from course_lib.grading import check
from course_lib.memory import PRESETS, VramConfig
from course_lib.memory import largest_layer_parameters

L7, L70 = PRESETS["llama-2-7b"], PRESETS["llama-2-70b"]
print(f"Llama-2-7B: {L7.parameters:,} parameters, largest layer {largest_layer_parameters(L7):,}")

# %% [markdown]
# ## Part 1 · ZeRO memory per GPU, by hand (3 points)
#
# Return the bytes of model states that one of `num_gpus` GPUs holds for full fine-tuning with
# mixed-precision Adam, counted as DeepSpeed counts them (lesson 08 §3): per parameter 2 bytes of 16-bit
# weights, 2 of 16-bit gradients and 16 for the optimizer (fp32 weights, fp32 gradients, m, v).
# Stage 0 shards nothing; stage 1 shards the 16 optimizer bytes; stage 2 also the 16-bit gradients;
# stage 3 shards the weights and the optimizer bytes (DeepSpeed counts 2 + 16 = 18 bytes per parameter,
# divided by the GPU count) and adds 4 bytes per parameter of the largest layer, gathered whole.
# Use integer division (`//`) for each sharded term, as DeepSpeed does.

# %%
def zero_model_states_bytes(parameters: int, largest_layer: int, stage: int, num_gpus: int) -> int:
    """Bytes of model states on one GPU under ZeRO `stage` over `num_gpus` GPUs."""
    ### BEGIN SOLUTION
    n = parameters
    if stage == 0:
        return 20 * n
    if stage == 1:
        return 4 * n + 16 * n // num_gpus
    if stage == 2:
        return 2 * n + 2 * n // num_gpus + 16 * n // num_gpus
    return 2 * n // num_gpus + 16 * n // num_gpus + 4 * largest_layer
    ### END SOLUTION

# %% course={"grade_id": "q1_zero_by_hand", "points": 3}
from course_lib.grading import check
from course_lib.memory import model_states_per_gpu

for stage in range(4):
    got = zero_model_states_bytes(L7.parameters, largest_layer_parameters(L7), stage, 4)
    check.equal(f"type_stage{stage}", type(got).__name__, "int",
                hint="bytes are a whole number: use // for every sharded term, not /")
check.equal("stage0", zero_model_states_bytes(L7.parameters, largest_layer_parameters(L7), 0, 4), 20 * L7.parameters,
            hint="stage 0 is plain DDP: 2 + 2 + 16 bytes on every GPU")
for stage in (1, 2, 3):
    check.close(f"stage{stage}", zero_model_states_bytes(L7.parameters, largest_layer_parameters(L7), stage, 4),
                model_states_per_gpu(L7, stage, 4).total, rel_tol=1e-6,
                hint=f"stage {stage}: which of the 2 / 2 / 16 bytes are divided by the GPU count?")
### BEGIN HIDDEN TESTS
for shape in (L70, PRESETS["llama-2-13b"]):
    for stage in range(4):
        for gpus in (3, 8):  # 13B and 70B divide evenly by 3 and 8: the int type check is what catches `/`
            check.equal(f"hidden_{stage}_{gpus}",
                        zero_model_states_bytes(shape.parameters, largest_layer_parameters(shape), stage, gpus),
                        model_states_per_gpu(shape, stage, gpus).total)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2 · The global batch (2 points)
#
# A multi-process run takes `per_device_train_batch_size` sequences per process per forward pass, on
# `num_processes` processes, and accumulates gradients over `gradient_accumulation_steps` forward passes
# before each optimizer step (lesson 04 shows accumulation on one process). Return the number of sequences
# behind one optimizer step. Then set `accumulation_for_32`: on 4 GPUs with a per-device batch of 2, how many
# accumulation steps reproduce a one-GPU run whose optimizer step sees 32 sequences?

# %%
def global_batch_size(per_device_train_batch_size: int, num_processes: int, gradient_accumulation_steps: int) -> int:
    """Sequences per optimizer step over all processes."""
    ### BEGIN SOLUTION
    return per_device_train_batch_size * num_processes * gradient_accumulation_steps
    ### END SOLUTION


### BEGIN SOLUTION
accumulation_for_32 = 4
### END SOLUTION

# %% course={"grade_id": "q2_global_batch", "points": 2}
from course_lib.grading import check

check.equal("lesson_run", global_batch_size(4, 2, 1), 8, hint="lesson 08: 4 sequences on each of 2 processes")
check.equal("with_accumulation", global_batch_size(2, 4, 3), 24, hint="every forward pass of every process counts")
check.equal("accumulation_type", type(accumulation_for_32).__name__, "int", hint="a whole number of forward passes")
check.equal("accumulation_range", 1 <= accumulation_for_32 <= 16, True,
            hint="global batch = per-device batch × GPUs × accumulation steps; solve for the last")
### BEGIN HIDDEN TESTS
check.equal("accumulation_for_32", accumulation_for_32, 4)
check.equal("hidden_gb", global_batch_size(16, 8, 8), 1024)
check.equal("hidden_one", global_batch_size(1, 1, 1), 1)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3 · Reading a DDP log (3 points)
#
# `course_lib.training.distributed` prints a header and one line per step. Here is the log of a 4-process run.
# Write `read_ddp_log(log)` returning a dict with `num_processes` (int), `global_batch` (int), and
# `allreduce_share`: the all-reduce time of steps 2 to the end divided by their step time (step 1 includes
# one-off set-up, so leave it out), a float between 0 and 1.

# %%
LOG = """num_processes 4  per-process batch 2  global batch 8  sharding none
step 1/5  loss 4.1249  step 0.900 s  all-reduce 0.300 s
step 2/5  loss 4.1814  step 0.200 s  all-reduce 0.050 s
step 3/5  loss 3.5969  step 0.250 s  all-reduce 0.060 s
step 4/5  loss 3.0354  step 0.200 s  all-reduce 0.040 s
step 5/5  loss 3.4194  step 0.350 s  all-reduce 0.100 s
"""


def read_ddp_log(log: str) -> dict:
    """num_processes, global_batch and the all-reduce share of step time (steps 2 on) from a run's log."""
    ### BEGIN SOLUTION
    import re

    header = re.search(r"num_processes (\d+).*global batch (\d+)", log)
    steps = re.findall(r"step (\d+)/\d+ .* step ([\d.]+) s  all-reduce ([\d.]+) s", log)
    later = [(float(s), float(c)) for n, s, c in steps if int(n) > 1]
    return {"num_processes": int(header.group(1)), "global_batch": int(header.group(2)),
            "allreduce_share": sum(c for _, c in later) / sum(s for s, _ in later)}
    ### END SOLUTION

# %% course={"grade_id": "q3_ddp_log", "points": 3}
from course_lib.grading import check

info = read_ddp_log(LOG)
check.equal("num_processes", info["num_processes"], 4)
check.equal("global_batch", info["global_batch"], 8, hint="the header gives it; per-process batch × processes")
check.close("allreduce_share", info["allreduce_share"], 0.25, rel_tol=1e-9,
            hint="(0.05 + 0.06 + 0.04 + 0.10) / (0.20 + 0.25 + 0.20 + 0.35): step 1 left out")
### BEGIN HIDDEN TESTS
other = """num_processes 2  per-process batch 3  global batch 6  sharding none
step 1/3  loss 4.0  step 1.000 s  all-reduce 0.500 s
step 2/3  loss 3.9  step 0.500 s  all-reduce 0.100 s
step 3/3  loss 3.8  step 0.500 s  all-reduce 0.300 s
"""
got = read_ddp_log(other)
check.equal("hidden_n", got["num_processes"], 2)
check.equal("hidden_gb", got["global_batch"], 6)
check.close("hidden_share", got["allreduce_share"], 0.4, rel_tol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4 · Decision: fully fine-tune Llama-2-70B on 80 GB cards (3 points)
#
# Each card has 80 GiB (`80 * 2**30` bytes). Every GPU also holds its own micro-batch's activations
# (1 × 512 tokens, mixed precision, gradient checkpointing) and about 1 GiB of GPU overhead:
# `per_gpu_extra` below. Choose the ZeRO stage `my_stage` and the GPU count `my_gpus` that fit with the
# **fewest** GPUs. The test checks that your choice fits, and that no stage fits on fewer GPUs.

# %%
from course_lib.memory import activation_bytes

CARD = 80 * 2**30
micro_batch = VramConfig(method="full", precision="mixed", batch_size=1, seq_len=512, gradient_checkpointing=True)
per_gpu_extra = activation_bytes(L70, micro_batch).saved + micro_batch.overhead_bytes
print(f"Llama-2-70B: {L70.parameters:,} parameters; activations + overhead per GPU {per_gpu_extra / 2**30:.2f} GiB")

### BEGIN SOLUTION
my_stage, my_gpus = 3, next(n for n in range(1, 64)
                            if zero_model_states_bytes(L70.parameters, largest_layer_parameters(L70), 3, n)
                            + per_gpu_extra <= CARD)
### END SOLUTION
print(f"stage {my_stage} on {my_gpus} GPUs")

# %% course={"grade_id": "q4_decision_70b", "points": 3}
from course_lib.grading import check
from course_lib.memory import model_states_per_gpu

check.equal("stage_type", type(my_stage).__name__, "int")
check.equal("gpus_type", type(my_gpus).__name__, "int")
used = model_states_per_gpu(L70, my_stage, my_gpus).total + per_gpu_extra
check.equal("fits", used <= CARD, True,
            hint=f"stage {my_stage} on {my_gpus} GPUs needs {used / 2**30:.1f} GiB per GPU, more than 80")
fewer = model_states_per_gpu(L70, my_stage, my_gpus - 1).total + per_gpu_extra if my_gpus > 1 else 0
check.equal("one_fewer_gpu_does_not_fit", fewer > CARD, True,
            hint=f"stage {my_stage} also fits on {my_gpus - 1} GPUs: take the fewest of your stage")
### BEGIN HIDDEN TESTS
check.equal("hidden_stage", my_stage, 3)
check.equal("hidden_gpus", my_gpus, 15)
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5 · A DDP run that does not match (1 point)
#
# You run lesson 08's script with one process and a global batch of 8, then with two processes, and the
# losses differ in the second decimal from step 1 on. Which is the most likely cause? Set `answer_q5` to
# one letter.
#
# - A. float rounding: the two-process mean is summed in another order
# - B. the two-process run used a per-process batch of 8, so its global batch was 16
# - C. the all-reduce took too long and DDP skipped it
# - D. gloo is less precise than NCCL

# %%
### BEGIN SOLUTION
answer_q5 = "B"
### END SOLUTION

# %% course={"grade_id": "q5_mismatch", "points": 1}
from course_lib.grading import check

check.equal("answer_type", type(answer_q5).__name__, "str")
check.equal("answer_letter", answer_q5 in ("A", "B", "C", "D"), True, hint="one of A, B, C, D")
### BEGIN HIDDEN TESTS
check.equal("answer_q5", answer_q5, "B")
### END HIDDEN TESTS
