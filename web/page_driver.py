"""The built page served from a local HTTP server and driven in headless Chromium.

:class:`PageDriver` serves a built page folder on 127.0.0.1 (a port of its own), starts
``web/drive_page.mjs`` under node (playwright-core, the system's Chromium) and exchanges one
JSON line per command with it. :func:`scanline_strokes` turns a digit's pixels into pen
strokes to replay on the page's pad. Used by the browser test and the page benchmark.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "drive_page.mjs"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The system's Chromium (or Chrome), if one is installed."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {".mjs": "text/javascript", ".wasm": "application/wasm"}

    def log_message(self, format: str, *args: object) -> None:
        pass


class PageDriver:
    """``site`` served and open in headless Chromium; ``ask`` sends a command, returns the reply.

    ``ready`` holds the first reply: the requests refused for leaving the page's origin, the
    browser's version, and the page's errors so far.
    """

    def __init__(self, site: Path, chromium: str, timeout: float = 120) -> None:
        handler = functools.partial(_QuietHandler, directory=str(site))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/index.html"
        self.timeout = timeout
        self.node = subprocess.Popen(
            ["node", str(DRIVER), self.url, chromium],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE.parent,
        )
        self.ready = self._read()

    def _read(self) -> dict:
        line = self.node.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"{DRIVER.name} exited with {self.node.wait(self.timeout)}")
        return json.loads(line)

    def ask(self, op: str, **arguments: object) -> dict:
        self.node.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.node.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.node.poll() is None:
            try:
                self.node.stdin.write('{"op": "quit"}\n')
                self.node.stdin.close()
                self.node.wait(self.timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.node.kill()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> PageDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scanline_strokes(digit: np.ndarray, scale: float, origin: tuple[float, float]) -> list:
    """Pen strokes that draw ``digit`` (28 x 28 uint8): one along each run of ink in a row.

    A pixel of half the full brightness or more is ink. Each pixel is ``scale`` pad pixels
    wide, the digit's corner at ``origin``; each stroke goes through its pixels' centres.
    """
    strokes = []
    for row, line in enumerate(digit >= 128):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], line.astype(np.int8), [0]])))
        y = origin[1] + (row + 0.5) * scale
        for start, end in zip(edges[::2], edges[1::2], strict=True):
            xs = origin[0] + (np.arange(start, end) + 0.5) * scale
            strokes.append([[float(x), float(y)] for x in xs])
    return strokes


def png_bytes(data_url: str) -> bytes:
    """The PNG a canvas's ``toDataURL("image/png")`` holds."""
    head, _, body = data_url.partition(",")
    if head != "data:image/png;base64":
        raise ValueError(f"not a PNG data URL: {head[:40]!r}")
    return base64.b64decode(body)
