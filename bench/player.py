"""A Locust player that plays like a person, in real time (the page's cadence, static/games/main.js).

One round: start it, download the image, paint with `devtools.simulation.paint` (the painters of
`simulate_players`), sleeping so that each bubble leaves at its own time (a bubble every
`bubble_interval_ms`); every `query_every` bubbles ask for a guess carrying the new bubbles,
one guess at a time as the page does (a query point passed while a guess is pending is skipped);
the round ends on recognition, at the time limit, or on a skip; then submit, wait for the
points like the page's end-of-round panel, and pause before the next round. After a session's
rounds the player leaves and a new person takes its place (new cookies, consent again), so
people keep arriving for as long as the run lasts. A share enters through a Prolific link.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
import uuid
from pathlib import Path

import numpy as np
from locust import HttpUser, between, task

from bench.masks import mask_index
from devtools.simulation import Rules, paint

CONFIG_SCRIPT = re.compile(r'<script[^>]*id="game-config"[^>]*>(.*?)</script>', re.S)
MASKS: dict[str, np.ndarray] | None = None


def masks() -> dict[str, np.ndarray]:
    """The mask index of the stack's media folder (BENCH_MEDIA_ROOT), read once per process."""
    global MASKS
    if MASKS is None:
        root = os.environ.get("BENCH_MEDIA_ROOT")
        MASKS = mask_index(Path(root)) if root else {}
    return MASKS


class Abandon(Exception):
    """The site answered so that this person cannot go on (already counted as a failure)."""


