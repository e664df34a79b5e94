"""Evaluation you can trust (lesson 10): the standard harness offline, uncertainty, contamination.

    harness        lm-evaluation-harness on the course's tasks (data/tasks); multiple-choice scoring by hand
    uncertainty    standard errors as the harness reports them, paired bootstrap, McNemar, sign flips, Welch, power
    contamination  13-gram overlap between training and test splits (lm-eval's decontamination rule)
    claims         the headline comparisons of lessons 01-07, re-tested from their results files
"""

from course_lib.evaluation.harness import (course_root, tasks_dir, score_answer, harness_model, run_harness,
                                           choice_logprobs, choice_predictions)
from course_lib.evaluation.uncertainty import (Z95, mean_stderr, proportion_stderr, paired_bootstrap, mcnemar, sign_flip,
                                               welch, items_needed, detectable_difference)
from course_lib.evaluation.contamination import (NGRAM, normalize, ngrams, ngram_set, contaminated, split_texts,
                                                 TRAIN_SPLITS, TEST_SPLITS, overlap_table)
from course_lib.evaluation.claims import Claim, CLAIMS, retest, claims_table

__all__ = ["course_root", "tasks_dir", "score_answer", "harness_model", "run_harness", "choice_logprobs",
           "choice_predictions", "Z95", "mean_stderr", "proportion_stderr", "paired_bootstrap", "mcnemar", "sign_flip", "welch",
           "items_needed", "detectable_difference", "NGRAM", "normalize", "ngrams", "ngram_set", "contaminated",
           "split_texts", "TRAIN_SPLITS", "TEST_SPLITS", "overlap_table", "Claim", "CLAIMS", "retest", "claims_table"]
