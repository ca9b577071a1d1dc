"""Fact-probe questions generated from the dump itself (``python -m bench questions generate``).

Streams the articles, extracts (subject, relation, object) facts from lead sentences with the patterns of
:mod:`bench.questions.factpatterns`, validates them, assigns each *article* a split and a popularity stratum,
and
renders Portuguese questions. Deterministic: the same corpus and seed give a byte-identical file.

Validation drops a fact (reason counted per relation):

* ``ambiguous_subject``: the title carries a disambiguation ("Bonito (Pernambuco)") or another article's
  title folds to the same name;
* ``markup_or_ipa``, ``bad_place``, ``unknown_state``, ``unparsed_date``, ``implausible_year``: the object
  did not parse cleanly (see :mod:`bench.questions.factpatterns`);
* ``subject_mismatch``: the lead's name for its subject does not fit the title ("Geografia de Goiana" opens
  with "Goiana é um município …"), see :func:`subject_matches`;
* ``answer_not_in_article``: no answer variant occurs verbatim in the article text.

Question policy: one question per fact, its template chosen by a hash of (seed, title, relation), so an
evaluation never asks the same fact twice and the templates are spread evenly; ``train_templates="all"``
renders every template for ``train`` facts instead (paraphrases for ``qa`` fine-tuning; ~2.5x the file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.io import atomic_write_json, atomic_write_text, sha256_file
from bench.questions.factpatterns import (
    RELATIONS,
    TEMPLATES,
    Drop,
    Fact,
    add_aliases,
    extract,
    fold,
    link_aliases,
)

log = logging.getLogger(__name__)

SPLITS = (("train", 0.8), ("dev", 0.9), ("test", 1.0))  # cumulative fractions of articles
_LOWS = (0.0, *(upper for _, upper in SPLITS[:-1]))
STRATA = ("obscure", "mid", "popular")
STRATUM_PROXY = "article text length in characters; terciles over the articles with at least one valid fact"
_DISAMBIGUATED = re.compile(r"\s*\([^()]*\)$")


@dataclass
class Candidate:
    article_id: int
    title: str
    chars: int
    facts: list[Fact]


@dataclass
class Generation:
    articles: int = 0
    found: Counter[str] = field(default_factory=Counter)  # facts the patterns found, per relation
    drops: dict[str, Counter[str]] = field(default_factory=dict)  # relation → reason → count
    capped: Counter[str] = field(default_factory=Counter)  # valid facts over --max-per-kind
    valid: Counter[str] = field(default_factory=Counter)  # facts that became questions
    candidates: list[Candidate] = field(default_factory=list)

    def drop(self, relation: str, reason: str) -> None:
        self.drops.setdefault(relation, Counter())[reason] += 1


def _unit(*parts: object) -> float:
    blob = "\0".join(str(p) for p in parts).encode("utf-8")
    return int(hashlib.sha1(blob).hexdigest()[:12], 16) / float(1 << 48)


def split_of(title: str, seed: int) -> str:
    """The article's split: a hash of (seed, title), so every question about one article shares it."""
    u = _unit(seed, title)
    return next(name for name, upper in SPLITS if u < upper)


def template_for(title: str, relation: str, seed: int) -> str:
    names = list(TEMPLATES[relation])
    return names[int(_unit(seed, title, relation) * len(names))]


def subject_key(title: str) -> str:
    return fold(_DISAMBIGUATED.sub("", title))


def subject_matches(title: str, relation: str, name: str) -> bool:
    """Does the lead's name for its subject fit the title (disambiguation removed, accents folded)?

    Municipalities: every title word is in the name. People: at least one word of 3+ letters is shared, since
    leads give full names ("Sidney Gerald Abel" for "Sid Abel") but should not be about someone else.
    """
    words = set(re.findall(r"\w+", fold(name)))
    title_words = re.findall(r"\w+", subject_key(title))
    if relation == "municipality_state":
        return all(w in words for w in title_words)
    return any(len(w) >= 3 and w in words for w in title_words)


def question_id(relation: str, title: str, template: str) -> str:
    return f"fact-{relation}-{hashlib.sha1(title.encode('utf-8')).hexdigest()[:10]}-{template}"


