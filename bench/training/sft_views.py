"""What the ``text`` fine-tuning format sees: which pages (``finetune.scope``) and in which phrasings
(``finetune.views``), plus the held-out pages of the injection probe.

Scopes:

* ``corpus``: every page of the corpus;
* ``question_pages``: only the pages the evaluation questions are about, matched by title (Ovadia et al. 2024
  train on the documents their questions ask about).

Views (deterministic, no model needed; each view of a page is packed into ``max_length``-token records):

* ``plain``: the page as it is, paragraphs packed in order, the title heading the first one;
* ``titled``: every section on its own, prefixed ``Title — Section:``, so facts co-occur with their subject;
* ``windows``: sentence windows started at a third and at two thirds of a record's length, so each fact
  also appears at other positions and with other neighbours;
* ``permuted``: the page's sentences in another order (fixed by the title), headed ``Title:``, packed.

Held-out pages for the probe are pages the adapter never trains on: the non-question pages for
``question_pages``; for ``corpus``, every 50th non-question page (by title hash) is left out of training.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bench.config import BenchError, Config

VIEWS = ("plain", "titled", "windows", "permuted")
SCOPES = ("corpus", "question_pages")
HOLDOUT_EVERY = 50  # scope=corpus: 1 page in 50 (not a question page) is held out for the probe
_SENT_END = re.compile(r"(?<=[.!?])\s+")

Tokenize = Callable[[str], list[int]]


def title_key(title: str) -> str:
    return " ".join(unicodedata.normalize("NFC", str(title or "")).casefold().split())


def question_titles(cfg: Config, required: bool = True) -> set[str]:
    """Title keys of the pages the evaluation questions are about: the questions a run asks (``questions``
    filtered by ``split``, ``limit`` and ``sample``, as :func:`bench.questions.load.load_questions` does)."""
    from bench.questions.load import load_questions

    path = cfg.path(cfg.questions)
    try:
        rows = load_questions(cfg)
    except BenchError:
        if required:
            raise
        return set()
    titles = {title_key(r.get("title") or r.get("source_title") or "") for r in rows}
    titles.discard("")
    if not titles and required:
        raise BenchError(f"{path}: finetune.scope=question_pages needs a 'title' on the evaluation questions")
    return titles


def _hash_bucket(title: str, every: int) -> bool:
    return int(hashlib.sha256(title_key(title).encode()).hexdigest()[:8], 16) % every == 0


def split_pages(cfg: Config, articles: Iterable[Any]) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """(trained pages, held-out pages, stats) for ``finetune.scope``."""
    scope = cfg.finetune.scope
    if scope not in SCOPES:
        raise BenchError(f"unknown finetune.scope {scope!r}; use one of {', '.join(SCOPES)}")
    wanted = question_titles(cfg) if scope == "question_pages" else set()
    asked = wanted or (question_titles(cfg, required=False) if cfg.finetune.probe else set())
    trained: list[Any] = []
    held: list[Any] = []
    for art in articles:
        key = title_key(art.title)
        if scope == "question_pages":
            (trained if key in wanted else held).append(art)
        elif cfg.finetune.probe and key not in asked and _hash_bucket(art.title, HOLDOUT_EVERY):
            held.append(art)
        else:
            trained.append(art)
    if scope == "question_pages":
        found = {title_key(a.title) for a in trained}
        if not found:
            raise BenchError(
                f"finetune.scope=question_pages: none of the {len(wanted)} question titles in "
                f"{cfg.questions} is a page of {cfg.corpus}"
            )
        missing = sorted(wanted - found)
    else:
        missing = []
    stats = {
        "scope": scope,
        "pages": len(trained),
        "heldout_pages": len(held),
        "question_titles_missing": missing[:20],
        "question_titles_missing_count": len(missing),
    }
    return trained, held, stats


def _paragraphs(article: Any) -> list[str]:
    return [p.strip() for p in str(article.text or "").split("\n\n") if p.strip()]


def pack_text(articles: Iterable[Any], tok: Any, max_length: int, min_chars: int) -> Iterable[dict[str, str]]:
    """Greedy paragraph packing, per article, up to ``max_length`` tokens (long paragraphs are windowed)."""
    for art in articles:
        buf: list[str] = []
        used = 0
        for para in [f"{art.title}\n\n{p}" if i == 0 else p for i, p in enumerate(_paragraphs(art))]:
            ids = tok(para, add_special_tokens=False)["input_ids"]
            if len(ids) > max_length:
                if buf:
                    yield {"text": "\n\n".join(buf)}
                    buf, used = [], 0
                for i in range(0, len(ids), max_length):
                    piece = tok.decode(ids[i : i + max_length]).strip()
                    if len(piece) >= min_chars:
                        yield {"text": piece}
                continue
            if used + len(ids) + 2 > max_length and buf:
                yield {"text": "\n\n".join(buf)}
                buf, used = [], 0
            buf.append(para)
            used += len(ids) + 2
        if buf:
            yield {"text": "\n\n".join(buf)}


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT_END.split(" ".join(text.split())) if s.strip()]


def _pack(pieces: Iterable[str], tokenize: Tokenize, max_length: int, sep: str = "\n\n") -> Iterable[str]:
    """Greedy packing of pieces into texts of at most ``max_length`` tokens; a piece longer than that (a
    run-on "sentence", e.g. one ending in ``.[carece de fontes]``) is cut at word boundaries first, so the
    curation's length filter never drops a page's only text."""
    buf: list[str] = []
    used = 0
    for piece in (part for whole in pieces for part in _word_windows(whole, tokenize, max_length)):
        n = len(tokenize(piece)) + 2
        if used + n > max_length and buf:
            yield sep.join(buf)
            buf, used = [], 0
        buf.append(piece)
        used += n
    if buf:
        yield sep.join(buf)


def _word_windows(piece: str, tokenize: Tokenize, max_length: int) -> list[str]:
    """``piece`` itself when it fits ``max_length`` tokens (with packing's 2 of slack), else consecutive
    word runs that each fit (a single over-long word stays alone)."""
    if len(tokenize(piece)) + 2 <= max_length:
        return [piece]
    out: list[str] = []
    words: list[str] = []
    used = 0
    for word in piece.split():
        n = len(tokenize(f" {word}"))  # words are pre-tokenized apart: their counts add up
        if words and used + n + 2 > max_length:
            out.append(" ".join(words))
            words, used = [], 0
        words.append(word)
        used += n
    return [*out, " ".join(words)] if words else out


def titled_view(art: Any, tokenize: Tokenize, max_length: int) -> Iterable[str]:
    for sec in art.sections:
        head = f"{art.title} — {sec.heading}:" if sec.heading else f"{art.title}:"
        budget = max_length - len(tokenize(head)) - 2
        for body in _pack(split_sentences(str(sec.text or "")), tokenize, budget, sep=" "):
            yield f"{head} {body}"


def windows_view(art: Any, tokenize: Tokenize, max_length: int) -> Iterable[str]:
    sents = split_sentences(str(art.text or ""))
    if not sents:
        return
    lengths = [len(tokenize(s)) + 1 for s in sents]
    for third in (1, 2):
        # start after the sentences that fill a third (two thirds) of the first record
        start, used = 0, 0
        while start < len(sents) and used < third * max_length // 3:
            used += lengths[start]
            start += 1
        yield from _pack(sents[start:], tokenize, max_length, sep=" ")


def permuted_view(art: Any, tokenize: Tokenize, max_length: int) -> Iterable[str]:
    sents = split_sentences(str(art.text or ""))
    random.Random(title_key(art.title)).shuffle(sents)
    head = f"{art.title}:"
    budget = max_length - len(tokenize(head)) - 2
    for body in _pack(sents, tokenize, budget, sep=" "):
        yield f"{head} {body}"


VIEW_FUNCS = {"titled": titled_view, "windows": windows_view, "permuted": permuted_view}


def view_records(
    pages: Sequence[Any], views: Sequence[str], tokenize: Tokenize, max_length: int, plain: Callable[..., Any]
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Records of every requested view (view by view, pages in order), each tagged with its ``view`` and
    page ``title``; ``plain`` packs a page's paragraphs (sft_data: :func:`pack_text` at its settings)."""
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views:
        raise BenchError(f"finetune.views: unknown {unknown or 'empty'}; use some of {', '.join(VIEWS)}")
    records: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    for view in views:
        if view == "plain":
            recs = [dict(r, view="plain", title=art.title) for art in pages for r in plain([art])]
        else:
            fn = VIEW_FUNCS[view]
            recs = [
                {"text": t, "view": view, "title": art.title}
                for art in pages
                for t in fn(art, tokenize, max_length)
            ]
        counts[view] = len(recs)
        records.extend(recs)
    return records, counts


def probe_text(pages: Sequence[Any], tokenize: Tokenize, n_tokens: int) -> str:
    """About ``n_tokens`` tokens of page text, pages in order (whole paragraphs)."""
    parts: list[str] = []
    used = 0
    for art in pages:
        for para in str(art.text or "").split("\n\n"):
            para = para.strip()
            if not para:
                continue
            parts.append(para)
            used += len(tokenize(para)) + 2
            if used >= n_tokens:
                return "\n\n".join(parts)
    return "\n\n".join(parts)


def heldout_sample(pages: Sequence[Any]) -> list[Any]:
    """Held-out pages in a fixed order that does not depend on the dump's order (title hash)."""
    return sorted(pages, key=lambda a: hashlib.sha256(title_key(a.title).encode()).hexdigest())
