"""The `course` commands that sit above one concept each: their options (typed dataclasses) and printing only.

    data         `course build-data`                       (course_lib.data.build)
    models       `course pretrain`, `course get-model`     (course_lib.models.pretraining, .zoo)
    vram         `course vram`                             (course_lib.memory: lesson 04's table, lesson 08's ZeRO)
    training     `course train-distributed`                (course_lib.training.distributed)
    tuning       `course sft`; `course dpo-pairs`, `dpo-sweep`, `dpo`, `dpo-variants`, `judge`
                                                           (course_lib.tuning.sft, .pairs, .dpo_runs, .judge)

The long experiments (course_lib.experiments) declare their own commands; `course doctor` is in cli.py.
A concept module never imports from here; course_lib.cli dispatches here.
"""