def tercile_cuts(lengths: Sequence[int]) -> tuple[int, int]:
    ordered = sorted(lengths)
    if not ordered:
        return (0, 0)
    return ordered[len(ordered) // 3], ordered[2 * len(ordered) // 3]


def stratum_of(chars: int, cuts: tuple[int, int]) -> str:
    return STRATA[0] if chars < cuts[0] else STRATA[1] if chars < cuts[1] else STRATA[2]


def _verbatim(fact: Fact, text: str) -> Fact | None:
    answers = tuple(a for a in fact.answers if a in text)
    return replace(fact, answers=answers) if answers else None


def checked(item: Fact | Drop, title: str, text: str) -> Fact | Drop:
    """One extracted fact through the per-article checks (its drop when one fails): the subject fits the
    title, an answer variant occurs verbatim in the text."""
    if isinstance(item, Drop):
        return item
    if not subject_matches(title, item.relation, item.subject):
        return Drop(item.relation, "subject_mismatch", item.subject)
    kept = _verbatim(item, text)
    return kept if kept is not None else Drop(item.relation, "answer_not_in_article", item.answers[0])


def text_facts(title: str, text: str, kinds: Sequence[str] = RELATIONS) -> dict[str, str]:
    """{relation: canonical answer} that the patterns read from one article's own text and the per-article
    checks keep: a page's facts with no question file (the first fact of a relation wins). The dump-wide
    checks (ambiguous subjects, ``max_per_kind``) and the lead's link aliases are question policy, not
    page facts, and are left out."""
    facts: dict[str, str] = {}
    for item in extract(text):
        kept = checked(item, title, text) if item.relation in kinds else None
        if isinstance(kept, Fact):
            facts.setdefault(kept.relation, kept.answers[0])
    return facts


def collect(articles: Iterable[Any], kinds: Sequence[str]) -> tuple[Generation, Counter[str]]:
    """Stream the articles once: pattern facts per article, plus every title's folded name (for ambiguity).

    An item may be an article or an ``(article, links)`` pair, ``links`` being the lead's piped links
    (:func:`bench.questions.factpatterns.link_aliases`): a place's link target becomes another gold answer.
    """
    gen, names = Generation(), Counter[str]()
    for item_or_pair in articles:
        art, links = item_or_pair if isinstance(item_or_pair, tuple) else (item_or_pair, {})
        gen.articles += 1
        names[subject_key(art.title)] += 1
        facts: list[Fact] = []
        for item in extract(art.text):
            if item.relation not in kinds:
                continue
            gen.found[item.relation] += 1
            kept = checked(item, art.title, art.text)
            if isinstance(kept, Drop):
                gen.drop(item.relation, kept.reason)
            else:
                facts.append(add_aliases(kept, links))
        if facts:
            gen.candidates.append(Candidate(art.id, art.title, len(art.text), facts))
    return gen, names


def validate(gen: Generation, names: Counter[str], max_per_kind: int) -> list[Candidate]:
    """Drop ambiguous subjects, then keep at most ``max_per_kind`` facts per relation (dump order)."""
    kept: list[Candidate] = []
    for cand in gen.candidates:
        if _DISAMBIGUATED.search(cand.title) or names[subject_key(cand.title)] > 1:
            for fact in cand.facts:
                gen.drop(fact.relation, "ambiguous_subject")
            continue
        kept.append(cand)
    taken: Counter[str] = Counter()
    for cand in kept:
        facts = []
        for fact in cand.facts:
            if max_per_kind and taken[fact.relation] >= max_per_kind:
                gen.capped[fact.relation] += 1
                continue
            taken[fact.relation] += 1
            facts.append(fact)
        gen.valid.update(f.relation for f in facts)
        cand.facts = facts
    return [c for c in kept if c.facts]


def render(
    cands: Sequence[Candidate], cuts: tuple[int, int], seed: int, train_templates: str = "one"
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for cand in cands:
        split = split_of(cand.title, seed)
        for fact in sorted(cand.facts, key=lambda f: RELATIONS.index(f.relation)):
            templates = TEMPLATES[fact.relation]
            every = split == "train" and train_templates == "all"
            names = list(templates) if every else [template_for(cand.title, fact.relation, seed)]
            for name in names:
                rows.append(
                    {
                        "id": question_id(fact.relation, cand.title, name),
                        "question": templates[name].format(s=cand.title),
                        "answers": list(fact.answers),
                        "title": cand.title,
                        "context": fact.context,
                        "split": split,
                        "lang": "pt",
                        "relation": fact.relation,
                        "template": name,
                        "stratum": stratum_of(cand.chars, cuts),
                        "article_id": cand.article_id,
                        "article_chars": cand.chars,
                        "source": "ptwiki-facts",
                    }
                )
    return rows


def _report(
    gen: Generation, rows: list[dict[str, Any]], cuts: tuple[int, int], meta: dict[str, Any]
) -> dict[str, Any]:
    def by(*keys: str) -> dict[str, int]:
        return dict(sorted(Counter("/".join(str(r[k]) for k in keys) for r in rows).items()))

    articles = {r["title"]: r["split"] for r in rows}
    return {
        **meta,
        "articles_read": gen.articles,
        "facts_found": dict(sorted(gen.found.items())),
        "facts_valid": dict(sorted(gen.valid.items())),
        "facts_over_max_per_kind": dict(sorted(gen.capped.items())),
        "drops": {rel: dict(sorted(c.items())) for rel, c in sorted(gen.drops.items())},
        "questions": len(rows),
        "questions_per_relation": by("relation"),
        "questions_per_split": by("split"),
        "questions_per_relation_split": by("relation", "split"),
        "questions_per_stratum_split": by("stratum", "split"),
        "articles_per_split": dict(sorted(Counter(articles.values()).items())),
        "split_fractions": {
            name: round(upper - low, 6) for (name, upper), low in zip(SPLITS, _LOWS, strict=True)
        },
        "stratum_proxy": STRATUM_PROXY,
        "stratum_cuts_chars": list(cuts),
        "templates": TEMPLATES,
        "template_policy": "one question per fact, template by hash(seed, title, relation)"
        + ("; train facts: every template" if meta["train_templates"] == "all" else ""),
    }


def report_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".jsonl") + ".report.json")


