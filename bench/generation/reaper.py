"""``python reaper.py PARENT_PID CMD...``: run CMD in its own session, and end that whole session when the
bench process that started it ends, even when it is killed with SIGKILL.

Linux tells only a *direct* child that its parent died (``PR_SET_PDEATHSIG``), and an engine such as vLLM's
OpenAI server has children of its own (the engine core). So the bench starts this small process as that direct
child; it asks for SIGTERM on its parent's death, starts the engine in a new session, and on SIGTERM/SIGINT
ends the engine's whole process group (SIGTERM, then SIGKILL after a grace period). Its exit status is the
engine's. Standard library only: it runs with the bench's interpreter and imports nothing from the project.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from types import FrameType

PR_SET_PDEATHSIG = 1
GRACE_S = 20.0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait_s in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                with contextlib.suppress(ProcessLookupError):  # the group may outlive its leader
                    os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(0.1)


def main(argv: list[str]) -> int:
    parent, cmd = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request above took effect
        return 1
    proc = subprocess.Popen(cmd, start_new_session=True)
    got: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        got.append(signum)  # handled below: Popen.wait holds a lock that poll() inside a handler needs

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not got:
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
    _stop(proc)
    return 128 + got[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
