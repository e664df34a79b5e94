"""Training (lessons 01, 02, 08): the loop, what trains, transfer learning, the LR finder, more processes.

    sizing       the one rule that shrinks a run for a bigger model (COURSE_TINY_PARAMS from the preset), live_size
    loop         train(), TrainConfig (TrainingArguments' names), optimizers and schedules
    freezing     which parameters train (layer groups, gradual unfreezing, discriminative LRs)
    transfer     lesson 01's four ways to train a classifier
    lr_finder    lesson 02's LR range test
    distributed  lesson 08's one training script for 1 or N processes (DDP / FSDP2)
"""

from course_lib.training.sizing import COURSE_TINY_PARAMS, RunSize, shrink_run, live_size
from course_lib.training.loop import (TrainConfig, History, TrainingDiverged, train, make_optimizer,
                                      make_scheduler, shuffled_batches, accumulate_gradients)
from course_lib.training.freezing import (freeze_all_but, layer_groups, set_trainable_groups,
                                          unfreeze_top_blocks, gradual_unfreezing, TrainableReport,
                                          trainable_report, discriminative_lr_groups)
from course_lib.training.transfer import (METHODS, TransferConfig, TransferRun, fine_tune_classifier,
                                          build_classifier, set_trainable_for, subset, curve_summary,
                                          plot_learning_curve)
from course_lib.training.lr_finder import LRFinderConfig, SuggestedLRs, lr_find, suggest, plot_lr_find, exponential_lrs
from course_lib.training.distributed import (DistributedConfig, ProcessMemory, process_memory,
                                             training_batches, train_distributed, launch, compare_runs,
                                             DistributedRunFailed)

__all__ = ['COURSE_TINY_PARAMS', 'RunSize', 'shrink_run', 'live_size', 'TrainConfig', 'History',
           'TrainingDiverged', 'train', 'make_optimizer', 'make_scheduler', 'shuffled_batches',
           'accumulate_gradients', 'freeze_all_but', 'layer_groups', 'set_trainable_groups',
           'unfreeze_top_blocks', 'gradual_unfreezing', 'TrainableReport', 'trainable_report',
           'discriminative_lr_groups', 'METHODS', 'TransferConfig', 'TransferRun', 'fine_tune_classifier',
           'build_classifier', 'set_trainable_for', 'subset', 'curve_summary', 'plot_learning_curve',
           'LRFinderConfig', 'SuggestedLRs', 'lr_find', 'suggest', 'plot_lr_find', 'exponential_lrs',
           'DistributedConfig', 'ProcessMemory', 'process_memory', 'training_batches', 'train_distributed',
           'launch', 'compare_runs', 'DistributedRunFailed']