def _with_links(corpus: Path) -> Iterable[Any]:
    """(article, lead links) from a dump, whose wikitext still has the links; plain articles from JSONL."""
    from bench.ingest.articles import make_article
    from bench.ingest.corpus import IngestStats, article_pages, iter_articles, looks_like_jsonl

    if looks_like_jsonl(corpus):
        yield from iter_articles(corpus)
        return
    for pid, title, wikitext in article_pages(corpus, IngestStats()):
        art = make_article(pid, title, wikitext)[0]
        if art is not None:
            yield art, link_aliases(wikitext)


def generate(
    corpus: Path,
    out: Path,
    kinds: Sequence[str] = RELATIONS,
    max_per_kind: int = 0,
    seed: int = 0,
    train_templates: str = "one",
) -> dict[str, Any]:
    """Write the question file and its ``.report.json``; returns the report."""
    unknown = [k for k in kinds if k not in RELATIONS]
    if unknown:
        raise BenchError(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(RELATIONS)}")
    if train_templates not in ("one", "all"):
        raise BenchError(f"train_templates must be 'one' or 'all', got {train_templates!r}")
    gen, names = collect(_with_links(corpus), kinds)
    cands = validate(gen, names, max_per_kind)
    cuts = tercile_cuts([c.chars for c in cands])
    rows = render(cands, cuts, seed, train_templates)
    if not rows:
        raise BenchError(f"{corpus}: no valid fact found for kinds {', '.join(kinds)}")
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    meta = {
        "corpus": corpus.name,
        "corpus_sha256": sha256_file(corpus),
        "seed": seed,
        "kinds": list(kinds),
        "max_per_kind": max_per_kind,
        "train_templates": train_templates,
        "output": out.name,
        "output_sha256": sha256_file(out),
    }
    report = _report(gen, rows, cuts, meta)
    atomic_write_json(report_path(out), report)
    log.info("%s: %d questions from %d articles", out, len(rows), len(cands))
    return report
