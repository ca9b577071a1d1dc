"""The docs name only what exists: every config key, variant and backend a page names is real, and every
variant and backend has its page (issue 36: docs that drifted from the code)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.config import Config, section_types

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FILE_SUFFIXES = {"py", "md", "toml", "json", "jsonl", "gguf", "yaml", "png", "html", "txt", "xml", "bz2"}
FILE_SUFFIXES |= {"db", "safetensors"}
# the crash points tests kill a stage at (bench.io.crash_point("ingest.article")): names, not config keys
CRASH_POINTS = set(
    re.findall(
        r"crash_point\(\"([a-z_.]+)\"", "\n".join(p.read_text() for p in (ROOT / "bench").rglob("*.py"))
    )
)
# `section.key` inside backticks or after --set: what a reader would type
KEY = re.compile(r"(?:`|--set\s+)([a-z_]+)\.([a-z_0-9]+)(?![./\w])")


def _fields(cls: type) -> set[str]:
    return set(getattr(cls, "__dataclass_fields__", {}))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_config_key_a_page_names_exists(page: Path) -> None:
    sections = {name: _fields(cls) for name, cls in section_types().items()}
    text = page.read_text(encoding="utf-8")
    missing = sorted(
        {
            f"{sec}.{key}"
            for sec, key in KEY.findall(text)
            if sec in sections
            and key not in FILE_SUFFIXES
            and key not in sections[sec]
            and f"{sec}.{key}" not in CRASH_POINTS
        }
    )
    assert missing == [], f"{page.name} names config keys that do not exist: {missing}"
    assert _fields(Config)  # the top-level keys exist too (their names are plain words, not checked here)


def test_every_variant_named_in_a_variant_list_exists_and_each_has_its_docs() -> None:
    from bench.eval.variants import VARIANTS

    listed = re.compile(r"run\.variants\s*=\s*\[?([a-z_,\" ]+)")
    for page in PAGES:
        for group in listed.findall(page.read_text(encoding="utf-8")):
            names = {n.strip(' "') for n in group.split(",") if n.strip(' "')}
            assert names <= set(VARIANTS), f"{page.name}: unknown variants {sorted(names - set(VARIANTS))}"
    harness = (ROOT / "docs" / "harness.md").read_text(encoding="utf-8")
    undocumented = [name for name in VARIANTS if f"`{name}`" not in harness]
    assert undocumented == [], f"docs/harness.md does not describe {undocumented}"


def test_every_backend_is_documented_and_every_documented_backend_exists() -> None:
    from bench.generation.registry import BACKENDS

    page = (ROOT / "docs" / "backends.md").read_text(encoding="utf-8")
    assert [b for b in BACKENDS if f"`{b}`" not in page] == []
    named = set(re.findall(r"model\.backend\s*=\s*\"?([a-z_]+)", "\n".join(p.read_text() for p in PAGES)))
    assert named <= set(BACKENDS), f"unknown backends named in the docs: {sorted(named - set(BACKENDS))}"


def test_the_docs_index_links_every_page() -> None:
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    pages = [p.name for p in PAGES if p.parent.name == "docs" and p.name != "README.md"]
    assert [p for p in pages if f"]({p})" not in index] == []
    assert "](docs/README.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
