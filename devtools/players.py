"""Simulated participants playing through the browser's own HTTP endpoints (`manage.py simulate_players`).

Each player is one httpx.Client with its own cookie jar that does what a browser does
(docs/game-api.md): opens the study's entry page (which sets the CSRF cookie), posts the consent
form, opens the game page and reads its `game-config`, starts a session, and then, round by
round: starts the round, downloads its image, paints (devtools.simulation), uploads the bubbles in
batches of `query_every` with `start_seq`, asks for a guess after each batch, stops when the
partner recognises the image or the time is up (or skips now and then), and submits the outcome
it believes. Timestamps are simulated, so a 7 s round takes as long as its requests. Like the
page, a player plays on when a guess answers 503 (the partner missed its live deadline), and
resends a request once when the server closed the keep-alive connection it reused.

The one shortcut: a person sees where the object is, the bot cannot, so it reads the object mask
of the image it was served from the database (Round by client_round_id → Image.mask). The
command therefore runs with the same database and MEDIA_ROOT as the site it plays against.
Everything else goes over HTTP, and the database is read again only at the end, to check that
every scored round has its per-query partner guesses and a partner version.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx
import numpy as np
from django.db import connections
from django.db.models import Count, F, Max, Q
from PIL import Image as PILImage
from tqdm import tqdm

from devtools.cheats import CHEATS
from devtools.simulation import Bubble, Rules, paint, until
from games.models import Image, Round

MaskSource = Callable[[str], "np.ndarray | None"]
ENDPOINTS = ("entry", "consent", "game", "session", "start", "image", "clicks", "guess", "submit", "state")
CONFIG_SCRIPT = re.compile(r'<script[^>]*id="game-config"[^>]*>(.*?)</script>', re.S)
DEVICES = [  # (screen w, h, canvas w, h, device pixel ratio, pointer): a desktop, a laptop, two phones
    (1920, 1080, 512, 512, 1.0, "mouse"),
    (1440, 900, 512, 512, 2.0, "mouse"),
    (390, 844, 358, 358, 3.0, "touch"),
    (412, 915, 380, 380, 2.625, "touch"),
]


class RoundFailed(Exception):
    """A request went wrong in a way the player cannot play on from; `kind` names it for the summary."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class NoImageLeft(Exception):
    """The site has no image left for this participant (409 at round start)."""


class UploadRefused(Exception):
    """The site refused a cheater's bubbles (400): expected, and counted as caught at the door."""


@dataclass
class PlayedRound:
    """What one player did in one round, and what the site said about it afterwards."""

    client_round_id: str
    claimed: str = ""
    bubbles: int = 0
    queries: int = 0
    status: str = ""
    outcome: str = ""
    points: int | None = None


