"""A quiet notebook: what every lesson's first cell (and every `course` command) calls, so saved outputs show
the lesson's own numbers and not the libraries' notices.

    set_threads()
    quiet_notebook()
    print(versions_line())

Library code that calls into one of the known notices wraps the call in `with known_notices():`. Nothing
here runs at import (CONTRIBUTING: no side effects at import).
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from typing import Iterator

__all__ = ["DEPRECATED_ALIAS", "below", "known_notices", "quiet_process", "quiet_notebook"]

# peft's prepare_model_for_kbit_training and TRL's trainers still ask a model for `is_gradient_checkpointing`,
# an alias transformers 5.x deprecates (FutureWarning); harmless until transformers 6. One spelling, here.
DEPRECATED_ALIAS = r".*is_gradient_checkpointing.* is deprecated"


def _ignore_known_notices() -> None:
    warnings.filterwarnings("ignore", message=DEPRECATED_ALIAS, category=FutureWarning)


@contextmanager
def known_notices() -> Iterator[None]:
    """A block in which the known, harmless deprecation notice above is not shown (library code)."""
    with warnings.catch_warnings():
        _ignore_known_notices()
        yield


def quiet_process() -> None:
    """The part of `quiet_notebook` that imports nothing (what every `course` command calls first, so that
    `course grade` stays small): the bitsandbytes notice, DeepSpeed's accelerator warning, the known notices."""
    # bitsandbytes warns on CPUs with AVX512-BF16 that an optional kernel package (which would be downloaded
    # from a hub) is missing; its own CPU path works. Set before peft imports it: the notice comes at import.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # DeepSpeed (lesson 08's ZeRO estimators) is imported by accelerate whenever it is installed: every Trainer
    # run unwraps its model through it. Without CUDA each import logs a timestamped "Setting accelerator to
    # CPU" warning; naming the accelerator it would choose anyway keeps outputs clean. Where nvidia-smi
    # exists, DeepSpeed detects CUDA itself and nothing is set.
    if "DS_ACCELERATOR" not in os.environ and shutil.which("nvidia-smi") is None:
        os.environ["DS_ACCELERATOR"] = "cpu"
    _ignore_known_notices()


def quiet_notebook() -> None:
    """No progress bars, no known notices, no DeepSpeed accelerator warning in a saved notebook (lessons 00-08)."""
    quiet_process()
    # transformers and datasets are imported here, not at the top: the logger above must be set before they
    # (and peft through them) import bitsandbytes.
    from datasets import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar, frozen at 0 % in the saved page
    hf_logging.set_verbosity_error()  # no notices about defaults the Trainer picks
    disable_progress_bars()  # nor the bars of TRL's dataset preparation (datasets.map)


def below(value: float, bound: float) -> str:
    """A rounding-level difference, printed so that a saved output reads the same on every CPU.

    Two computations equal in exact arithmetic differ in float32 by rounding, and how much depends on the
    CPU's kernels (an Intel Xeon printed 4.9e-07 where an AMD EPYC printed 3.3e-05 for the same run of
    lesson 08), and bf16 products round differently with and without AVX512-BF16. So a notebook states the bound it checks:
    "< 1e-04" when `value` is under `bound`; above it, the value itself, which then shows as a change.
    """
    if not value < bound:  # NaN included
        return f"{value:.1e}"
    return f"< {bound:.0e}"

