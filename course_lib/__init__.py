"""course_lib: the helper library of the fine-tuning course. One module per concept:

corpus / data (lesson 00 datasets), models, metrics, pretrain (course-tiny), doctor,
training and freezing (01), lr_finder (02), lora (03), quant and vram (04), forgetting (05),
distributed and zero (08), grading (instructors). Lessons import what they need from these modules by name.
"""

import logging
import os
import shutil

__version__ = "0.1.0"

# bitsandbytes warns on CPUs with AVX512-BF16 that an optional kernel package (which would be
# downloaded from a hub) is missing; its own CPU path works, so the warning only adds noise.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

# DeepSpeed (lesson 08's ZeRO estimators) is imported by accelerate whenever it is installed: every
# Trainer run unwraps its model through it. Without CUDA, each import logs a timestamped "Setting
# accelerator to CPU" warning into the notebook; naming the accelerator it would choose anyway keeps
# the outputs clean. Where nvidia-smi exists, DeepSpeed detects CUDA itself and nothing is set.
if "DS_ACCELERATOR" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["DS_ACCELERATOR"] = "cpu"
