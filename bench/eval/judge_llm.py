"""One judge verdict through ragas: answer correctness or faithfulness of one answer, by an OpenAI-compatible
judge (``langchain_openai.ChatOpenAI(base_url=...)`` in ragas' ``LangchainLLMWrapper``), with every raw
completion the judge returned along the way.

ragas 0.4's ``ragas.metrics.AnswerCorrectness`` / ``Faithfulness`` (its prompt-based metrics; the
``collections`` ones need structured-output support that small served models lack). Answer correctness is
its factuality part alone (``weights=[1, 0]``): the semantic-similarity part needs an embedding model,
which would be a second, unjudged opinion. A verdict is one of: a score in [0, 1]; unparseable (the judge's
text did not parse, or ragas returned NaN), with the reason; or a transport error (no answer from the
server), which is not cached and is retried on the next run (an HTTP error status counts as one).
"""

from __future__ import annotations

import contextvars
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from bench.config import BenchError, JudgeConfig
from bench.environment import configure_env

METRICS = ("answer_correctness", "faithfulness")
#: The raw completions of the verdict being computed (one list per judged answer and metric).
RAW: contextvars.ContextVar[list[str]] = contextvars.ContextVar("judge_raw")


@dataclass
class Verdict:
    score: float | None = None
    unparseable: str | None = None  # why no score came out of the judge's text
    error: str | None = None  # the server did not answer (retried next run)
    raw: list[str] = field(default_factory=list)
    seconds: float = 0.0


def ragas_version() -> str:
    import ragas

    return str(ragas.__version__)


def _recording_wrapper() -> type:
    from ragas.llms.base import LangchainLLMWrapper  # the class (ragas.llms exports a deprecation shim)

    class Recording(LangchainLLMWrapper):  # type: ignore[misc]
        """ragas' langchain wrapper that keeps each completion's text in :data:`RAW`."""

        async def agenerate_text(self, *args: Any, **kwargs: Any) -> Any:
            result = await super().agenerate_text(*args, **kwargs)
            raw = RAW.get(None)
            if raw is not None:
                raw.extend(g.text for gens in result.generations for g in gens)
            return result

    return Recording


def make_metrics(jc: JudgeConfig) -> dict[str, Any]:
    """The ragas metric objects for ``jc.metrics``, sharing one judge client."""
    unknown = set(jc.metrics) - set(METRICS)
    if unknown or not jc.model:
        raise BenchError(
            f"judge: unknown judge.metrics {sorted(unknown)} (known: {', '.join(METRICS)})"
            if unknown
            else "judge: set judge.model (and judge.base_url) to the OpenAI-compatible judge's model name"
        )
    configure_env()
    with warnings.catch_warnings():  # ragas 0.4 marks these metrics and the wrapper deprecated (for v1.0)
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr
        from ragas.metrics import AnswerCorrectness, Faithfulness

        settings: dict[str, Any] = {
            "temperature": 0.0,
            "max_tokens": jc.max_tokens,
        }  # sent as max_completion_tokens
        key = SecretStr(os.environ.get(jc.api_key_env) or "none")  # a local server takes any key
        chat = ChatOpenAI(base_url=jc.base_url, model=jc.model, api_key=key, timeout=jc.timeout_s,
                          max_retries=jc.max_retries, **settings)  # fmt: skip
        llm = _recording_wrapper()(chat, bypass_n=True)
        made = {
            "answer_correctness": lambda: AnswerCorrectness(llm=llm, weights=[1.0, 0.0]),
            "faithfulness": lambda: Faithfulness(llm=llm),
        }
        return {name: made[name]() for name in jc.metrics}


def _transport_errors() -> tuple[type[BaseException], ...]:
    import httpx
    import openai

    return (openai.APIConnectionError, openai.APIStatusError, httpx.TransportError)  # timeouts included


async def verdict(metric: Any, question: str, answer: str, reference: str, contexts: list[str]) -> Verdict:
    """One ragas score of one answer; exceptions become an unparseable verdict or a transport error."""
    from ragas.dataset_schema import SingleTurnSample

    sample = SingleTurnSample(
        user_input=question, response=answer, reference=reference, retrieved_contexts=contexts or None
    )
    raw: list[str] = []
    token = RAW.set(raw)
    t0 = time.monotonic()
    out = Verdict(raw=raw)
    try:
        score = float(await metric.single_turn_ascore(sample))
        if math.isnan(score) or not 0.0 <= score <= 1.0:
            out.unparseable = f"ragas returned {score} (no statements parsed from the judge's text)"
        else:
            out.score = score
    except _transport_errors() as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # ragas' parser gave up on the judge's text (RagasOutputParserException, ...)
        out.unparseable = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        RAW.reset(token)
    out.seconds = time.monotonic() - t0
    return out
