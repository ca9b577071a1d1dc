"""Licence and provenance of an exported question set: the dataset card (README.md with the Hub's YAML
header) and the lm-eval task folder's README. The licence is the question file's, as ``questions/NOTICE.md``
states it; its paragraphs naming the file are copied verbatim (the attribution the licence asks for)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# Question files shipped with the bench → their licence id on the Hub (questions/NOTICE.md).
LICENCES = {
    "faquad.jsonl": "cc-by-4.0",
    "smoke.jsonl": "cc-by-4.0",
    "ptwiki-facts.jsonl": "cc-by-sa-4.0",
    "ptwiki-facts-described.jsonl": "cc-by-sa-4.0",
    "open-pt.jsonl": "cc-by-sa-3.0",
}
UNKNOWN = "other"


def notice(questions: Path) -> str:
    """The paragraphs of the NOTICE.md beside the question file that name it (empty when none)."""
    path = questions.parent / "NOTICE.md"
    if not path.exists():
        return ""
    paragraphs = re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))
    return "\n\n".join(p.strip() for p in paragraphs if f"`{questions.name}`" in p)


def licence(questions: Path) -> str:
    return LICENCES.get(questions.name, UNKNOWN) if notice(questions) else UNKNOWN


def licence_section(questions: Path) -> list[str]:
    text = notice(questions)
    if not text:
        why = f"Unknown: no NOTICE.md beside `{questions.name}` names it. Check the licence of the question "
        return ["## Licence", "", why + "file and of the text it copies before sharing this export."]
    quoted = ["> " + line if line else ">" for line in text.splitlines()]
    return [
        "## Licence and attribution",
        "",
        f"Licence: `{licence(questions)}`. From NOTICE.md:",
        "",
        *quoted,
    ]


def provenance(info: dict[str, Any]) -> list[str]:
    """``- key: value`` lines of what the export was made from (question file and sha256, settings, run)."""
    return ["## Provenance", "", *(f"- {k}: `{v}`" for k, v in info.items() if v not in (None, ""))]


def dataset_card(info: dict[str, Any], questions: Path, configs: dict[str, list[str]]) -> str:
    """README.md of the Hugging Face dataset: YAML header (licence, language, configs → Parquet files)."""
    header = ["---", f"license: {licence(questions)}", "language:", "- pt", "task_categories:",
              "- question-answering", f"pretty_name: ptwiki-bench {questions.name}", "configs:"]  # fmt: skip
    for i, (config, splits) in enumerate(configs.items()):
        header += [f"- config_name: {config}", "  data_files:"]
        header += [f"  - split: {s}\n    path: {config}/{s}-*.parquet" for s in splits]
        header += ["  default: true"] if i == 0 else []
    body = [
        f"# ptwiki-bench: {questions.name}",
        "",
        "Exported by `python -m bench export` (ptwiki-bench). Config `questions`: one row per question "
        "(`id`, `question`, `answers`: every accepted gold answer, `context`: the gold passage, when the "
        "file has one). Config `answers`, when present: one row per (variant, question) of a bench run, "
        "with the answer, the passages the prompt held and the bench's per-answer metrics (EM, token F1, "
        "question-stripped F1, containment; Portuguese normalisation: docs/harness.md).",
        "",
        "```python",
        "from datasets import load_dataset",
        'questions = load_dataset("PATH/TO/THIS/FOLDER", "questions")',
        "```",
        "",
    ]
    return "\n".join([*header, "---", "", *body, *licence_section(questions), "", *provenance(info)]) + "\n"


def task_readme(info: dict[str, Any], questions: Path, names: list[str]) -> str:
    tasks = ", ".join(f"`{n}`" for n in names)
    body = [
        f"# lm-evaluation-harness tasks: {questions.name}",
        "",
        f"Tasks {tasks} (tag `{names[0].rsplit('_closed_book', 1)[0]}`): closed book (`Pergunta: … "
        "Resposta:`) and, where the questions carry a gold passage, with that context. Greedy, one line, "
        "scored by `utils.process_results` with ptwiki-bench's own metrics (`ptwiki_metrics.py` is a copy "
        "of `bench/core/metrics.py`): exact_match, f1, f1_qstripped, contains.",
        "",
        "```bash",
        f"lm_eval --model hf --model_args pretrained=MODEL --include_path THIS_FOLDER --tasks {names[0]} "
        "--log_samples --output_path out/",
        "```",
        "",
        "The prompt is plain text, not the bench's few-shot chat prompt: compare models with each other "
        "here, not with `bench run` numbers.",
        "",
    ]
    return "\n".join([*body, *licence_section(questions), "", *provenance(info)]) + "\n"
