"""Benchmark the partner server: raw batched forward vs served throughput and latency.

In one run: the in-process forward pass at several batch sizes (the limit), the same with the reveal rendering the
server also does, a real server in a subprocess driven over HTTP by 1, 8 and 64 concurrent asyncio clients (one item
per request, a cached image, ~30 bubbles), a server limited to batches of one at 64 clients, and the same server
sent the image's pixels inline as a JSON body versus as binary tensor data (the protocol's binary extension, a
standard client's default), at 8 clients. The load generator is one asyncio process sending pre-encoded bodies,
so it takes little CPU from the server. Usage:
python -m bench.serving [--checkpoint model_server/checkpoints/demo.pt] [--seconds 10] [--json OUT]
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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import numpy as np
import torch
from PIL import Image

from devtools.partner_process import DEMO_CHECKPOINT
from model_server import wire
from model_server.binary_data import HEADER
from model_server.config import preset
from model_server.inference import input_buffer
from model_server.network import gala_small, save_checkpoint
from model_server.registry import load_model
from model_server.reveal import pad_bubbles, reveal_batch

logger = logging.getLogger(__name__)


RAW_BATCH_SIZES = (1, 4, 8, 16, 32, 64)
IMAGE_KEYS = [f"bench/{index}.png" for index in range(16)]


class CpuMeter:
    """CPU used during a measurement, in cores: this process, the server, and everyone else."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        """Return (machine busy, this process, server) CPU seconds; zeros where /proc is absent."""
        tick = os.sysconf("SC_CLK_TCK")
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
            busy = (sum(fields[:8]) - fields[3] - fields[4]) / tick  # all but idle and iowait
            server = 0.0
            if self.server_pid is not None:
                stat = Path(f"/proc/{self.server_pid}/stat").read_text().rsplit(")", 1)[1].split()
                server = (int(stat[11]) + int(stat[12])) / tick  # utime + stime, all threads
        except OSError:
            return 0.0, time.process_time(), 0.0
        return busy, time.process_time(), server

    def read(self, elapsed: float) -> dict[str, float]:
        """Return cores used since the meter started: client (this process), server, other."""
        busy, own, server = (end - start for end, start in zip(self._sample(), self._start, strict=True))
        other = max(0.0, busy - own - server)
        return {"cpu_client": own / elapsed, "cpu_server": server / elapsed, "cpu_other": other / elapsed}


def raw_throughput(model: torch.nn.Module, batch_size: int, seconds: float, streams: int, reveal: bool) -> dict:
    """Return images/s of in-process forward passes (optionally with reveal) at one batch size.

    `streams` threads run batches at once, each with cores // streams torch threads: one stream
    of two threads and two streams of one thread are both ways a 2-core machine can be filled.
    """
    threads = max(1, (os.cpu_count() or 1) // streams)
    images = torch.randint(0, 256, (batch_size, 3, 256, 256), dtype=torch.uint8)
    bubbles, counts = pad_bubbles([random_bubbles(random.Random(i)) for i in range(batch_size)])
    done = [0] * streams
    # Measuring starts when every stream has warmed up (first calls allocate and pick kernels).
    begun: list[tuple[CpuMeter, float]] = []
    ready = threading.Barrier(streams, action=lambda: begun.append((CpuMeter(), time.perf_counter())))

    def run(stream: int) -> None:
        torch.set_num_threads(threads)
        seen = torch.rand(batch_size, 3, 224, 224).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            model(seen)
            ready.wait()
            while time.perf_counter() < begun[0][1] + seconds:
                if reveal:
                    seeds = list(range(done[stream], done[stream] + batch_size))
                    seen = reveal_batch(images, bubbles, counts, seeds, out=input_buffer(batch_size, seen.device))
                model(seen)
                done[stream] += batch_size

    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(run, range(streams)))
    meter, start = begun[0]
    elapsed = time.perf_counter() - start
    cpu = meter.read(elapsed)
    rate = sum(done) / elapsed
    return {"images_per_s": rate, "images_per_cpu_s": rate / max(cpu["cpu_client"], 1e-9), "batch": batch_size,
            "streams": streams, **cpu}  # fmt: skip


def random_bubbles(rng: random.Random) -> list[tuple[int, int]]:
    """Return ~30 bubbles along a short painted stroke."""
    x, y, points = rng.randrange(40, 216), rng.randrange(40, 216), []
    for _ in range(30):  # three partner queries' worth of painting
        x = min(max(x + rng.randint(-7, 7), 0), 255)
        y = min(max(y + rng.randint(-7, 7), 0), 255)
        points.append((x, y))
    return points


JSON_HEADERS = {"Content-Type": "application/json"}


def request_bodies(count: int) -> list[tuple[bytes, dict[str, str]]]:
    """Pre-encode one-item infer bodies by image key (different images, bubbles and seeds)."""
    rng, bodies = random.Random(0), []
    for index in range(count):
        points = random_bubbles(rng)
        body = wire.infer_request([IMAGE_KEYS[index % 16]], [points], [index], top_k=1)
        bodies.append((json.dumps(body).encode(), JSON_HEADERS))
    return bodies


def pixel_bodies(count: int, *, binary: bool) -> list[tuple[bytes, dict[str, str]]]:
    """Pre-encode one-item infer bodies that carry the image's pixels: all JSON, or binary tensor data.

    The binary bodies are what a standard client sends by default: the JSON header names the tensors, their
    bytes follow it, and the outputs come back binary too (binary_data_output).
    """
    rng, pixels_rng, bodies = random.Random(1), np.random.default_rng(1), []
    for index in range(count):
        points = random_bubbles(rng)
        pixels = pixels_rng.integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
        tensors = [
            (wire.IMAGE, list(pixels.shape), pixels),
            (wire.BUBBLES, [1, len(points), 2], np.array(points, dtype="<i4")),
            (wire.NOISE_SEED, [1], np.array([index], dtype="<i8")),
        ]
        inputs, raw = [], []
        for name, shape, data in tensors:
            tensor = {"name": name, "datatype": wire.INPUTS[name].datatype, "shape": shape}
            if binary:
                raw.append(data.tobytes())
                tensor["parameters"] = {"binary_data_size": len(raw[-1])}
            else:
                tensor["data"] = data.flatten().tolist()
            inputs.append(tensor)
        header = json.dumps({"inputs": inputs, "parameters": {"top_k": 1, "binary_data_output": binary}}).encode()
        headers = {"Content-Type": "application/octet-stream", HEADER: str(len(header))} if binary else JSON_HEADERS
        bodies.append((b"".join([header, *raw]), headers))
    return bodies


async def drive(
    url: str, bodies: list[tuple[bytes, dict[str, str]]], clients: int, seconds: float, server_pid: int
) -> dict:
    """Run `clients` closed-loop clients for `seconds` after a warm-up; return throughput and latency."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0

    async def client(number: int, session: aiohttp.ClientSession, deadline: float) -> None:
        nonlocal errors
        sent = number
        while loop.time() < deadline:
            began = time.perf_counter()
            body, headers = bodies[sent % len(bodies)]
            async with session.post(url, data=body, headers=headers) as reply:
                await reply.read()
                if reply.status != 200:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - began)
            sent += clients

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm_until = loop.time() + min(1.0, seconds / 4)  # fill batches, open connections
        await asyncio.gather(*(client(n, session, warm_until) for n in range(clients)))
        latencies.clear()
        meter, start = CpuMeter(server_pid), time.perf_counter()
        await asyncio.gather(*(client(n, session, loop.time() + seconds) for n in range(clients)))
        elapsed = time.perf_counter() - start
    millis, cpu = np.array(latencies) * 1000, meter.read(elapsed)
    return {
        "clients": clients,
        "images_per_s": len(latencies) / elapsed,
        "images_per_cpu_s": len(latencies) / elapsed / max(cpu["cpu_server"], 1e-9),
        "p50_ms": float(np.percentile(millis, 50)) if len(millis) else float("nan"),
        "p99_ms": float(np.percentile(millis, 99)) if len(millis) else float("nan"),
        "errors": errors,
        **cpu,
    }


