"""Benchmark variants: which generator answers and which context it sees.

=========  =========  ============================================
name       generator  context
=========  =========  ============================================
base       base       none (closed book)
rag        base       top-k chunks from the retriever (cfg.index.k)
ft         ft         none (closed book, LoRA adapter)
ft_rag     ft         top-k chunks from the retriever
oracle     base       the question's gold ``context`` (a ceiling)
=========  =========  ============================================

Retrieval variants share one retriever; base/ft variants share the generators of ``make_generators``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bench.config import BenchError, Config
from bench.prompts import build_messages, format_passage

if TYPE_CHECKING:
    from bench.generators import Generator


class RetrieverLike(Protocol):
    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Any]: ...


@dataclass(frozen=True)
class VariantResult:
    answer: str
    hits: list[Any]  # bench.index.Hit, or anything with its fields
    generation: Any  # bench.generators.Generation, or anything with its fields
    retrieval_ms: float
    batch_size: int = 1  # >1: generation times are the batch's time / batch_size


class Variant(Protocol):
    name: str
    spec: VariantSpec

    def answer(self, question_row: dict[str, Any]) -> VariantResult: ...

    def answer_batch(self, rows: list[dict[str, Any]]) -> list[VariantResult]: ...


@dataclass(frozen=True)
class VariantSpec:
    name: str
    generator: str  # key in make_generators(): "base" | "ft"
    context: str  # "none" | "retrieval" | "gold"
    description: str

    @property
    def uses_retrieval(self) -> bool:
        return self.context == "retrieval"

    @property
    def uses_adapter(self) -> bool:
        return self.generator == "ft"


VARIANTS: dict[str, VariantSpec] = {
    s.name: s
    for s in (
        VariantSpec("base", "base", "none", "base model, closed book"),
        VariantSpec("rag", "base", "retrieval", "base model + top-k retrieved chunks"),
        VariantSpec("ft", "ft", "none", "base model + fine-tuned LoRA adapter, closed book"),
        VariantSpec("ft_rag", "ft", "retrieval", "fine-tuned adapter + top-k retrieved chunks"),
        VariantSpec("oracle", "base", "gold", "base model given the gold context (ceiling)"),
    )
}


def get_spec(name: str) -> VariantSpec:
    try:
        return VARIANTS[name]
    except KeyError:
        raise BenchError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


@dataclass
class PromptVariant:
    """The one implementation of :class:`Variant`: builds the prompt, retrieves if needed, generates."""

    spec: VariantSpec
    generator: Generator
    max_new_tokens: int
    retriever: RetrieverLike | None = None
    k: int = 3
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.spec.name
        if self.spec.uses_retrieval and self.retriever is None:
            raise BenchError(f"variant {self.name!r} needs a retriever")

    def _context(self, question_row: dict[str, Any]) -> tuple[list[Any], float, list[str]]:
        """(hits, retrieval ms, passages) for one question, per this variant's context kind."""
        question = str(question_row["question"])
        if self.spec.context == "retrieval":
            assert self.retriever is not None
            t0 = time.perf_counter()
            hits = list(self.retriever.search(question, k=self.k))[: self.k]
            retrieval_ms = (time.perf_counter() - t0) * 1000.0
            return hits, retrieval_ms, [format_passage(h.text, h.title, h.section) for h in hits]
        if self.spec.context == "gold":
            context = question_row.get("context")
            if not context:
                qid = question_row.get("id")
                raise BenchError(f"question {qid!r} has no gold 'context' (oracle variant)")
            return [], 0.0, [format_passage(str(context), str(question_row.get("title") or ""))]
        return [], 0.0, []

    def answer(self, question_row: dict[str, Any]) -> VariantResult:
        hits, retrieval_ms, passages = self._context(question_row)
        messages = build_messages(str(question_row["question"]), passages)
        generation = self.generator.generate(messages, self.max_new_tokens)
        return VariantResult(str(generation.text or "").strip(), hits, generation, retrieval_ms)

    def answer_batch(self, rows: list[dict[str, Any]]) -> list[VariantResult]:
        """Answer ``rows`` together when the generator has ``generate_batch`` (one padded forward per step).

        Retrieval stays per question. Each result's generation time is the batch time / batch size, so
        per-question latency under batching is an amortised figure (the row records the batch size).
        """
        batch_fn = getattr(self.generator, "generate_batch", None)
        if len(rows) <= 1 or batch_fn is None:
            return [self.answer(r) for r in rows]
        contexts = [self._context(r) for r in rows]
        messages = [build_messages(str(r["question"]), c[2]) for r, c in zip(rows, contexts, strict=True)]
        gens = list(batch_fn(messages, self.max_new_tokens))
        if len(gens) != len(rows):
            raise BenchError(f"variant {self.name}: generate_batch returned {len(gens)} of {len(rows)}")
        return [
            VariantResult(str(g.text or "").strip(), hits, g, ms, batch_size=len(rows))
            for g, (hits, ms, _) in zip(gens, contexts, strict=True)
        ]


def build_variants(
    cfg: Config,
    names: list[str] | tuple[str, ...],
    generators: dict[str, Generator],
    retriever: RetrieverLike | None,
) -> dict[str, PromptVariant]:
    """Instantiate the named variants over shared generators and one shared retriever."""
    out: dict[str, PromptVariant] = {}
    for name in names:
        spec = get_spec(name)
        if spec.generator not in generators:
            raise BenchError(f"variant {name!r} needs the {spec.generator!r} generator (no adapter loaded?)")
        out[name] = PromptVariant(
            spec=spec,
            generator=generators[spec.generator],
            max_new_tokens=cfg.model.max_new_tokens,
            retriever=retriever if spec.uses_retrieval else None,
            k=cfg.index.k,
        )
    return out


def record_of(
    key: str, qid: str, qhash: str, result: VariantResult | None, error: str | None = None
) -> dict[str, Any]:
    """The JSON-able cache record of one answer (``result`` None = the variant raised ``error``)."""
    gen = result.generation if result is not None else None
    hits = [
        {k: getattr(h, k, None) for k in ("chunk_id", "article_id", "title", "section", "score", "text")}
        for h in (result.hits if result is not None else [])
    ]
    return {
        "key": key,
        "question_id": qid,
        "qhash": qhash,
        "answer": result.answer if result is not None else "",
        "hits": hits,
        "retrieval_ms": result.retrieval_ms if result is not None else 0.0,
        "generation": {
            **{f: getattr(gen, f, 0) for f in ("prompt_tokens", "new_tokens", "ttft_ms", "total_ms")},
            "batch_size": result.batch_size if result is not None else 1,
        },
        "error": error or (getattr(gen, "error", None) if gen is not None else None),
    }