@dataclass
class Tally:
    """Everything the players report, shared across threads behind one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)  # worth reporting, but not errors
    error_examples: dict[str, str] = field(default_factory=dict)
    rounds: list[PlayedRound] = field(default_factory=list)
    sessions: list[int] = field(default_factory=list)
    submitted_at: list[float] = field(default_factory=list)  # time.monotonic() of each accepted submit
    players: list[tuple[str, list[int], bool]] = field(default_factory=list)  # (kind, session ids, refused)

    def timed(self, endpoint: str, seconds: float) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)

    def count(self, event: str) -> None:
        with self.lock:
            self.events[event] += 1

    def error(self, kind: str, detail: str = "") -> None:
        with self.lock:
            self.errors[kind] += 1
            self.error_examples.setdefault(kind, detail[:300])


class Player:
    """One simulated participant with its own cookie jar, painting with its own seeded generator."""

    def __init__(
        self, *, url: str, slug: str, tally: Tally, masks: MaskSource, rng: np.random.Generator,
        skip_rate: float = 0.03, think_ms: float = 10.0, timeout: float = 30.0, cheat: str | None = None,
    ) -> None:  # fmt: skip
        self.base = url.rstrip("/") + "/"
        self.slug, self.tally, self.masks, self.rng = slug, tally, masks, rng
        self.skip_rate, self.think_ms = skip_rate, think_ms
        # Pauses draw from their own generator, so that network timing never shifts the painting.
        self.pauses = random.Random(int(rng.integers(2**32)))
        self.http = httpx.Client(
            base_url=self.base, timeout=timeout, headers={"User-Agent": "ClickMe-simulated-player/1.0"}
        )
        self.urls: dict[str, str] = {}
        self.session_id: int | None = None
        self.played: list[PlayedRound] = []
        # A cheater paints with devtools.cheats instead of the honest hand; its refused uploads are remembered.
        self.cheat, self.painter = cheat, CHEATS[cheat] if cheat else paint
        self.sessions: list[int] = []
        self.refused = False

    def close(self) -> None:
        self.http.close()

    # --- HTTP --------------------------------------------------------------------------------
    def call(
        self, endpoint: str, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: object
    ) -> httpx.Response:
        """Send one request, time it under `endpoint`, and raise RoundFailed on an unexpected answer."""
        headers = kwargs.pop("headers", {})
        if method == "POST":
            # What a browser sends with a same-origin POST; Django checks Origin/Referer on HTTPS.
            headers = {"X-CSRFToken": self.http.cookies.get("csrftoken", ""), "Origin": self.base.rstrip("/"),
                       "Referer": urljoin(self.base, f"play/{self.slug}/game/"), **headers}  # fmt: skip
        start = time.perf_counter()
        try:
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.RemoteProtocolError:
                # The server closed an idle keep-alive connection just as we reused it; browsers
                # resend once on a fresh connection, and every game call is safe to resend.
                self.tally.count("resent on a fresh connection")
                response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise RoundFailed(f"{endpoint} {type(exc).__name__}", str(exc)) from exc
        finally:
            self.tally.timed(endpoint, time.perf_counter() - start)
        if response.status_code not in expect:
            raise RoundFailed(f"{endpoint} {response.status_code}", response.text[:300])
        return response

    def think(self) -> None:
        """A short, random pause between requests, so players do not move in lockstep."""
        if self.think_ms > 0:
            time.sleep(self.pauses.uniform(0, self.think_ms) / 1000)

    # --- Playing -----------------------------------------------------------------------------
    def join(self) -> None:
        """Open the entry page, consent, open the game page and read its configuration."""
        entry = f"play/{self.slug}/"
        self.call("entry", "GET", entry)
        if "csrftoken" not in self.http.cookies:
            raise RoundFailed("entry no-csrf-cookie", "the entry page set no csrftoken cookie")
        form = {"csrfmiddlewaretoken": self.http.cookies["csrftoken"], "consent": "on", "age_confirmed": "on"}
        referer = {"Referer": urljoin(self.base, entry)}
        self.call("consent", "POST", entry, expect=(302, 303), data=form, headers=referer)
        page = self.call("game", "GET", f"play/{self.slug}/game/")
        found = CONFIG_SCRIPT.search(page.text)
        if found is None:
            raise RoundFailed("game no-config", "the game page has no game-config script")
        self.urls = json.loads(found.group(1))["urls"]
        self.start_session()

    def start_session(self) -> None:
        """Start a play session, describing a plausible device."""
        sw, sh, cw, ch, ratio, pointer = DEVICES[int(self.rng.integers(len(DEVICES)))]
        device = {"screen_width": sw, "screen_height": sh, "canvas_width": cw, "canvas_height": ch,
                  "device_pixel_ratio": ratio, "pointer_type": pointer}  # fmt: skip
        answer = self.call("session", "POST", self.urls["session"], expect=(201,), json=device).json()
        self.session_id = answer["session_id"]
        self.sessions.append(self.session_id)
        with self.tally.lock:
            self.tally.sessions.append(self.session_id)

    def start_round(self) -> dict:
        """Start the next round; a session that has played all its rounds is followed by a new one."""
        for _ in range(3):
            body = {"session_id": self.session_id, "client_round_id": str(uuid.uuid4())}
            response = self.call("start", "POST", self.urls["rounds"], expect=(200, 201, 409), json=body)
            if response.status_code == 201:
                return response.json()
            if response.status_code == 200:  # the session's round still open (an upload was refused)
                state = response.json()
                if state["next_seq"] == 0:
                    return state
                self.call("submit", "POST", f"{self.urls['rounds']}{state['client_round_id']}/submit/",
                          json={"outcome": "wrong", "bubble_count": state["next_seq"]})  # fmt: skip
                continue
            if "no image left" in response.json().get("error", ""):
                raise NoImageLeft(response.json().get("error", ""))
            self.start_session()  # the session is complete or has ended: a new visit
        raise RoundFailed("start 409", "a fresh session refused its first round")

    def play_round(self) -> PlayedRound:
        """Play one round to its end and submit it; raises RoundFailed when the site answers wrongly."""
        state = self.start_round()
        played = PlayedRound(state["client_round_id"])
        self.played.append(played)
        image = self.call("image", "GET", state["image_url"])
        if image.headers.get("content-type") != "image/png" or not image.content.startswith(b"\x89PNG"):
            raise RoundFailed("image not-png", image.headers.get("content-type", ""))
        settings = state["settings"]
        every, rules = settings["query_every"], Rules.from_settings(settings)
        trail = self.painter(self.masks(played.client_round_id), rules, self.rng)
        skip_after = int(self.rng.integers(0, 4)) if self.rng.random() < self.skip_rate else None
        api = f"{self.urls['rounds']}{played.client_round_id}/"
        stored = 0
        while True:
            if skip_after is not None and played.queries >= skip_after:
                played.claimed = "skipped"
                break
            query_at = (played.queries + 1) * every
            if query_at > len(trail):  # the time limit comes before the next query point
                stored = self.upload(api, trail, stored, len(trail))
                played.claimed = "wrong"
                break
            started = time.perf_counter()
            stored = self.upload(api, trail, stored, query_at)
            guess = self.call("guess", "POST", f"{api}guess/", expect=(200, 503), json={"bubble_count": query_at})
            played.queries += 1
            if guess.status_code == 503:
                # The partner missed its live deadline: the page shows no guess and play goes on.
                self.tally.error("guess 503", guess.text)
            elif guess.json()["recognised"]:
                # The page keeps painting while the guess is on its way: those bubbles count too,
                # and an answer that arrives after the time limit finds the round already lost.
                answered_ms = trail[query_at - 1][2] + (time.perf_counter() - started) * 1000
                stored = self.upload(api, trail, stored, until(trail, answered_ms))
                played.claimed = "correct" if answered_ms <= rules.time_limit_ms else "wrong"
                break
            self.think()
        played.bubbles = stored
        answer = self.call("submit", "POST", f"{api}submit/", json={"outcome": played.claimed, "bubble_count": stored})
        with self.tally.lock:
            self.tally.submitted_at.append(time.monotonic())
        self.remember_state(played, answer.json())
        return played

    def upload(self, api: str, trail: list[Bubble], stored: int, end: int) -> int:
        """Upload trail[stored:end] (nothing if empty) and return the new count of stored bubbles."""
        if end <= stored:
            return stored
        body = {"start_seq": stored, "clicks": [list(bubble) for bubble in trail[stored:end]]}
        response = self.call("clicks", "POST", f"{api}clicks/", expect=(200, 400) if self.cheat else (200,), json=body)
        if response.status_code == 400:
            self.refused = True
            raise UploadRefused(response.text[:300])
        answer = response.json()
        if answer["next_seq"] != end:
            raise RoundFailed("clicks wrong-next-seq", f"sent up to {end}, server says next_seq {answer['next_seq']}")
        self.think()
        return end

    def remember_state(self, played: PlayedRound, state: dict) -> None:
        played.status, played.outcome, played.points = state["status"], state["outcome"], state["points"]

    def wait_until_scored(self, deadline: float) -> None:
        """Poll this player's submitted rounds until the site says they are scored, or the deadline passes."""
        waiting = [played for played in self.played if played.status == "submitted"]
        pause = 0.05
        while waiting and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(1.0, pause * 2)
            for played in waiting:
                url = f"{self.urls['rounds']}{played.client_round_id}/"
                self.remember_state(played, self.call("state", "GET", url).json())
            waiting = [played for played in waiting if played.status == "submitted"]


