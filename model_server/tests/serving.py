"""Helpers for the serving tests: tiny checkpoints, an image folder and a real server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from aiohttp import web
from PIL import Image

from model_server.config import preset
from model_server.network import gala_small, save_checkpoint
from model_server.serve import STATE, ServerSettings, ServerState, create_app

CLASSES = [f"class{index}" for index in range(10)]


def make_checkpoint(path: Path, version: str, seed: int = 0) -> Path:
    """Save a randomly initialised gala_small as a checkpoint of the given version."""
    torch.manual_seed(seed)
    save_checkpoint(path, gala_small(), preset("gala_small"), classes=CLASSES, version=version)
    return path


def attention_sizes() -> list[tuple[int, int]]:
    """Return the (H, W) of each attention map gala_small returns, whatever its GALA placement."""
    with torch.inference_mode():
        _, maps = gala_small().eval().forward_with_attention(torch.zeros(1, 3, 224, 224))
    return [tuple(attention.shape[-2:]) for attention in maps]


def make_images(root: Path) -> Path:
    """Write a few images (square, wide, tall) and some files that are not images."""
    rng = np.random.default_rng(0)
    (root / "birds").mkdir(parents=True, exist_ok=True)
    for name, (height, width) in {"a.png": (256, 256), "b.jpg": (300, 500), "c.png": (400, 260)}.items():
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "birds" / name)
    (root / "birds" / "fake.png").write_text("not an image")
    (root / "notes.txt").write_text("not an image either")
    return root


@dataclass
class RunningServer:
    """A server running in a background thread: its URL and its shared state."""

    url: str
    state: ServerState


@contextmanager
def run_server(settings: ServerSettings) -> Iterator[RunningServer]:
    """Serve create_app(settings) on a free loopback port from a background event loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-server", daemon=True)
    thread.start()
    app = create_app(dataclasses.replace(settings, host="127.0.0.1", port=0))
    runner = web.AppRunner(app, access_log=None)

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)  # port 0: the OS picks a free one
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    url = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield RunningServer(url, app[STATE])
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def infer_body(keys: list[str], bubbles: list[list[list[int]]], seeds: list[int], **params: object) -> dict:
    """Build an OIP infer body by image key (bubbles already padded to one length)."""
    count = len(bubbles[0]) if bubbles else 0
    return {
        "inputs": [
            {"name": "image_key", "datatype": "BYTES", "shape": [len(keys)], "data": keys},
            {"name": "bubbles", "datatype": "INT32", "shape": [len(keys), count, 2], "data": bubbles},
            {"name": "noise_seed", "datatype": "INT64", "shape": [len(seeds)], "data": seeds},
        ],
        "parameters": params,
    }
