"""The course's datasets (lesson 00): where they live, how they load, how `course build-data` makes them.

    corpus       Python's own text (stdlib docstrings, pydoc topics) split into areas
    datasets     data_dir, read_jsonl / write_jsonl, load_course_dataset (schemas checked), prompt formats
    encoding     text -> token ids, collators
    preferences  lesson 07's preference pairs (one schema: DATASETS["preferences"])
    tasks        lesson 10's evaluation tasks in lm-evaluation-harness's format (data/tasks)
    verifiable   lesson 09's tasks with checkable answers (times table, sums, parameter counts)
    build        `course build-data`: every dataset and its data card
"""

from course_lib.data.corpus import Doc, stdlib_docstrings, pydoc_topics, split_of, AREAS, area_of, clean
from course_lib.data.datasets import (DATASETS, LABELS, TASK_PREFIX, RESPONSE_MARKER, DataFormatError,
                                      data_dir, load_course_dataset, read_jsonl, write_jsonl,
                                      instruction_text, area_text, prompt_of, format_ok)
from course_lib.data.encoding import tokenize_classification, tokenize_causal, collator_for
from course_lib.data.preferences import (PAIR_KINDS, SPLIT_SIZES, first_sentence, make_pairs,
                                         build_preferences, preference_rows, to_trl)
from course_lib.data.tasks import (TASKS, TASK_SPLITS, N_CHOICES, function_parts, choice_items, generation_items,
                                   build_tasks, task_rows)
from course_lib.data.verifiable import (VERIFIABLE_TASKS, TABLE_RANGE, signature_parameters, build_verifiable,
                                       verifiable_rows)
from course_lib.data.build import DataConfig, build_all, alpaca_to_chat

__all__ = ['Doc', 'stdlib_docstrings', 'pydoc_topics', 'split_of', 'AREAS', 'area_of', 'clean', 'DATASETS',
           'LABELS', 'TASK_PREFIX', 'RESPONSE_MARKER', 'DataFormatError', 'data_dir', 'load_course_dataset',
           'read_jsonl', 'write_jsonl', 'instruction_text', 'area_text', 'prompt_of', 'format_ok',
           'tokenize_classification', 'tokenize_causal', 'collator_for', 'PAIR_KINDS', 'SPLIT_SIZES',
           'first_sentence', 'make_pairs', 'build_preferences', 'preference_rows', 'to_trl', 'DataConfig',
           'build_all', 'alpaca_to_chat', 'TASKS', 'TASK_SPLITS', 'N_CHOICES', 'function_parts', 'choice_items',
           'generation_items', 'build_tasks', 'task_rows',
           'VERIFIABLE_TASKS', 'TABLE_RANGE', 'signature_parameters', 'build_verifiable', 'verifiable_rows']
