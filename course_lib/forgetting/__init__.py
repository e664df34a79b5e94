"""Catastrophic forgetting (lesson 05): measuring it and two remedies.

    measuring    the forgetting and target-gain numbers, the task data
    replay       mixing old rows into new batches
    ewc          elastic weight consolidation's penalty and Fisher
    generation   greedy answers and the retention probe
"""

from course_lib.forgetting.measuring import forgetting, target_gain, TaskData, load_task_data, measure, summarize
from course_lib.forgetting.replay import replay_mix, replay_batches
from course_lib.forgetting.ewc import fisher_diagonal, ewc_penalty, EWCPenalty
from course_lib.forgetting.generation import (GENERAL_PROMPTS, greedy_ids, greedy_answers, prompt_ids,
                                              answer_logprob, RetentionReference, retention_reference,
                                              retention)

__all__ = ['forgetting', 'target_gain', 'TaskData', 'load_task_data', 'measure', 'summarize', 'replay_mix',
           'replay_batches', 'fisher_diagonal', 'ewc_penalty', 'EWCPenalty', 'GENERAL_PROMPTS', 'greedy_ids',
           'greedy_answers', 'prompt_ids', 'answer_logprob', 'RetentionReference', 'retention_reference',
           'retention']
