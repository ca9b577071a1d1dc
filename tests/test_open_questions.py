"""questions/open-pt.jsonl and corpora/ptwiki-open.xml: the `open` profile's data is consistent."""

from __future__ import annotations

from bench.config import load_config
from bench.ingest import corpus
from bench.questions.load import load_questions


def test_open_questions_are_answerable_from_the_open_corpus() -> None:
    # the committed copy of the question pages (+ distractors); the profile reads the sample in ../shared
    cfg = load_config("open", ["corpus=corpora/ptwiki-open.xml"])
    rows = load_questions(cfg, require=("title", "context"))
    assert len(rows) == 22 and {r["split"] for r in rows} == {"dev"} and {r["lang"] for r in rows} == {"pt"}
    titles = {r["title"] for r in rows}
    pages = {a.title: a.text for a in corpus.iter_corpus(cfg.corpus_paths())}
    assert titles <= set(pages) and len(pages) == 162  # 12 question pages + 150 distractors
    for r in rows:
        assert r["context"] in pages[r["title"]], r["id"]  # the paragraph, as `bench ingest` cleans it
        assert all(a in r["context"] and len(a) <= 60 for a in r["answers"]), r["id"]  # short verbatim spans
