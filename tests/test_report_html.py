"""REPORT.html in a real browser: Debian's headless Chromium opens the page rendered from the committed
default run (200 ptwiki fact questions, 11 variants), and the filters show exactly the questions they should.

Chromium is required, not optional: ``make test`` installs it when /usr/bin/chromium is missing, and this test
fails (it does not skip) without it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.io import iter_jsonl
from bench.reporting import report
from bench.reporting.browser import Page, choose
from bench.reporting.html import markdown_to_html

RUN = Path(__file__).resolve().parents[1] / "results" / "runs" / "default"

SHOWN = "[...document.querySelectorAll('#answers tbody tr')].map((tr) => tr.dataset.qid)"


@pytest.fixture(scope="module")
def html_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "REPORT.md"
    report.render([RUN], out)
    return out.with_suffix(".html")


@pytest.mark.timeout(180)
def test_report_html_filters_in_headless_chromium(html_report: Path) -> None:
    rows = list(iter_jsonl(RUN / "answers.jsonl"))
    relation = {r["question_id"]: r["groups"]["relation"] for r in rows}
    rag_wrong = {r["question_id"] for r in rows if r["variant"] == "rag" and r["metrics"]["exact_match"] == 0}
    stratum_ft_right = {
        r["question_id"]
        for r in rows
        if r["variant"] == "ft" and r["metrics"]["exact_match"] == 1 and r["groups"]["stratum"] == "popular"
    }
    target, n_target = Counter(relation.values()).most_common()[-1]  # the rarest relation
    with Page(timeout_s=60) as page:
        page.open(html_report)
        assert page.eval("document.body.dataset.ready") == "1"
        assert len(page.eval(SHOWN)) == len(relation) == 200
        shown = choose(page, "f-group-relation", target)
        assert len(shown) == n_target < len(relation)
        assert {relation[q] for q in shown} == {target}
        assert page.eval("document.getElementById('answers-count').dataset.shown") == str(n_target)
        choose(page, "f-group-relation", "")
        choose(page, "f-variant", "rag")
        assert page.eval("[...document.querySelectorAll('#answers thead th[data-variant]')].length") == 1
        assert set(choose(page, "f-correct", "wrong")) == rag_wrong and 0 < len(rag_wrong) < 200
        choose(page, "f-variant", "ft")
        choose(page, "f-correct", "right")
        assert set(choose(page, "f-group-stratum", "popular")) == stratum_ft_right
        heads = page.eval(
            "[...document.querySelectorAll('table')[0].querySelectorAll('th')].map((t) => t.textContent)"
        )
        links = page.eval("[...document.querySelectorAll('[src],[href]')].map((e) => e.src || e.href)")
        errors, requests = list(page.console_errors), list(page.requests)
    assert heads[:2] == ["variant", "EM"]  # REPORT.md's results table, as HTML
    assert errors == []
    assert all(u.startswith("data:image/png;base64,") for u in links) and links  # the plot, inlined
    assert {u.split(":", 1)[0] for u in requests} <= {"file", "data"}  # nothing fetched from a network


def test_markdown_tables_become_html_tables_with_escaped_cells() -> None:
    md = "| variant | EM |\n|---|---:|\n| **RAG** <b> | 0.5 \\| x |\n\n\\* a note with `code`"
    out = markdown_to_html(md)
    assert "<th>variant</th><th>EM</th>" in out
    assert "<td><strong>RAG</strong> &lt;b&gt;</td><td class=num>0.5 | x</td>" in out
    assert "<p>* a note with <code>code</code></p>" in out
