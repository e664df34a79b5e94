"""course_lib.forgetting.replay: the share of old rows per batch, seeded, every row seen (lesson 05)."""

import pytest

from course_lib.forgetting.replay import replay_mix


def test_replay_fraction_honoured():
    target = [("target", i) for i in range(10)]
    old = [("old", i) for i in range(7)]
    for fraction, batch_size, expected in [(0.25, 16, 4), (0.5, 8, 4), (0.0, 8, 0), (1.0, 4, 4), (0.1, 16, 2)]:
        stream = replay_mix(target, old, fraction, batch_size, seed=3)
        for _ in range(20):
            batch = next(stream)
            assert len(batch) == batch_size
            assert sum(tag == "old" for tag, _ in batch) == expected
    with pytest.raises(ValueError):
        next(replay_mix(target, old, 1.5, 8))
    with pytest.raises(ValueError):
        next(replay_mix(target, [], 0.5, 8))


def test_replay_mix_cycles_through_every_row_and_is_seeded():
    target = list(range(12))
    first = [next(replay_mix(target, ["x"], 0.0, 4, seed=1)) for _ in range(1)]
    again = [next(replay_mix(target, ["x"], 0.0, 4, seed=1)) for _ in range(1)]
    assert first == again
    stream = replay_mix(target, ["x"], 0.0, 4, seed=1)
    seen = [row for _ in range(3) for row in next(stream)]  # one pass = 12 rows
    assert sorted(seen) == target

