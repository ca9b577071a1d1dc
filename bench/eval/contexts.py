"""What a variant's prompt holds: the passages of each context kind, and how the RAG arm reads them.

Context kinds (``VariantSpec.context``):

* ``none``: closed book;
* ``retrieval``: the top ``index.k`` chunks of the whole index for the question;
* ``gold``: the question's gold ``context`` (for ptwiki facts: the one lead sentence it was generated from);
* ``gold_page``: the top ``index.k`` chunks of the gold page only (the question's ``article_id``), formatted
  exactly as RAG passages — RAG − gold_page is the cost of other pages' passages, gold_page − gold the
  cost of reading more than the one sentence.

Reading settings of the retrieval kinds (``[index]``, tuned like fine-tuning is: docs/harness.md):
``passage_order`` (``best_first`` | ``best_last``: the best passage nearest the question) and
``page_only`` (keep only the chunks of the top hit's page: its ``k`` best).
A variant with ``edit = "counterfactual"`` then replaces the gold answer in its passages
(:mod:`bench.eval.train_answers`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bench.config import BenchError

ORDERS = ("best_first", "best_last")


class RetrieverLike(Protocol):
    def search(
        self, query: str, k: int | None = None, mode: str | None = None, article_id: int | None = None
    ) -> list[Any]: ...


@dataclass(frozen=True)
class Reading:
    """How the retrieval kinds gather their passages."""

    k: int = 3
    order: str = "best_first"
    page_only: bool = False

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise BenchError(f"index.passage_order {self.order!r}: use one of {', '.join(ORDERS)}")
        if self.k < 1:
            raise BenchError(f"index.k must be ≥ 1 (got {self.k})")


def passage(title: str, section: str, text: str) -> dict[str, str]:
    return {"title": str(title or ""), "section": str(section or ""), "text": str(text or "")}


def _article_id(row: Mapping[str, Any], variant: str) -> int:
    value = row.get("article_id")
    if value is None or isinstance(value, bool) or not str(value).lstrip("-").isdigit():
        raise BenchError(
            f"question {row.get('id')!r} has no 'article_id' ({variant} reads the gold page's chunks; "
            "questions/README.md)"
        )
    return int(value)


def search(
    retriever: RetrieverLike, row: Mapping[str, Any], context: str, reading: Reading, variant: str
) -> list[Any]:
    """The hits a retrieval kind reads, in prompt order."""
    question = str(row["question"])
    if context == "gold_page":
        hits = retriever.search(question, k=reading.k, article_id=_article_id(row, variant))
        if not hits:
            raise BenchError(
                f"question {row.get('id')!r}: the index has no chunk of article {row.get('article_id')} "
                f"({row.get('title')!r}); {variant} needs the gold page in the corpus"
            )
    elif reading.page_only:
        top = list(retriever.search(question, k=1))
        hits = retriever.search(question, k=reading.k, article_id=top[0].article_id) if top else []
    else:
        hits = retriever.search(question, k=reading.k)
    hits = list(hits)[: reading.k]
    return hits[::-1] if reading.order == "best_last" else hits


def gather(
    retriever: RetrieverLike | None, row: Mapping[str, Any], context: str, reading: Reading, variant: str
) -> tuple[list[Any], float, tuple[dict[str, str], ...]]:
    """(hits, retrieval ms, passages) for one question, per the context kind."""
    if context in ("retrieval", "gold_page"):
        if retriever is None:
            raise BenchError(f"variant {variant!r} needs a retriever")
        t0 = time.perf_counter()
        hits = search(retriever, row, context, reading, variant)
        retrieval_ms = (time.perf_counter() - t0) * 1000.0
        return hits, retrieval_ms, tuple(passage(h.title, h.section, h.text) for h in hits)
    if context == "gold":
        text = row.get("context")
        if not text:
            raise BenchError(f"question {row.get('id')!r} has no gold 'context' ({variant} variant)")
        return [], 0.0, (passage(str(row.get("title") or ""), "", str(text)),)
    return [], 0.0, ()
