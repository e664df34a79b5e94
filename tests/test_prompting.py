"""course_lib.tuning.prompting: few-shot rows as chats, BM25 retrieval (bm25s) of the most similar training rows."""

from __future__ import annotations

import math

from course_lib.tuning import prompting
from course_lib.tuning.sft import prompt_for, task_rows


def row(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


ROWS = [row("Explain `os.path.join`: join paths", "Join two or more pathname components."),
        row("Explain `heapq.heappush`: push onto a heap", "Push item onto heap, maintaining the heap invariant."),
        row("Explain `os.path.split`: split a path", "Split a pathname."),
        row("Explain `json.dumps`: serialize", "Serialize obj to a JSON formatted str.")]


def test_few_shot_row_puts_the_examples_first_and_keeps_the_reference_last():
    out = prompting.few_shot_row(ROWS[3], ROWS[:2])
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert out["messages"][-1]["content"] == "Serialize obj to a JSON formatted str."
    assert out["messages"][1]["content"] == ROWS[0]["messages"][1]["content"]


def test_bm25_ranks_shared_rare_words_first_and_matches_the_formula():
    r = prompting.Retriever(ROWS)
    top = r.top("what does os.path.split return", 2)
    assert [prompting.question(t) for t in top] == [prompting.question(ROWS[2]), prompting.question(ROWS[0])]
    # BM25 by hand, bm25s' default "lucene" variant (k1 = 1.5, b = 0.75, no (k1 + 1) factor) for the one-word query "heap"
    docs = [prompting.question(x).lower() for x in ROWS]
    import re
    words = [re.findall(r"(?u)\b\w\w+\b", d) for d in docs]
    avg = sum(map(len, words)) / len(words)
    df = sum("heap" in w for w in words)
    idf = math.log(1 + (len(words) - df + 0.5) / (df + 0.5))
    by_hand = [idf * w.count("heap") / (w.count("heap") + 1.5 * (1 - 0.75 + 0.75 * len(w) / avg)) for w in words]
    assert max(abs(a - b) for a, b in zip(r.scores("heap"), by_hand)) < 1e-5
    assert r.scores("zzz unknown") == [0.0] * 4


def test_retrieved_prompt_costs_more_tokens(chat_tok):
    train, test = task_rows("train", 8), task_rows("test", 1)[0]
    zero = prompting.prompt_tokens(chat_tok, prompt_for(chat_tok, test))
    shots = prompting.few_shot_row(test, prompting.Retriever(train).top(prompting.question(test), 2))
    few = prompting.prompt_tokens(chat_tok, prompt_for(chat_tok, shots))
    assert few > zero + 2 * 10
    assert prompt_for(chat_tok, shots).count("<|im_start|>assistant") == 3  # two solved turns and the open one
