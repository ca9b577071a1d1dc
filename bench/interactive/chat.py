"""``bench chat``: an interactive REPL over any variant and backend, answers streamed as they are generated.

Backends with a ``stream(messages, max_new_tokens)`` method (transformers, llama.cpp, OpenAI-compatible) print
tokens as they come; other variants (no-model baselines) print their whole answer. The conversation is kept as
chat turns and trimmed to the model's context window: the oldest turns go first, then retrieved passages.
Ctrl-C stops an answer being generated and returns to the prompt; Ctrl-D or ``/quit`` leaves.
"""

from __future__ import annotations

import sys
import time
import unicodedata
from collections.abc import Callable
from typing import Any, TextIO

from bench.config import BenchError, Config
from bench.core.prompts import build_messages, format_passage, get_reader
from bench.eval.variants import VARIANTS, get_spec
from bench.interactive.ask import MODEL_GENERATORS, Loaders, Workbench

HELP = """commands:
  /variant NAME  switch variant ({variants})
  /k N           number of passages retrieved for RAG variants
  /sources       the passages behind the last answer
  /reset         forget the conversation
  /help          this text
  /quit          leave (Ctrl-D too); Ctrl-C stops an answer while it is generated
"""
CHARS_PER_TOKEN = 3  # token estimate where the backend cannot tokenize locally (openai)
PROMPT = "você> "


