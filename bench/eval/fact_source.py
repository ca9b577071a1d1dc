"""Where an augmented text's facts could come from: the question file, or the page's own text.

The ``aug`` texts (bench/training/augment.py) restate each trained page's (relation, answer) pairs as the
question file holds them. :func:`audit` reads the same pages' text through the question generator's patterns
and per-article checks (:func:`bench.questions.factprobe.text_facts`) and counts the pages where both give the
same pairs: where they agree, the texts are what a rule extractor reads from the page with no question file;
they still state exactly the relations the questions ask (same rules), which the dose report says.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.config import Config

MAX_LISTED = 10  # differing pages named in the audit


def audit(cfg: Config, titles: Iterable[str]) -> dict[str, Any]:
    """Compare the question file's facts with the page-text facts on the pages named by ``titles`` (each
    read from ``cfg.corpus``): ``pages`` compared, ``identical``, ``facts`` (question-file pairs on them),
    ``not_in_corpus``, and the first differing pages with both sides."""
    from bench.ingest.corpus import corpus_articles
    from bench.questions.factprobe import text_facts
    from bench.training.augment import question_facts
    from bench.training.sft_views import title_key

    wanted = {title_key(t) for t in titles} - {""}
    questions = question_facts(cfg)
    seen: set[str] = set()
    identical, facts = 0, 0
    differ: list[dict[str, Any]] = []
    for art in corpus_articles(cfg):
        key = title_key(str(art.title or ""))
        if key not in wanted or key in seen:
            continue
        seen.add(key)
        mine, theirs = text_facts(str(art.title), str(art.text or "")), questions.get(key, {})
        facts += len(theirs)
        if mine == theirs:
            identical += 1
        elif len(differ) < MAX_LISTED:
            differ.append({"title": str(art.title), "question_file": theirs, "page_text": mine})
    return {
        "pages": len(seen), "identical": identical, "facts": facts,
        "not_in_corpus": len(wanted - seen), "differ": differ,
    }  # fmt: skip
