"""The course's training speed against this CPU's limit; writes benchmarks/results/cpu-throughput-<cores>core.json.

    python benchmarks/cpu_throughput.py            # SmolLM2-135M-Instruct at 4 x 128 tokens (~5 min on 2 cores)
    python benchmarks/cpu_throughput.py --smoke    # a tiny random Llama, seconds: checks the script (tests use it)

1. The ceiling: fp32 matrix multiplication, GFLOP/s on 1 thread and on every core (square 2048 matrices and
   the model's own MLP shape), the best of several repeats.
2. The loops, each for a few optimizer steps on the same batch shape (random token ids: the cost depends on
   shapes, not values), timed per step after warm-up steps:
   - `plain`: forward, backward, AdamW step in eight lines of PyTorch (the reference);
   - `course`: course_lib.training.loop.train, the loop the lessons use;
   - `trainer`: transformers' Trainer; `sft_trainer`: TRL's SFTTrainer with its defaults, which on this
     CPU include bf16 autocast (`SFTConfig.bf16` defaults to True; each row records `bf16_autocast`), so its
     rate is not held against an fp32 peak on equal terms (`course sft` sets bf16=False);
   each for full fine-tuning and for LoRA (r 8, every linear layer of the decoder, peft).
3. Each loop's FLOP/s as a fraction of the all-core matmul peak. Full fine-tuning costs 6·N·T FLOPs per step
   (N parameters, T tokens: 2NT forward, 4NT backward for activation and weight gradients; attention's
   score matmuls, 4·layers·T·seq·hidden, are left out: 4 % here). LoRA costs about 4·N·T: the frozen weights
   need no weight gradients, only the gradients that flow through them; the adapters' own 6·N_lora·T is
   added (under 1 %). The plain loop's phases (forward, backward, clipping, optimizer) show where its time goes,
   and the Trainers' extra time per step beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from statistics import median

import torch

from course_lib.doctor import versions_line
from course_lib.tuning import ALL_LINEAR_TARGETS
from course_lib.throughput import cpu_cores, matmul_gflops

ROOT = Path(__file__).resolve().parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_model(smoke: bool):
    if smoke:
        from transformers import LlamaConfig, LlamaForCausalLM
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2))
    from course_lib.models import load_base_model
    return load_base_model("smollm2-135m-instruct")


def with_lora(model):
    from peft import LoraConfig, get_peft_model
    return get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(ALL_LINEAR_TARGETS),
                                            task_type="CAUSAL_LM"))


def rows(vocab: int, batch: int, seq: int, n_batches: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch * n_batches, seq), generator=g)
    return [{"input_ids": r.tolist(), "attention_mask": [1] * seq, "labels": r.tolist()} for r in ids]


def collate(examples: list[dict]) -> dict:
    return {k: torch.tensor([e[k] for e in examples]) for k in examples[0]}


def plain_loop(model, data, batch: int, steps: int) -> tuple[list[float], dict]:
    """Forward, backward, clip, AdamW: per-step seconds and the median seconds of each phase."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    times, phases = [], {"forward": [], "backward": [], "clip_grad_norm": [], "optimizer_step": []}
    for step in range(steps):
        b = collate(data[(step * batch) % len(data):][:batch])
        t0 = time.perf_counter()
        loss = model(**b).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        times.append(t4 - t0)
        for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            phases[name].append(dt)
    return times, phases


def course_loop(model, data, batch: int, steps: int) -> list[float]:
    from course_lib.training import TrainConfig, train
    stamps: list[float] = []
    train(model, data, TrainConfig(learning_rate=1e-5, max_steps=steps, per_device_train_batch_size=batch,
                                   disable_tqdm=True, divergence_factor=1e9),
          collate_fn=collate, on_step_begin=lambda step, m: stamps.append(time.perf_counter()))
    stamps.append(time.perf_counter())  # ~ the end of the last step (train's final evaluation is a no-op)
    return [b - a for a, b in zip(stamps, stamps[1:])]


bf16_used: list[bool] = []


def hf_loop(model, data, batch: int, steps: int, kind: str, tmp: Path) -> list[float]:
    """transformers' Trainer or TRL's SFTTrainer, default settings but no saving, logging every step."""
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())

    common = dict(output_dir=str(tmp / kind), max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-5,
                  logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
                  dataloader_num_workers=0, seed=0)
    ds = Dataset.from_list(data[: batch * steps])
    if kind == "trainer":
        trainer = Trainer(model=model, args=TrainingArguments(**common), train_dataset=ds, data_collator=collate,
                          callbacks=[Stamp()])
    else:
        from trl import SFTConfig, SFTTrainer

        from course_lib.models import load_tokenizer
        trainer = SFTTrainer(model=model, args=SFTConfig(**common, max_length=None),
                             processing_class=load_tokenizer("smollm2-135m-instruct"),
                             train_dataset=ds.remove_columns(["labels", "attention_mask"]), callbacks=[Stamp()])
    trainer.train()
    bf16_used.append(bool(trainer.args.bf16))  # SFTConfig's default is bf16=True: autocast, not fp32
    # from one step's begin to the next step's begin: everything the Trainer does per step, logging included
    begins = stamps[0::2] + [stamps[-1]]
    return [b - a for a, b in zip(begins, begins[1:])]


