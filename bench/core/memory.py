"""Peak memory per variant, not per process lifetime: Linux's high-water mark (``VmHWM``) of the bench
process and of the engine's processes (a vLLM server and its workers) is reset before a variant
(``/proc/PID/clear_refs``) and read after it. Where /proc is not there (macOS) the process-lifetime peak
(``getrusage``) stands in and the engine is not measured (None)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from bench.io import peak_rss_mb


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (empty when it is gone)."""
    try:
        import psutil

        root = psutil.Process(pid)
        return [pid, *(p.pid for p in root.children(recursive=True))]
    except (ImportError, OSError, ValueError):  # psutil missing, or the process gone: nothing to measure
        return []
    except Exception as exc:  # psutil.NoSuchProcess / AccessDenied (psutil.Error, not an OSError)
        if type(exc).__module__.startswith("psutil"):
            return []
        raise


def reset_peaks(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset the peak RSS (VmHWM)


def _hwm_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def peak_mb(pids: Iterable[int]) -> float | None:
    """The summed high-water marks of ``pids`` in MiB (an upper bound of their simultaneous peak: shared
    pages count once per process); None when none is readable."""
    found = [kb for pid in pids if (kb := _hwm_kb(pid)) is not None]
    return round(sum(found) / 1024, 1) if found else None


def own_peak_mb() -> float:
    """This process's peak since the last :func:`reset_peaks` (the lifetime peak off Linux)."""
    return peak_mb([os.getpid()]) or round(peak_rss_mb(), 1)
