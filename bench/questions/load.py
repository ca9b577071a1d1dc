"""The question file (JSON Lines, questions/README.md): one loader, file:line errors, for every stage."""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from bench.config import BenchError, Config
from bench.core.metrics import usable_answers
from bench.io import iter_jsonl_numbered

log = logging.getLogger(__name__)


def load_questions(
    cfg: Config, require: tuple[str, ...] = (), stats: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """Questions of ``cfg.questions`` filtered by ``cfg.split`` and ``cfg.limit``; bad rows name file:line.

    Every row needs ``id``, ``question`` and ``answers`` (unique ids); ``require`` names further fields that
    must be non-empty on the kept rows (``retrieve-eval`` needs ``title``). Gold answers that normalise to
    nothing (``"a"``, ``"—"``) can never be matched and would let an empty answer score: they are dropped
    here, for every stage alike, and a question left with none is skipped; ``stats`` (if given) counts both.
    """
    counts = stats if stats is not None else {}
    counts.update(empty_golds_dropped=0, questions_without_gold=0)
    path = cfg.path(cfg.questions)
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_jsonl_numbered(path):
        where = f"{path}:{lineno}"
        qid, question, answers = obj.get("id"), obj.get("question"), obj.get("answers")
        if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid) == "":
            raise BenchError(f"{where}: question row needs an 'id' (string)")
        if not isinstance(question, str) or not question.strip():
            raise BenchError(f"{where}: question row needs a non-empty 'question'")
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
            raise BenchError(f"{where}: question row needs 'answers': a non-empty list of strings")
        if str(qid) in seen:
            raise BenchError(f"{where}: duplicate question id {qid!r} (first at line {seen[str(qid)]})")
        seen[str(qid)] = lineno
        if cfg.split and obj.get("split") != cfg.split:
            continue
        if missing := [key for key in require if not obj.get(key)]:
            raise BenchError(f"{where}: question {qid!r} lacks {', '.join(missing)}")
        golds = usable_answers(answers)
        counts["empty_golds_dropped"] += len(answers) - len(golds)
        if not golds:
            counts["questions_without_gold"] += 1
            log.warning("%s: question %r has no gold answer left after normalisation; skipped", where, qid)
            continue
        rows.append({**obj, "id": str(qid), "answers": golds})
    rows = subset_rows(rows, cfg.subset, where=str(path))
    rows = sample_rows(rows, cfg.limit, cfg.sample, cfg.seed, where=str(path))
    if not rows:
        raise BenchError(f"{path}: no questions left after split={cfg.split!r} limit={cfg.limit}")
    return rows


SAMPLES = ("first", "stratified")
SUBSETS = ("", "selection", "report")
SELECTION_SHARE = 0.1  # of the pages: the study's 900 dev questions → ~90 to choose on, ~810 to report on


def subset_of(row: dict[str, Any]) -> str:
    """``selection`` or ``report``: a fixed hash of the question's page (its title, else its id), so every
    question about one page falls on the same side, and no seed moves a page across."""
    page = str(row.get("title") or row.get("article_id") or row["id"])
    h = int(hashlib.sha1(f"subset\0{page}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "selection" if h < SELECTION_SHARE else "report"


def subset_rows(rows: list[dict[str, Any]], subset: str, where: str = "") -> list[dict[str, Any]]:
    """The rows of ``subset`` ("" = all): settings are chosen on ``selection``, reported on ``report``."""
    if subset not in SUBSETS:
        raise BenchError(f"{where}: config key 'subset' must be selection, report or '' (got {subset!r})")
    return [r for r in rows if subset_of(r) == subset] if subset else rows


STRATA = ("relation", "stratum")  # the cells of a stratified sample, where the rows have these fields


def _cell_order(rows: Sequence[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Rows in systematic-sampling order: within each (relation, stratum) cell a seeded hash order, and the
    cells interleaved by each row's relative position in its cell, so any prefix keeps the cells' shares."""
    cells: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        cells[tuple(str(row.get(f, "")) for f in STRATA)].append(row)

    def rank(row: dict[str, Any]) -> str:
        return hashlib.sha1(f"{seed}\0sample\0{row['id']}".encode()).hexdigest()

    keyed: list[tuple[float, str, dict[str, Any]]] = []
    for members in cells.values():
        for i, row in enumerate(sorted(members, key=rank)):
            keyed.append(((i + 0.5) / len(members), rank(row), row))
    return [row for _, _, row in sorted(keyed, key=lambda t: (t[0], t[1]))]


def sample_rows(
    rows: list[dict[str, Any]], limit: int, how: str, seed: int, where: str = ""
) -> list[dict[str, Any]]:
    """The questions a run asks: ``limit`` (0 = all) rows, the file's first ones or a stratified sample.

    The stratified order is a pure function of the rows' ids and fields and ``seed``: the corpus builder
    (``bench questions corpus``) and every stage pick the same questions.
    """
    if how not in SAMPLES:
        raise BenchError(f"{where}: config key 'sample' must be one of {', '.join(SAMPLES)}, got {how!r}")
    ordered = _cell_order(rows, seed) if how == "stratified" else rows
    return ordered[:limit] if limit > 0 else list(ordered)