def run_player(
    *,
    index: int,
    url: str,
    slug: str,
    tally: Tally,
    masks: MaskSource,
    seed: int,
    rounds: int | None = None,
    until_time: float | None = None,
    score_timeout: float = 60.0,
    on_round: Callable[[], None] = lambda: None,
    cheat: str | None = None,
    **player_options: object,
) -> None:
    """Play `rounds` rounds (or as many as fit before `until_time`, a monotonic time) as one new participant."""
    player = Player(url=url, slug=slug, tally=tally, masks=masks, rng=np.random.default_rng([seed, index]),
                    cheat=cheat, **player_options)  # fmt: skip
    played_count = 0
    try:
        player.join()
        while (rounds is None or played_count < rounds) and (until_time is None or time.monotonic() < until_time):
            played_count += 1
            try:
                player.play_round()
            except RoundFailed as failure:
                tally.error(failure.kind, str(failure))
            except UploadRefused:
                tally.count(f"{cheat} uploads refused (400)")
            finally:
                on_round()
            player.think()
    except NoImageLeft as exc:
        if rounds is not None:  # asked for more rounds than there are images: say so
            tally.error("start no-image-left", str(exc))
    except RoundFailed as failure:
        tally.error(failure.kind, str(failure))
    except Exception as exc:  # a bug or a lost database must not take the other players down
        tally.error(f"player {type(exc).__name__}", str(exc))
    try:
        player.wait_until_scored(time.monotonic() + score_timeout)
    except RoundFailed as failure:
        tally.error(failure.kind, str(failure))
    finally:
        for _ in range(played_count, rounds or 0):
            on_round()  # rounds never played still move the progress bar to its end
        with tally.lock:
            tally.rounds.extend(player.played)
            tally.players.append((cheat or "honest", player.sessions, player.refused))
        player.close()


