"""The artifact graph (bench/artifacts.py): a change upstream re-keys what is below it, and nothing else."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import artifacts
from bench.config import BenchError, Config, load_config
from bench.eval.runstate import variant_key
from bench.eval.variants import VARIANTS
from bench.ingest import corpus
from bench.retrieval import index

PAGE = """  <page>
    <title>{title}</title>
    <ns>0</ns>
    <id>{id}</id>
    <revision><id>1{id}</id><text xml:space="preserve">'''{title}''' é uma cidade. {body}

== História ==
{title} foi fundada em {year}.</text></revision>
  </page>
"""


def _dump(path: Path, year: int = 1500, pages: int = 4) -> Path:
    body = "".join(
        PAGE.format(title=f"Cidade{i}", id=i, body=f"Tem {i} mil habitantes e um rio.", year=year + i)
        for i in range(1, pages + 1)
    )
    path.write_text(f"<mediawiki>\n{body}</mediawiki>\n", encoding="utf-8")
    return path


def _cfg(tmp_path: Path, dump: Path, *extra: str) -> Config:
    return load_config(
        None,
        [
            f"corpus={dump}",
            f"results_dir={tmp_path / 'res'}",
            "embedder=hashing",
            "chunk_tokens=30",
            "chunk_overlap=5",
            "model.name=smollm2-135m",
            *extra,
        ],
    )


def _keys(cfg: Config) -> dict[str, str]:
    return {name: variant_key(cfg, VARIANTS[name]) for name in ("base", "rag", "ft", "ft_rag", "picker_rag")}


@pytest.fixture(autouse=True)
def _no_model_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter key hashes the model's weight files; a fixed identity keeps this test offline and fast."""
    monkeypatch.setattr(artifacts, "model_identity", lambda cfg: {"name": cfg.model.name})


def test_editing_the_corpus_content_rekeys_articles_index_and_retrieval_answers(tmp_path: Path) -> None:
    dump = _dump(tmp_path / "wiki.xml")
    cfg = _cfg(tmp_path, dump)
    before = (artifacts.articles(cfg).key, artifacts.index(cfg).key, artifacts.adapter(cfg).key, _keys(cfg))
    stat = dump.stat()
    _dump(dump, year=1600)  # same path, same size, new content
    os.utime(dump, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    after = (artifacts.articles(cfg).key, artifacts.index(cfg).key, artifacts.adapter(cfg).key, _keys(cfg))
    assert after[0] != before[0] and after[1] != before[1] and after[2] != before[2]
    for name in ("rag", "ft", "ft_rag", "picker_rag"):
        assert after[3][name] != before[3][name], name
    assert after[3]["base"] == before[3]["base"]  # closed-book answers never read the corpus


def test_a_finetune_key_rekeys_ft_answers_only(tmp_path: Path) -> None:
    dump = _dump(tmp_path / "wiki.xml")
    a, b = _cfg(tmp_path, dump), _cfg(tmp_path, dump, "finetune.lora_r=4")
    ka, kb = _keys(a), _keys(b)
    assert artifacts.adapter(a).key != artifacts.adapter(b).key
    assert ka["ft"] != kb["ft"] and ka["ft_rag"] != kb["ft_rag"]
    assert ka["base"] == kb["base"] and ka["rag"] == kb["rag"] and ka["picker_rag"] == kb["picker_rag"]
    assert artifacts.index(a).key == artifacts.index(b).key


def test_device_and_questions_shape_the_adapter(tmp_path: Path) -> None:
    dump = _dump(tmp_path / "wiki.xml")
    cpu = _cfg(tmp_path, dump)
    assert artifacts.adapter(cpu).key != artifacts.adapter(_cfg(tmp_path, dump, "device=cuda")).key
    # scope = question_pages: the question file decides which pages are trained on
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"id": "1", "question": "Quando?", "answers": ["1501"], "split": "dev"}) + "\n")
    with_q = _cfg(tmp_path, dump, f"questions={q}", "finetune.scope=question_pages")
    key1 = artifacts.adapter(with_q).key
    q.write_text(json.dumps({"id": "1", "question": "Onde?", "answers": ["rio"], "split": "dev"}) + "\n")
    os.utime(q, ns=(q.stat().st_atime_ns, q.stat().st_mtime_ns + 1_000_000))
    assert artifacts.adapter(with_q).key != key1


def test_ingest_limit_reaches_index_and_adapter_alike(tmp_path: Path) -> None:
    dump = _dump(tmp_path / "wiki.xml")
    full, two = _cfg(tmp_path, dump), _cfg(tmp_path, dump, "ingest.limit=2")
    assert artifacts.index(full).key != artifacts.index(two).key
    assert artifacts.adapter(full).key != artifacts.adapter(two).key
    titles = [a.title for a in corpus.corpus_articles(two)]
    assert titles == ["Cidade1", "Cidade2"]
    info = index.build_index(two)
    assert info.chunks > 0
    with index.open_retriever(two) as r:  # the index holds only the two limited articles
        found = {h.title for h in r.search("cidade fundada rio habitantes", k=10, mode="sparse")}
    assert found == {"Cidade1", "Cidade2"}