def time_course_sft(sft_args: list[str], threads: list[int]) -> dict:
    """`course sft` end to end on each thread count, its outputs in a temporary folder (the committed ones stay)."""
    import subprocess
    import sys
    import tempfile

    course = [sys.executable, "-m", "course_lib.cli", "sft"]
    out = {"command": " ".join(["course sft", *sft_args]), "wall_seconds": {}}
    for n in threads:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [*course, *sft_args, "--threads", str(n), "--out", f"{tmp}/sft.json", "--adapter_dir", f"{tmp}/sft"]
            t = time.perf_counter()
            subprocess.run(cmd, check=True)
            out["wall_seconds"][str(n)] = round(time.perf_counter() - t, 1)
            out.setdefault("train_tokens", json.loads(Path(tmp, "sft.json").read_text())["machine"]["train_tokens"])
        print(f"course sft on {n} thread(s): {out['wall_seconds'][str(n)]} s", flush=True)
    return out


def measure(args) -> dict:
    import tempfile

    all_threads = cpu_cores()
    torch.set_num_threads(all_threads)
    size = 256 if args.smoke else 2048
    result: dict = {"machine": {"cpu": cpu_name(), "cores": all_threads, "threads": all_threads},
                    "versions": versions_line(), "batch": [args.batch, args.seq], "warmup_steps": args.warmup,
                    "measured_steps": args.steps, "matmul_gflops": {}}
    for threads in sorted({1, all_threads}):
        result["matmul_gflops"][str(threads)] = {
            f"square_{size}": round(matmul_gflops(size, size, size, threads), 1),
            "square_1024": round(matmul_gflops(1024, 1024, 1024, threads), 1),  # what `course doctor` measures
            "mlp_up": round(matmul_gflops(args.batch * args.seq, 576, 1536, threads), 1)}
        print(f"matmul fp32, {threads} thread(s): {result['matmul_gflops'][str(threads)]} GFLOP/s", flush=True)
    torch.set_num_threads(all_threads)
    peak = max(result["matmul_gflops"][str(all_threads)].values())  # the ceiling the loops are held against
    result["peak_gflops"] = peak
    tokens = args.batch * args.seq
    loops = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in () if args.only_sft else ("full", "lora"):
            for loop in ("plain", "course", "trainer", "sft_trainer"):
                torch.manual_seed(0)
                model = make_model(args.smoke)
                n_params = sum(p.numel() for p in model.parameters())
                if method == "lora":
                    model = with_lora(model)
                n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
                data = rows(model.config.vocab_size, args.batch, args.seq, args.warmup + args.steps)
                total = args.warmup + args.steps
                phases = None
                t = time.perf_counter()
                if loop == "plain":
                    times, phases = plain_loop(model, data, args.batch, total)
                elif loop == "course":
                    times = course_loop(model, data, args.batch, total)
                else:
                    times = hf_loop(model, data, args.batch, total, loop, Path(tmp))
                wall = time.perf_counter() - t
                step_s = median(times[args.warmup:])
                flops = (6 * n_params if method == "full" else 4 * n_params + 6 * n_trainable) * tokens
                row = {"method": method, "loop": loop, "parameters": n_params, "trainable": n_trainable,
                       "seconds_per_step": round(step_s, 3), "tokens_per_second": round(tokens / step_s, 1),
                       "gflops": round(flops / step_s / 1e9, 1), "fraction_of_peak": float(f"{flops / step_s / 1e9 / peak:.3g}"),
                       "wall_seconds": round(wall, 1)}
                row["bf16_autocast"] = bool(bf16_used.pop()) if loop in ("trainer", "sft_trainer") else False
                if phases:
                    row["phase_seconds"] = {k: round(median(v[args.warmup:]), 4) for k, v in phases.items()}
                loops[f"{method}/{loop}"] = row
                print(f"{method:4s} {loop:11s} {row['seconds_per_step']:7.3f} s/step  {row['tokens_per_second']:7.1f} "
                      f"tokens/s  {row['gflops']:6.1f} GFLOP/s = {row['fraction_of_peak']:.0%} of the matmul peak",
                      flush=True)
                del model
    result["loops"] = loops
    if args.sft is not None:
        result["course_sft"] = time_course_sft(args.sft.split(), sorted({1, all_threads}))
    for method in () if args.only_sft else ("full", "lora"):
        plain = loops[f"{method}/plain"]["seconds_per_step"]
        for loop in ("course", "trainer", "sft_trainer"):
            loops[f"{method}/{loop}"]["slower_than_plain"] = round(loops[f"{method}/{loop}"]["seconds_per_step"] / plain - 1, 3)
    return result


def main(argv=None) -> int:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny random Llama: checks the script in seconds")
    parser.add_argument("--batch", type=int, default=4, help="sequences per step (lesson 06's SFT batch)")
    parser.add_argument("--seq", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--warmup", type=int, default=2, help="steps before timing starts")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per loop (the median is reported)")
    parser.add_argument("--sft", nargs="?", const="", default=None, metavar="ARGS",
                        help="also time `course sft ARGS` on 1 thread and on every core (course doctor's estimate)")
    parser.add_argument("--only-sft", action="store_true", help="with --sft: skip the loops (keeps the matmul peak)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the results (default: benchmarks/results/)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seq, args.steps, args.warmup = min(args.seq, 32), min(args.steps, 2), 1
    result = measure(args)
    out = args.out or ROOT / "results" / f"cpu-throughput-{result['machine']['cores']}core{'-smoke' if args.smoke else ''}.json"
    result["command"] = " ".join(["python benchmarks/cpu_throughput.py", *(argv if argv is not None else sys.argv[1:])])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
