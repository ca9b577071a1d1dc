"""Impossible settings are refused in the CLI before anything loads, each with the valid values; the
CLI's flags (--version, -o/--output, shorthands, config); commands without a profile refuse
--profile/--set."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bench.__main__ import build_parser, main
from bench.config import BenchError, _build, config_to_toml, load_config, profiles
from bench.config_checks import REGISTRIES, registry_names


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model, generator or embedder construction fails the test."""
    from bench import model_registry
    from bench.generation import models, registry
    from bench.retrieval import embedders

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("a model was loaded before the settings were checked")

    monkeypatch.setattr(registry, "make_generators", boom)
    monkeypatch.setattr(models, "load_model", boom, raising=False)
    monkeypatch.setattr(models, "resolve_model", boom)  # as generation.models sees it
    monkeypatch.setattr(model_registry, "resolve_model", boom)
    for name in list(embedders.EMBEDDERS):
        monkeypatch.setitem(embedders.EMBEDDERS, name, boom)


@pytest.mark.parametrize(
    ("command", "setting", "valid"),
    [
        ("index", "index.retrieval=bm25", "dense, sparse, hybrid"),
        ("run", "device=gpu", "cpu, cuda, cuda:N, auto"),
        ("run", "index.k=-1", ">= 1"),
        ("run", "model.batch_size=0", ">= 1"),
        ("finetune", "finetune.epochs=-1", ">= 0"),
        ("run", "model.backend=nonesuch", "transformers, llamacpp, openai, vllm"),
        ("finetune", "finetune.recipe=chat", "cpt, mixed, pit, aug, text, instruct, qa, raft"),
        ("run", "model.reader=free", "extractive"),
        ("run", "finetune.val_fraction=1.5", "[0, 1]"),
        ("run", "model.dtype=int3", "bfloat16, float32, float16"),
        ("run", "run.variants=base,nope", "rag, ft"),
    ],
)
def test_impossible_setting_is_refused_fast(
    command: str, setting: str, valid: str, no_loading: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # "fast" = before anything loads (no_loading fails the test on any model, generator or embedder): a wall
    # clock here would measure the machine's other load, not the check
    assert main([command, "--set", setting]) == 2
    err = capsys.readouterr().err
    assert setting.split("=")[0] in err and valid in err, err


def test_every_profile_is_valid_and_the_registries_have_names() -> None:
    for name in profiles():
        load_config(name)
    import importlib

    for key, (module, attr) in REGISTRIES.items():  # the ground-level copies equal the registries
        assert registry_names(key) == tuple(getattr(importlib.import_module(module), attr)), key


def test_unknown_key_and_profile_list_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--set", "index.nope=1"]) == 2
    assert "index has: embedder, embedder_model" in capsys.readouterr().err
    assert main(["config", "--set", "nope=1"]) == 2
    assert "top-level keys: profile, corpus" in capsys.readouterr().err
    assert main(["config", "--profile", "nope"]) == 2
    listed = "profiles: curves, default, dose, facts, faquad, full, open, smoke, study"
    assert listed in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["report", "--profile", "smoke"], ["check", "--set", "k=1"]])
def test_commands_without_a_profile_refuse_profile_flags(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*argv, "--baseline", "b", "r"] if argv[0] == "check" else argv)
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["questions", "--profile", "x", "generate", "--corpus", "c", "-o", "o"])


