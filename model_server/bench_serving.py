"""Benchmark the partner server: raw batched forward vs served throughput and latency.

Measures, in one run: the in-process forward pass at several batch sizes (the limit), the same
with the reveal rendering the server also does, then a real server in a subprocess driven over
HTTP by 1, 8 and 64 concurrent asyncio clients (one item per request, a cached image, ~30
bubbles), and a server limited to batches of one at 64 clients. The load generator is one asyncio
process with pre-encoded bodies, so it takes little CPU from the server.

    python -m model_server.bench_serving [--checkpoint model_server/checkpoints/demo.pt]
        [--seconds 10] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import torch
from PIL import Image

from model_server.config import preset
from model_server.network import gala_small, load_checkpoint, save_checkpoint
from model_server.reveal import pad_bubbles, reveal_batch

logger = logging.getLogger(__name__)

DEMO_CHECKPOINT = Path(__file__).parent / "checkpoints" / "demo.pt"
RAW_BATCH_SIZES = (1, 4, 8, 16, 32, 64)
IMAGE_KEYS = [f"bench/{index}.png" for index in range(16)]
BUBBLES_PER_ITEM = 30


def raw_throughput(model: torch.nn.Module, batch_size: int, seconds: float, reveal: bool) -> float:
    """Return images/s of the in-process forward pass (optionally with reveal) at one batch size."""
    images = torch.randint(0, 256, (batch_size, 3, 256, 256), dtype=torch.uint8)
    bubbles, counts = pad_bubbles([random_bubbles(random.Random(i)) for i in range(batch_size)])
    seen = torch.rand(batch_size, 3, 224, 224)
    done, start = 0, time.perf_counter()
    with torch.inference_mode():
        model(seen)  # warm-up: first calls allocate and pick kernels
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            if reveal:
                seen = reveal_batch(images, bubbles, counts, list(range(done, done + batch_size)))
            model(seen)
            done += batch_size
    return done / (time.perf_counter() - start)


def random_bubbles(rng: random.Random) -> list[tuple[int, int]]:
    """Return ~30 bubbles along a short painted stroke."""
    x, y, points = rng.randrange(40, 216), rng.randrange(40, 216), []
    for _ in range(BUBBLES_PER_ITEM):
        x = min(max(x + rng.randint(-7, 7), 0), 255)
        y = min(max(y + rng.randint(-7, 7), 0), 255)
        points.append((x, y))
    return points


def request_bodies(count: int) -> list[bytes]:
    """Pre-encode one-item infer bodies (different images, bubbles and seeds)."""
    rng, bodies = random.Random(0), []
    for index in range(count):
        points = random_bubbles(rng)
        body = {
            "inputs": [
                {"name": "image_key", "datatype": "BYTES", "shape": [1], "data": [IMAGE_KEYS[index % 16]]},
                {"name": "bubbles", "datatype": "INT32", "shape": [1, len(points), 2],
                 "data": [value for point in points for value in point]},
                {"name": "noise_seed", "datatype": "INT64", "shape": [1], "data": [index]},
            ],
            "parameters": {"top_k": 1},
        }  # fmt: skip
        bodies.append(json.dumps(body).encode())
    return bodies


async def drive(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """Run `clients` closed-loop clients for `seconds`; return throughput and latency."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json"}

    async def client(number: int, session: aiohttp.ClientSession, deadline: float) -> None:
        nonlocal errors
        sent = number
        while loop.time() < deadline:
            began = time.perf_counter()
            async with session.post(url, data=bodies[sent % len(bodies)], headers=headers) as reply:
                await reply.read()
                if reply.status != 200:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - began)
            sent += clients

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm_until = loop.time() + min(1.0, seconds / 4)  # fill batches, warm connections
        await asyncio.gather(*(client(n, session, warm_until) for n in range(clients)))
        latencies.clear()
        start = time.perf_counter()
        await asyncio.gather(*(client(n, session, loop.time() + seconds) for n in range(clients)))
        elapsed = time.perf_counter() - start
    millis = np.array(latencies) * 1000
    return {
        "clients": clients,
        "images_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(millis, 50)) if len(millis) else float("nan"),
        "p99_ms": float(np.percentile(millis, 99)) if len(millis) else float("nan"),
        "errors": errors,
    }


