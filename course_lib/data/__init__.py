"""The course's datasets (lesson 00): where they live, how they load, how `course build-data` makes them.

    corpus       Python's own text (stdlib docstrings, pydoc topics) split into areas
    datasets     data_dir / read_jsonl / load_course_dataset, prompt formats (instruction_text), the builders
    encoding     text -> token ids, collators
"""

from course_lib.data.corpus import Doc, stdlib_docstrings, pydoc_topics, split_of, AREAS, area_of, clean
from course_lib.data.datasets import (DATASETS, LABELS, data_dir, load_course_dataset, read_jsonl, build_all,
                                      DataConfig, instruction_text, area_text, prompt_of, alpaca_to_chat)
from course_lib.data.encoding import tokenize_classification, tokenize_causal, collator_for

__all__ = ['Doc', 'stdlib_docstrings', 'pydoc_topics', 'split_of', 'AREAS', 'area_of', 'clean', 'DATASETS',
           'LABELS', 'data_dir', 'load_course_dataset', 'read_jsonl', 'build_all', 'DataConfig',
           'instruction_text', 'area_text', 'prompt_of', 'alpaca_to_chat', 'tokenize_classification',
           'tokenize_causal', 'collator_for']
