"""Promotion under load: does swapping the live partner drop a guess? ``python -m bench.promotion_load``.

A real model server process (`python -m model_server.serve`, admin token set) serves the demo
partner while client threads ask for guesses without pause, as live players' browsers do through
the site; meanwhile the partner is promoted several times, with exactly the calls
`games.services.partners.activate` makes (load the checkpoint as a new version, active; then ask
which version is active). Prints a markdown table: requests, failures, the versions that answered,
latency before / during / after each swap, and how long each swap took. A benchmark, never a
timed test (docs/evolution.md, docs/load-testing.md).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from devtools.partner_process import DEMO_CHECKPOINT, serve_partner, wait_until_ready
from model_server.client import GuessItem, PartnerClient, PartnerError

NAME = "demo-gala"


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: list[tuple[float, float, str]] = field(default_factory=list)  # (sent at, latency s, version)
    failures: list[tuple[float, str]] = field(default_factory=list)

    def ok(self, sent: float, latency: float, version: str) -> None:
        with self.lock:
            self.answers.append((sent, latency, version))

    def failed(self, sent: float, problem: str) -> None:
        with self.lock:
            self.failures.append((sent, problem))


def client_loop(url: str, stop: threading.Event, tally: Tally, seed: int, keys: list[str]) -> None:
    rng = np.random.default_rng(seed)
    with PartnerClient(url, timeout=10.0, retries=0) as client:
        while not stop.is_set():
            bubbles = [(int(x), int(y)) for x, y in rng.integers(20, 236, (30, 2))]
            item = GuessItem(keys[int(rng.integers(len(keys)))], bubbles, int(rng.integers(1 << 30)))
            sent = time.perf_counter()
            try:
                (guess,) = client.guess(NAME, [item])
            except PartnerError as error:
                tally.failed(sent, str(error))
            else:
                tally.ok(sent, time.perf_counter() - sent, guess.model_version)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT)
    parser.add_argument("--clients", type=int, default=8, help="client threads asking without pause")
    parser.add_argument("--promotions", type=int, default=3)
    parser.add_argument("--settle", type=float, default=4.0, help="seconds of load before, between and after swaps")
    args = parser.parse_args(argv)

    token = secrets.token_urlsafe(32)
    work = Path(tempfile.mkdtemp(prefix="promotion-load-"))
    rng = np.random.default_rng(0)
    keys = []
    for index in range(8):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(work / f"{index}.png")
        keys.append(f"{index}.png")
    os.environ["MODEL_SERVER_ADMIN_TOKEN"] = token  # the server process inherits it
    with serve_partner(checkpoint=args.checkpoint, name=NAME, image_root=work, log_path=work / "server.log",
                       device="cpu") as server:  # fmt: skip
        wait_until_ready(server)
        with PartnerClient(server.url, timeout=5.0) as probe:
            first = probe.metadata(NAME)["active_version"]
        stop, tally = threading.Event(), Tally()
        threads = [threading.Thread(target=client_loop, args=(server.url, stop, tally, seed, keys), daemon=True)
                   for seed in range(args.clients)]  # fmt: skip
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        swaps = []
        with PartnerClient(server.url, timeout=120.0, retries=0, admin_token=token) as admin:
            for number in range(1, args.promotions + 1):
                time.sleep(args.settle)
                version = f"promoted-{number}"
                began = time.perf_counter()
                admin.load_version(NAME, str(args.checkpoint), activate=True, version=version)
                active = admin.metadata(NAME)["active_version"]
                swaps.append({"version": version, "began": began, "ended": time.perf_counter(), "active": active})
            time.sleep(args.settle)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        wall = time.perf_counter() - start

    rows = []
    edges = [start] + [edge for swap in swaps for edge in (swap["began"], swap["ended"])] + [start + wall]
    labels = ["before the first swap"]
    for swap in swaps:
        labels += [f"during the swap to {swap['version']}", f"after it, on {swap['version']}"]
    for label, low, high in zip(labels, edges[:-1], edges[1:], strict=True):
        inside = [(latency, version) for sent, latency, version in tally.answers if low <= sent < high]
        latencies = [latency for latency, _ in inside]
        failed = sum(1 for sent, _ in tally.failures if low <= sent < high)
        rows.append({
            "phase": label, "seconds": high - low, "answered": len(inside), "failed": failed,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "versions": dict(Counter(version for _, version in inside)),
        })  # fmt: skip
    total, failed = len(tally.answers), len(tally.failures)
    print(f"Promotion under load: {args.clients} clients without pause, {args.promotions} promotions, "
          f"{wall:.1f} s, first version {first!r}, checkpoint {args.checkpoint.name}\n")  # fmt: skip
    print("| phase | s | answered | failed | p50 ms | p99 ms | versions that answered |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        versions = ", ".join(f"{name} {count}" for name, count in sorted(row["versions"].items()))
        print(f"| {row['phase']} | {row['seconds']:.2f} | {row['answered']} | {row['failed']} | "
              f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {versions} |")  # fmt: skip
    durations = [swap["ended"] - swap["began"] for swap in swaps]
    print(f"\n{total} answered, {failed} failed; swaps took {statistics.mean(durations):.2f} s on average "
          f"(max {max(durations):.2f}); active after each: {', '.join(s['active'] for s in swaps)}")  # fmt: skip
    late = [version for swap in swaps for sent, _, version in tally.answers
            if swap["ended"] <= sent < swap["ended"] + args.settle * 0.9 and version != swap["version"]]  # fmt: skip
    print(f"answers sent after a swap finished but from an older version: {len(late)}")
    if failed:
        print("failures:", Counter(problem for _, problem in tally.failures).most_common(3))
        raise SystemExit(1)
    return rows


if __name__ == "__main__":
    main()
