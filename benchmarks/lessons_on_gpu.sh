#!/usr/bin/env bash
# Run lessons 00-05 top to bottom as Python scripts on whatever device course_lib.models.loading.get_device() finds
# (a CUDA GPU if there is one), and record each one's exit code, seconds and printed output.
#
#     bash benchmarks/lessons_on_gpu.sh [OUTDIR]     # default benchmarks/results/lessons-<gpu name>
#
# It ran on an NVIDIA H200 (torch 2.11, transformers 5.24, peft 0.21.2, bitsandbytes 0.50.2), written to
# benchmarks/results/lessons-nvidia-h200/: every lesson exited 0; times.txt has the seconds. The outputs
# differ from the committed notebooks (another torch build, CUDA kernels): what this checks is that the
# lessons run unchanged on a GPU, not that they print the CPU's numbers.
set -u
name=$(python3 -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '-').lower() if torch.cuda.is_available() else 'cpu')")
out=${1:-benchmarks/results/lessons-$name}
mkdir -p "$out"
export MPLBACKEND=Agg HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
for lesson in 04_qlora_consumer_gpu 00_start_here 05_catastrophic_forgetting 01_transfer_learning 02_learning_rate 03_lora_math; do
  start=$(date +%s)
  timeout 600 python3 "sources/lessons/$lesson.py" > "$out/lesson-$lesson.txt" 2>&1
  echo "$lesson rc=$? $(( $(date +%s) - start )) s" | tee -a "$out/times.txt"
done
