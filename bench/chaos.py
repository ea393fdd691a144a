"""`python -m bench.chaos` (`make chaos`): break the running stack on purpose and check that nothing is lost.

Starts the production stack (`bench.stack.Stack`) on a private Postgres (`bench.postgres`), sets
simulated players playing through the HTTP API (the players of `devtools.players`, which retry a
503 that carries Retry-After as the page's upload queue does), and then, one after the other:

- worker: SIGKILL to the Celery worker and its children while rounds wait to be scored, restarted
  5 s later; the sweep re-enqueues the lost tasks, each round is scored once.
- redis: Redis stopped for 30 s; play goes on (rate limits per process, rounds stored), scoring
  when it returns.
- model: the model server stopped for 60 s; live guesses answer 503 + Retry-After and the page
  plays on; scoring retries.
- postgres: Postgres stopped for 10 s, then started again; 503 + Retry-After meanwhile, the
  clients resend.

Then it waits for every submitted round to be scored and checks, from the database: every round
a player saw accepted is stored and scored, exactly once (one scoring, one partner guess per query
point, each participant's score equal to the sum of their rounds), no player saw a 5xx other than
a 503 with Retry-After, and every stored map equals a rebuild from the raw clicks. It prints a
table per fault and exits 1 when any check fails. See docs/operations.md, "Faults".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import httpx
import numpy as np
import psycopg

from bench.postgres import PrivatePostgres
from bench.stack import PY, ROOT, Stack, StackConfig

FAULTS = ("worker", "redis", "model", "postgres")
GIVE_UP_S = 240.0  # a player resends a 503 with Retry-After for this long before calling it an error

# Run in the stack's environment: the stored maps, a rebuild from raw clicks, and the largest difference.
MAP_CHECK = """
import json
import numpy as np
from maps.models import ClickMap
from maps.services import counts_array, heatmap_array, rebuild_maps
def snapshot():
    maps = {}
    for m in ClickMap.objects.all():
        counts = counts_array(m).astype(np.float64) if m.counts else None
        heat = heatmap_array(m).astype(np.float64) if m.heatmap else None
        maps[(m.experiment_id, m.image_id)] = (m.participant_count, m.round_count, m.click_count, m.rounds_digest,
                                               counts, heat)
    return maps
def differ(a, b):
    if a[:4] != b[:4]:
        return True
    for x, y in zip(a[4:], b[4:]):
        if (x is None) != (y is None) or (x is not None and float(np.abs(x - y).max()) > 1e-6):
            return True
    return False
before = snapshot()
rebuild_maps()
after = snapshot()
# A rebuild also writes an empty map for an image whose rounds all went uncounted: no map before is equal to it.
stale = [key for key in after if (after[key][1] if key not in before else differ(before[key], after[key]))]
print("MAPCHECK " + json.dumps({"maps": len(after), "stale": len(stale), "gone": len(set(before) - set(after)),
                                "with_heatmap": sum(1 for v in after.values() if v[5] is not None),
                                "examples": [f"{key}: {before.get(key, (None,))[:4]} -> {after[key][:4]}"
                                             for key in stale[:3]]}))
"""


@dataclass
class Phase:
    """What the players met while one fault (or the calm before it) lasted."""

    name: str
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    answers: Counter = field(default_factory=Counter)  # "503 retry-after", "502", "transport" ...
    unexpected: Counter = field(default_factory=Counter)  # endpoint + status of every 5xx that should not be
    failed: Counter = field(default_factory=Counter)  # rounds or visits a player could not finish, by cause
    submitted: list[str] = field(default_factory=list)  # client round ids whose submit was accepted
    recovered_after_s: float | None = None  # from the end of the fault to the next accepted submit


class Recorder:
    """Shared by the player threads: the current phase and everything seen in each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phases: list[Phase] = [Phase("calm")]
        self.examples: dict[str, str] = {}

    @property
    def phase(self) -> Phase:
        return self.phases[-1]

    def begin(self, name: str) -> Phase:
        with self.lock:
            self.phase.ended = time.monotonic()
            self.phases.append(Phase(name))
            return self.phase

    def answer(self, kind: str) -> None:
        with self.lock:
            self.phase.answers[kind] += 1

    def unexpected(self, what: str, detail: str) -> None:
        with self.lock:
            self.phase.unexpected[what] += 1
            self.examples.setdefault(what, detail[:300])

    def failed_round(self, what: str, detail: str) -> None:
        """A round or visit a player could not finish (any cause: a 5xx is also counted as unexpected)."""
        with self.lock:
            self.phase.failed[what] += 1
            self.examples.setdefault(what, detail[:300])

    def submitted(self, client_round_id: str) -> None:
        with self.lock:
            self.phase.submitted.append(client_round_id)
            for phase in self.phases:  # the first accepted submit after a fault ended
                if phase.ended is not None and phase.recovered_after_s is None and phase.name in FAULTS:
                    phase.recovered_after_s = round(time.monotonic() - phase.ended, 1)


