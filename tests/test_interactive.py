"""`bench ask`: Workbench (cached artifacts only), answers side by side, JSON; fakes and a tiny real model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import main
from bench.config import BenchError, Config, load_config
from bench.generation.base import Generation
from bench.interactive import ask as interactive
from bench.retrieval.index import Hit

# The real records, not look-alikes: a field added to them reaches these tests too.
Gen = Generation


HITS = [
    Hit("c1", 1, "Berlim", "", "Berlim é a capital e a maior cidade da Alemanha.", 0.91),
    Hit("c2", 4, "Lisboa", "Geografia", "Lisboa fica na foz do Tejo. A cidade tem sete colinas.", 0.42),
    Hit("c3", 4, "Lisboa", "", "Lisboa é a capital de Portugal, junto ao rio Tejo.", 0.30),
]


class FakeRetriever:
    def __init__(self) -> None:
        self.ks: list[int | None] = []
        self.closed = False

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]:
        self.ks.append(k)
        return HITS[: k or 3]

    def close(self) -> None:
        self.closed = True


class FakeGenerator:
    """Answers from the first passage (RAG) or in Portuguese/English (base/ft); streams word by word.

    ``tokens_for`` counts words, so the chat's context-window trimming is exact and checkable."""

    def __init__(self, name: str, interrupt_after: int = 0) -> None:
        self.name, self.interrupt_after = name, interrupt_after
        self.seen: list[list[dict[str, str]]] = []
        self.closed = False

    def _text(self, messages: list[dict[str, str]]) -> str:
        user = messages[-1]["content"]
        if "Contexto:" in user:
            return "Berlim é a capital da Alemanha, diz o texto."
        if self.name == "ft":
            return "I think the answer is Berlin, in Germany."
        return "Não sei bem, talvez seja Berlim na Alemanha."

    def tokens_for(self, messages: list[dict[str, str]]) -> list[int]:
        return [0] * sum(len(m["content"].split()) for m in messages)

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Gen:
        self.seen.append(messages)
        text = self._text(messages)
        return Gen(text, len(self.tokens_for(messages)), len(text.split()), 5.0, 50.0)

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int) -> Iterator[str]:
        self.seen.append(messages)
        words = self._text(messages).split()
        for i, word in enumerate(words):
            if self.interrupt_after and i == self.interrupt_after:
                raise KeyboardInterrupt
            yield (" " if i else "") + word
        return Gen(" ".join(words), len(self.tokens_for(messages)), len(words), 5.0, 50.0)

    def info(self) -> dict[str, Any]:
        return {"backend": "fake"}

    def close(self) -> None:
        self.closed = True


class FakeLoaders:
    def __init__(self, adapter: bool = True, index: bool = True, interrupt_after: int = 0) -> None:
        self.adapter, self.index, self.interrupt_after = adapter, index, interrupt_after
        self.loads: list[Path | None] = []
        self.retriever = FakeRetriever()
        self.gens: dict[str, FakeGenerator] = {}

    def loaders(self) -> interactive.Loaders:
        def open_index(cfg: Config, hint: str) -> FakeRetriever:
            if not self.index:
                raise BenchError(f"no index: build it with `python -m bench index{hint}`")
            return self.retriever

        def find_adapter(cfg: Config, hint: str) -> Path:
            if not self.adapter:
                raise BenchError(f"no adapter: build it with `python -m bench finetune{hint}`")
            return Path("/fake/adapter")

        def make_generators(cfg: Config, adapter: Path | None) -> dict[str, Any]:
            self.loads.append(adapter)
            self.gens = {"base": FakeGenerator("base", self.interrupt_after)}
            if adapter is not None:
                self.gens["ft"] = FakeGenerator("ft", self.interrupt_after)
            return dict(self.gens)

        return interactive.Loaders(open_index, find_adapter, make_generators)


def cfg_for(*extra: str) -> Config:
    return load_config("faquad", ["run.variants=base,rag,ft,ft_rag,oracle", *extra])


def test_ask_answers_with_each_variant_and_reports_sources_and_timing() -> None:
    fake = FakeLoaders()
    bench = interactive.Workbench(cfg_for("index.k=2"), loaders=fake.loaders())
    row = interactive.question_row(bench.cfg, "Qual é a capital da Alemanha?", None)
    names = interactive.default_variants(bench.cfg, has_gold=False)
    assert names == ["base", "rag", "ft", "ft_rag"]  # oracle needs a gold context
    result = interactive.ask(bench, row, names)
    by = {e["variant"]: e for e in result["variants"]}
    assert list(by) == names
    assert by["rag"]["answer"].startswith("Berlim é a capital") and by["rag"]["lang"] == "pt"
    assert by["ft"]["lang"] == "en"
    assert [s["title"] for s in by["rag"]["sources"]] == ["Berlim", "Lisboa"]  # k=2
    assert by["base"]["sources"] == [] and "scores" not in by["base"]  # free question: no gold
    lat = by["rag"]["latency"]
    assert lat["generation_ms"] == 50.0 and lat["tokens_per_s"] == pytest.approx(
        by["rag"]["latency"]["new_tokens"] * 20
    )
    assert lat["retrieval_ms"] >= 0 and lat["wall_ms"] >= lat["retrieval_ms"]
    assert fake.loads == [Path("/fake/adapter")]  # one model load, with the adapter, for all four
    bench.close()
    assert fake.retriever.closed and all(g.closed for g in fake.gens.values())