def start_server(checkpoint: Path, image_root: Path, extra: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    """Start `python -m model_server.serve` in a subprocess and wait until it accepts connections."""
    with socket.socket() as probe:  # a free port; the tiny race with other programs is acceptable here
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "model_server.serve", "--checkpoint", str(checkpoint),
               "--image-root", str(image_root), "--port", str(port), *extra]  # fmt: skip
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited; see {log}") from None
            time.sleep(0.1)
    raise RuntimeError(f"the server did not start in 60 s; see {log}")


async def served(
    url: str, pid: int, bodies: list[tuple[bytes, dict[str, str]]], levels: list[int], seconds: float
) -> list[dict]:
    """Warm the image cache, then measure each concurrency level and the mean batch size."""
    async with aiohttp.ClientSession() as session:
        for body, headers in bodies[:16]:  # one request per image key: decoded once, cached after
            async with session.post(url + "/v2/models/partner/infer", data=body, headers=headers) as reply:
                reply.raise_for_status()
        results = []
        for clients in levels:
            async with session.get(url + "/v2/stats") as reply:
                before = await reply.json()
            result = await drive(url + "/v2/models/partner/infer", bodies, clients, seconds, pid)
            async with session.get(url + "/v2/stats") as reply:
                after = await reply.json()
            batches = after["batches"] - before["batches"]
            result["mean_batch"] = (after["batched_items"] - before["batched_items"]) / max(batches, 1)
            results.append(result)
    return results


