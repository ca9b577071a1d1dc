"""The generation contract every backend implements (transformers in
:mod:`bench.generation.transformers_backend`, llama.cpp in
:mod:`bench.generation.llamacpp`, OpenAI-compatible HTTP in :mod:`bench.generation.openai_compat`): the
:class:`Generator` protocol, the :class:`Generation` it returns, and the prompt/stop helpers they share.
Backends import this module, never each other, so the import graph has no cycle.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bench.config import BenchError

ANSWER_CUE = "Resposta:"


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    new_tokens: int
    ttft_ms: float
    total_ms: float
    error: str | None = None
    finish_reason: str = "stop"  # "stop" (end of answer: EOS or the newline stop) | "length" (hit the cap)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@runtime_checkable
class Generator(Protocol):
    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Generation: ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def versions(*packages: str) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def plain_prompt(messages: list[dict[str, str]]) -> str:
    """Completion prompt for models without a chat template: system and user text, then an answer cue."""
    system = "\n".join(m["content"].strip() for m in messages if m.get("role") == "system")
    user = "\n\n".join(m["content"].strip() for m in messages if m.get("role") != "system")
    if "Pergunta:" not in user:
        user = f"Pergunta: {user}"
    text = f"{system}\n\n{user}" if system else user
    return text if text.rstrip().endswith(ANSWER_CUE) else f"{text}\n{ANSWER_CUE}"


def ends_answer(text: str) -> bool:
    """The newline stop: a line break *after* some answer text (leading blank lines do not stop)."""
    return "\n" in text.lstrip()


def finish_reason(ended: bool, text: str, n_new: int, max_new_tokens: int, stop_at_newline: bool) -> str:
    """``"stop"`` when the answer ended (EOS, or the newline stop), ``"length"`` when it hit the cap."""
    if ended or (stop_at_newline and ends_answer(text)):
        return "stop"
    return "length" if n_new >= max_new_tokens else "stop"


def check_messages(messages: list[dict[str, str]]) -> None:
    if not messages or any("role" not in m or "content" not in m for m in messages):
        raise BenchError("generate() needs a non-empty list of {'role', 'content'} messages")
