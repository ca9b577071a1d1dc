"""Reader diagnostics for ``scores.json``, computed from the answers.jsonl rows alone (``bench run`` and
``bench rescore`` alike): ``attribution`` (:mod:`bench.eval.attribution`: where each passage-reading
variant's wrong answers come from, EM by distractor passages) and ``faithfulness``
(:mod:`bench.eval.faithfulness`: whether a counterfactual variant follows its edited context or its memory).
A key is present only when some variant has something to report, so older runs keep their layout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.eval.attribution import attribution
from bench.eval.faithfulness import faithfulness

DIAGNOSTIC_KEYS = ("attribution", "faithfulness")


def reader_diagnostics(
    rows_by_variant: Mapping[str, Sequence[Mapping[str, Any]]], contexts: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``{"attribution": …, "faithfulness": …}``, each only when non-empty (``contexts``: question id → the
    question's gold ``context``, when the caller has the question file)."""
    found = (attribution(rows_by_variant, contexts), faithfulness(rows_by_variant))
    return {key: value for key, value in zip(DIAGNOSTIC_KEYS, found, strict=True) if value}
