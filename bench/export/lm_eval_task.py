"""A question set as an lm-evaluation-harness task folder: ``questions.jsonl``, a closed-book task and a
with-context task (YAML), ``utils.py`` (the harness hooks: :mod:`bench.export.lm_eval_utils`) and a copy of
the bench's metric code, so the harness scores answers with our EM/F1 without ``bench`` installed.

Run it with ``lm_eval --model hf --model_args pretrained=MODEL --include_path FOLDER --tasks NAME``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.config import PACKAGE_DIR, BenchError
from bench.eval.spans import PLACE_KINDS, answer_kind
from bench.io import write_jsonl

CONTEXT_PROMPT = "Contexto: {{context}}\n\nPergunta: {{question}}\nResposta:"
CLOSED_PROMPT = "Pergunta: {{question}}\nResposta:"
METRICS = ("exact_match", "f1", "f1_qstripped", "contains")
# The metric code the task folder carries (bench/core), its bench import rewritten to the copy beside it.
VENDORED = {"ptwiki_metrics.py": "core/metrics.py", "ptwiki_numbers_pt.py": "core/numbers_pt.py"}
_IMPORT = "from bench.core.numbers_pt import words_to_digits"


def task_name(stem: str) -> str:
    """``ptwiki-facts`` → ``ptwiki_bench_ptwiki_facts`` (lm-eval task names: letters, digits, ``_``)."""
    return "ptwiki_bench_" + (re.sub(r"[^0-9A-Za-z]+", "_", stem).strip("_").lower() or "questions")


def task_doc(q: dict[str, Any]) -> dict[str, Any]:
    """One document: the question row's text fields plus ``place`` (the bench's place rule applies)."""
    relation = q.get("relation")
    place = answer_kind(str(q["question"]), str(relation) if relation else None) in PLACE_KINDS
    keep = ("id", "question", "answers", "title", "context", "split", "relation", "stratum", "article_id")
    return {**{k: q[k] for k in keep if q.get(k) is not None}, "place": place}


def _yaml(name: str, tag: str, loader: str, prompt: str, max_new_tokens: int) -> str:
    metrics = "".join(
        f"  - metric: {m}\n    aggregation: mean\n    higher_is_better: true\n" for m in METRICS
    )
    return (
        f"task: {name}\ntag: {tag}\ncustom_dataset: !function utils.{loader}\ntest_split: test\n"
        f"output_type: generate_until\ndoc_to_text: {_quoted(prompt)}\n"
        "doc_to_target: !function utils.first_answer\n"
        'generation_kwargs:\n  until: ["\\n"]\n'
        f"  max_gen_toks: {max_new_tokens}\n  do_sample: false\n"
        f"process_results: !function utils.process_results\nmetric_list:\n{metrics}"
        "metadata:\n  version: 1.0\n"
    )


def _quoted(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def vendored_sources() -> dict[str, str]:
    """The metric modules as the task folder carries them (their one bench import pointed beside them)."""
    out = {}
    for name, rel in VENDORED.items():
        text = (PACKAGE_DIR / rel).read_text(encoding="utf-8")
        if "from bench." in text.replace(_IMPORT, ""):
            raise BenchError(
                f"bench/{rel} imports more of bench than the task folder carries; update {__name__}"
            )
        out[name] = text.replace(_IMPORT, "from ptwiki_numbers_pt import words_to_digits")
    return out


def write_task(out: Path, questions: list[dict[str, Any]], stem: str, max_new_tokens: int) -> list[str]:
    """Fill ``out`` (an empty folder) with the task folder, README.md aside; returns the task names."""
    docs = [task_doc(q) for q in questions]
    base = task_name(stem)
    write_jsonl(out / "questions.jsonl", docs)
    names = [f"{base}_closed_book"]
    tasks = {names[0]: ("load_questions", CLOSED_PROMPT)}
    if any(d.get("context") for d in docs):
        names.append(f"{base}_context")
        tasks[names[1]] = ("load_context_questions", CONTEXT_PROMPT)
    for name, (loader, prompt) in tasks.items():
        (out / f"{name}.yaml").write_text(_yaml(name, base, loader, prompt, max_new_tokens), encoding="utf-8")
    (out / "utils.py").write_text((Path(__file__).with_name("lm_eval_utils.py")).read_text(encoding="utf-8"))
    for name, text in vendored_sources().items():
        (out / name).write_text(text, encoding="utf-8")
    return names
