"""Jobs for the worker-pool tests (importable by spawned worker processes)."""

from __future__ import annotations

import os
import signal
import time


def slow_square(x: int, delay: float = 0.05) -> int:
    time.sleep(delay)
    return x * x


def die_at(x: int, fatal: int) -> int:
    if x == fatal:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
    time.sleep(0.05)
    return x


def hang_at(x: int, stuck: int) -> int:
    if x == stuck:
        time.sleep(3600)
    return x
