"""Screenshots of TensorBoard's Time Series and HParams tabs for the docs, in headless Chromium.

Serves ``tensorboard --logdir LOGDIR`` on localhost, opens each page in headless Chromium and
waits in real time before the capture (Chromium's ``--screenshot`` fires before the charts
are drawn), driving the page over the DevTools protocol with the standard library only:

    python experiments/tensorboard_screenshots.py logs/train/multiruns/<time>
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

TIME_SERIES_FILTER = "^(train/(lr|loss_step|loss_epoch)|val/(mA|macro_f1|predictions))$"
#: Closes the Time Series settings pane (open by default on wide windows) to give the cards room.
CLOSE_SETTINGS = (
    "document.querySelectorAll('button[aria-label=\"Close side pane\"]').forEach(b => b.click())"
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port={port}",
]


def free_port() -> int:
    """A TCP port no one listens on now (so a running TensorBoard or browser is left alone)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevTools:
    """A minimal WebSocket client (RFC 6455, text frames) for one DevTools page."""

    def __init__(self, url: str) -> None:
        host, _, path = url.removeprefix("ws://").partition("/")
        name, port = host.split(":")
        self.sock = socket.create_connection((name, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(1)
        if b" 101 " not in response.split(b"\r\n")[0]:
            raise ConnectionError(f"DevTools refused the WebSocket: {response[:80]!r}")
        self.next_id = 0

    def _exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            data += self.sock.recv(count - len(data))
        return data

    def _send(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _receive(self) -> str:
        first, second = self._exact(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._exact(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._exact(8))[0]
        return self._exact(size).decode() if first & 0x0F == 1 else ""

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._receive() or "{}")
            if message.get("id") == self.next_id:
                return message.get("result", {})


def _wait_for(url: str, seconds: float = 60) -> bytes:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return urllib.request.urlopen(url).read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def capture(
    page: DevTools, url: str, out: Path, size: tuple[int, int], wait: float, script: str = ""
) -> None:
    """Load ``url`` at ``size``, wait, run ``script`` and save the screenshot to ``out``."""
    page.call(
        "Emulation.setDeviceMetricsOverride",
        width=size[0],
        height=size[1],
        deviceScaleFactor=1,
        mobile=False,
    )
    page.call("Page.navigate", url=url)
    time.sleep(wait)
    if script:
        page.call("Runtime.evaluate", expression=script)
        time.sleep(2)
    shot = page.call("Page.captureScreenshot", format="png")
    out.write_bytes(base64.b64decode(shot["data"]))
    print(f"{out}: {out.stat().st_size // 1024} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "figures")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds before each capture")
    args = parser.parse_args()
    tensorboard_port, devtools_port = free_port(), free_port()
    base = f"http://127.0.0.1:{tensorboard_port}"
    command = [str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(args.logdir)]
    tensorboard = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(tensorboard_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    chromium = subprocess.Popen(
        ["chromium", *(f.format(port=devtools_port) for f in CHROMIUM_FLAGS), "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(f"{base}/data/runs")
        pages = json.loads(_wait_for(f"http://127.0.0.1:{devtools_port}/json"))
        page = DevTools(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"])
        query = urllib.parse.urlencode({"smoothing": 0, "tagFilter": TIME_SERIES_FILTER})
        series = args.out / "tensorboard_time_series.png"
        capture(
            page, f"{base}/?{query}#timeseries", series, (1500, 1390), args.wait, CLOSE_SETTINGS
        )
        hparams = args.out / "tensorboard_hparams.png"
        capture(page, f"{base}/#hparams", hparams, (2000, 300), args.wait)
    finally:
        chromium.terminate()
        tensorboard.terminate()
        chromium.wait()
        tensorboard.wait()


if __name__ == "__main__":
    main()
