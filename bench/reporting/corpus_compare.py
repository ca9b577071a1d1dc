"""The same questions over a small and a large corpus, side by side (issue 34: retrieval that is not trivial).

Rendered from two committed runs of the same questions, reader and model — ``small`` (the study's 983-page
corpus) and ``large`` (the 27k-page sample the questions were generated from) — and nothing else:

* per retrieval-touched variant: recall@k and MRR@k (the gold page's rank among the ``retrieved`` hits of each
  answers.jsonl row: the chunks the reader got), EM on each corpus and the paired difference (exact McNemar);
* the EM difference explained: the questions RAG got right on the small corpus and wrong on the large one,
  each attributed to a cause on the large corpus (:func:`bench.eval.attribution.classify`), and the reverse;
* the context-faithfulness rate of the counterfactual variants on each corpus.

Only questions answered in both runs are compared; the block says how many.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from bench.core.stats import mcnemar_exact, rate_ci
from bench.eval.attribution import CLASSES, classify, gold_contexts, row_em
from bench.eval.faithfulness import OUTCOMES
from bench.io import answers_file, iter_jsonl, read_json
from bench.reporting.diagnostics_tables import CLASS_LABELS, OUTCOME_LABELS
from bench.reporting.plots import vlabel
from bench.reporting.tables import DASH, fmt_metric, fmt_num, table

RETRIEVAL_VARIANTS = ("rag", "oracle_page", "span_rag", "picker_rag")  # what a bigger corpus can change
READER = "rag"  # whose lost/gained questions are attributed

Rows = dict[str, dict[str, dict[str, Any]]]  # variant → question id → answers.jsonl row


def load_rows(run: Path) -> Rows:
    out: Rows = {}
    for row in iter_jsonl(answers_file(run)):
        out.setdefault(str(row.get("variant")), {})[str(row.get("question_id"))] = row
    return out


def gold_rank(row: dict[str, Any]) -> int | None:
    """1-based rank of the first retrieved chunk from the gold page; None when none is."""
    for i, hit in enumerate(row.get("retrieved") or [], 1):
        if hit.get("title") == row.get("gold_title"):
            return i
    return None


def _retrieval_cells(rows: list[dict[str, Any]]) -> tuple[str, str, str]:
    """recall@k, MRR@k and the mean number of passages from other pages than the gold one."""
    ranks = [gold_rank(r) for r in rows if r.get("retrieved") is not None and r.get("gold_title")]
    if not ranks or not any(r.get("retrieved") for r in rows):
        return DASH, DASH, DASH
    recall = rate_ci([1.0 if k is not None else 0.0 for k in ranks])
    mrr = sum(1.0 / k for k in ranks if k is not None) / len(ranks)
    others = [sum(p.get("title") != r.get("gold_title") for p in r.get("passages") or []) for r in rows]
    return fmt_metric(recall), fmt_num(mrr), fmt_num(sum(others) / len(others), 2)


def fmt_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else fmt_num(p)


def variant_table(small: Rows, large: Rows) -> tuple[str, dict[str, Any]]:
    """Retrieval and EM per variant on both corpora; returns the table and RAG's paired test."""
    rows, tests = [], {}
    for name in [v for v in RETRIEVAL_VARIANTS if v in small and v in large]:
        ids = sorted(set(small[name]) & set(large[name]))
        a, b = [small[name][q] for q in ids], [large[name][q] for q in ids]
        em_a, em_b = [row_em(r) for r in a], [row_em(r) for r in b]
        test = mcnemar_exact(em_b, em_a)  # b10: right only on the large corpus
        tests[name] = {**test, "n": len(ids)}
        diff = (sum(em_b) - sum(em_a)) / len(ids) if ids else None
        rows.append([
            vlabel(name), str(len(ids)), *_retrieval_cells(a), *_retrieval_cells(b),
            fmt_metric(rate_ci(em_a)), fmt_metric(rate_ci(em_b)),
            fmt_num(diff) if diff is not None else DASH,
            f"{test['b01']} / {test['b10']}", fmt_p(test["p_value"]),
        ])  # fmt: skip
    header = [
        "variant", "n", "recall@k small", "MRR@k small", "other-page passages small", "recall@k large",
        "MRR@k large", "other-page passages large", "EM small", "EM large", "Δ EM", "lost / gained",
        "McNemar p",
    ]  # fmt: skip
    return table(header, rows), tests


