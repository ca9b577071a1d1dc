"""``bench judge RUN_DIR``: LLM-judged answer correctness and faithfulness of a run's answers, through
ragas (:mod:`bench.eval.judge_llm`), with any OpenAI-compatible judge (``[judge]``; off by default,
``judge.enabled`` makes ``bench run`` call it after writing its results).

Each verdict is cached by content in ``RUN_DIR/cache/judge.jsonl`` (the run's :class:`AnswerCache`): key = the
metric, judge model, ragas version and this module's prompt settings; question hash = the question, answer,
reference and passages. A rerun asks the judge only what it has not judged (transport errors are asked again).
``judge.base_url`` empty: the project's vLLM engine serves ``judge.model`` (:mod:`bench.eval.judge_server`).
Outputs, written atomically: ``RUN_DIR/judge.jsonl`` (every verdict with the judge's raw completions) and
``RUN_DIR/judge.json`` (per variant and metric: mean, n, unparseable; and the judge's agreement with exact
match on the short-answer questions, :mod:`bench.eval.judge_stats`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config, stable_hash
from bench.eval import judge_llm
from bench.eval.judge_server import judge_endpoint
from bench.eval.judge_stats import summarize
from bench.eval.runstate import AnswerCache
from bench.io import answers_file, atomic_write_json, iter_jsonl, write_jsonl

log = logging.getLogger(__name__)

JUDGE_VERSION = 1  # bump when what is sent to the judge changes (invalidates cached verdicts)


@dataclass(frozen=True)
class Item:
    """One answer to judge."""

    variant: str
    qid: str
    question: str
    answer: str
    golds: tuple[str, ...]
    contexts: tuple[str, ...]
    em: float | None

    @property
    def cache_id(self) -> str:
        return f"{self.variant}/{self.qid}"

    def content_hash(self, metric: str) -> str:
        ctx = list(self.contexts) if metric == "faithfulness" else []
        return stable_hash([self.question, self.answer, self.golds[0] if self.golds else "", ctx])


def items_of(rows: list[dict[str, Any]], cfg: Config) -> list[Item]:
    """The answers of ``judge.of_variants`` (``judge.max_questions`` per variant; failed answers left out)."""
    items: list[Item] = []
    per_variant: dict[str, int] = {}
    for r in rows:
        variant = str(r.get("variant"))
        if variant not in cfg.judge.of_variants or r.get("error") or r.get("question_id") is None:
            continue
        if cfg.judge.max_questions and per_variant.get(variant, 0) >= cfg.judge.max_questions:
            continue
        per_variant[variant] = per_variant.get(variant, 0) + 1
        passages = [str(p.get("text") or "") for p in r.get("passages") or [] if isinstance(p, dict)]
        em = (r.get("metrics") or {}).get("exact_match")
        items.append(
            Item(variant, str(r["question_id"]), str(r.get("question") or ""), str(r.get("answer") or ""),
                 tuple(str(a) for a in r.get("answers") or []), tuple(p for p in passages if p.strip()),
                 None if em is None else float(em))
        )  # fmt: skip
    return items


def cache_key(cfg: Config, metric: str) -> str:
    """What a cached verdict depends on besides the content: the server's address is not part of it."""
    jc = cfg.judge
    return stable_hash({"metric": metric, "model": jc.model, "ragas": judge_llm.ragas_version(),
                        "max_tokens": jc.max_tokens, "version": JUDGE_VERSION})  # fmt: skip


def _todo(items: list[Item], metric: str) -> list[Item]:
    return [i for i in items if metric != "faithfulness" or i.contexts]


async def _ask(cfg: Config, todo: list[tuple[str, Item]], cache: AnswerCache, keys: dict[str, str]) -> int:
    """Judge every (metric, item) not cached, ``judge.concurrency`` at a time; each verdict is appended to
    the cache as it comes (a killed judge run keeps what it had). Returns the number of transport errors."""
    metrics = judge_llm.make_metrics(cfg.judge)
    gate = asyncio.Semaphore(max(1, cfg.judge.concurrency))
    errors = 0

    async def one(metric: str, item: Item) -> None:
        nonlocal errors
        async with gate:
            v = await judge_llm.verdict(
                metrics[metric], item.question, item.answer, item.golds[0] if item.golds else "",
                list(item.contexts),
            )  # fmt: skip
        errors += v.error is not None
        cache.append(_cache_row(cfg, metric, item, keys[metric], v))

    await asyncio.gather(*(one(m, i) for m, i in todo))
    return errors


def _cache_row(cfg: Config, metric: str, item: Item, key: str, v: judge_llm.Verdict) -> dict[str, Any]:
    return {"key": key, "question_id": item.cache_id, "qhash": item.content_hash(metric),
            "variant": item.variant, "qid": item.qid, "metric": metric, **asdict(v),
            "judge": {"model": cfg.judge.model, "base_url": cfg.judge.base_url}}  # fmt: skip


def judge_run(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Judge ``run_dir/answers.jsonl``; write ``judge.jsonl`` and ``judge.json``; return the summary."""
    answers = answers_file(run_dir)
    if not answers.exists():
        raise BenchError(f"{answers} missing: run `python -m bench run` first")
    items = items_of(list(iter_jsonl(answers)), cfg)
    keys = {m: cache_key(cfg, m) for m in cfg.judge.metrics}
    cache = AnswerCache(run_dir / "cache" / "judge.jsonl")
    try:
        wanted = [(m, i) for m in cfg.judge.metrics for i in _todo(items, m)]
        todo = [(m, i) for m, i in wanted if cache.get(keys[m], i.cache_id, i.content_hash(m)) is None]
        log.info("judge %s: %d verdicts, %d cached, %d to ask", cfg.judge.model, len(wanted),
                 len(wanted) - len(todo), len(todo))  # fmt: skip
        errors = 0
        if todo:  # the engine (judge.base_url empty) starts only when something is left to ask
            with judge_endpoint(cfg) as jc:
                errors = asyncio.run(_ask(replace(cfg, judge=jc), todo, cache, keys))
    finally:
        cache.close()
    rows = [cache.get(keys[m], i.cache_id, i.content_hash(m), include_errors=True) for m, i in wanted]
    verdicts = [r for r in rows if r is not None]
    ems = {i.cache_id: (i.em, i.golds) for i in items}
    summary = summarize(verdicts, ems, cfg.judge.threshold)
    url = cfg.judge.base_url or "(the project's vLLM engine)"
    summary.update(judge={"model": cfg.judge.model, "base_url": url,
                          "ragas": judge_llm.ragas_version(), "threshold": cfg.judge.threshold},
                   calls={"verdicts": len(wanted), "asked": len(todo), "cached": len(wanted) - len(todo),
                          "transport_errors": errors})  # fmt: skip
    write_jsonl(run_dir / "judge.jsonl", verdicts)
    atomic_write_json(run_dir / "judge.json", summary)
    log.info("wrote %s and %s", run_dir / "judge.jsonl", run_dir / "judge.json")
    return summary
