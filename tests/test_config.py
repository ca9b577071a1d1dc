from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import BenchError, config_hash, load_config


def test_default_profile_loads() -> None:
    cfg = load_config()
    assert cfg.profile == "default"
    model_variants = ("base", "rag", "ft", "ft_rag", "oracle", "oracle_page")
    assert cfg.run.variants == (
        *model_variants,
        "echo",
        "prior",
        "picker_oracle",
        "picker_rag",
        "span_oracle",
        "span_rag",
    )


def test_dataclass_defaults_equal_the_default_profile() -> None:
    """One source of defaults: every key that default.toml sets has the same value in the dataclasses
    (bench/config.py, bench/config_sections.py)."""
    import dataclasses
    import tomllib

    from bench.config import CONFIG_DIR, Config

    raw = tomllib.loads((CONFIG_DIR / "default.toml").read_text(encoding="utf-8"))
    loaded, plain = load_config("default"), Config()
    for key, value in raw.items():
        if isinstance(value, dict):
            for sub in value:
                got = getattr(getattr(plain, key), sub)
                assert got == getattr(getattr(loaded, key), sub), f"config_sections.py {key}.{sub} = {got!r}"
        else:
            assert getattr(plain, key) == getattr(loaded, key), f"config.py {key} = {getattr(plain, key)!r}"
    assert dataclasses.replace(loaded, profile="default") == dataclasses.replace(plain, profile="default")


@pytest.mark.parametrize("profile", ["default", "smoke", "full", "faquad", "study", "facts", "open"])
def test_profiles_load(profile: str) -> None:
    assert load_config(profile).profile == profile


def test_overrides_dotted_and_bare() -> None:
    cfg = load_config("smoke", ["index.k=7", "variants=base,rag", "device=cuda", "limit=5", "exact=false"])
    assert cfg.index.k == 7
    assert cfg.run.variants == ("base", "rag")
    assert cfg.device == "cuda"
    assert cfg.limit == 5
    assert cfg.index.exact is False


def test_config_is_frozen() -> None:
    cfg = load_config()
    with pytest.raises(AttributeError):
        cfg.limit = 3  # type: ignore[misc]


def test_hash_is_stable_and_sensitive() -> None:
    a, b = load_config("smoke"), load_config("smoke")
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(load_config("smoke", ["index.k=9"]))
    # a section hash ignores other sections
    other = load_config("smoke", ["model.max_new_tokens=99"])
    assert config_hash(a, ("index",)) == config_hash(other, ("index",))


@pytest.mark.parametrize(
    "override, message",
    [
        ("nope=1", "unknown config key"),
        ("index.nope=1", "unknown config key"),
        ("k=abc", "expected int"),
        ("exact=maybe", "expected true/false"),
        ("noequals", "key=value"),
    ],
)
def test_bad_overrides(override: str, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        load_config("smoke", [override])


def test_bad_toml_names_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("corpus = \n", encoding="utf-8")
    with pytest.raises(BenchError, match=r"bad\.toml"):
        load_config(p)
    p.write_text("[index]\nwhat = 1\n", encoding="utf-8")
    with pytest.raises(BenchError, match=r"index\.what"):
        load_config(p)


def test_cli_report_updates_readme_table(tmp_path: Path) -> None:
    import json

    from bench.__main__ import main

    run = tmp_path / "runs" / "default"
    run.mkdir(parents=True)
    stat = {"mean": 0.25, "ci95": [0.1, 0.4]}
    scores = {
        "variants": {"base": {"f1": stat, "n": 4, "failed": 0}},
        "config": {},
        "env": {},
        "datasets": {},
    }
    (run / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\nend\n", encoding="utf-8")
    rc = main(
        ["report", str(run), "-o", str(tmp_path / "R.md"), "--readme", str(readme), "--readme-run", str(run)]
    )
    text = readme.read_text(encoding="utf-8")
    assert rc == 0
    assert "old" not in text and "0.250" in text
    assert text.startswith("intro\n") and text.endswith("end\n")


def test_profiles_that_promise_all_questions_say_split_all() -> None:
    """Config's default split is the default profile's ("dev"); smoke and full evaluate every row."""
    assert load_config("smoke").split == "" and load_config("full").split == ""
    assert load_config("default").split == "dev" and load_config("facts").split == "dev"
