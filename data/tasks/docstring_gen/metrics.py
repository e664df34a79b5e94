"""process_results of docstring_gen (data/tasks/docstring_gen.yaml): the course's own scores of one answer."""

from course_lib.evaluation.harness import score_answer


def process_results(doc, results):
    """{exact_match, rouge_l, format_ok} of the generated answer (results[0]) against doc["answer"]."""
    return score_answer(results[0], doc["answer"])