def run_server_levels(checkpoint: Path, root: Path, extra: list[str], levels: list[int], seconds: float) -> list[dict]:
    """Start a server with extra flags, measure the levels, stop it."""
    process, url = start_server(checkpoint, root, extra, root.parent / "server.log")
    try:
        return asyncio.run(served(url, process.pid, request_bodies(256), levels, seconds))
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_json_vs_binary(checkpoint: Path, root: Path, extra: list[str], clients: int, seconds: float) -> list[dict]:
    """On one server, measure inline pixels sent as a JSON body, then as binary tensor data."""
    process, url = start_server(checkpoint, root, extra, root.parent / "server.log")
    try:
        results = []
        for binary in (False, True):
            bodies = pixel_bodies(32, binary=binary)
            [result] = asyncio.run(served(url, process.pid, bodies, [clients], seconds))
            result["body"] = "binary" if binary else "JSON"
            result["body_bytes"] = sum(len(body) for body, _ in bodies) / len(bodies)
            results.append(result)
        return results
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> dict:
    """Run the whole benchmark, print the table and ratios, and return the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    parser.add_argument("--seconds", type=float, default=10.0, help="per served measurement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--server-args", default="", help="flags for the served runs (default: raw best batch)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    workdir, checkpoint = Path(tempfile.mkdtemp(prefix="bench-serving-")), args.checkpoint
    if not checkpoint.is_file():
        logger.warning("%s missing: benchmarking random gala_small weights", checkpoint)
        checkpoint, classes = workdir / "random.pt", [f"class{i}" for i in range(10)]
        save_checkpoint(checkpoint, gala_small(), preset("gala_small"), classes=classes, version="random")
    root, rng = workdir / "images", np.random.default_rng(0)
    (root / "bench").mkdir(parents=True)
    for key in IMAGE_KEYS:
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(root / key)

    loaded = load_model("partner", checkpoint, torch.device("cpu"))  # prepared exactly as the server does
    model, version = loaded.model, loaded.version
    raw_seconds = max(1.0, args.seconds / 5)
    streams = sorted({1, min(2, os.cpu_count() or 1)})
    raw = [raw_throughput(model, size, raw_seconds, n, reveal=False) for size in RAW_BATCH_SIZES for n in streams]
    best = max(raw, key=lambda row: row["images_per_s"])
    with_reveal = raw_throughput(model, best["batch"], raw_seconds * 2, best["streams"], reveal=True)

    # Unless told otherwise, serve at the raw sweet spot: on a CPU, bigger batches only thrash the caches.
    extra = args.server_args.split() or ["--max-batch-size", str(best["batch"]), "--workers", str(best["streams"])]
    batched = run_server_levels(checkpoint, root, extra, [1, 8, 64], args.seconds)
    single = run_server_levels(checkpoint, root, [*extra, "--max-batch-size", "1"], [64], args.seconds)
    bodies = run_json_vs_binary(checkpoint, root, extra, 8, args.seconds)
    results = {
        "checkpoint": str(args.checkpoint), "version": version, "cpus": os.cpu_count(),
        "device": "cuda" if torch.cuda.is_available() else "cpu", "server_args": extra,
        "raw_forward": raw, "raw_best": best, "raw_reveal_forward": with_reveal,
        "served": batched, "served_batch1": single[0], "json_vs_binary": bodies,
        "ratio_json_binary": bodies[0]["images_per_s"] / bodies[1]["images_per_s"],
        "cpu_ratio_json_binary": bodies[0]["images_per_cpu_s"] / bodies[1]["images_per_cpu_s"],
    }  # fmt: skip
    # Ratios by wall clock, and per CPU-second used (these hold up when other programs share the machine).
    pairs = {"served64_raw": best, "served64_raw_reveal": with_reveal, "served64_batch1": single[0]}
    for name, reference in pairs.items():
        results["ratio_" + name] = batched[-1]["images_per_s"] / reference["images_per_s"]
        results["cpu_ratio_" + name] = batched[-1]["images_per_cpu_s"] / reference["images_per_cpu_s"]
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def print_table(results: dict) -> None:
    """Print the benchmark as a plain table with the goal ratios, by wall clock and per CPU-second."""
    best = results["raw_best"]
    print(f"\nmodel {results['version']} on {results['device']}, {results['cpus']} CPUs")
    print(f"{'configuration':42} {'images/s':>8} {'img/CPU-s':>9} {'p50 ms':>7} {'p99 ms':>7} {'batch':>5}  "
          "cores used: client server other")  # fmt: skip
    rows = [(f"raw forward, batch {r['batch']}, {r['streams']} stream(s)", r) for r in results["raw_forward"]]
    rows += [(f"raw reveal+forward, batch {best['batch']}, {best['streams']} stream(s)", results["raw_reveal_forward"])]
    rows += [(f"served, {r['clients']} clients", r) for r in results["served"]]
    rows += [("served, max batch 1, 64 clients", results["served_batch1"])]
    rows += [(f"served@8, pixels as {r['body']} ({r['body_bytes'] / 1000:.0f} KB)", r)
             for r in results["json_vs_binary"]]  # fmt: skip
    for label, r in rows:
        latency = f"{r['p50_ms']:7.1f} {r['p99_ms']:7.1f} {r['mean_batch']:5.1f}" if "clients" in r else " " * 21
        errors = f"  {r['errors']} errors" if r.get("errors") else ""
        print(f"{label:42} {r['images_per_s']:8.1f} {r['images_per_cpu_s']:9.1f} {latency}  {r['cpu_client']:17.2f} "
              f"{r['cpu_server']:6.2f} {r['cpu_other']:5.2f}{errors}")  # fmt: skip
    print(f"\n{'ratio':36} {'wall':>5} {'per CPU-s':>9}")
    for label, key, goal in [
        ("served@64 / raw forward limit", "served64_raw", "(goal >= 0.8)"),
        ("served@64 / raw reveal+forward", "served64_raw_reveal", ""),
        ("served@64 / max-batch-1 server@64", "served64_batch1", "(goal >= 2)"),
        ("served@8 pixels JSON / binary", "json_binary", "(below 1: binary serves more)"),
    ]:
        print(f"{label:36} {results['ratio_' + key]:5.2f} {results['cpu_ratio_' + key]:9.2f}  {goal}")
    print("'other' is CPU taken by programs outside the benchmark; when it is high, trust the per-CPU-s column.")


if __name__ == "__main__":
    main()