def free_port() -> int:
    """Return a loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(checkpoint: Path, image_root: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """Start `python -m model_server.serve` in a subprocess and wait until it is ready."""
    port = free_port()
    command = [sys.executable, "-m", "model_server.serve", "--checkpoint", str(checkpoint),
               "--image-root", str(image_root), "--port", str(port), *extra]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode()) from None
            time.sleep(0.1)
    return process, url


async def served(url: str, bodies: list[bytes], levels: list[int], seconds: float) -> list[dict]:
    """Warm the image cache, then measure each concurrency level and the mean batch size."""
    async with aiohttp.ClientSession() as session:
        for body in bodies[:16]:  # one request per image key: decoded once, cached after
            async with session.post(url + "/v2/models/partner/infer", data=body) as reply:
                reply.raise_for_status()
        results = []
        for clients in levels:
            async with session.get(url + "/v2/stats") as reply:
                before = await reply.json()
            result = await drive(url + "/v2/models/partner/infer", bodies, clients, seconds)
            async with session.get(url + "/v2/stats") as reply:
                after = await reply.json()
            batches = after["batches"] - before["batches"]
            items = after["mean_batch"] * after["batches"] - before["mean_batch"] * before["batches"]
            result["mean_batch"] = items / batches if batches else 0.0
            results.append(result)
    return results


def run_server_levels(checkpoint: Path, root: Path, extra: list[str], levels: list[int], seconds: float) -> list[dict]:
    """Start a server with extra flags, measure the levels, stop it."""
    process, url = start_server(checkpoint, root, extra)
    try:
        return asyncio.run(served(url, request_bodies(256), levels, seconds))
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> dict:
    """Run the whole benchmark, print the table and ratios, and return the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    parser.add_argument("--seconds", type=float, default=10.0, help="per served measurement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--server-args", default="", help="extra flags for the served runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    checkpoint = args.checkpoint
    if not checkpoint.is_file():
        logger.warning("%s missing: benchmarking random gala_small weights", checkpoint)
        checkpoint = workdir / "random.pt"
        classes = [f"class{i}" for i in range(10)]
        save_checkpoint(checkpoint, gala_small(), preset("gala_small"), classes=classes, version="random")
    root = workdir / "images"
    (root / "bench").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for key in IMAGE_KEYS:
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(root / key)

    torch.set_num_threads(os.cpu_count() or 1)
    model, ckpt = load_checkpoint(checkpoint)
    raw_seconds = max(1.0, args.seconds / 5)
    raw = {size: raw_throughput(model, size, raw_seconds, reveal=False) for size in RAW_BATCH_SIZES}
    best = max(raw, key=raw.get)
    with_reveal = raw_throughput(model, best, raw_seconds * 2, reveal=True)
    del model

    extra = args.server_args.split()
    batched = run_server_levels(checkpoint, root, extra, [1, 8, 64], args.seconds)
    single = run_server_levels(checkpoint, root, [*extra, "--max-batch-size", "1"], [64], args.seconds)
    results = {
        "checkpoint": str(args.checkpoint), "version": ckpt["version"], "cpus": os.cpu_count(),
        "device": "cuda" if torch.cuda.is_available() else "cpu", "raw_forward": raw,
        "raw_best_batch": best, "raw_reveal_forward": with_reveal, "served": batched,
        "served_batch1": single[0],
        "ratio_served64_raw": batched[-1]["images_per_s"] / raw[best],
        "ratio_served64_raw_reveal": batched[-1]["images_per_s"] / with_reveal,
        "ratio_served64_batch1": batched[-1]["images_per_s"] / single[0]["images_per_s"],
    }  # fmt: skip
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def print_table(results: dict) -> None:
    """Print the benchmark as a plain table with the two goal ratios."""
    best = results["raw_best_batch"]
    print(f"\nmodel {results['version']} on {results['device']}, {results['cpus']} CPUs")
    print(f"{'configuration':44} {'images/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'batch':>6}")
    for size, rate in results["raw_forward"].items():
        print(f"{f'raw forward, batch {size}':44} {rate:9.1f}")
    print(f"{f'raw reveal + forward, batch {best}':44} {results['raw_reveal_forward']:9.1f}")
    rows = [(f"served, {r['clients']} clients", r) for r in results["served"]]
    rows.append(("served, max batch 1, 64 clients", results["served_batch1"]))
    for label, r in rows:
        print(f"{label:44} {r['images_per_s']:9.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
              f"{r['mean_batch']:6.1f}" + (f"  ({r['errors']} errors)" if r["errors"] else ""))  # fmt: skip
    print(f"\nserved@64 / raw forward limit      = {results['ratio_served64_raw']:.2f}  (goal >= 0.8)")
    print(f"served@64 / raw reveal+forward     = {results['ratio_served64_raw_reveal']:.2f}")
    print(f"served@64 / max-batch-1 server@64  = {results['ratio_served64_batch1']:.2f}  (goal >= 2)")


if __name__ == "__main__":
    main()
