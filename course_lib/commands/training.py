"""`course train-distributed` (lesson 08): one training run on however many processes `accelerate launch` started."""

from __future__ import annotations

import json

from course_lib.training.distributed import DistributedConfig, train_distributed

__all__ = ["train_distributed_command", "COMMANDS"]


def train_distributed_command(config: DistributedConfig) -> int:
    result = train_distributed(config)
    if result and not config.output_json:
        print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=1))
    return 0


COMMANDS = {
    "train-distributed": ("train course-tiny a few steps on however many processes `accelerate launch` started "
                          "(DDP, or FSDP2 with --fsdp); lesson 08", (DistributedConfig,), train_distributed_command),
}
