"""Replay: mix old text into every fine-tuning batch, so the model keeps rehearsing it (lesson 05).

`replay_batches(...)` is an iterator of collated batches to pass as `train(..., batches=...)`.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator, Sequence

__all__ = ["replay_mix", "replay_batches"]


def replay_mix(target_rows: Sequence, replay_rows: Sequence, fraction: float, batch_size: int,
               seed: int = 0) -> Iterator[list]:
    """Endless batches of rows: round(fraction × batch_size) replayed rows, the rest target rows (lesson 05)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"replay fraction must be between 0 and 1, got {fraction}.")
    n_replay = round(fraction * batch_size)
    if (n_replay and not replay_rows) or (n_replay < batch_size and not target_rows):
        raise ValueError("replay_mix needs target rows, and replay rows when fraction > 0.")
    rng = random.Random(seed)

    def shuffled_forever(rows: Sequence) -> Iterator:
        while True:
            order = list(range(len(rows)))
            rng.shuffle(order)
            yield from (rows[i] for i in order)

    target = shuffled_forever(target_rows) if n_replay < batch_size else iter(())
    old = shuffled_forever(replay_rows) if n_replay else iter(())
    while True:
        batch = [next(old) for _ in range(n_replay)] + [next(target) for _ in range(batch_size - n_replay)]
        rng.shuffle(batch)  # replayed rows are not always at the front
        yield batch


def replay_batches(target_rows: Sequence, replay_rows: Sequence, fraction: float, batch_size: int,
                   collate_fn: Callable, seed: int = 0) -> Iterator[dict]:
    """`replay_mix`, collated: pass as `train(..., batches=...)` (lesson 05)."""
    return map(collate_fn, replay_mix(target_rows, replay_rows, fraction, batch_size, seed))
