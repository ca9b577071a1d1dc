"""Portuguese prompts shared by every variant. Bump PROMPT_VERSION on any change (it is in the cache key)."""

from __future__ import annotations

from collections.abc import Sequence

PROMPT_VERSION = "pt-v1"
MAX_PASSAGE_CHARS = 1200

SYSTEM_PT = (
    "Você é um assistente que responde a perguntas sobre a Wikipédia em português. "
    "Responda sempre em português, de forma breve (uma frase curta ou apenas a resposta), "
    "sem explicações. Quando houver contexto, use-o para responder."
)


def format_passage(text: str, title: str = "", section: str = "") -> str:
    """One context passage, with its source as a header and the text cut to MAX_PASSAGE_CHARS."""
    text = " ".join(text.split())
    if len(text) > MAX_PASSAGE_CHARS:
        text = text[:MAX_PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
    header = " § ".join(p for p in (title, section) if p)
    return f"[{header}] {text}" if header else text


def build_messages(question: str, passages: Sequence[str] = ()) -> list[dict[str, str]]:
    """Chat messages: a Portuguese system instruction, then "Contexto:" passages (if any) and "Pergunta:"."""
    parts = []
    if passages:
        numbered = "\n".join(f"{i}. {p}" for i, p in enumerate(passages, 1))
        parts.append(f"Contexto:\n{numbered}")
    parts.append(f"Pergunta: {question.strip()}")
    return [{"role": "system", "content": SYSTEM_PT}, {"role": "user", "content": "\n\n".join(parts)}]