def test_missing_input_names_the_key_and_the_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_loading: None, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PTWIKI_BENCH_DATA", raising=False)
    assert main(["index", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "corpus: corpora/faquad.xml not found under" in err and "PTWIKI_BENCH_DATA" in err
    monkeypatch.setenv("PTWIKI_BENCH_DATA", str(tmp_path / "data"))
    assert main(["run", "--profile", "smoke", "--set", f"corpus={tmp_path}"]) == 2
    assert f"questions: questions/smoke.jsonl not found under {tmp_path / 'data'}" in capsys.readouterr().err


def test_version_help_examples_and_output_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("ptwiki-bench ")
    for stage in ("ingest", "run", "report", "check", "config"):
        with pytest.raises(SystemExit):
            main([stage, "--help"])
        assert "examples:\n  python -m bench" in capsys.readouterr().out
    parser = build_parser()
    for flag in ("-o", "--output", "--out", "--output_path"):
        assert parser.parse_args(["run", flag, "x"]).output == "x"


def test_config_prints_the_effective_toml(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["config", "--profile", "smoke", "--model", "m/x", "--device", "cuda", "--batch-size", "8"]
    assert main([*argv, "--limit", "5", "--set", "index.k=7"]) == 0
    raw = tomllib.loads(capsys.readouterr().out)
    assert raw["model"]["name"] == "m/x" and raw["model"]["batch_size"] == 8 and raw["limit"] == 5
    assert raw["device"] == "cuda" and raw["index"]["embed_device"] == "cuda" and raw["index"]["k"] == 7
    for name in profiles():  # the TOML reads back to the same Config
        cfg = load_config(name)
        assert _build(tomllib.loads(config_to_toml(cfg)), name) == cfg


def test_hub_id_offline_and_uncached_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, no_loading: None, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    assert main(["run", "--profile", "smoke", "--model", "no-such-org/no-such-model-xyz"]) == 2
    err = capsys.readouterr().err
    assert "no-such-org/no-such-model-xyz: a Hugging Face hub id" in err and "unset HF_HUB_OFFLINE" in err


def _all_keys() -> dict[str, object]:
    """Every config key (dotted) → its declared type."""
    import dataclasses
    import typing

    from bench.config import Config, section_types

    sections = section_types()
    out: dict[str, object] = {}
    for f in dataclasses.fields(Config):
        if f.name in sections:
            hints = typing.get_type_hints(sections[f.name])
            out |= {f"{f.name}.{g.name}": hints[g.name] for g in dataclasses.fields(sections[f.name])}
        else:
            out[f.name] = typing.get_type_hints(Config)[f.name]
    return out


def _invalid(key: str, typ: object) -> str | None:
    """A value of the right type that the checks must refuse (None: any value of the type is valid)."""
    from bench import config_checks as cc

    if key in cc.CHOICES or key in cc.REGISTRIES:
        return "nonesuch"
    if key in ("device", "index.embed_device"):
        return "gpu"
    if key in cc.URLS:
        return "ftp:/nowhere"
    if key in cc.ENV_NAMES:
        return "1 BAD NAME"
    for table, bad in (
        (cc.AT_LEAST_1, "0"),
        (cc.AT_LEAST_0, "-1"),
        (cc.FRACTIONS, "1.5"),
        (cc.POSITIVE, "0"),
    ):
        if key in table:
            return bad
    if key == "finetune.snapshot_epochs":
        return "99"
    if key == "finetune.augment":
        return "-1"
    return None


def test_every_config_key_is_checked_and_refuses_a_bad_value_before_anything_loads(no_loading: None) -> None:
    """Each key has a check (a table in bench/config_checks.py, a boolean, or a named place where what it
    names is checked); each checked key given a bad value fails load_config with its name in the error."""
    from bench.config_checks import CHECKED_ELSEWHERE

    unaccounted, silent = [], []
    for key, typ in _all_keys().items():
        bad = _invalid(key, typ)
        if bad is None:
            if typ is not bool and key not in CHECKED_ELSEWHERE:
                unaccounted.append(key)
            continue
        try:
            load_config("default", [f"{key}={bad}"])
        except BenchError as exc:
            if key not in str(exc):
                silent.append(f"{key}: {exc}")
            continue
        silent.append(f"{key}={bad} was accepted")
    assert unaccounted == [] and silent == []


@pytest.mark.parametrize("key", ["limit", "finetune.probe", "vllm.max_model_len", "judge.threshold"])
def test_a_value_of_the_wrong_type_names_the_key(key: str) -> None:
    with pytest.raises(BenchError, match=key.split(".")[-1]):
        load_config("default", [f"{key}=not-a-number-or-bool"])


def test_loading_a_config_imports_nothing_above_the_ground() -> None:
    """load_config checks every key without the stages, numpy or langchain (a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys; from bench.config import load_config; load_config('study'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'torch', 'langchain') "
        "or m.startswith(('bench.generation', 'bench.retrieval', 'bench.training', 'bench.eval'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