def player_class():
    """devtools.players' Player, taught to wait out a 503 that carries Retry-After as the browser does.

    Imported here, not at the top: devtools.players needs Django configured, and the settings
    come from the stack's environment, which exists only once the stack has started.
    """
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clickme_site.settings")
    django.setup()
    from devtools.players import NoImageLeft, Player, RoundFailed, Tally

    class ChaosPlayer(Player):
        recorder: Recorder

        def call(self, endpoint, method, path, expect=(200,), **kwargs):
            give_up = time.monotonic() + GIVE_UP_S
            while True:
                try:
                    response = super().call(endpoint, method, path, expect=tuple(range(100, 600)), **kwargs)
                except RoundFailed as failure:  # no answer at all: the site itself never stops in this suite
                    self.recorder.answer("transport")
                    self.recorder.unexpected(f"{endpoint} transport", str(failure))
                    if time.monotonic() > give_up:
                        raise
                    time.sleep(1)
                    continue
                code, retry_after = response.status_code, response.headers.get("Retry-After")
                if code == 429 and retry_after is not None and 429 not in expect and time.monotonic() < give_up:
                    # Too fast (a guess that the absent partner answers at once): the page waits and resends.
                    self.recorder.answer("429 retry-after")
                    time.sleep(min(float(retry_after), 10.0))
                    continue
                if code >= 500:
                    if code == 503 and retry_after is not None:
                        self.recorder.answer("503 retry-after")
                        if endpoint == "guess" and 503 in expect:
                            return response  # the partner is away: the page paints on without a guess
                        if time.monotonic() < give_up:
                            time.sleep(min(float(retry_after), 10.0))
                            continue
                    self.recorder.answer(str(code))
                    self.recorder.unexpected(f"{endpoint} {code}", response.text)
                    raise RoundFailed(f"{endpoint} {code}", response.text[:300])
                if code not in expect:
                    raise RoundFailed(f"{endpoint} {code}", response.text[:300])
                self.recorder.answer(str(code))
                return response

        def play_round(self):
            played = super().play_round()
            self.recorder.submitted(played.client_round_id)
            return played

    return ChaosPlayer, Tally, RoundFailed, NoImageLeft


def play(url: str, recorder: Recorder, stop: threading.Event, index: int, classes: tuple) -> None:
    """One thread: participant after participant, each for a visit of up to 8 rounds, until told to stop."""
    player_type, tally_type, round_failed, no_image_left = classes
    visit = 0
    while not stop.is_set():
        visit += 1
        player = player_type(url=url, slug="demo", tally=tally_type(), masks=lambda _: None,
                             rng=np.random.default_rng([index, visit]), think_ms=50.0)  # fmt: skip
        player.recorder = recorder
        try:
            player.join()
            for _ in range(8):
                if stop.is_set():
                    break
                try:
                    player.play_round()
                except round_failed as failure:
                    recorder.failed_round(f"round {failure.kind}", str(failure))
        except (round_failed, no_image_left) as failure:
            recorder.failed_round(f"visit {type(failure).__name__}", str(failure))
        except Exception as exc:  # a bug in the harness must show, not hang the run
            recorder.failed_round(f"player {type(exc).__name__}", str(exc))
        finally:
            player.close()


def waiting_rounds(stack: Stack) -> int:
    with psycopg.connect(stack.database_url) as connection:
        return connection.execute("SELECT count(*) FROM games_round WHERE status = 'submitted'").fetchone()[0]


