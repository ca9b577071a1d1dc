"""Benchmark variants: which generator answers and which context it sees.

=============  =========  ====================================================================
name           generator  context
=============  =========  ====================================================================
base           base       none (closed book)
rag            base       top-k chunks from the retriever (cfg.index.k, passage_order, page_only)
ft             ft         none (closed book, LoRA adapter)
ft_rag         ft         top-k chunks from the retriever
oracle         base       the gold sentence: the question's ``context`` (a reading ceiling)
oracle_page    base       the gold page's top-k chunks only, formatted as RAG passages
rag_cf         base       rag's passages with the gold answer replaced by another value (counterfactual)
ft_rag_cf      ft         the same for the fine-tuned model: does it follow the context or its memory?
echo           none       none: the answer is the question itself
prior          none       none: the most frequent train-split answer of the question's relation
picker_oracle  none       gold context: the sentence sharing most content words with the question
picker_rag     none       top-k chunks: the same rule over the retrieved passages
span_oracle    none       gold context: the best span of the type the question asks for
span_rag       none       top-k chunks: the same typed span over the retrieved passages
=============  =========  ====================================================================

The last six are no-model reference baselines (milliseconds each): a model variant that does not beat its
baseline (``scoring.BASELINE_OF``) is flagged in the report. Retrieval variants share one retriever;
model variants share the generators of ``make_generators``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bench.config import BenchError, Config
from bench.core.prompts import build_messages, first_line, format_passage, get_reader
from bench.errors import BackendError
from bench.eval import contexts
from bench.eval.baselines import BASELINES, Baseline
from bench.eval.contexts import Reading, RetrieverLike
from bench.eval.train_answers import TrainAnswers, edit_passages
from bench.variant_specs import VARIANTS, VariantSpec

if TYPE_CHECKING:
    from bench.generation.base import Generation, Generator


@dataclass(frozen=True)
class VariantResult:
    answer: str
    hits: list[Any]  # bench.retrieval.index.Hit, or anything with its fields
    generation: Any  # bench.generation.base.Generation, or anything with its fields; None for baselines
    retrieval_ms: float
    batch_size: int = 1  # >1: generation times are the batch's time / batch_size
    passages: tuple[dict[str, str], ...] = ()  # exactly what the prompt held: title, section, text
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. "counterfactual": {value, replaced}


class Variant(Protocol):
    name: str
    spec: VariantSpec

    def answer(self, question_row: dict[str, Any]) -> VariantResult: ...

    def answer_batch(
        self, rows: list[dict[str, Any]], on_result: Callable[[int, VariantResult], None] | None = None
    ) -> list[VariantResult]: ...


def get_spec(name: str) -> VariantSpec:
    try:
        return VARIANTS[name]
    except KeyError:
        raise BenchError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


@dataclass
class PromptVariant:
    """The one implementation of :class:`Variant`: gathers context, then the model (or a baseline) answers."""

    spec: VariantSpec
    generator: Generator | None
    max_new_tokens: int
    retriever: RetrieverLike | None = None
    k: int = 3
    reader: str = "extractive"
    fewshot: int = 0
    answer_first_line: bool = True
    reading: Reading | None = None  # None: k best-first from the whole index
    train_answers: TrainAnswers | None = None  # the prior's table and the counterfactual values
    seed: int = 0
    name: str = field(init=False)
    baseline: Baseline | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.name = self.spec.name
        if self.reading is None:
            self.reading = Reading(k=self.k)
        if self.spec.uses_retrieval and self.retriever is None:
            raise BenchError(f"variant {self.name!r} needs a retriever")
        if self.spec.uses_model and self.generator is None:
            raise BenchError(f"variant {self.name!r} needs the {self.spec.generator!r} generator")
        needs_answers = self.spec.edit == "counterfactual" or self.name == "prior"
        if needs_answers and self.train_answers is None:
            raise BenchError(f"variant {self.name!r} needs the question file's train answers")
        if not self.spec.uses_model:
            table = self.train_answers
            self.baseline = (lambda row, _p: table.prior(row)) if self.name == "prior" and table else None
            self.baseline = self.baseline or BASELINES[self.name]

    def _context(
        self, question_row: dict[str, Any]
    ) -> tuple[list[Any], float, tuple[dict[str, str], ...], dict[str, Any]]:
        """(hits, retrieval ms, passages, extra record fields) for one question."""
        assert self.reading is not None
        hits, ms, passages = contexts.gather(
            self.retriever, question_row, self.spec.context, self.reading, self.name
        )
        if self.spec.edit != "counterfactual":
            return hits, ms, passages, {}
        assert self.train_answers is not None
        value = self.train_answers.other_value(question_row, self.seed)
        passages, replaced = edit_passages(passages, list(question_row.get("answers") or []), value)
        return hits, ms, passages, {"counterfactual": {"value": value, "replaced": replaced}}

    def _messages(self, question: str, passages: tuple[dict[str, str], ...]) -> list[dict[str, str]]:
        cut = get_reader(self.reader).max_passage_chars
        shown = [format_passage(p["text"], p["title"], p["section"], cut) for p in passages]
        return build_messages(question, shown, self.reader, self.fewshot)

    def _text(self, generation: Any) -> str:
        text = str(generation.text or "")
        return first_line(text) if self.answer_first_line else text.strip()

    def answer(self, question_row: dict[str, Any]) -> VariantResult:
        hits, retrieval_ms, passages, extra = self._context(question_row)
        question = str(question_row["question"])
        if self.generator is None:
            assert self.baseline is not None
            answer = self.baseline(question_row, [p["text"] for p in passages])
            return VariantResult(answer, hits, None, retrieval_ms, passages=passages, extra=extra)
        generation = self.generator.generate(self._messages(question, passages), self.max_new_tokens)
        text = self._text(generation)
        return VariantResult(text, hits, generation, retrieval_ms, passages=passages, extra=extra)

    def answer_batch(
        self, rows: list[dict[str, Any]], on_result: Callable[[int, VariantResult], None] | None = None
    ) -> list[VariantResult]:
        """Answer ``rows`` together when the generator has ``generate_batch`` (one padded forward per step).

        Retrieval stays per question. Each result's generation time is the batch time / batch size, so
        per-question latency under batching is an amortised figure (the row records the batch size).
        ``on_result(i, result)``: a generator that ``streams_results`` (vllm) reports each answer as it
        completes, with its own request time (the harness stores it at once: resume per answer).
        """
        batch_fn = getattr(self.generator, "generate_batch", None)
        if len(rows) <= 1 or batch_fn is None:
            return [self.answer(r) for r in rows]
        gathered = [self._context(r) for r in rows]
        messages = [self._messages(str(r["question"]), c[2]) for r, c in zip(rows, gathered, strict=True)]

        def result(g: Generation, i: int) -> VariantResult:
            hits, ms, passages, extra = gathered[i]
            size = len(rows)
            return VariantResult(self._text(g), hits, g, ms, batch_size=size, passages=passages, extra=extra)

        if on_result is not None and getattr(self.generator, "streams_results", False):
            gens = list(batch_fn(messages, self.max_new_tokens, lambda i, g: on_result(i, result(g, i))))
        else:
            gens = list(batch_fn(messages, self.max_new_tokens))
        if len(gens) != len(rows):
            raise BackendError(f"variant {self.name}: generate_batch returned {len(gens)} of {len(rows)}")
        return [result(g, i) for i, g in enumerate(gens)]


def build_variants(
    cfg: Config,
    names: list[str] | tuple[str, ...],
    generators: dict[str, Generator],
    retriever: RetrieverLike | None,
    train_answers: TrainAnswers | None = None,
) -> dict[str, PromptVariant]:
    """Instantiate the named variants over shared generators and one shared retriever (``train_answers``:
    for ``prior`` and the counterfactual variants)."""
    out: dict[str, PromptVariant] = {}
    ic = cfg.index
    reading = Reading(k=ic.k, order=ic.passage_order, page_only=ic.page_only)
    for name in names:
        spec = get_spec(name)
        if spec.uses_model and spec.generator not in generators:
            raise BenchError(f"variant {name!r} needs the {spec.generator!r} generator (no adapter loaded?)")
        out[name] = PromptVariant(
            spec=spec,
            generator=generators[spec.generator] if spec.uses_model else None,
            max_new_tokens=cfg.model.max_new_tokens,
            retriever=retriever if spec.uses_retrieval else None,
            k=ic.k,
            reader=cfg.model.reader,
            fewshot=cfg.model.fewshot,
            answer_first_line=cfg.model.stop_at_newline,
            reading=reading,
            train_answers=train_answers,
            seed=cfg.seed,
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
        "passages": list(result.passages) if result is not None else [],
        "retrieval_ms": result.retrieval_ms if result is not None else 0.0,
        **(result.extra if result is not None else {}),
        "generation": {
            **{f: getattr(gen, f, 0) for f in ("prompt_tokens", "new_tokens", "ttft_ms", "total_ms")},
            "finish_reason": getattr(gen, "finish_reason", "stop") if gen is not None else "none",
            "batch_size": result.batch_size if result is not None else 1,
        },
        "error": error or (getattr(gen, "error", None) if gen is not None else None),
    }
