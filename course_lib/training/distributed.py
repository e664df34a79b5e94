"""One training script for one process or many: data parallel (DDP) and sharded (FSDP2) on the CPU (lesson 08).

    course train-distributed --output_json run.json                                          # one process
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \\
        --dynamo_backend no -m course_lib.cli train-distributed --output_json run.json       # two, DDP over gloo
    ... -m course_lib.cli train-distributed --fsdp --output_json run.json                   # two, each holding half
    ... -m course_lib.cli train-distributed --then_fsdp --output_json run.json              # DDP, then FSDP2 (run_fsdp.json)

The script is the same in every case: `accelerate.Accelerator` finds how many processes `accelerate launch`
started and wraps the model in DistributedDataParallel when there are several. Each optimizer step takes the
same `global_batch_size` sequences, split evenly over the processes, so one process and two see the same
tokens and (up to float rounding) compute the same update. Rank 0 writes a small JSON: the loss of each step,
each step's time and the time spent inside all-reduce calls, and the bytes of parameters, gradients and
optimizer states that each process holds (local shards only: `DTensor.to_local()` under FSDP).

On the CPU, accelerate 1.15 keeps DDP even when given an FSDP plugin (it switches to FSDP only for GPU
backends: accelerate/state.py), so `--fsdp` calls torch's `fully_shard` (FSDP2) itself, as accelerate's
`fsdp2_prepare_model` does on GPUs: one shard group per decoder layer, then the whole model.
`launch(config, num_processes)` runs the script in a subprocess and returns its JSON (what lesson 08 does).
Starting the processes (each imports torch and transformers) costs far more than a few steps of course-tiny,
so `--then_fsdp` lets one launch run both the DDP and the sharded run, one after the other.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from course_lib.data.datasets import data_dir, read_jsonl
from course_lib.models.base import set_seed, set_threads
from course_lib.models.loading import load_base_model, load_tokenizer

__all__ = ["DistributedConfig", "ProcessMemory", "process_memory", "training_batches", "train_distributed",
           "fsdp_output", "launch", "compare_runs", "DistributedRunFailed"]


@dataclass
class DistributedConfig:
    """One training run of `python -m course_lib.training.distributed` (names as in TrainingArguments where one exists)."""

    model: str = field(default="course-tiny", metadata={"help": "model name or folder (course-tiny: 1.4M params)"})
    max_steps: int = field(default=6, metadata={"help": "optimizer steps"})
    global_batch_size: int = field(default=8, metadata={"help": "sequences per optimizer step over all processes "
                                                                "(each process takes an equal share)"})
    seq_len: int = field(default=64, metadata={"help": "tokens per sequence (no padding: every sequence is full)"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW's learning rate"})
    seed: int = field(default=0, metadata={"help": "seeds the model's data order and initial state"})
    fsdp: bool = field(default=False, metadata={"help": "shard parameters, gradients and optimizer states "
                                                        "(torch's fully_shard, FSDP2) instead of DDP"})
    then_fsdp: bool = field(default=False, metadata={"help": "after this run, run it again sharded (as with --fsdp) "
                                                             "in the same processes: one launch for both, since "
                                                             "starting the processes costs more than the steps; "
                                                             "rank 0 writes that run beside output_json, as "
                                                             "NAME_fsdp.json and NAME_fsdp.pt"})
    output_json: str = field(default="", metadata={"help": "where rank 0 writes the results (and, beside it, "
                                                           "the final weights as .pt)"})


@dataclass
class ProcessMemory:
    """Bytes one process holds, counted over the tensors it owns (a shard's local part under FSDP)."""

    parameters: int
    gradients: int
    optimizer_states: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_states


def _local_bytes(t: torch.Tensor) -> int:
    local = t.to_local() if hasattr(t, "to_local") else t  # a DTensor's own shard
    return local.numel() * local.element_size()


def process_memory(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> ProcessMemory:
    """Parameter, gradient and optimizer-state bytes held by this process (each tied tensor once; lesson 08)."""
    params = list(dict.fromkeys(model.parameters()))  # tied embeddings appear once
    states = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    return ProcessMemory(sum(_local_bytes(p) for p in params),
                         sum(_local_bytes(p.grad) for p in params if p.grad is not None),
                         sum(_local_bytes(v) for v in states))


def training_batches(config: DistributedConfig) -> torch.Tensor:
    """(max_steps, global_batch_size, seq_len) token ids: the corpus, tokenized, joined and cut into full sequences."""
    tokenizer = load_tokenizer(config.model)
    need = config.max_steps * config.global_batch_size * config.seq_len
    ids: list[int] = []
    for row in read_jsonl(data_dir() / "corpus" / "train.jsonl", {"text": str}):
        ids += tokenizer(row["text"])["input_ids"] + [tokenizer.eos_token_id]
        if len(ids) >= need:
            break
    if len(ids) < need:
        raise ValueError(f"the corpus has {len(ids)} tokens, fewer than the {need} this run needs")
    return torch.tensor(ids[:need]).view(config.max_steps, config.global_batch_size, config.seq_len)


def _timed_allreduce_hook(timings: list[float]):
    """A DDP communication hook: average each gradient bucket with a blocking all-reduce and time it."""
    import torch.distributed as dist

    def hook(_state, bucket):
        buffer = bucket.buffer()
        start = time.perf_counter()
        dist.all_reduce(buffer)
        timings.append(time.perf_counter() - start)
        future = torch.futures.Future()
        future.set_result(buffer.div_(dist.get_world_size()))
        return future

    return hook


def fsdp_output(output_json: str) -> str:
    """Where a `then_fsdp` run's sharded second run is written: NAME_fsdp.json beside NAME.json."""
    out = Path(output_json)
    return str(out.with_name(f"{out.stem}_fsdp{out.suffix}"))


def train_distributed(config: DistributedConfig) -> dict:
    """Train `config.max_steps` steps on as many processes as were launched; rank 0 returns (and writes) the results.

    With `then_fsdp`, the same processes then repeat the run sharded (FSDP2), from the same seed, and write it
    to `fsdp_output(config.output_json)`; the first run's results are returned."""
    from accelerate import Accelerator  # heavy, and only a training run needs it

    set_threads()
    accelerator = Accelerator(cpu=True)
    result = _train(accelerator, config)
    if config.then_fsdp and not config.fsdp:
        _train(accelerator, replace(config, fsdp=True, then_fsdp=False,
                                    output_json=fsdp_output(config.output_json) if config.output_json else ""))
    accelerator.end_training()  # ends the process group too
    return result


def _train(accelerator, config: DistributedConfig) -> dict:
    """One run of `train_distributed` on the processes `accelerator` knows: a fresh model from the seed."""
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.global_batch_size % world:
        raise ValueError(f"global_batch_size {config.global_batch_size} does not split evenly over {world} processes")
    set_seed(config.seed)
    model = load_base_model(config.model)
    model.config.use_cache = False
    batches = training_batches(config)
    if config.fsdp and world > 1:
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    if config.fsdp and world > 1:
        optimizer = accelerator.prepare(optimizer)
    else:
        model, optimizer = accelerator.prepare(model, optimizer)
    comm: list[float] = []
    if world > 1 and not config.fsdp:
        model.register_comm_hook(None, _timed_allreduce_hook(comm))
    per_rank = config.global_batch_size // world
    if accelerator.is_main_process:
        print(f"num_processes {world}  per-process batch {per_rank}  global batch {config.global_batch_size}  "
              f"sharding {'fsdp2' if config.fsdp and world > 1 else 'none'}", flush=True)
    losses, step_s, comm_s = [], [], []
    model.train()
    for step in range(config.max_steps):
        ids = batches[step, rank * per_rank:(rank + 1) * per_rank]  # (per_rank, seq_len): this process's share
        start, comm_before = time.perf_counter(), sum(comm)
        loss = model(input_ids=ids, labels=ids).loss  # mean over this share's tokens; every share has as many
        accelerator.backward(loss)  # DDP averages the gradients over processes here
        optimizer.step()
        if step == config.max_steps - 1:
            memory = process_memory(model, optimizer)  # gradients still held: the step's peak of model states
        optimizer.zero_grad()
        step_s.append(time.perf_counter() - start)
        comm_s.append(sum(comm) - comm_before)
        losses.append(accelerator.reduce(loss.detach(), "mean").item())
        if accelerator.is_main_process:
            print(f"step {step + 1}/{config.max_steps}  loss {losses[-1]:.4f}  step {step_s[-1]:.3f} s  "
                  f"all-reduce {comm_s[-1]:.3f} s", flush=True)
    memories = accelerator.gather_for_metrics([asdict(memory)], use_gather_object=True) if world > 1 \
        else [asdict(memory)]
    state = accelerator.get_state_dict(model) if not (config.fsdp and world > 1) else \
        {k: v.full_tensor() for k, v in model.state_dict().items()}  # gathers every shard on every process
    result = {"config": asdict(config), "num_processes": world, "per_process_batch": per_rank,
              "sharding": "fsdp2" if config.fsdp and world > 1 else "none", "losses": losses,
              "step_seconds": step_s, "allreduce_seconds": comm_s, "memory": memories}
    if accelerator.is_main_process and config.output_json:
        out = Path(config.output_json)
        torch.save({k: v.detach().cpu() for k, v in state.items()}, out.with_suffix(".pt"))
        out.write_text(json.dumps(result, indent=1) + "\n")
    return result


# ---------------------------------------------------------------- launching from a notebook

class DistributedRunFailed(RuntimeError):
    """A launched training process exited with an error; the message ends with its stderr."""


def _free_port() -> int:
    with socket.socket() as s:  # a port of our own: another run on this machine may hold 29500
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(config: DistributedConfig, num_processes: int = 1, timeout: float = 300) -> dict | tuple[dict, dict]:
    """Run the script in `num_processes` processes (`accelerate launch` when more than one) and return its JSON.

    With `config.then_fsdp`, the same launch also runs the sharded version: the result is (run, sharded run),
    each with the lines of the log that its own run printed."""
    args = [f"--{f.name}={getattr(config, f.name)}" for f in fields(config)
            if f.name not in ("output_json", "fsdp", "then_fsdp")]
    args += ["--fsdp"] * config.fsdp + ["--then_fsdp"] * config.then_fsdp
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        script = ["-m", "course_lib.cli", "train-distributed", *args, f"--output_json={out}"]
        if num_processes == 1:
            cmd = [sys.executable, *script]
        else:
            cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", f"--num_processes={num_processes}",
                   "--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no",
                   f"--main_process_port={_free_port()}", *script]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
               "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "TRANSFORMERS_VERBOSITY": "error"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        outs = [out, Path(fsdp_output(str(out)))] if config.then_fsdp and not config.fsdp else [out]
        if proc.returncode != 0 or not all(o.exists() for o in outs):
            lines = proc.stderr.strip().splitlines()
            said = list(dict.fromkeys(line for line in lines if "course train-distributed: error:" in line))  # one line
            ranked = [line for line in lines if line.startswith("[rank")]  # torchrun prefixes each rank's traceback
            tail = "\n".join((said or ranked or lines)[-12:])
            raise DistributedRunFailed(f"the {num_processes}-process run exited with code {proc.returncode}; "
                                       f"the end of its stderr:\n{tail}")
        # each run's log starts at its "num_processes ..." line: split the launch's output there
        printed = proc.stdout.splitlines(keepends=True)
        starts = [i for i, line in enumerate(printed) if line.startswith("num_processes ")][:len(outs)] or [0]
        starts[0] = 0  # anything printed before the first run belongs to it
        logs = ["".join(printed[a:b]) for a, b in zip(starts, starts[1:] + [len(printed)])]
        results = []
        for o, log in zip(outs, logs + [""] * (len(outs) - len(logs))):
            result = json.loads(o.read_text())
            result["weights"] = torch.load(o.with_suffix(".pt"))
            result["log"] = log
            results.append(result)
    return results[0] if len(results) == 1 else tuple(results)


def compare_runs(a: dict, b: dict) -> dict:
    """Max |Δ loss| over the steps, max |Δ weight| over every tensor of two `launch` results, and where it is."""
    dloss = max(abs(x - y) for x, y in zip(a["losses"], b["losses"], strict=True))
    diffs = {k: (a["weights"][k] - b["weights"][k]).abs().max().item() for k in a["weights"]}
    worst = max(diffs, key=diffs.get)
    return {"max_abs_loss_diff": dloss, "max_abs_weight_diff": diffs[worst], "worst_tensor": worst}