def explain(small: Rows, large: Rows, variant: str = READER) -> tuple[str, dict[str, Counter[str]]]:
    """Questions ``variant`` lost on the large corpus (right on small, wrong on large) by their cause on the
    large corpus, and those it gained by their cause on the small one."""
    s, big = small.get(variant) or {}, large.get(variant) or {}
    ids = sorted(set(s) & set(big))
    leads = {**gold_contexts({"oracle": list((small.get("oracle") or {}).values())})}
    lost = [big[q] for q in ids if row_em(s[q]) == 1.0 and row_em(big[q]) == 0.0 and not big[q].get("error")]
    gained = [s[q] for q in ids if row_em(s[q]) == 0.0 and row_em(big[q]) == 1.0 and not s[q].get("error")]
    counts = {
        "lost": Counter(classify(r, leads.get(str(r.get("question_id")))).cls for r in lost),
        "gained": Counter(classify(r, leads.get(str(r.get("question_id")))).cls for r in gained),
    }
    rows = [
        [f"{CLASS_LABELS.get(c, c)} (`{c}`)", str(counts["lost"][c]), str(counts["gained"][c])]
        for c in CLASSES
        if counts["lost"][c] or counts["gained"][c]
    ]
    rows.append(["**total**", str(len(lost)), str(len(gained))])
    header = ["cause (on the corpus where it was wrong)", "lost on the large corpus", "gained on it"]
    return table(header, rows), counts


def faithfulness_table(small_scores: dict[str, Any], large_scores: dict[str, Any]) -> str | None:
    found = [
        (label, name, body)
        for label, scores in (("small", small_scores), ("large", large_scores))
        for name, body in (scores.get("faithfulness") or {}).items()
        if isinstance(body, dict)
    ]
    if not found:
        return None
    rows = [
        [
            f"{vlabel(name)} ({label} corpus)",
            str(body.get("n", DASH)),
            *(fmt_metric(body.get(o)) for o in OUTCOMES),
        ]
        for label, name, body in found
    ]
    return table(
        ["variant", "n (passages contradict the gold)", *(OUTCOME_LABELS[o] for o in OUTCOMES)], rows
    )


def _summary(tests: dict[str, Any], counts: dict[str, Counter[str]]) -> str:
    test = tests.get(READER)
    if not test:
        return ""
    lost, gained = counts["lost"], counts["gained"]
    top = ", ".join(f"{n} {CLASS_LABELS.get(c, c)}" for c, n in lost.most_common(3))
    p = fmt_p(test["p_value"])
    p = p if p.startswith("<") else f"= {p}"
    return (
        f"On {test['n']} questions RAG lost {test['b01']} and gained {test['b10']} on the large corpus "
        f"(exact McNemar p {p}). The lost answers, by their cause there: {top or DASH}; the gained "
        f"ones were {sum(gained.values())} answers wrong on the small corpus."
    )


def render(small_dir: Path, large_dir: Path) -> str:
    """The Markdown block: provenance line, the variant table, the explanation, faithfulness."""
    small, large = load_rows(small_dir), load_rows(large_dir)
    s_scores = read_json(Path(small_dir) / "scores.json") or {}
    l_scores = read_json(Path(large_dir) / "scores.json") or {}
    variants, tests = variant_table(small, large)
    explained, counts = explain(small, large)
    parts = [
        f"Runs `{s_scores.get('run_id', DASH)}` (small: {small_dir}) and `{l_scores.get('run_id', DASH)}` "
        f"(large: {large_dir}); same questions, reader and model. k = the reader's passages; MRR@k is 0 "
        "when the gold page is not among them.",
        "",
        variants,
        "",
        _summary(tests, counts),
        "",
        "#### Why RAG's EM moved: the questions it lost or gained, by cause",
        "",
        explained,
    ]
    faithful = faithfulness_table(s_scores, l_scores)
    if faithful:
        parts += ["", "#### When context and memory disagree, on each corpus (95 % Wilson)", "", faithful]
    return "\n".join(parts)
