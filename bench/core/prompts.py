"""Portuguese prompts shared by every variant: the *reader*.

``extractive`` (default): answer with the shortest exact span, one line, without repeating the question;
optionally preceded by fixed worked examples (``model.fewshot``) taken from FaQuAD's *train* split — never
from an evaluation split (tests check it). ``sentence-v1`` is the first reader ("a short sentence"), kept
only to measure the change; ``longform`` answers the long-form questions in one or two sentences. Passages
go into the prompt whole (no cut inside a span).

The answer cache is keyed by :func:`prompt_id`: a hash of the reader's texts, its examples and the source
of the functions that build the messages, so any change to a prompt re-generates its answers.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

from bench.config import BenchError, stable_hash


@dataclass(frozen=True)
class Example:
    """A worked example: FaQuAD train question (CC BY 4.0, Sayama et al. 2019), its gold span and a context
    excerpt that holds the span."""

    question_id: str
    question: str
    answer: str
    title: str
    context: str


EXAMPLES = (
    Example(
        "7e320bf9101343f69feaca32edfe0e25",
        "Quando Turing cometeu suicídio?",
        "1954",
        "CIENCIA DA COMPUTACAO",
        "Turing é bastante importante para a Ciência da Computação, tanto que seu nome é usado para o Prêmio "
        "Turing e o teste de Turing. Ele contribuiu para a quebra do código da Alemanha pela Grã-Bretanha na "
        "Segunda Guerra Mundial, e continuou a projetar computadores e programas de computador pela década "
        "de 1940; cometeu suicídio em 1954",
    ),
    Example(
        "32ae5b677f30475ba175028d3f5e40a2",
        "Onde é sediada a UFMS?",
        "Campo Grande",
        "UFMS",
        "Universidade Federal de Mato Grosso do Sul (UFMS) é uma instituição de ensino superior pública "
        "federal brasileira, sediada em Campo Grande, no estado do Mato Grosso do Sul. Além da sede em Campo "
        "Grande, a UFMS mantém campi em nove cidades.",
    ),
    Example(
        "78fefd6b50e0457bafdb7645e7a0a0f3",
        "Em quais áreas as universidades públicas possuem autonomia?",
        "financeira, pedagógica e científica",
        "UNIVERSIDADE",
        "Os órgãos de tutela governamental são normalmente sempre responsáveis pela alocação de fundos "
        "públicos às universidades. Contudo, uma grande parte das universidades públicas dispõe de uma "
        "alargada autonomia financeira, pedagógica e científica.",
    ),
)


@dataclass(frozen=True)
class Reader:
    name: str
    system: str
    max_passage_chars: int = 0  # 0 = passages go in whole
    examples: tuple[Example, ...] = ()


READERS: dict[str, Reader] = {
    r.name: r
    for r in (
        Reader(
            "extractive",
            "Você responde a perguntas sobre textos em português. Responda só com o trecho exato e mais "
            "curto que responde à pergunta (um nome, uma data, um número ou poucas palavras), numa única "
            "linha, sem repetir a pergunta e sem explicações. Quando houver contexto, copie o trecho do "
            "contexto.",
            examples=EXAMPLES,
        ),
        Reader(
            "sentence-v1",
            "Você é um assistente que responde a perguntas sobre a Wikipédia em português. "
            "Responda sempre em português, de forma breve (uma frase curta ou apenas a resposta), "
            "sem explicações. Quando houver contexto, use-o para responder.",
            max_passage_chars=1200,
        ),
        Reader(  # long-form questions (bench/eval/longform.py): Portuguese instructions, no language demanded
            "longform",
            "Você responde a perguntas sobre a Wikipédia em português. Responda com uma ou duas frases "
            "completas, sem listas e sem repetir a pergunta. Quando houver contexto, use-o para responder.",
        ),
    )
}


def get_reader(name: str) -> Reader:
    try:
        return READERS[name]
    except KeyError:
        raise BenchError(f"unknown model.reader {name!r}; known: {', '.join(READERS)}") from None


def format_passage(text: str, title: str = "", section: str = "", max_chars: int = 0) -> str:
    """One context passage with its source as a header; cut to ``max_chars`` only when that is > 0."""
    text = " ".join(text.split())
    if max_chars and len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0] + " …"
    header = " § ".join(p for p in (title, section) if p)
    return f"[{header}] {text}" if header else text


def _user_turn(question: str, passages: Sequence[str]) -> str:
    parts = []
    if passages:
        numbered = "\n".join(f"{i}. {p}" for i, p in enumerate(passages, 1))
        parts.append(f"Contexto:\n{numbered}")
    parts.append(f"Pergunta: {question.strip()}")
    return "\n\n".join(parts)


def build_messages(
    question: str, passages: Sequence[str] = (), reader: str = "extractive", fewshot: int = 0
) -> list[dict[str, str]]:
    """Chat messages: the reader's system instruction, ``fewshot`` worked examples as earlier turns (with a
    one-passage context when this question has context, closed-book otherwise), then the question."""
    spec = get_reader(reader)
    if fewshot > len(spec.examples):
        raise BenchError(f"model.fewshot={fewshot}: reader {reader!r} has {len(spec.examples)} examples")
    messages = [{"role": "system", "content": spec.system}]
    for ex in spec.examples[:fewshot]:
        shown = [format_passage(ex.context, ex.title)] if passages else []
        messages.append({"role": "user", "content": _user_turn(ex.question, shown)})
        messages.append({"role": "assistant", "content": ex.answer})
    messages.append({"role": "user", "content": _user_turn(question, passages)})
    return messages


def first_line(text: str) -> str:
    """The answer the reader gave: its first non-empty line, without a leading "Resposta:" cue."""
    for line in str(text or "").splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("Resposta:").strip()
    return ""


def prompt_id(reader: str, fewshot: int) -> str:
    """Content hash of everything that shapes the prompt (texts, examples, builder code)."""
    spec = get_reader(reader)
    code = [inspect.getsource(f) for f in (format_passage, _user_turn, build_messages, first_line)]
    return stable_hash(
        [spec.name, spec.system, spec.max_passage_chars, spec.examples[:fewshot], fewshot, code]
    )
