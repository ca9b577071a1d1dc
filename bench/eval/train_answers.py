"""What the question file's *train* split answers, per answer type: the closed-book prior and the
counterfactual values.

* ``prior``: the most frequent train-split answer for the question's relation (``1982`` for birth years,
  ``Rio de Janeiro`` for birth places, ...) — the constant guess a closed-book model has to beat. A row
  without a relation is keyed by the answer type its wording asks for (:func:`bench.eval.spans.answer_kind`).
* counterfactual values: for the ``*_cf`` variants, every occurrence of the gold answer in the retrieved
  passages is replaced by another train-split value of the same type (a seeded choice per question), so the
  reader's answer shows whether it follows the context or its memory (docs/harness.md).

Only rows of split ``train`` are used, and none when the run evaluates that split (``split`` "train" or ""):
then, or for a question file without a train split, the table is empty and the prior answers nothing (the
log says so).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import Config
from bench.core.metrics import normalize_pt
from bench.eval.spans import RELATION_KINDS, answer_kind
from bench.io import iter_jsonl_numbered

log = logging.getLogger(__name__)

ANY = "*"  # the key of a row whose relation and wording say nothing about the answer type


def answer_type(row: Mapping[str, Any]) -> str:
    """The relation of a question row, else the answer kind its wording asks for, else ``*``."""
    relation = row.get("relation") or (row.get("groups") or {}).get("relation")
    if relation:
        return str(relation)
    return answer_kind(str(row.get("question") or "")) or ANY


@dataclass(frozen=True)
class TrainAnswers:
    """Train-split answer counts per answer type (``counts[type][answer]``); built once per run."""

    counts: Mapping[str, Mapping[str, int]]
    source: str = ""

    def counts_for(self, row: Mapping[str, Any]) -> Mapping[str, int]:
        """The train answers of the row's relation; a row without one (its answer kind from the wording:
        "year") gets those of every relation of that kind (birth and death years), else all."""
        wanted = answer_type(row)
        if wanted in self.counts:
            return self.counts[wanted]
        merged: Counter[str] = Counter()
        for t, counts in self.counts.items():
            if RELATION_KINDS.get(t, t) == wanted or wanted == ANY:
                merged.update(counts)
        return merged or {a: n for counts in self.counts.values() for a, n in counts.items()}

    def prior(self, row: Mapping[str, Any]) -> str:
        """The most frequent answer of the row's type (ties: the alphabetically first); "" when none."""
        counts = self.counts_for(row)
        if not counts:
            return ""
        return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]

    def table(self) -> dict[str, str]:
        """{answer type: the prior's answer} (recorded with the run)."""
        return {t: self.prior({"relation": t}) for t in sorted(self.counts)}

    def other_value(self, row: Mapping[str, Any], seed: int) -> str:
        """A train value of the row's type that is none of its gold answers: a seeded choice per question
        (the same question gets the same value in every run with this seed); "" when there is none."""
        golds = {normalize_pt(a) for a in row.get("answers") or []}
        pool = sorted(v for v in self.counts_for(row) if normalize_pt(v) not in golds)
        if not pool:
            return ""
        h = hashlib.sha256(f"{seed}:{row.get('id')}".encode()).hexdigest()
        return pool[int(h[:8], 16) % len(pool)]

    def fingerprint(self) -> str:
        text = repr(sorted((t, sorted(c.items())) for t, c in self.counts.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_train_answers(cfg: Config) -> TrainAnswers:
    """The first answer of every train-split row of ``cfg.questions`` (none if the run evaluates them). Read
    once per file version: every prior/counterfactual variant key and the runner ask for the same table."""
    path = cfg.path(cfg.questions)
    try:
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        version = (0, 0)  # missing: train_answers_of raises the file's own error
    return _cached(path, cfg.split, str(cfg.questions), version)


@functools.lru_cache(maxsize=8)
def _cached(path: Path, split: str, source: str, version: tuple[int, int]) -> TrainAnswers:
    return train_answers_of(path, split, source)


def train_answers_of(path: Path, split: str, source: str = "") -> TrainAnswers:
    """:func:`load_train_answers` for a question file and the split a run evaluates."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for _lineno, row in iter_jsonl_numbered(path) if split not in ("", "train") else ():
        answers = row.get("answers")
        if row.get("split") != "train" or not isinstance(answers, list):
            continue
        if answers and isinstance(answers[0], str) and answers[0].strip():
            counts[answer_type(row)][answers[0].strip()] += 1
    if not counts:
        log.warning("%s: no train-split answers outside split %r: the prior answers nothing", path, split)
    return TrainAnswers({t: dict(c) for t, c in counts.items()}, source=source or str(path))


def _gold_pattern(golds: Sequence[str]) -> re.Pattern[str] | None:
    """Every gold answer as a whole word (longest first: "Rio de Janeiro" before "Rio")."""
    alts = sorted({g.strip() for g in golds if g.strip()}, key=len, reverse=True)
    if not alts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(a) for a in alts) + r")(?!\w)")


def edit_passages(
    passages: Sequence[Mapping[str, str]], golds: Sequence[str], value: str
) -> tuple[tuple[dict[str, str], ...], int]:
    """The passages with every whole-word occurrence of a gold answer replaced by ``value``; and how many
    were replaced (0: the passages never state the gold answer, so the question says nothing about
    faithfulness)."""
    pattern = _gold_pattern(golds)
    if pattern is None or not value:
        return tuple(dict(p) for p in passages), 0
    out, replaced = [], 0
    for p in passages:
        text, n = pattern.subn(value, str(p.get("text") or ""))
        replaced += n
        out.append({**p, "text": text})
    return tuple(out), replaced
