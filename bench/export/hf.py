"""``bench export``: the profile's question set (and a run's answers) as a Hugging Face dataset folder
(Parquet per config and split + a dataset card), and the question set as an lm-eval task folder.
Each folder is written beside its destination and renamed into place whole (a failed export leaves the
previous one)."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

from bench import __version__
from bench.config import BenchError, Config
from bench.eval.runstate import git_state
from bench.export import card, lm_eval_task
from bench.io import answers_file, atomic_dir, iter_jsonl, read_json, sha256_file
from bench.questions.load import load_questions

log = logging.getLogger(__name__)

QUESTION_FIELDS = ("id", "question", "answers", "title", "context", "split", "lang", "relation", "stratum",
                   "template", "article_id", "source")  # fmt: skip
ANSWER_METRICS = ("exact_match", "f1", "f1_qstripped", "contains", "truncated")
DONE = "README.md"  # written last into each folder


def split_name(value: Any, default: str = "test") -> str:
    """A Hub split name (``\\w+``) for a row's ``split`` (none: ``test``)."""
    return re.sub(r"\W+", "_", str(value or default)).strip("_") or default


def question_rows(questions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by split, each with the same columns (a field a row lacks is null)."""
    fields = [f for f in QUESTION_FIELDS if any(f in q for q in questions)]
    out: dict[str, list[dict[str, Any]]] = {}
    for q in questions:
        out.setdefault(split_name(q.get("split")), []).append({f: q.get(f) for f in fields})
    return out


def answer_row(r: dict[str, Any]) -> dict[str, Any]:
    metrics = r.get("metrics") or {}
    return {
        "variant": r["variant"], "question_id": r["question_id"], "question": r["question"],
        "answer": r["answer"], "answers": list(r.get("answers") or []), "gold_title": r.get("gold_title"),
        **{m: metrics.get(m) for m in ANSWER_METRICS},
        "passages": [str(p.get("text") or "") for p in r.get("passages") or []],
        "retrieved_titles": [str(h.get("title") or "") for h in r.get("retrieved") or []],
        "generation_ms": (r.get("latency") or {}).get("generation_ms"), "error": r.get("error"),
    }  # fmt: skip


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def provenance(cfg: Config, questions: list[dict[str, Any]], run_dir: Path | None) -> dict[str, Any]:
    qfile = cfg.path(cfg.questions)
    info: dict[str, Any] = {
        "question file": cfg.questions, "question file sha256": sha256_file(qfile),
        "profile": cfg.profile, "split": cfg.split or "(all rows)", "limit": cfg.limit or "(all)",
        "sample": cfg.sample, "questions": len(questions), "ptwiki-bench": __version__,
        "exported at commit": git_state().get("git_commit"),
    }  # fmt: skip
    if run_dir is not None:
        scores = read_json(run_dir / "scores.json")
        env = scores.get("env") or {}
        info |= {
            "run": scores.get("run_id") or run_dir.name, "run config hash": scores.get("config_hash"),
            "run commit": env.get("git_commit"),
            "run generator": ((scores.get("config") or {}).get("model") or {}).get("name"),
            "run variants": ", ".join(scores.get("variants") or {}),
        }  # fmt: skip
        asked = ((scores.get("datasets") or {}).get("questions") or {}).get("sha256")
        if asked and asked != info["question file sha256"]:
            raise BenchError(
                f"{run_dir} asked another question file ({asked[:12]}) than {qfile}: use its profile"
            )
    return info


def _replace(path: Path, fill: Any) -> None:
    """Build ``path`` in a temp folder beside it, then swap it in (the previous export is kept until then)."""
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    with atomic_dir(path.with_name(path.name + ".new"), DONE) as tmp:
        fill(tmp)
    if path.exists():
        path.rename(old)
    path.with_name(path.name + ".new").rename(path)
    shutil.rmtree(old, ignore_errors=True)


def export(cfg: Config, out: Path, run_dir: Path | None = None) -> dict[str, Any]:
    """Write ``out/hf`` (dataset) and ``out/lm_eval`` (task folder); returns what was written."""
    questions = load_questions(cfg)
    if not questions:
        raise BenchError(f"no questions to export from {cfg.questions} (split {cfg.split!r})")
    info, qfile = provenance(cfg, questions, run_dir), cfg.path(cfg.questions)
    by_split = question_rows(questions)
    configs = {"questions": sorted(by_split)}
    answers: list[dict[str, Any]] = []
    if run_dir is not None:
        answers = [answer_row(r) for r in iter_jsonl(answers_file(run_dir))]
        configs["answers"] = [split_name(info["run"])]

    def fill_hf(tmp: Path) -> None:
        for split, rows in by_split.items():
            write_parquet(tmp / "questions" / f"{split}-00000-of-00001.parquet", rows)
        if answers:
            write_parquet(tmp / "answers" / f"{configs['answers'][0]}-00000-of-00001.parquet", answers)
        (tmp / DONE).write_text(card.dataset_card(info, qfile, configs), encoding="utf-8")

    names: list[str] = []

    def fill_task(tmp: Path) -> None:
        names[:] = lm_eval_task.write_task(tmp, questions, qfile.stem, cfg.model.max_new_tokens)
        (tmp / DONE).write_text(card.task_readme(info, qfile, names), encoding="utf-8")

    _replace(out / "hf", fill_hf)
    _replace(out / "lm_eval", fill_task)
    log.info("export: %d questions, %d answer rows → %s (licence %s)", len(questions), len(answers), out,
             card.licence(qfile))  # fmt: skip
    return {"hf": out / "hf", "lm_eval": out / "lm_eval", "tasks": names, "configs": configs,
            "licence": card.licence(qfile)}  # fmt: skip
