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


EFFECTIVE = Path(__file__).parent / "data" / "effective-configs"


@pytest.mark.parametrize("snapshot", sorted(EFFECTIVE.glob("*.toml")), ids=lambda p: p.stem)
def test_profiles_keep_their_effective_config(snapshot: Path) -> None:
    """Each bundled profile's effective config (`bench config --profile X`) is what it was when profiles
    stopped restating defaults (tests/data/effective-configs): keys added since are not in the snapshot."""
    import tomllib

    from bench.config import config_to_dict

    want = tomllib.loads(snapshot.read_text(encoding="utf-8"))
    got = config_to_dict(load_config(snapshot.stem))
    for key, value in want.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                g = got[key][sub]
                assert (list(g) if isinstance(g, list | tuple) else g) == v, f"{snapshot.stem}: {key}.{sub}"
        else:
            assert got[key] == value, f"{snapshot.stem}: {key}"


@pytest.mark.parametrize("profile", sorted(p.stem for p in EFFECTIVE.glob("*.toml")))
def test_no_profile_restates_a_default(profile: str) -> None:
    """A bundled profile lists only what differs from the dataclass defaults (or the profile it extends)."""
    import tomllib

    from bench.config import CONFIG_DIR, Config, config_to_dict

    raw = tomllib.loads((CONFIG_DIR / f"{profile}.toml").read_text(encoding="utf-8"))
    base = config_to_dict(load_config(raw["extends"]) if "extends" in raw else Config())
    restated = [
        f"{key}.{sub}" if isinstance(value, dict) else key
        for key, value in raw.items()
        if key != "extends"
        for sub in (value if isinstance(value, dict) else [None])
        if (base[key][sub] if sub else base[key]) == _plain(value[sub] if sub else value)
    ]
    assert restated == [], f"{profile}.toml restates defaults: {restated}"


def _plain(value: object) -> object:
    return list(value) if isinstance(value, list | tuple) else value


def test_a_profile_extends_another(tmp_path: Path) -> None:
    child = tmp_path / "mine.toml"
    child.write_text('extends = "study"\nlimit = 7\n[index]\nk = 5\n', encoding="utf-8")
    cfg, study = load_config(child), load_config("study")
    assert cfg.profile == "mine" and cfg.limit == 7 and cfg.index.k == 5
    assert cfg.run.variants == study.run.variants and cfg.finetune.probe is False  # study's, not default's
    assert cfg.index.retrieval == study.index.retrieval
    loop = tmp_path / "loop.toml"
    loop.write_text(f'extends = "{loop}"\n', encoding="utf-8")
    with pytest.raises(BenchError, match="loops back"):
        load_config(loop)
    (tmp_path / "bad.toml").write_text('extends = "nonesuch"\n', encoding="utf-8")
    with pytest.raises(BenchError, match="unknown profile 'nonesuch'"):
        load_config(tmp_path / "bad.toml")


def test_the_deprecated_train_format_key_is_read_as_recipe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The alias shim: --set (dotted or bare) and old TOML files; an explicit --set wins over the profile."""
    assert load_config("default", ["finetune.train_format=qa"]).finetune.recipe == "qa"
    assert load_config("default", ["train_format=raft"]).finetune.recipe == "raft"
    assert "deprecated" in caplog.text
    old = tmp_path / "old.toml"
    old.write_text('[finetune]\nrecipe = ""\ntrain_format = "instruct"\n', encoding="utf-8")
    assert load_config(old).finetune.recipe == "instruct"
    old.write_text('[finetune]\nrecipe = "mixed"\ntrain_format = "text"\n', encoding="utf-8")
    assert load_config(old).finetune.recipe == "mixed"  # as before: the recipe, else the alias
