"""The partner model server in its own process, as `make run` starts it, for end-to-end tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
DEMO_CHECKPOINT = ROOT / "model_server" / "checkpoints" / "demo.pt"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_partner(
    *, checkpoint: Path, name: str, image_root: Path, log_path: Path, max_delay_ms: int = 1
) -> Iterator[str]:
    """Run `python -m model_server.serve` on a free port until the block ends; yield its URL."""
    port = free_port()
    Path(image_root).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "model_server.serve", "--checkpoint", str(checkpoint), "--name", name,
               "--image-root", str(image_root), "--port", str(port), "--workers", "1",
               "--max-delay-ms", str(max_delay_ms), "--device", "cpu"]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(url: str, log_path: Path, *, timeout: float = 60) -> None:
    """Block until the server answers ready, failing with its log if it exits or never gets there."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"the partner server never got ready:\n{log_path.read_text()}"
        time.sleep(0.1)