def test_index_reads_the_articles_artifact_not_the_xml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = _dump(tmp_path / "wiki.xml")
    cfg = _cfg(tmp_path, dump)
    path = corpus.ensure_articles(cfg)
    assert path == artifacts.articles(cfg).path and path.suffix == ".jsonl"
    sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["articles"] == 4 and sidecar["limit"] == 0

    def no_xml(*args: object, **kwargs: object) -> None:
        raise AssertionError("the XML was parsed again")

    monkeypatch.setattr(corpus, "article_pages", no_xml)
    info = index.build_index(cfg)
    assert info.points_total == info.chunks > 0


def test_sparse_only_index_embeds_nothing_and_refuses_dense_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.retrieval import embedders

    dump = _dump(tmp_path / "wiki.xml")
    cfg = _cfg(tmp_path, dump, "index.retrieval=sparse")
    assert artifacts.index(cfg).inputs["embedder"] is None
    assert artifacts.index(cfg).key != artifacts.index(_cfg(tmp_path, dump)).key

    def no_embedder(cfg: Config) -> None:
        raise AssertionError("a sparse-only index loaded the embedder")

    monkeypatch.setitem(embedders.EMBEDDERS, "hashing", no_embedder)
    info = index.build_index(cfg)
    assert info.points_total == info.chunks > 0
    with index.open_retriever(cfg) as r:
        hits = r.search("Cidade3 fundada", k=2)
        assert hits[0].title == "Cidade3"
        with pytest.raises(BenchError, match="no dense vectors"):
            r.search("Cidade3", mode="hybrid")


def test_code_version_follows_the_source_text() -> None:
    a = artifacts.code_version("ingest/wikitext.py")
    assert a == artifacts.code_version("ingest/wikitext.py")
    assert a != artifacts.code_version("ingest/dump.py")
    assert len(a) == 16


STAGE_CODE = sorted(
    {*artifacts.CLEANER_CODE, *artifacts.CHUNKER_CODE, *artifacts.EMBEDDER_CODE, *artifacts.SEARCH_CODE,
     *artifacts.TRAINING_CODE, "eval/baselines.py", "eval/train_answers.py", "eval/contexts.py"}
)  # fmt: skip


@pytest.mark.parametrize("rel", STAGE_CODE)
def test_a_comment_or_docstring_edit_keeps_the_key_a_code_edit_changes_it(rel: str, tmp_path: Path) -> None:
    """Every stage module: a copy with a new comment, a reworded docstring and reflowed blank lines hashes
    the same (no artifact re-keyed); the same copy with one more statement does not."""
    import ast
    import shutil

    pkg = Path(artifacts.__file__).parent
    copy = tmp_path / rel
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(pkg / rel, copy)
    before = artifacts.code_version(rel, root=tmp_path)
    assert before == artifacts.code_version(rel)
    source = copy.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source), clean=False)
    edited = source.replace(doc, doc + " (reworded)", 1) if doc else source
    copy.write_text("# a new comment\n\n" + edited + "\n\n# the end\n", encoding="utf-8")
    assert artifacts.code_version(rel, root=tmp_path) == before
    copy.write_text(edited + "\n_CHANGED = 1\n", encoding="utf-8")
    assert artifacts.code_version(rel, root=tmp_path) != before


def test_training_dtype_and_attention_rekey_the_adapter(tmp_path: Path) -> None:
    dump = _dump(tmp_path / "wiki.xml")
    key = artifacts.adapter(_cfg(tmp_path, dump)).key
    assert artifacts.adapter(_cfg(tmp_path, dump, "model.attn_implementation=eager")).key != key
    assert "generation/models.py" in artifacts.TRAINING_CODE  # dtype and nf4 loading live there


def test_cli_ingest_without_dump_builds_the_profiles_articles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.__main__ import main

    dump = _dump(tmp_path / "wiki.xml", pages=3)
    sets = [f"corpus={dump}", f"results_dir={tmp_path / 'res'}", "ingest.limit=2"]
    assert main(["ingest", *[a for s in sets for a in ("--set", s)]]) == 0
    path = Path(capsys.readouterr().out.split("articles: ")[1].strip())
    assert path.parent == tmp_path / "res" / "articles"
    assert [json.loads(line)["title"] for line in path.open(encoding="utf-8")] == ["Cidade1", "Cidade2"]
    assert main(["ingest", "--set", f"corpus={dump}", "-o", str(tmp_path / "x.jsonl")]) == 2  # needs DUMP