def wait_until_scoring_waits(stack: Stack, timeout: float = 60.0) -> int:
    """Block until some submitted round waits to be scored (so the kill lands mid-scoring)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = waiting_rounds(stack)
        if waiting:
            return waiting
        time.sleep(0.05)
    return 0


def inject(fault: str, stack: Stack, pg: PrivatePostgres, args: argparse.Namespace) -> str:
    """Do one fault and undo it; returns what was done, for the table."""
    if fault == "worker":
        waiting = wait_until_scoring_waits(stack)
        stack.kill("worker", signal.SIGKILL)
        time.sleep(5)
        stack.respawn("worker")
        return f"SIGKILL with {waiting} round(s) waiting; restarted after 5 s"
    if fault == "redis":
        stack.kill("redis", signal.SIGTERM)
        time.sleep(args.redis_down)
        stack.respawn("redis")
        return f"stopped {args.redis_down:.0f} s"
    if fault == "model":
        stack.kill("model", signal.SIGTERM)
        time.sleep(args.model_down)
        stack.respawn("model")
        stack.wait_up("model")
        return f"stopped {args.model_down:.0f} s"
    if fault == "postgres":
        pg.restart(down_s=args.postgres_down)
        return f"stopped {args.postgres_down:.0f} s, started again"
    raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")


def wait_for_scoring(stack: Stack, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    waiting = waiting_rounds(stack)
    while waiting and time.monotonic() < deadline:
        time.sleep(1)
        waiting = waiting_rounds(stack)
    return waiting


@dataclass
class RoundCheck:
    missing: list[str]
    unscored: list[str]
    double: list[str]  # scored more than once, or with more partner guesses than query points
    bad_totals: int  # participants whose score is not the sum of their rounds


def check_rounds(stack: Stack, client_ids: list[str]) -> RoundCheck:
    query = (
        "SELECT r.client_round_id::text, r.status, r.scoring_attempts,"
        " r.bubble_count / (r.settings->>'query_every')::int,"
        " (SELECT count(*) FROM games_partnerguess g WHERE g.round_id = r.id)"
        " FROM games_round r WHERE r.client_round_id::text = ANY(%s)"
    )
    totals = """
        SELECT count(*) FROM games_participant p WHERE p.score <> COALESCE((
            SELECT sum(r.points) FROM games_round r JOIN games_playsession s ON s.id = r.session_id
            WHERE r.participant_id = p.id AND r.status = 'scored' AND r.outcome <> 'skipped'
              AND r.invalidated_at IS NULL AND s.invalidated_at IS NULL), 0)
    """
    with psycopg.connect(stack.database_url) as connection:
        rows = {row[0]: row[1:] for row in connection.execute(query, [client_ids]).fetchall()}
        bad_totals = connection.execute(totals).fetchone()[0]
    missing = [cid for cid in client_ids if cid not in rows]
    unscored = [cid for cid, row in rows.items() if row[0] != "scored"]
    double = [cid for cid, (status, attempts, queries, guesses) in rows.items()
              if status == "scored" and (attempts != 1 or guesses > queries)]  # fmt: skip
    return RoundCheck(missing, unscored, double, bad_totals)


def check_maps(stack: Stack) -> dict:
    done = subprocess.run([PY, "manage.py", "shell", "-c", MAP_CHECK], cwd=ROOT, env=stack.env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith("MAPCHECK "):
            return json.loads(line.removeprefix("MAPCHECK "))
    raise RuntimeError(f"the map check failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def keep_logs(stack: Stack) -> None:
    """Copy each process's log to var/chaos/ before the stack's folder goes."""
    out = ROOT / "var" / "chaos"
    out.mkdir(parents=True, exist_ok=True)
    for log in stack.workdir.glob("*.log"):
        shutil.copyfile(log, out / log.name)
    print(f"process logs: {out}")


def health(stack: Stack) -> str:
    try:
        body = httpx.get(f"{stack.url}/healthz", timeout=5).json()
        degraded = ", ".join(f"{name} {body[name]}" for name in body["degraded"])
        return (
            f"{body['status']} ({degraded or 'all parts ok'}; oldest unscored {body['oldest_unscored_round_age_s']} s)"
        )
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return f"no answer ({type(exc).__name__})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", default=",".join(FAULTS), help="Comma-separated, in this order by default.")
    parser.add_argument("--players", type=int, default=6, help="Simulated players playing throughout.")
    parser.add_argument("--calm", type=float, default=15.0, help="Seconds of play before the first fault.")
    parser.add_argument("--between", type=float, default=15.0, help="Seconds of play after each fault.")
    parser.add_argument("--redis-down", type=float, default=30.0)
    parser.add_argument("--model-down", type=float, default=60.0)
    parser.add_argument("--postgres-down", type=float, default=10.0)
    parser.add_argument("--score-timeout", type=float, default=240.0, help="Seconds to wait for scoring at the end.")
    args = parser.parse_args(argv)
    faults = [name.strip() for name in args.faults.split(",") if name.strip()]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}")

    config = StackConfig(panel=False, extra_env={
        "SCORING_SWEEP_EVERY_S": "15",  # the sweeps are what recover a killed worker's tasks: run them often here
        "MAP_SWEEP_EVERY_S": "5",
        "DATABASE_POOL_TIMEOUT": "5",
    })  # fmt: skip
    with PrivatePostgres() as pg:
        config.postgres_url = pg.url
        with Stack(config) as stack:
            print(f"stack up: site {stack.url}, Postgres {pg.url}, {args.players} players", flush=True)
            os.environ.update(stack.env)
            classes = player_class()
            recorder, stop = Recorder(), threading.Event()
            threads = [threading.Thread(target=play, args=(stack.url, recorder, stop, i, classes), daemon=True)
                       for i in range(args.players)]  # fmt: skip
            for thread in threads:
                thread.start()
            time.sleep(args.calm)
            done: dict[str, str] = {}
            for fault in faults:
                recorder.begin(fault)
                print(f"fault {fault}: ...", end=" ", flush=True)
                done[fault] = inject(fault, stack, pg, args)
                recorder.begin(f"after {fault}")
                print(f"{done[fault]}; health now {health(stack)}", flush=True)
                time.sleep(args.between)
            stop.set()
            for thread in threads:
                thread.join(timeout=GIVE_UP_S + 30)
            recorder.phase.ended = time.monotonic()
            print("players stopped; waiting for scoring ...", flush=True)
            still_waiting = wait_for_scoring(stack, args.score_timeout)
            every_id = [cid for phase in recorder.phases for cid in phase.submitted]
            rounds = check_rounds(stack, every_id)
            stack.wait_for_idle_queue()  # the map builds that scoring enqueued, then one map sweep and its builds
            time.sleep(6)
            stack.wait_for_idle_queue()
            maps = check_maps(stack)
            final_health = health(stack)
            keep_logs(stack)
    return report(recorder, done, rounds, maps, still_waiting, final_health)


def report(recorder: Recorder, done: dict[str, str], rounds: RoundCheck, maps: dict, waiting: int, final: str) -> int:
    lost = set(rounds.missing) | set(rounds.unscored)
    double = set(rounds.double)
    by_fault: dict[str, list[Phase]] = defaultdict(list)  # a fault and the calm after it, together
    for phase in recorder.phases:
        by_fault[phase.name.removeprefix("after ")].append(phase)
    head = (f"{'fault':<9} {'what was done':<54} {'submitted':>9} {'lost':>5} {'double':>6} "
            f"{'503+RA':>7} {'other 5xx':>9} {'failed':>6} {'recovered s':>11}")  # fmt: skip
    print("\n" + head + "\n" + "-" * len(head))
    failed = False
    for name, phases in by_fault.items():
        ids = [cid for phase in phases for cid in phase.submitted]
        other = sum(sum(phase.unexpected.values()) for phase in phases)
        retry = sum(phase.answers["503 retry-after"] for phase in phases)
        recovered = next((p.recovered_after_s for p in phases if p.recovered_after_s is not None), None)
        n_lost, n_double = len(lost.intersection(ids)), len(double.intersection(ids))
        unfinished = sum(sum(phase.failed.values()) for phase in phases)
        failed |= bool(n_lost or n_double or other or unfinished)
        print(f"{name:<9} {done.get(name, '(no fault)'):<54} {len(ids):>9} {n_lost:>5} {n_double:>6} {retry:>7} "
              f"{other:>9} {unfinished:>6} {recovered if recovered is not None else '-':>11}")  # fmt: skip
    total = sum(len(phase.submitted) for phase in recorder.phases)
    print(f"\nrounds accepted: {total}; stored: {total - len(rounds.missing)}; scored: "
          f"{total - len(lost)}; still waiting: {waiting}; participants whose score is not the sum of their "
          f"rounds: {rounds.bad_totals}")  # fmt: skip
    print(f"maps: {maps['maps']} ({maps['with_heatmap']} with enough participants for a heatmap); "
          f"unlike a rebuild from the raw clicks: {maps['stale']}; gone after the rebuild: {maps['gone']} "
          f"{maps['examples']}")  # fmt: skip
    print(f"health at the end: {final}")
    for what, example in recorder.examples.items():
        print(f"  e.g. {what}: {example}")
    maps_ok = maps["stale"] == 0 and maps["gone"] == 0
    if not total:
        print("no round was accepted at all: the run shows nothing")
    failed |= not maps_ok or rounds.bad_totals > 0 or waiting > 0 or not total
    verdict = "FAILED" if failed else "passed: 0 lost, 0 double-scored, 0 unexpected 5xx, maps equal a rebuild"
    print(f"\nchaos: {verdict}")
    return 1 if failed else 0


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the `with` blocks: the stack and the private Postgres stop


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
