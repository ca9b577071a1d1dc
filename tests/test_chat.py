"""`bench chat`: the REPL with fakes (commands, streaming, Ctrl-C, Ctrl-D, history trimming) and, end to end,
``python -m bench chat`` on the tiny real model with piped stdin."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_interactive import FakeLoaders, cfg_for, real_args

from bench.config import REPO_ROOT, BenchError, load_config
from bench.interactive import ask as interactive
from bench.interactive import chat


def reader(lines: list[str | BaseException]) -> Callable[[str], str]:
    """input() stand-in: returns the lines in order, raises the exceptions given, EOF at the end."""
    items = list(lines)

    def read(prompt: str) -> str:
        if not items:
            raise EOFError
        item = items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    return read


def session(fake: FakeLoaders, variant: str = "rag", *extra: str) -> tuple[chat.Chat, io.StringIO]:
    out = io.StringIO()
    bench = interactive.Workbench(cfg_for(*extra), " --profile default", fake.loaders())
    return chat.Chat(bench, variant, out), out


def test_streamed_rag_answer_with_sources_and_commands() -> None:
    fake = FakeLoaders()
    c, out = session(fake)
    lines: list[str | BaseException] = [
        "Qual é a capital da Alemanha?",
        "/k 1",
        "E de Portugal?",
        "/sources",
        "/variant ft",
        "Qual é a capital da Alemanha?",
        "/nope",
        "/k zero",
        "/quit",
        "never read",
    ]
    assert chat.repl(c, reader(lines)) == 0
    text = out.getvalue()
    assert text.startswith("variant rag: base model + top-k retrieved chunks · k=3 · transformers")
    assert (
        "rag> Berlim é a capital da Alemanha, diz o texto.\n  [1] Berlim § (lead)\n  [2] Lisboa § Geografia\n"
        in text
    )
    assert "k = 1\n" in text and fake.retriever.ks == [3, 1]
    assert "[1] Berlim § (lead) (score 0.910)\n    Berlim é a capital e a maior cidade da Alemanha." in text
    assert "variant ft: base model + fine-tuned LoRA adapter" in text
    assert "ft> I think the answer is Berlin, in Germany.\n[" in text  # closed book: no sources listed
    assert "unknown command /nope" in text and "error: /k needs a positive whole number" in text
    assert text.count("tokens ·") == 3  # a stats line after every answer
    # multi-turn: the third question carries the first two turns as chat messages
    last = fake.gens["ft"].seen[-1]
    first = next(i for i, m in enumerate(last) if m["content"] == "Pergunta: Qual é a capital da Alemanha?")
    assert [m["role"] for m in last[first:]] == ["user", "assistant", "user", "assistant", "user"]
    assert (
        last[first + 1]["content"] == "Berlim é a capital da Alemanha, diz o texto."
    )  # past turns: no passages


def test_ctrl_c_stops_an_answer_and_ctrl_d_leaves() -> None:
    fake = FakeLoaders(interrupt_after=2)
    c, out = session(fake, "base")
    lines: list[str | BaseException] = [
        "Qual é a capital?",
        KeyboardInterrupt(),
        "/variant",
        "Outra pergunta?",
    ]
    assert chat.repl(c, reader(lines)) == 0  # EOF (Ctrl-D) after the last line
    text = out.getvalue()
    assert text.count("base> Não sei\n[interrupted after") == 2  # both answers cut after two words
    assert "(Ctrl-D or /quit leaves)" in text  # Ctrl-C at the prompt does not leave either
    assert c.history[0] == ("Qual é a capital?", "Não sei")  # the partial answer stays in the conversation
    assert text.endswith("\n")


def words(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def test_history_is_trimmed_to_the_context_window_never_a_crash() -> None:
    from test_interactive import HITS

    from bench.core.prompts import build_messages, format_passage

    fake = FakeLoaders()
    # FakeGenerator counts words as tokens; room for the question and about three past turns
    m = cfg_for().model
    first = words(build_messages("Pergunta número 10 sobre a capital da Alemanha?", (), m.reader, m.fewshot))
    n_ctx = first + 20 + 60
    c, out = session(fake, "base", f"model.n_ctx={n_ctx}", "model.max_new_tokens=20")
    for i in range(12):
        c.handle(f"Pergunta número {i} sobre a capital da Alemanha?")
    assert all(words(msgs) <= n_ctx - 20 for msgs in fake.gens["base"].seen)
    assert f"oldest turn(s) to fit the {n_ctx}-token context window" in out.getvalue()
    assert 1 < len(c.history) < 12 and c.history[-1][0] == "Pergunta número 11 sobre a capital da Alemanha?"
    # retrieved passages go too when one turn does not fit; with nothing left to drop: an error, no crash
    one = words(
        build_messages(
            "Qual é a capital?", [format_passage(HITS[0].text, HITS[0].title)], m.reader, m.fewshot
        )
    )
    r, out = session(fake, "rag", f"model.n_ctx={one + 20}", "model.max_new_tokens=20")
    r.handle("Qual é a capital?")
    assert [h.title for h in r.last_hits] == ["Berlim"] and "rag> Berlim" in out.getvalue()
    assert f"(kept 1 of 3 passages to fit the {one + 20}-token context window)" in out.getvalue()
    tiny, _ = session(fake, "base", "model.n_ctx=30", "model.max_new_tokens=20")
    with pytest.raises(BenchError, match="the question alone takes"):
        tiny.handle("Qual é a capital?")


def test_variants_that_cannot_chat_or_are_missing_say_why() -> None:
    with pytest.raises(BenchError, match="gold context"):
        session(FakeLoaders(), "oracle")
    c, out = session(FakeLoaders(adapter=False), "base")
    assert chat.repl(c, reader(["/variant ft_rag", "/variant nope", "/variant"])) == 0
    text = out.getvalue()
    assert "error: no adapter: build it with `python -m bench finetune --profile default`" in text
    assert "error: unknown variant 'nope'" in text
    assert text.count("variant base: ") == 2  # still on base


# --------------------------------------------------------------------------- the real CLI, piped stdin


def test_cli_chat_with_piped_stdin_on_the_tiny_model(
    tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path
) -> None:
    from bench.retrieval.index import build_index

    args = real_args(tmp_path, tiny_model_dir, tiny_dump)
    build_index(load_config("faquad", args[1::2]))
    stdin = "Qual é a capital da Alemanha?\n/k 1\nE Lisboa?\n/sources\n/variant base\nOlá\n"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "chat", "--variant", "rag", *args],
        input=stdin, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "variant rag: base model + top-k retrieved chunks · k=3 · transformers" in out
    assert re.search(r"você> Qual é a capital da Alemanha\?\n(\(kept .*\n)?rag> ", out)  # input is echoed
    assert out.count("tokens ·") == 3 and "k = 1" in out
    assert re.search(r"\n\[1\] .+ § .+ \(score -?\d", out)  # /sources: the passage behind the last answer
    assert "variant base: base model, closed book" in out
    missing = subprocess.run(
        [sys.executable, "-m", "bench", "chat", "--variant", "ft", *args],
        input="", capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env,
    )  # fmt: skip
    assert missing.returncode == 2 and "python -m bench finetune --set" in missing.stderr


def test_a_backend_exception_ends_the_answer_not_the_session() -> None:
    fake = FakeLoaders()
    c, out = session(fake, "base")

    def broken(messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        yield "Nã"
        raise RuntimeError("CUDA out of memory")

    fake.gens["base"].stream = broken  # type: ignore[method-assign]
    assert chat.repl(c, reader(["Primeira?", "/variant"])) == 0
    text = out.getvalue()
    assert "base> Nã\nerror: RuntimeError: CUDA out of memory\n" in text
    assert text.count("variant base: ") == 2  # the REPL went on


def test_control_characters_never_reach_the_terminal() -> None:
    assert chat.printable("Ber\x1b[2Jlim\x0c\x07 é\na\tcapital") == "Ber[2Jlim é\na\tcapital"
