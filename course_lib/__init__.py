"""course_lib: the helper library of the fine-tuning course. One module per concept:

corpus / data (lesson 00 datasets), models, metrics, pretrain (course-tiny), doctor,
training and freezing (01), lr_finder (02), lora (03), quant and vram (04), forgetting (05),
grading (instructors). Lessons import what they need from these modules by name.
"""

import logging

__version__ = "0.1.0"

# bitsandbytes warns on CPUs with AVX512-BF16 that an optional kernel package (which would be
# downloaded from a hub) is missing; its own CPU path works, so the warning only adds noise.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