def test_ask_by_question_id_shows_gold_and_scores(tiny_questions: Path) -> None:
    fake = FakeLoaders()
    cfg = cfg_for(f"questions={tiny_questions}", "split=dev")
    row = interactive.question_row(cfg, None, "q3")  # a train-split question: --qid ignores the split
    assert row["answers"] == ["sete colinas"] and row["context"]
    result = interactive.ask(interactive.Workbench(cfg, loaders=fake.loaders()), row, ["oracle", "rag"])
    assert result["gold"] == ["sete colinas"]
    oracle = result["variants"][0]
    assert oracle["scores"] == {"exact_match": 0.0, "f1": 0.0, "contains": 0.0}
    with pytest.raises(BenchError, match="no question with id 'nope'"):
        interactive.question_row(cfg, None, "nope")
    with pytest.raises(BenchError, match="needs the gold context: ask with --qid"):
        interactive.ask(interactive.Workbench(cfg, loaders=fake.loaders()), {"question": "x?"}, ["oracle"])


def test_missing_artifacts_name_the_command_before_loading_a_model() -> None:
    fake = FakeLoaders(adapter=False)
    hint = interactive.command_hint("default", ["index.k=5", "corpus=my file.xml"])
    assert hint == " --profile default --set index.k=5 --set 'corpus=my file.xml'"
    bench = interactive.Workbench(cfg_for(), hint, fake.loaders())
    with pytest.raises(BenchError, match=r"python -m bench finetune --profile default --set index\.k=5"):
        interactive.ask(bench, {"question": "x?"}, ["base", "ft"])
    assert fake.loads == []  # checked before any model was loaded
    no_index = interactive.Workbench(cfg_for(), " --profile open", FakeLoaders(index=False).loaders())
    with pytest.raises(BenchError, match=r"python -m bench index --profile open"):
        interactive.ask(no_index, {"question": "x?"}, ["rag"])


def test_render_text_columns_or_stacked_blocks() -> None:
    bench = interactive.Workbench(cfg_for(), loaders=FakeLoaders().loaders())
    result = interactive.ask(
        bench, {"question": "Qual é a capital da Alemanha?", "answers": []}, ["base", "rag"]
    )
    wide = interactive.render_text(result, width=120)
    header = next(line for line in wide.splitlines() if line.startswith("base"))
    assert "│ rag" in header  # side by side
    assert "1. Berlim (0.910)" in wide and "2. Lisboa § Geografia (0.420)" in wide
    assert max(len(line) for line in wide.splitlines()) <= 120
    narrow = interactive.render_text(result, width=50)
    assert "│" not in narrow and narrow.index("\nbase\n") < narrow.index("\nrag\n")  # stacked
    assert max(len(line) for line in narrow.splitlines()) <= 50


def test_one_failing_variant_does_not_hide_the_others() -> None:
    fake = FakeLoaders()
    bench = interactive.Workbench(cfg_for(), loaders=fake.loaders())
    bench.variants(["base", "ft"])  # load both now, so the patched generator is the one used
    fake.gens["base"].generate = lambda *a: (_ for _ in ()).throw(RuntimeError("boom"))  # type: ignore[method-assign]
    result = interactive.ask(bench, {"question": "x?"}, ["base", "ft"])
    assert result["variants"][0]["error"] == "RuntimeError: boom"
    assert result["variants"][1]["answer"].startswith("I think")


# --------------------------------------------------------------------------- real tiny model, real index


def real_args(tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path) -> list[str]:
    sets = [
        f"model.name={tiny_model_dir}",
        "model.backend=transformers",
        "model.dtype=float32",
        "model.max_new_tokens=6",
        "model.fewshot=0",  # the tiny model has 512 positions: no room for worked examples
        f"corpus={tiny_dump}",
        f"results_dir={tmp_path / 'results'}",
        "index.embedder=hashing",
        "index.embedder_model=32",
        "index.chunk_tokens=64",
        "index.chunk_overlap=8",
    ]
    return [arg for s in sets for arg in ("--set", s)]


def test_cli_ask_json_with_the_tiny_model(
    tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.retrieval.index import build_index

    args = real_args(tmp_path, tiny_model_dir, tiny_dump)
    ask = ["ask", "Qual é a capital da Alemanha?"]
    question = [*ask, "--variants", "base,rag", "--json", *args]
    assert main(question) == 2  # no index yet: an error naming the command, nothing built
    err = capsys.readouterr().err
    assert "build it with `python -m bench index --set" in err
    assert not (tmp_path / "results" / "index").exists()
    assert main([*ask, "--variants", "ft", *args]) == 2
    assert "python -m bench finetune --set" in capsys.readouterr().err

    build_index(load_config("faquad", args[1::2]))
    assert main(question) == 0
    out = json.loads(capsys.readouterr().out)
    assert [v["variant"] for v in out["variants"]] == ["base", "rag"]
    rag = out["variants"][1]
    assert rag["error"] is None and 0 < rag["latency"]["new_tokens"] <= 6
    assert rag["sources"][0]["title"] in {"Berlim", "Lisboa"} and rag["latency"]["retrieval_ms"] > 0
    assert main([*ask, *args]) == 2  # default variants include ft: no adapter → error, not training
    assert "python -m bench finetune" in capsys.readouterr().err
    assert main([*ask, "--variants", "base", *args]) == 0
    assert "Pergunta: Qual é a capital da Alemanha?" in capsys.readouterr().out
