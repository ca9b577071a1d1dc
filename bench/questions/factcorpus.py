"""A small retrieval corpus for a fact-probe question subset (``python -m bench questions corpus``).

Retrieval over the whole 27k-page sample means embedding every chunk, which is hours on CPU. The ``facts``
profile instead indexes the pages its evaluation questions come from plus *distractors*: pages of ``train``
facts (other biographies and municipalities, whose leads look alike), chosen by a hash of (seed, title).
The selected pages are copied with their raw wikitext from the dump into a small MediaWiki XML export
(``.xml`` or ``.xml.bz2``), in dump order, so ingest, index and fine-tuning read it like any corpus.
Deterministic: the same inputs give a byte-identical file.
"""

from __future__ import annotations

import bz2
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from bench.config import BenchError
from bench.ingest.dump import iter_pages
from bench.io import iter_jsonl
from bench.questions.load import sample_rows

log = logging.getLogger(__name__)

_HEADER = (
    '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="pt">\n'
    "<siteinfo><sitename>Wikipédia</sitename><dbname>ptwiki</dbname></siteinfo>\n"
)


@dataclass(frozen=True)
class Selection:
    gold: tuple[str, ...]  # titles of the evaluated questions, first-seen order
    distractors: tuple[str, ...]
    questions: int


def _rank(seed: int, title: str) -> str:
    return hashlib.sha1(f"{seed}\0distractor\0{title}".encode()).hexdigest()


def select(
    questions: Path, split: str, limit: int, distractors: int, seed: int, sample: str = "first"
) -> Selection:
    """Titles of the ``limit`` ``split`` questions (as ``load_questions`` picks them) + distractors."""
    rows = list(iter_jsonl(questions))
    evaluated = sample_rows([r for r in rows if r.get("split") == split], limit, sample, seed, str(questions))
    gold = tuple(dict.fromkeys(str(r["title"]) for r in evaluated if r.get("title")))
    if not gold:
        raise BenchError(f"{questions}: no question with a title in split {split!r}")
    pool = {str(r["title"]) for r in rows if r.get("split") == "train" and r.get("title")} - set(gold)
    picked = tuple(sorted(pool, key=lambda t: _rank(seed, t))[:distractors])
    return Selection(gold, picked, len(evaluated))


def _page_xml(page_id: int, title: str, text: str) -> str:
    return (
        f"<page><title>{escape(title)}</title><ns>0</ns><id>{page_id}</id><revision><id>{page_id}</id>"
        f"<text xml:space={quoteattr('preserve')}>{escape(text)}</text></revision></page>\n"
    )


def write_subset(dump: Path, titles: set[str], out: Path) -> int:
    """Copy the namespace-0, non-redirect pages of ``dump`` whose title is in ``titles`` into ``out``."""
    parts, found = [_HEADER], set()
    for page in iter_pages(dump):
        if page.ns == 0 and not page.redirect and page.title in titles and page.title not in found:
            found.add(page.title)
            parts.append(_page_xml(page.id, page.title, page.text))
    if missing := sorted(titles - found):
        raise BenchError(f"{dump}: {len(missing)} selected page(s) not found, e.g. {missing[0]!r}")
    parts.append("</mediawiki>\n")
    data = "".join(parts).encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(bz2.compress(data, 9) if out.suffix == ".bz2" else data)
    tmp.replace(out)
    log.info("%s: %d pages from %s", out, len(found), dump)
    return len(found)
