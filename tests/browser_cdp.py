"""Headless Chromium over the Chrome DevTools Protocol: what the browser test drives, and the README's screenshot.

    python tests/browser_cdp.py results/report.html docs/report-demo.png

Chromium comes from scripts/browser/install-chromium.sh (idempotent; apt-get as root, like Slurm's start.sh)."""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from evalkit.util.procs import kill_group

REPO = Path(__file__).resolve().parents[1]

CHROMIUM_FLAGS = [
    # the flags measured to work on these machines (/work/.library/env/machines/python.md): no sandbox as root, no
    # GPU, and none of Chromium's own background connections, which a closed network refuses
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


def install_chromium() -> str:
    """The Chromium binary, installed first if missing."""
    done = subprocess.run(
        [str(REPO / "scripts" / "browser" / "install-chromium.sh")], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"install-chromium.sh failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


class DevTools:
    """One page target of a running Chromium, over its DevTools websocket: commands, and the events seen so far."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            self.events.append(msg)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=60)))


@contextmanager
def open_page(chromium: str, profile: Path) -> Iterator[DevTools]:
    """A fresh headless Chromium (its own profile folder) and its first page; the browser is killed on exit."""
    proc = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # "DevTools listening on ws://127.0.0.1:<port>/devtools/browser/<id>"
            lines.append(line)
            if m := re.search(r"DevTools listening on ws://([\d.]+:\d+)/", line):
                break
        else:
            raise RuntimeError("Chromium exited before its DevTools endpoint came up:\n" + "".join(lines[-30:]))
        pages = [t for t in httpx.get(f"http://{m.group(1)}/json/list").json() if t["type"] == "page"]
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 2**20) as ws:
            yield DevTools(ws)
    finally:
        kill_group(proc)
        proc.stderr.close()  # read only up to the DevTools line: left open, the pipe is a ResourceWarning (an error)


def screenshot_clip(width: int, height: int) -> dict[str, float]:
    return {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/browser_cdp.py REPORT.html OUT.png", file=sys.stderr)
        return 2
    report, out = Path(argv[0]).resolve(), Path(argv[1])
    with tempfile.TemporaryDirectory() as profile, open_page(install_chromium(), Path(profile)) as page:
        page.call("Page.enable")
        page.call("Emulation.setDeviceMetricsOverride", width=1100, height=1000, deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url=report.as_uri())
        page.wait_for("Page.loadEventFired")
        shot = page.call("Page.captureScreenshot", format="png", clip=screenshot_clip(1100, 1000))
    out.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot of {report}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