class RealTimePlayer(HttpUser):
    """A person: consents, plays a session of rounds in real time, leaves; the next one comes."""

    wait_time = between(2, 5)  # between rounds: reading the points, pressing Next
    skip_rate = float(os.environ.get("BENCH_SKIP_RATE", "0.03"))
    panel_share = float(os.environ.get("BENCH_PANEL_SHARE", "0.3"))
    rounds_per_person = int(os.environ.get("BENCH_ROUNDS_PER_PERSON", "5"))

    def on_start(self) -> None:
        self.rng = np.random.default_rng()
        self.urls: dict[str, str] = {}
        self.session_id: int | None = None
        self.rounds_left = 0

    # --- HTTP ---------------------------------------------------------------------------------
    def post(self, url: str, body: dict, name: str, ok: tuple[int, ...] = (200,)):
        headers = {"X-CSRFToken": self.client.cookies.get("csrftoken", ""), "Referer": self.host + url}
        with self.client.post(url, json=body, headers=headers, name=name, catch_response=True) as response:
            if response.status_code in ok:
                response.success()
            else:
                response.failure(f"{response.status_code} {response.text[:200]}")
                raise Abandon(name)
            return response

    def arrive(self) -> None:
        """A new person: fresh cookies, the entry page (with a panel id for some), consent, the game page."""
        self.client.cookies.clear()
        slug, params = "demo", {}
        if random.random() < self.panel_share:
            slug, params = "demo-panel", {"PROLIFIC_PID": uuid.uuid4().hex[:24], "STUDY_ID": "x", "SESSION_ID": "y"}
        entry = f"/play/{slug}/"
        while True:
            with self.client.get(entry, params=params, name="entry", catch_response=True) as page:
                if page.status_code == 503 and page.headers.get("Retry-After"):
                    # The door is full this minute (games/admission.py): a refusal, not an error;
                    # counted apart ("busy") and the person tries again when the page says.
                    page.request_meta["name"] = "busy"
                    page.success()
                    wait = int(page.headers["Retry-After"])
                else:
                    wait = 0
            if not wait:
                break
            time.sleep(wait)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if token is None:
            raise Abandon("entry")
        form = {"csrfmiddlewaretoken": token.group(1), "consent": "on", "age_confirmed": "on"}
        self.client.post(entry, data=form, headers={"Referer": self.host + entry}, name="consent")
        game = self.client.get(f"/play/{slug}/game/", name="game")
        found = CONFIG_SCRIPT.search(game.text)
        if found is None:
            raise Abandon("game")
        self.urls = json.loads(found.group(1))["urls"]
        self.client.get("/static/games/main.js", name="static")
        device = {"screen_width": 1920, "screen_height": 1080, "canvas_width": 512, "canvas_height": 512,
                  "device_pixel_ratio": 1.0, "pointer_type": "mouse"}  # fmt: skip
        self.session_id = self.post(self.urls["session"], device, "session", ok=(201,)).json()["session_id"]
        self.rounds_left = self.rounds_per_person

    # --- one round ----------------------------------------------------------------------------
    @task
    def play(self) -> None:
        try:
            if self.rounds_left <= 0:
                self.arrive()
            self.rounds_left -= 1
            self.play_round()
        except Abandon:
            self.rounds_left = 0  # this person gives up; a new one comes

    def play_round(self) -> None:
        body = {"session_id": self.session_id, "client_round_id": str(uuid.uuid4())}
        started = self.post(self.urls["rounds"], body, "start", ok=(200, 201, 409))
        if started.status_code == 409:
            self.rounds_left = 0  # session complete: this person is done
            return
        state = started.json()
        image = self.client.get(state["image_url"], name="image")
        settings, api = state["settings"], f"{self.urls['rounds']}{state['client_round_id']}/"
        rules, every = Rules.from_settings(settings), settings["query_every"]
        trail = paint(masks().get(hashlib.sha256(image.content).hexdigest()), rules, self.rng)
        skip_at = self.rng.integers(1, 6) * every if self.rng.random() < self.skip_rate else None
        clock = time.monotonic()  # t = 0: the first bubble
        stored, outcome, next_query = 0, "wrong", every
        while True:
            if skip_at is not None and next_query >= skip_at:
                outcome = "skipped"
                break
            if next_query > len(trail):
                break  # the time limit comes first
            # Paint in real time: wait until the query point's bubble is placed.
            self._sleep_until(clock, trail[next_query - 1][2])
            # The new bubbles ride along with the guess, as the page sends them (main.js partnerQueries).
            body = {"bubble_count": next_query}
            if stored < next_query:
                body |= {"start_seq": stored, "clicks": [list(bubble) for bubble in trail[stored:next_query]]}
            answer = self.post(f"{api}guess/", body, "guess", ok=(200, 503))
            stored = int(answer.json().get("next_seq", stored))
            elapsed_ms = (time.monotonic() - clock) * 1000
            if answer.status_code == 200 and answer.json()["recognised"]:
                outcome = "correct" if elapsed_ms <= rules.time_limit_ms else "wrong"
                break
            # One guess at a time: the next query point is the newest multiple already painted.
            painted = sum(1 for bubble in trail if bubble[2] <= elapsed_ms)
            next_query = max(next_query + every, painted - painted % every)
        if outcome == "wrong":
            self._sleep_until(clock, min(rules.time_limit_ms, trail[-1][2]))
        painted = sum(1 for bubble in trail if bubble[2] <= (time.monotonic() - clock) * 1000)
        stored = self._upload(api, trail, stored, min(len(trail), max(stored, painted)))
        self.post(f"{api}submit/", {"outcome": outcome, "bubble_count": stored}, "submit")
        self._await_points(api)

    def _upload(self, api: str, trail: list, stored: int, end: int) -> int:
        if end <= stored:
            return stored
        body = {"start_seq": stored, "clicks": [list(bubble) for bubble in trail[stored:end]]}
        return int(self.post(f"{api}clicks/", body, "clicks").json()["next_seq"])

    def _await_points(self, api: str) -> None:
        """Poll the round every 700 ms until it has points, for 8 s at most (session.js awaitPoints)."""
        until = time.monotonic() + 8
        while time.monotonic() < until:
            time.sleep(0.7)
            if self.client.get(api, name="state").json().get("points") is not None:
                return

    @staticmethod
    def _sleep_until(clock: float, t_ms: float) -> None:
        delay = clock + t_ms / 1000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