class MaskLookup:
    """The one shortcut: the object mask of the image a round was served, read from the database.

    All lookups run on one thread, so a run holds one database connection however many players
    it has (64 player threads with a connection each exhaust a default Postgres).
    """

    def __init__(self) -> None:
        self.cache: dict[int, np.ndarray | None] = {}
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="masks")

    def __call__(self, client_round_id: str) -> np.ndarray | None:
        return self.thread.submit(self.lookup, client_round_id).result()

    def close(self) -> None:
        self.thread.submit(connections.close_all).result()  # Django never closes a thread's connections
        self.thread.shutdown()

    def lookup(self, client_round_id: str) -> np.ndarray | None:
        image_id = Round.objects.filter(client_round_id=client_round_id).values_list("image_id", flat=True).first()
        if image_id is None:
            return None
        if image_id not in self.cache:
            self.cache[image_id] = self.read(Image.objects.only("mask").get(pk=image_id))
        return self.cache[image_id]

    @staticmethod
    def read(image: Image) -> np.ndarray | None:
        if not image.mask:
            return None
        with image.mask.open("rb") as file:
            return np.asarray(PILImage.open(file).convert("L")) > 127


def percentile_row(samples: list[float]) -> str:
    """`n  p50  p90  p99` of latencies in ms, or dashes when there are none."""
    if not samples:
        return f"{0:>6}  {'-':>8}  {'-':>8}  {'-':>8}"
    p50, p90, p99 = np.percentile(np.asarray(samples) * 1000, [50, 90, 99])
    return f"{len(samples):>6}  {p50:>8.1f}  {p90:>8.1f}  {p99:>8.1f}"


@dataclass(frozen=True)
class DatabaseCheck:
    """What the database says about the rounds a run submitted."""

    rounds: int
    scored: int
    complete: int  # scored, with a partner version and one guess per query point under it
    problems: list[str]


def check_database(played: list[PlayedRound]) -> DatabaseCheck:
    """Check every submitted round: scored, stored bubbles as uploaded, per-query guesses and a partner version."""
    submitted = {p.client_round_id: p for p in played if p.status}
    rows = (
        Round.objects.filter(client_round_id__in=list(submitted))
        .annotate(
            version_guesses=Count("guesses", filter=Q(guesses__partner_version=F("partner_version"))),
            last_query=Max("guesses__query_index", filter=Q(guesses__partner_version=F("partner_version"))),
        )
        .values("client_round_id", "status", "bubble_count", "settings", "partner_version_id", "version_guesses",
                "last_query")
    )  # fmt: skip
    problems, scored, complete = [], 0, 0
    for row in rows:
        name = str(row["client_round_id"])
        expected = row["bubble_count"] // row["settings"]["query_every"]
        if row["bubble_count"] != submitted[name].bubbles:
            problems.append(f"round {name}: {row['bubble_count']} bubbles stored, {submitted[name].bubbles} uploaded")
        if row["status"] != Round.Status.SCORED:
            problems.append(f"round {name}: {row['status']}, not scored")
            continue
        scored += 1
        if row["partner_version_id"] is None:
            problems.append(f"round {name}: scored without a partner version")
        elif row["version_guesses"] != expected or (expected and row["last_query"] != expected - 1):
            problems.append(f"round {name}: {row['version_guesses']} partner guesses for {expected} query points")
        else:
            complete += 1
    missing = len(submitted) - len(rows)
    if missing:
        problems.append(f"{missing} submitted rounds are not in this database (is it the site's database?)")
    return DatabaseCheck(rounds=len(submitted), scored=scored, complete=complete, problems=problems)


