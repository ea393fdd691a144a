"""Servers in their own processes, as `make run` starts them: for `bench_game` and the end-to-end tests.

The partner model server (`python -m model_server.serve`) is the usual one; `bench_game` runs
gunicorn the same way.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEMO_CHECKPOINT = ROOT / "model_server" / "checkpoints" / "demo.pt"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class ServerProcess:
    """A server started by `running`: where it listens, how to ask it whether it is ready, and its log."""

    url: str
    ready_url: str
    process: subprocess.Popen
    log_path: Path


@contextmanager
def running(
    command: list[str], *, url: str, ready_url: str, log_path: Path, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """Run `command` from the repository root, its output in `log_path`, until the block ends."""
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield ServerProcess(url=url, ready_url=ready_url, process=process, log_path=log_path)
    finally:
        stop(process, timeout=15)


def stop(process: subprocess.Popen, *, timeout: float) -> None:
    """Terminate a process (gunicorn and Celery stop their children on SIGTERM); kill it if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def serve_partner(
    *,
    checkpoint: Path,
    name: str,
    image_root: Path,
    log_path: Path,
    workers: int | None = None,
    max_delay_ms: float | None = None,
    device: str | None = None,
) -> Iterator[ServerProcess]:
    """Run `python -m model_server.serve` on a free port until the block ends.

    Options left at None take the server's own default (or its MODEL_SERVER_* variable). It does
    not wait for the server: callers do other work while it loads, then call `wait_until_ready`.
    """
    port = free_port()
    Path(image_root).mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "model_server.serve", "--checkpoint", str(checkpoint), "--name", name,
               "--image-root", str(image_root), "--port", str(port)]  # fmt: skip
    for flag, value in (("--workers", workers), ("--max-delay-ms", max_delay_ms), ("--device", device)):
        if value is not None:
            command += [flag, str(value)]
    url = f"http://127.0.0.1:{port}"
    with running(command, url=url, ready_url=f"{url}/v2/health/ready", log_path=log_path) as server:
        yield server


def wait_until_ready(server: ServerProcess, *, timeout: float = 60.0) -> None:
    """Block until the server answers 200 at its ready URL; raise with its log if it exits or never gets there."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.process.args[2]} exited with {server.process.returncode}:\n"
                f"{server.log_path.read_text()[-3000:]}"
            )
        try:
            if httpx.get(server.ready_url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{server.ready_url} did not answer within {timeout:.0f} s:\n{server.log_path.read_text()[-3000:]}"
            )
        time.sleep(0.1)
