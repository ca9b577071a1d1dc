"""Headless Chromium over the Chrome DevTools Protocol (CDP): open a local page, evaluate JavaScript in it,
collect its console errors and the URLs it requested, take a screenshot.

Debian's ``chromium`` (``make test`` installs it when ``/usr/bin/chromium`` is missing), started with a fresh
profile and no background networking (without those flags it hangs on refused connections), spoken to over
its page websocket with the ``websockets`` client. Every wait has a deadline; the browser is killed on exit.
Used by tests/test_report_html.py and by ``python -m bench.reporting.browser`` (the docs screenshot).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.io import atomic_write_bytes

log = logging.getLogger(__name__)

CHROMIUM = os.environ.get("BENCH_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
)  # fmt: skip


class Page:
    """One Chromium page: ``with Page() as page: page.open(path); page.eval("1 + 1")``."""

    def __init__(self, timeout_s: float = 30.0, width: int = 1400, height: int = 900) -> None:
        self.timeout_s, self.width, self.height = timeout_s, width, height
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self._id = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: Any = None
        self._profile = ""

    def __enter__(self) -> Page:
        if not Path(CHROMIUM).exists():
            raise BenchError(f"{CHROMIUM} missing: `make test` installs it (apt-get install chromium)")
        self._profile = tempfile.mkdtemp(prefix="bench-chromium-")
        cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-port=0",
               f"--window-size={self.width},{self.height}", "about:blank"]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _port(self) -> int:
        """Chromium writes the port it chose to ``DevToolsActivePort`` in its profile."""
        deadline = time.monotonic() + self.timeout_s
        active = Path(self._profile) / "DevToolsActivePort"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BenchError(f"chromium exited with status {self._proc.returncode} while starting")
            lines = active.read_text().splitlines() if active.exists() else []
            if len(lines) >= 2 and lines[0].isdigit():  # port, then the browser's path: written whole
                return int(lines[0])
            time.sleep(0.1)
        raise BenchError(f"chromium did not open its DevTools port within {self.timeout_s:g} s")

    def _connect(self) -> None:
        from websockets.sync.client import connect

        port = self._port()
        url = f"http://127.0.0.1:{port}/json/list"
        with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:  # the local DevTools port
            targets = json.loads(resp.read())
        page = next(t for t in targets if t.get("type") == "page")
        ws = connect(page["webSocketDebuggerUrl"], open_timeout=self.timeout_s, max_size=None)
        self._ws = (
            ws.__enter__()
        )  # websockets 17: a connection is used as a context manager (closed in close())
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable")
        size = {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", size)

    def _event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params") or {}
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args") or []
            self.console_errors.append(" ".join(str(a.get("value", a.get("description"))) for a in args))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails") or {}
            self.console_errors.append(str((details.get("exception") or {}).get("description") or details))
        elif method == "Log.entryAdded" and (params.get("entry") or {}).get("level") == "error":
            self.console_errors.append(str(params["entry"].get("text")))
        elif method == "Network.requestWillBeSent":
            self.requests.append(str((params.get("request") or {}).get("url")))

    def _recv(self, until: Any) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"chromium did not answer within {self.timeout_s:g} s")
            try:
                msg = json.loads(self._ws.recv(timeout=left))
            except TimeoutError as exc:
                raise BenchError(f"chromium did not answer within {self.timeout_s:g} s") from exc
            self._event(msg)
            if until(msg):
                return msg

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One CDP command; its result (a CDP error raises BenchError)."""
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params or {}}))
        msg = self._recv(lambda m, i=self._id: m.get("id") == i)
        if "error" in msg:
            raise BenchError(f"CDP {method}: {msg['error']}")
        return dict(msg.get("result") or {})

    def open(self, path: Path) -> None:
        """Navigate to a local file and wait for its load event."""
        self.send("Page.navigate", {"url": path.resolve().as_uri()})
        self._recv(lambda m: m.get("method") == "Page.loadEventFired")

    def eval(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises awaited); a thrown error raises BenchError."""
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True})  # fmt: skip
        if "exceptionDetails" in res:
            raise BenchError(f"javascript error: {res['exceptionDetails'].get('text')}: {expression[:200]}")
        return (res.get("result") or {}).get("value")

    def screenshot(self, out: Path, full_page: bool = False) -> int:
        """A PNG of the viewport (or the whole page, up to 6000 px), written atomically; returns its bytes."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            h = min(6000, int(self.eval("document.documentElement.scrollHeight")))
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": self.width,
                                                            "height": h, "scale": 1})  # fmt: skip
        data = base64.b64decode(self.send("Page.captureScreenshot", params)["data"])
        atomic_write_bytes(out, data)
        return len(data)

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.__exit__(None, None, None)
            finally:
                self._ws = None
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=30)
            self._proc = None
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = ""


def choose(page: Page, select_id: str, value: str) -> list[str]:
    """Pick ``value`` in REPORT.html's filter ``select_id`` as a user would (the change event); returns the
    question ids then shown."""
    sid, val = json.dumps(select_id), json.dumps(value)
    page.eval(
        f"(() => {{ const s = document.getElementById({sid}); if (!s) throw Error('no select ' + {sid});"
        f" s.value = {val}; s.dispatchEvent(new Event('change')); }})()"
    )
    return list(page.eval("[...document.querySelectorAll('#answers tbody tr')].map((tr) => tr.dataset.qid)"))


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.reporting.browser REPORT.html OUT.png [--select ID=VALUE]``: the docs screenshot."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("page", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--select", action="append", default=[], metavar="ID=VALUE", help="pick a filter value")
    p.add_argument("--scroll-to", default="", help="CSS selector scrolled to the top before the shot")
    args = p.parse_args(argv)
    with Page(width=1400, height=1000) as page:
        page.open(args.page)
        for item in args.select:
            select_id, _, value = item.partition("=")
            choose(page, select_id, value)
        if args.scroll_to:
            page.eval(f"document.querySelector({json.dumps(args.scroll_to)}).scrollIntoView()")
        size = page.screenshot(args.png)
        if page.console_errors:
            raise BenchError(f"console errors: {page.console_errors}")
    print(f"{args.png}: {size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
