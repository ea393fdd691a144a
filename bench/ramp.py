"""`python -m bench.ramp` (`make load`): start the stack, ramp real-time players up, print the table.

Each stage runs Locust headless (open loop: players keep arriving at the spawn rate and each
person leaves after a few rounds, replaced by a new one) against a fresh `Stack`, and reads,
from the OS, the CPU each process kind spent during the stage. Rounds are counted in the
database; every submitted round must be scored by the end. Then the floor is measured in the
same run and each stage's CPU per round is set beside it. CSV and HTML reports: var/load/.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import psycopg

from bench.accounting import KINDS, cpu_seconds
from bench.floor import database_floor, model_floor
from bench.stack import ROOT, Stack, StackConfig


def count_rounds(stack: Stack) -> tuple[int, int, int, int]:
    """(submitted or scored, scored, clicks stored, partner guesses stored) in the stack's database."""
    with psycopg.connect(stack.database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FILTER (WHERE status IN ('submitted','scored')), "
                       "count(*) FILTER (WHERE status = 'scored') FROM games_round")  # fmt: skip
        submitted, scored = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM games_click")
        clicks = cursor.fetchone()[0]
    return submitted, scored, clicks, 0


def model_stats(stack: Stack) -> dict:
    return httpx.get(f"{stack.model_url}/v2/stats", timeout=5).json()


def locust_stage(stack: Stack, users: int, seconds: int, out: Path) -> dict[str, dict]:
    """Run one stage of Locust; return its stats rows by request name."""
    prefix = out / f"stage-{users}"
    env = {**os.environ, "BENCH_MEDIA_ROOT": str(stack.workdir / "media")}
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
               "--host", stack.url, "--users", str(users), "--spawn-rate", str(max(1, users // 10)),
               "--run-time", f"{seconds}s", "--csv", str(prefix), "--html", f"{prefix}.html",
               "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10"]  # fmt: skip
    subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    with open(f"{prefix}_stats.csv") as file:
        return {row["Name"]: row for row in csv.DictReader(file)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="10,25,50", help="Concurrent players per stage (comma-separated).")
    parser.add_argument("--seconds", type=int, default=45, help="Length of each stage.")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=16)
    parser.add_argument(
        "--admission-per-minute",
        type=int,
        default=0,
        help="ADMISSION_PLAYERS_PER_MINUTE of the site (0: no cap); arrivals over it get the busy page",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "load")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cores = psutil.cpu_count() or 1
    extra = {"ADMISSION_PLAYERS_PER_MINUTE": str(args.admission_per_minute)}
    config = StackConfig(web_workers=args.web_workers, web_threads=args.web_threads, extra_env=extra)
    rows, totals_rounds, totals_clicks, forwards = [], 0, 0, [0, 0]
    with Stack(config) as stack:
        print(f"stack up: {stack.url} (web {args.web_workers}×{args.web_threads} gthread, "
              f"admission {args.admission_per_minute or 'uncapped'} a minute), {cores} cores", flush=True)  # fmt: skip
        for users in [int(n) for n in args.stages.split(",")]:
            before_rounds, _, before_clicks, _ = count_rounds(stack)
            before_cpu, before_model = cpu_seconds(stack), model_stats(stack)
            psutil.cpu_percent(interval=None)
            started = time.monotonic()
            stats = locust_stage(stack, users, args.seconds, args.out)
            elapsed = time.monotonic() - started
            busy = psutil.cpu_percent(interval=None) / 100
            # The stage's last rounds are scored and their maps built (a build waits MAP_BUILD_COALESCE_S),
            # so their CPU is this stage's.
            stack.wait_for_idle_queue(timeout=60)
            after_rounds, _, after_clicks, _ = count_rounds(stack)
            after_cpu, after_model = cpu_seconds(stack), model_stats(stack)
            rounds = after_rounds - before_rounds
            cpu = {kind: (after_cpu[kind] - before_cpu[kind]) / max(rounds, 1) for kind in KINDS}
            totals_rounds += rounds
            totals_clicks += after_clicks - before_clicks
            forwards[0] += after_model["batched_items"] - before_model["batched_items"]
            forwards[1] += after_model["batches"] - before_model["batches"]
            guess = stats.get("guess", {})
            errors = sum(int(row["Failure Count"]) for name, row in stats.items() if name != "Aggregated")
            refused = int(stats.get("busy", {}).get("Request Count", 0))  # arrivals shown the busy page
            rows.append((users, rounds / elapsed, guess.get("50%", "-"), guess.get("99%", "-"), errors, cpu, busy,
                         int(guess.get("Request Count", 0)), refused))  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            submitted, scored, _, _ = count_rounds(stack)
            if submitted == scored:
                break
            time.sleep(1)
        guesses_per_round = sum(row[7] for row in rows) / max(totals_rounds, 1)
        clicks_per_round = totals_clicks / max(totals_rounds, 1)
        db_floor = database_floor(
            stack.database_url, rounds=200, clicks_per_round=clicks_per_round, guesses_per_round=guesses_per_round
        )
        mean_batch = round(forwards[0] / max(forwards[1], 1))
        per_forward = model_floor(batch=mean_batch)
        model_per_round = forwards[0] / max(totals_rounds, 1) * per_forward
    floor = db_floor + model_per_round
    print()
    print(f"floor per round: database {db_floor * 1000:.1f} ms (raw SQL, same rows), "
          f"model {model_per_round * 1000:.1f} "
          f"ms ({forwards[0] / max(totals_rounds, 1):.1f} forwards at batch {mean_batch}, {per_forward * 1000:.1f} ms "
          f"each); all submitted rounds scored: {submitted == scored} ({scored}/{submitted})")  # fmt: skip
    head = (
        f"{'players':>7} {'per core':>8} {'rounds/s':>8} {'guess p50':>9} {'p99 ms':>7} {'errors':>6} {'refused':>7} "
    )
    head += " ".join(f"{kind + ' ms':>11}" for kind in KINDS) + f" {'total ms':>8} {'× floor':>7} {'machine busy':>12}"
    print(head)
    for users, rate, p50, p99, errors, cpu, busy, _, refused in rows:
        total = sum(cpu.values())
        line = f"{users:>7} {users / cores:>8.1f} {rate:>8.2f} {p50:>9} {p99:>7} {errors:>6} {refused:>7} "
        line += " ".join(f"{cpu[kind] * 1000:>11.1f}" for kind in KINDS)
        line += f" {total * 1000:>8.1f} {total / max(floor, 1e-9):>7.1f} {busy:>11.0%}"
        print(line)
    print(f"\nCPU is per played round, from the OS; reports in {args.out}")


if __name__ == "__main__":
    main()
