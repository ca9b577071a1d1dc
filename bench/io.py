"""Small shared I/O helpers: atomic writes (files, directories), JSONL with line-numbered errors, hashing."""

from __future__ import annotations

import ast
import contextlib
import functools
import glob
import gzip
import hashlib
import json
import os
import resource
import secrets
import shutil
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from bench.config import BenchError

#: Fault injection for the kill -9 tests (tests/test_kill9.py): ``BENCH_KILL_AT=point[@n][,point[@n]]`` makes
#: the process SIGKILL itself the n-th time (default 1st) it passes :func:`crash_point` ``point``.
KILL_ENV = "BENCH_KILL_AT"
_crash_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """A named place where a kill -9 is tested (a no-op unless ``BENCH_KILL_AT`` names it)."""
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    for item in spec.split(","):
        point, _, nth = item.strip().partition("@")
        if point == name:
            _crash_hits[name] = _crash_hits.get(name, 0) + 1
            if _crash_hits[name] == int(nth or 1):
                import signal

                sys.stderr.write(f"{KILL_ENV}: SIGKILL at {name} (hit {_crash_hits[name]})\n")
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)


def _temp_beside(path: Path, kind: str) -> Path:
    """A fresh hidden name in ``path``'s directory (same file system: the final rename is atomic). The temps
    that killed writers of the same ``path`` left behind (their pid is gone) are removed first."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.*.{kind}"):
        pid = stale.name[len(path.name) + 2 :].split(".")[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path`` for writing; on a clean exit flush, fsync and rename it to ``path``.

    The one atomic-write helper: on any error (or KeyboardInterrupt) the temp file is removed and ``path``
    keeps its previous content. The file gets the umask's mode (0644 under the usual 022), not mkstemp's 0600.
    ``mode`` is "w" (UTF-8 text) or "wb".
    """
    if mode not in {"w", "wb"}:
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0666 & ~umask
    try:
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        crash_point("atomic.rename")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a no-op after the rename


@contextlib.contextmanager
def atomic_dir(path: str | Path, complete: str) -> Iterator[Path]:
    """A temp directory beside ``path`` to fill; renamed to ``path`` on a clean exit, removed on any error.

    When another process renamed its own ``path`` first (it holds the file ``complete``), that one is kept.
    The directory gets the umask's mode (mkdtemp would give 0700).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path, "tmpdir")
    tmp.mkdir()
    try:
        yield tmp
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / complete).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_open`)."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BenchError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield one object per non-empty line; a bad line raises BenchError naming file and line."""
    for _, obj in iter_jsonl_numbered(path):
        yield obj


def jsonl_file(path: str | Path) -> Path:
    """``path``, or its gzip twin ``path.gz`` where only that exists (:func:`write_jsonl` ``gzip_over``)."""
    path = Path(path)
    gz = path.with_name(path.name + ".gz")
    return gz if not path.exists() and gz.exists() else path


#: Above this many bytes of text a run's answers go to ``answers.jsonl.gz`` (a 900-question run with its
#: passages is 21.6 MB of JSONL, several times less gzipped); readers take either (:func:`answers_file`).
ANSWERS_GZIP_OVER = 8 << 20


def answers_file(run_dir: str | Path) -> Path:
    """A run directory's answers: ``answers.jsonl``, or ``answers.jsonl.gz`` where only that exists."""
    return jsonl_file(Path(run_dir) / "answers.jsonl")


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def iter_jsonl_numbered(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Like :func:`iter_jsonl`, with each object's 1-based line number (for errors found later). Reads
    ``path.gz`` where only that exists, and any ``*.gz`` as gzip."""
    path = jsonl_file(path)
    if not path.exists():
        raise BenchError(f"{path}: file not found")
    with _open_text(path) as fh:
        lineno = 0
        while True:
            try:
                line = fh.readline()
            except UnicodeDecodeError as exc:
                raise BenchError(f"{path}:{lineno + 1}: not valid UTF-8 ({exc.reason})") from exc
            except (OSError, EOFError) as exc:  # gzip: truncated or not gzip at all
                raise BenchError(f"{path}:{lineno + 1}: unreadable gzip ({exc})") from exc
            if not line:
                break
            lineno += 1
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
            if not isinstance(obj, dict):
                raise BenchError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]], gzip_over: int | None = None) -> int:
    """Write rows atomically; returns the number of rows. With ``gzip_over``, text longer than that many
    bytes goes to ``path.gz`` instead (gzip, no timestamp: the same rows give the same bytes) and the other of
    the two files is removed, so a reader (:func:`jsonl_file`) never sees a stale twin."""
    path = Path(path)
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    data = "".join(lines).encode("utf-8")
    gz = path.with_name(path.name + ".gz")
    if gzip_over is not None and len(data) > gzip_over:
        atomic_write_bytes(gz, gzip.compress(data, compresslevel=9, mtime=0))
        path.unlink(missing_ok=True)
    else:
        atomic_write_bytes(path, data)
        gz.unlink(missing_ok=True)
    return len(lines)


def append_jsonl(fh: Any, row: dict[str, Any]) -> None:
    """Append one row and flush, so a killed process leaves only whole lines behind."""
    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    fh.flush()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / (1024 * 1024) if sys.platform == "darwin" else ru / 1024


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except OSError:
        return peak_rss_mb()


class _NoDocstrings(ast.NodeTransformer):
    """Drops the docstring of every module, class and function (comments are never in the tree)."""

    def _strip(self, node: Any) -> Any:
        self.generic_visit(node)
        body = node.body
        first = body[0].value if body and isinstance(body[0], ast.Expr) else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _strip


def semantic_source(path: Path) -> bytes:
    """What a source file *does*: a Python file's syntax tree without docstrings (so comments, docstrings
    and formatting are left out); any other file's bytes."""
    data = path.read_bytes()
    if path.suffix != ".py":
        return data
    return _semantic_dump(data, str(path))


@functools.lru_cache(maxsize=512)
def _semantic_dump(data: bytes, name: str) -> bytes:
    """The syntax-tree dump of one source text, parsed once per content: every artifact key hashes the same
    few modules, hundreds of times in a sweep (0.5 s a key before)."""
    tree = _NoDocstrings().visit(ast.parse(data, filename=name))
    return ast.dump(tree, annotate_fields=True, include_attributes=False).encode("utf-8")


def code_version(*relpaths: str, root: Path | None = None) -> str:
    """Hash of what the given ``bench/`` source files do (16 hex digits; :func:`semantic_source`): a comment
    or docstring edit keeps every artifact key, a change to the code re-keys. Never bumped by hand."""
    pkg = root or Path(__file__).resolve().parent
    h = hashlib.sha256()
    for rel in sorted(relpaths):
        h.update(rel.encode("utf-8") + b"\0" + semantic_source(pkg / rel) + b"\0")
    return h.hexdigest()[:16]