def printable(text: str) -> str:
    """Model output for the terminal: control characters (escape sequences, form feeds…) dropped, but not
    newlines or tabs, so an answer cannot clear or recolour the screen."""
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def count_tokens(gen: Any, messages: list[dict[str, str]]) -> int:
    """Prompt tokens of ``messages`` for this generator (exact for llama.cpp and transformers)."""
    if hasattr(gen, "tokens_for"):
        return len(gen.tokens_for(messages))
    if hasattr(gen, "render") and hasattr(gen, "tokenizer"):
        ids = gen.tokenizer(gen.render(messages), add_special_tokens=not gen.chat_template)["input_ids"]
        return len(ids)
    return sum(len(m["content"]) // CHARS_PER_TOKEN + 4 for m in messages)


def context_window(cfg: Config, gen: Any) -> int:
    """``model.n_ctx``, or the model's own position limit when that is smaller (transformers)."""
    limit = getattr(getattr(getattr(gen, "model", None), "config", None), "max_position_embeddings", None)
    return min(cfg.model.n_ctx, limit) if isinstance(limit, int) else cfg.model.n_ctx


class Chat:
    """One conversation: the current variant, k, the turns so far and the sources of the last answer."""

    def __init__(self, bench: Workbench, variant: str, out: TextIO, max_new_tokens: int = 0) -> None:
        self.bench, self.out = bench, out
        self.k = bench.cfg.index.k
        self.max_new_tokens = max_new_tokens or bench.cfg.model.max_new_tokens
        self.history: list[tuple[str, str]] = []
        self.last_hits: list[Any] = []
        self.variant = ""
        self.line_open = False
        self.switch(variant)

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        self.line_open = bool(text) and not text.endswith("\n")

    def error(self, message: str) -> None:
        self.write(("\n" if self.line_open else "") + f"error: {message}\n")

    def switch(self, name: str) -> None:
        spec = get_spec(name)
        if spec.context == "gold":
            raise BenchError(f"variant {name} needs a question's gold context; use `bench ask --qid ID`")
        self.bench.variants([name], k=self.k)  # checks the adapter/index and loads the generators
        self.variant, self.spec = name, spec

    def banner(self) -> str:
        cfg, gen = self.bench.cfg, self.bench.generators.get(self.spec.generator)
        backend = f"{cfg.model.backend} · {cfg.model.name} · {cfg.device}" if gen is not None else "no model"
        k = f" · k={self.k}" if self.spec.uses_retrieval else ""
        return f"variant {self.variant}: {self.spec.description}{k} · {backend}\n"

    def handle(self, line: str) -> bool:
        """Run one input line; False means leave."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            return self.command(line)
        self.answer(line)
        return True

    def command(self, line: str) -> bool:
        cmd, _, arg = line.partition(" ")
        arg = arg.strip()
        if cmd in ("/quit", "/exit", "/q"):
            return False
        if cmd == "/help":
            self.write(HELP.format(variants=", ".join(VARIANTS)))
        elif cmd == "/variant" and arg:
            self.switch(arg)
            self.write(self.banner())
        elif cmd == "/variant":
            self.write(self.banner())
        elif cmd == "/k":
            if not arg.isdigit() or int(arg) < 1:
                raise BenchError(f"/k needs a positive whole number, got {arg!r}")
            self.k = int(arg)
            self.write(
                f"k = {self.k}" + ("" if self.spec.uses_retrieval else f" (unused by {self.variant})") + "\n"
            )
        elif cmd == "/sources":
            self.show_sources()
        elif cmd == "/reset":
            self.history = []
            self.write("conversation cleared\n")
        else:
            self.write(f"unknown command {cmd}; /help lists them\n")
        return True

    def show_sources(self) -> None:
        if not self.last_hits:
            self.write("no sources: the last answer used no retrieved passages\n")
        for i, h in enumerate(self.last_hits, 1):
            text = " ".join(str(h.text).split())
            self.write(f"[{i}] {h.title} § {h.section or '(lead)'} (score {h.score:.3f})\n    {text[:400]}\n")

    def _prompt(self, question: str, passages: list[str]) -> list[dict[str, str]]:
        m = self.bench.cfg.model  # the benchmark's reader: instruction and worked examples
        return build_messages(question, passages, m.reader, m.fewshot)

    def _messages(
        self, question: str, passages: list[str], turns: list[tuple[str, str]]
    ) -> list[dict[str, str]]:
        """The reader's instruction and examples, the past turns, then the question with its passages."""
        now = self._prompt(question, passages)
        past: list[dict[str, str]] = []
        for q, a in turns:
            past += [self._prompt(q, [])[-1], {"role": "assistant", "content": a}]
        return [*now[:-1], *past, now[-1]]

    def _fit(self, gen: Any, question: str, hits: list[Any]) -> tuple[list[dict[str, str]], list[Any]]:
        """Messages within the context window: drop the oldest turns first, then the last passages."""
        window = context_window(self.bench.cfg, gen)
        budget = window - self.max_new_tokens
        turns = list(self.history)
        n_hits = len(hits)
        while True:
            cut = get_reader(self.bench.cfg.model.reader).max_passage_chars
            passages = [format_passage(h.text, h.title, h.section, cut) for h in hits]
            messages = self._messages(question, passages, turns)
            n = count_tokens(gen, messages)
            if n <= budget:
                break
            if turns:
                turns.pop(0)
            elif hits:
                hits = hits[:-1]
            else:
                raise BenchError(
                    f"the question alone takes {n} tokens; the context window is {window} tokens"
                )
        if dropped := len(self.history) - len(turns):
            self.write(f"(dropped the {dropped} oldest turn(s) to fit the {window}-token context window)\n")
            self.history = turns
        if len(hits) < n_hits:
            self.write(f"(kept {len(hits)} of {n_hits} passages to fit the {window}-token context window)\n")
        return messages, hits

    def answer(self, question: str) -> None:
        gen = self.bench.generators.get(self.spec.generator)
        if self.spec.generator not in MODEL_GENERATORS or gen is None or not hasattr(gen, "stream"):
            self._answer_whole(question)
            return
        hits: list[Any] = []
        if self.spec.uses_retrieval:
            hits = list(self.bench.retriever.search(question, k=self.k))[: self.k]
        messages, hits = self._fit(gen, question, hits)
        self.last_hits = hits
        self.write(f"{self.variant}> ")
        it = gen.stream(messages, self.max_new_tokens)
        parts: list[str] = []
        result, t0 = None, time.perf_counter()
        try:
            while True:
                try:
                    piece = next(it)
                except StopIteration as stop:
                    result = stop.value
                    break
                parts.append(piece)
                self.write(printable(piece))
        except KeyboardInterrupt:
            it.close()
        text = "".join(parts).strip()
        self.history.append((question, text))
        self.write("\n" + self._sources_line(hits))
        if result is None:
            self.write(f"[interrupted after {time.perf_counter() - t0:.1f} s]\n")
        else:
            tps = result.new_tokens / (result.total_ms / 1000.0) if result.total_ms > 0 else 0.0
            self.write(f"[{result.new_tokens} tokens · {result.total_ms / 1000.0:.1f} s · {tps:.1f} tok/s]\n")

    def _answer_whole(self, question: str) -> None:
        """Variants without a streaming generator (no-model baselines): the variant's own answer."""
        variant = self.bench.variants([self.variant], k=self.k)[self.variant]
        result = variant.answer({"id": "chat", "question": question, "answers": []})
        self.last_hits = list(result.hits)
        self.history.append((question, result.answer))
        self.write(f"{self.variant}> {printable(result.answer)}\n" + self._sources_line(self.last_hits))

    @staticmethod
    def _sources_line(hits: list[Any]) -> str:
        if not hits:
            return ""
        return "".join(f"  [{i}] {h.title} § {h.section or '(lead)'}\n" for i, h in enumerate(hits, 1))


def repl(chat: Chat, read: Callable[[str], str] = input) -> int:
    """Read lines until /quit or end of input; Ctrl-C never leaves; errors are printed, the loop goes on."""
    chat.write(chat.banner() + "/help lists the commands; Ctrl-D leaves.\n")
    while True:
        try:
            line = read(PROMPT)
        except EOFError:
            chat.write("\n")
            return 0
        except KeyboardInterrupt:
            chat.write("\n(Ctrl-D or /quit leaves)\n")
            continue
        try:
            if not chat.handle(line):
                return 0
        except KeyboardInterrupt:
            chat.write("\n[interrupted]\n")
        except BenchError as exc:
            chat.error(str(exc))
        except Exception as exc:  # a backend failure ends the answer, not the session
            chat.error(f"{type(exc).__name__}: {exc}")


def _echoing_input(prompt: str) -> str:
    """input() for piped stdin: the line read is echoed, so a transcript shows what was asked."""
    line = input(prompt)
    sys.stdout.write(line + "\n")
    return line


def run_chat(
    cfg: Config, variant: str, *, hint: str = "", max_new_tokens: int = 0, loaders: Loaders | None = None
) -> int:
    interactive = sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())
    bench = Workbench(cfg, hint, loaders)
    try:
        chat = Chat(bench, variant, sys.stdout, max_new_tokens)
        return repl(chat, input if interactive else _echoing_input)
    finally:
        bench.close()
