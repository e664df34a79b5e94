"""`course build-data`: every dataset and data card under data/ (course_lib.data.build), with its row counts."""

from __future__ import annotations

from course_lib.data.build import DataConfig, build_all

__all__ = ["build_data", "COMMANDS"]


def build_data(config: DataConfig) -> int:
    for name, splits in build_all(config).items():
        print(f"{name:15s} " + ", ".join(f"{s} {n}" for s, n in splits.items()))
    return 0


COMMANDS = {"build-data": ("rebuild the datasets and data cards under data/ from Python's own text",
                           (DataConfig,), build_data)}