def simulate(
    *,
    url: str,
    slug: str,
    players: int,
    concurrency: int,
    seed: int,
    rounds: int | None = None,
    seconds: float | None = None,
    progress: bool = False,
    score_timeout: float = 60.0,
    cheats: dict[str, int] | None = None,
    **player_options: object,
) -> tuple[Tally, float]:
    """Run `players` simulated participants, `concurrency` at a time; return what they saw and the wall time."""
    tally, masks = Tally(), MaskLookup()
    # Honest players first, then `cheats[kind]` cheaters of each kind, all playing at once.
    kinds = [None] * players + [kind for kind, count in (cheats or {}).items() for _ in range(count)]
    total = len(kinds) * rounds if rounds is not None else None
    bar = tqdm(total=total, unit="round", desc="rounds", disable=not progress, file=sys.stderr)
    bar_lock = threading.Lock()

    def advance() -> None:
        with bar_lock:
            bar.update()

    start = time.monotonic()
    until_time = start + seconds if seconds is not None else None
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="player") as pool:
        common = dict(url=url, slug=slug, tally=tally, masks=masks, seed=seed, rounds=rounds, until_time=until_time,
                      score_timeout=score_timeout, on_round=advance, **player_options)  # fmt: skip
        futures = [pool.submit(run_player, index=index, cheat=kind, **common) for index, kind in enumerate(kinds)]
        for future in futures:
            future.result()
    masks.close()
    bar.close()
    return tally, time.monotonic() - start


def summary_lines(tally: Tally, check: DatabaseCheck, wall_s: float) -> list[str]:
    """The end-of-run report: rounds, outcomes, errors, latencies and the database check."""
    played = [p for p in tally.rounds if p.status]
    scored = [p for p in played if p.status == "scored"]
    claims = Counter(p.claimed for p in played)
    agree = sum(1 for p in scored if p.claimed == p.outcome)
    lines = [
        "",
        f"{'rounds stored (submitted)':<34}{len(played):>8}",
        f"{'rounds scored':<34}{len(scored):>8}",
        f"{'  correct':<34}{sum(p.outcome == 'correct' for p in scored):>8}",
        f"{'  wrong (time out)':<34}{sum(p.outcome == 'wrong' for p in scored):>8}",
        f"{'  skipped':<34}{sum(p.outcome == 'skipped' for p in scored):>8}",
        f"{'total points':<34}{sum(p.points or 0 for p in scored):>8}",
        f"{'bubbles uploaded':<34}{sum(p.bubbles for p in played):>8}",
        f"{'partner queries':<34}{sum(p.queries for p in played):>8}",
        f"{'client claims (correct/wrong/skip)':<34}{claims['correct']:>4}/{claims['wrong']}/{claims['skipped']}",
        f"{'claims the scorer agreed with':<34}{agree:>8} of {len(scored)}",
        f"{'wall time':<34}{wall_s:>8.1f} s  ({len(played) / wall_s if wall_s else 0:.1f} rounds/s)",
        f"{'errors':<34}{sum(tally.errors.values()):>8}",
    ]
    for event, count in sorted(tally.events.items()):
        lines.append(f"  {event:<32}{count:>8}   (not an error)")
    for kind, count in sorted(tally.errors.items()):
        lines.append(f"  {kind:<32}{count:>8}   e.g. {tally.error_examples.get(kind, '')[:120]}")
    lines += ["", f"{'latency (ms)':<10}  {'n':>6}  {'p50':>8}  {'p90':>8}  {'p99':>8}"]
    for endpoint in ENDPOINTS:
        if tally.latencies.get(endpoint):
            lines.append(f"{endpoint:<10}  {percentile_row(tally.latencies[endpoint])}")
    lines += [
        "",
        f"database check: {check.complete} of {check.rounds} submitted rounds are scored with one partner guess "
        f"per query point and a partner version ({check.scored} scored)",
    ]
    lines += [f"  {problem}" for problem in check.problems[:20]]
    if len(check.problems) > 20:
        lines.append(f"  ... and {len(check.problems) - 20} more")
    return lines
