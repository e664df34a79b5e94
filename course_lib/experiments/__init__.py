"""The course's long experiments: one module each, each a `course` command that writes a results file.

    learning_curve   course learning-curve  -> data/results/learning_curve.json      (lesson 01)
    lr_sweep         course lr-sweep        -> data/results/lr_sweep.json            (lesson 02)
    lora_ablation    course lora-ablation   -> data/results/lora_rank_ablation.json  (lesson 03)
    memory           course memory          -> data/results/memory_smollm2.json      (lesson 04)
    forgetting       course forgetting      -> data/results/forgetting.json          (lesson 05)
    grpo             course grpo            -> data/results/grpo.json                (lesson 09)

A runner repeats the call its lesson makes live for one point (over sizes, seeds, ranks, ...), so a
lesson can check a reduced live run against the file. Files are named (`results_name`: `<name>` for
course-tiny, `<name>_<model>` otherwise), stamped with the model and the command (`command_line`) and
written by `course_lib.results`; on a bigger model a run shrinks by course_lib.training.sizing's rule.
"""
