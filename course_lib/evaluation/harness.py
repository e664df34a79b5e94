"""EleutherAI's lm-evaluation-harness on the course's own tasks, offline (lesson 10).

    lm = harness_model("smollm2-135m-instruct", peft="data/adapters/sft-docstring")
    run = run_harness(lm, "docstring_choice", num_fewshot=0, limit=8)
    run["metrics"]["acc"], run["metrics"]["acc_stderr"], run["items"][0]

`harness_model` builds the harness's own `HFLM` from a model folder (and a peft adapter folder: `peft=`);
`run_harness` runs `lm_eval.simple_evaluate` on a task of data/tasks (course_lib.data.tasks) from the
course's folder, as `lm_eval --include_path data/tasks` would, and returns the harness's numbers with each
item's outcome as the harness logged it (what a paired comparison needs). Nothing here reaches a network:
the model, adapter and data are local files, and the tasks' metrics are lm-eval's own or the course's
(tests/test_harness.py runs the harness with sockets blocked).

`choice_logprobs` and `choice_predictions` are the multiple-choice scoring by hand — `acc` takes the choice
with the highest summed log-probability, `acc_norm` divides it by the choice's length in characters
(lm-eval 0.4.13, `ConfigurableTask.process_results`) — equal to the harness's (tests/test_harness.py).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import Iterator, Sequence

import torch

from course_lib.data.datasets import data_dir, format_ok
from course_lib.metrics import rouge_l
from course_lib.models.base import get_device
from course_lib.models.loading import resolve_model

__all__ = ["course_root", "tasks_dir", "score_answer", "harness_model", "run_harness", "choice_logprobs",
           "choice_predictions"]

BOOTSTRAP_ITERS = 1000  # > 0 turns standard errors on; a mean's is closed-form (no resampling happens)


def course_root() -> Path:
    """The folder the tasks' YAML files name their data from (the course's folder: data/..)."""
    return data_dir().parent


def tasks_dir() -> Path:
    """data/tasks: one folder per task, each with its YAML (what `--include_path` points the harness at)."""
    return data_dir() / "tasks"


def score_answer(answer: str, reference: str) -> dict[str, float]:
    """docstring_gen's per-item scores (its metrics.py): lesson 06's exact match, ROUGE-L and docstring format.

    The answer is stripped first, as lesson 06 strips its decoded answers (`sft.greedy_answers_and_cuts`).
    """
    answer = answer.strip()
    return {"exact_match": float(answer == reference), "rouge_l": rouge_l([answer], [reference]),
            "format_ok": float(format_ok(answer))}


@contextlib.contextmanager
def _in_folder(folder: Path) -> Iterator[None]:
    """Run a block from `folder` (contextlib.chdir, which Python 3.10 lacks)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _quiet(log: io.StringIO) -> Iterator[None]:
    """The harness's progress bars and notices go to `log` instead of the page (errors still raise)."""
    level = logging.getLogger("lm_eval").level
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(log):
            yield
    finally:
        logging.getLogger("lm_eval").setLevel(level)


def harness_model(model: str | None = None, peft: str | Path | None = None, batch_size: int = 8):
    """lm-eval's `HFLM` on a course model's local folder (float32, this machine's device), with a peft adapter.

    `peft` is an adapter folder: HFLM loads the base with transformers, then `PeftModel.from_pretrained`.
    """
    from lm_eval.models.huggingface import HFLM  # heavy (the harness and its metrics): imported when used

    log = io.StringIO()
    with _quiet(log):
        lm = HFLM(pretrained=resolve_model(model), peft=str(peft) if peft else None, dtype="float32",
                  device=str(get_device()), batch_size=batch_size)
    lm.course_log = log.getvalue()
    return lm


def run_harness(lm, task: str, *, num_fewshot: int = 0, limit: int | None = None,
                apply_chat_template: bool = False, task_dir: Path | str | None = None) -> dict:
    """One task through `lm_eval.simple_evaluate`: {"metrics": {m, m_stderr}, "n", "items", "config"}.

    `items` holds each scored item in order: its doc_id, each metric's value, and what the model did (the
    choices' log-likelihoods for multiple choice, the answer for generation) and the prompt it saw.
    """
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    log = io.StringIO()
    folder = Path(task_dir or tasks_dir())
    with _quiet(log), _in_folder(course_root()):  # the YAMLs name data/tasks/... from the course's folder
        manager = TaskManager(include_path=str(folder), include_defaults=False)
        out = simple_evaluate(model=lm, tasks=[task], num_fewshot=num_fewshot, limit=limit, task_manager=manager,
                              apply_chat_template=apply_chat_template, bootstrap_iters=BOOTSTRAP_ITERS,
                              log_samples=True, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                              fewshot_random_seed=0)
    result = out["results"][task]
    metrics = {k.split(",")[0]: v for k, v in result.items() if k.endswith(",none")}
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    names = [m for m in metrics if not m.endswith("_stderr")]
    items = []
    for s in samples:
        item = {"doc_id": s["doc_id"], **{m: float(s[m]) for m in names}, "prompt": s["arguments"][0][0]}
        if "generate_until" in str(out["configs"][task].get("output_type")):
            item["answer"] = s["filtered_resps"][0]
        else:
            item["loglikelihoods"] = [float(r[0]) for r in s["filtered_resps"]]
        items.append(item)
    return {"task": task, "metrics": metrics, "n": len(items), "items": items,
            "config": {"num_fewshot": num_fewshot, "limit": limit, "apply_chat_template": apply_chat_template},
            "log": log.getvalue()}


@torch.no_grad()
def choice_logprobs(model, tokenizer, context: str, continuations: Sequence[str]) -> list[float]:
    """Summed log-probability (nats) of each continuation after `context`, tokenized as the harness does.

    The harness moves the context's trailing spaces into the continuation, encodes context + continuation
    whole, and scores the tokens past the context's own encoding (lm-eval `LM._encode_pair`); a text that
    already starts with the beginning-of-sequence token (a chat template's) gets no second one.
    """
    def encode(text: str) -> list[int]:
        bos = tokenizer.bos_token
        return tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]

    device = next(model.parameters()).device
    out = []
    for continuation in continuations:
        ctx = context.rstrip()
        cont = context[len(ctx):] + continuation
        ctx_ids, whole = encode(ctx), encode(ctx + cont)
        n_cont = len(whole) - len(ctx_ids)
        ids = torch.tensor([whole], device=device)
        logp = torch.log_softmax(model(input_ids=ids).logits[0, -n_cont - 1:-1].float(), dim=-1)  # (n_cont, V)
        out.append(logp.gather(1, ids[0, -n_cont:, None]).sum().item())
    return out


def choice_predictions(loglikelihoods: Sequence[float], choices: Sequence[str]) -> dict[str, int]:
    """{"acc": index of the most likely choice, "acc_norm": the same per character of the choice}."""
    lls = torch.tensor(loglikelihoods, dtype=torch.float64)
    chars = torch.tensor([len(c) for c in choices], dtype=torch.float64)
    return {"acc": int(lls.argmax()), "acc_norm": int((lls / chars).argmax())}
