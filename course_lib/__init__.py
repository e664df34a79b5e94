"""course_lib: the helper library of the fine-tuning course, one package per area of the course.

    data/         the datasets under data/ and `course build-data`                       (lesson 00)
    models/       loading course-tiny or a named model, the model zoo, pretraining       (lesson 00)
    training/     the loop, freezing, transfer learning, the LR finder, distributed      (lessons 01, 02, 08)
    tuning/       LoRA, SFT, DPO / ORPO                                                  (lessons 03, 06, 07)
    memory/       the memory estimator, NF4, MemTracker, ZeRO                            (lessons 04, 08)
    forgetting/   measuring forgetting, replay, EWC, the retention probe                 (lesson 05)
    experiments/  the long runs behind data/results/*.json, one `course` command each
    commands/     `course` commands above one concept (options and printing only)
    grading/      `course release`, `course grade`                                      (instructors)
    metrics.py results.py notebook.py doctor.py lockfile.py cli.py

Lessons import what they need from the packages by name. Importing course_lib changes nothing:
a lesson's first cell calls `set_threads()` and `quiet_notebook()`.
"""

__version__ = "0.1.0"
