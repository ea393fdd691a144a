"""A participant driven over HTTP exactly as the browser does (cookies, CSRF, JSON API)."""

from __future__ import annotations

import re
import uuid

import httpx


class HttpPlayer:
    """One participant: its own cookie jar, talking to a running site."""

    def __init__(self, base_url: str, slug: str) -> None:
        self.slug = slug
        self.http = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)
        self.session_id: int | None = None

    def close(self) -> None:
        self.http.close()

    def csrf(self) -> dict[str, str]:
        return {"X-CSRFToken": self.http.cookies.get("csrftoken", "")}

    def consent(self, **panel: str) -> httpx.Response:
        page = self.http.get(f"/play/{self.slug}/", params=panel)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        form = {"csrfmiddlewaretoken": token, "consent": "on", "age_confirmed": "on"}
        return self.http.post(f"/play/{self.slug}/", data=form)

    def post(self, path: str, body: object) -> httpx.Response:
        return self.http.post(path, json=body, headers=self.csrf())

    def start_session(self) -> httpx.Response:
        response = self.post(f"/api/play/{self.slug}/sessions/", {"pointer_type": "mouse", "canvas_width": 512})
        self.session_id = response.json()["session_id"]
        return response

    def start_round(self, client_round_id: uuid.UUID | None = None) -> httpx.Response:
        body = {"session_id": self.session_id, "client_round_id": str(client_round_id or uuid.uuid4())}
        return self.post("/api/rounds/", body)

    def upload(self, round_id: str, clicks: list[list[int]], start_seq: int = 0) -> httpx.Response:
        return self.post(f"/api/rounds/{round_id}/clicks/", {"start_seq": start_seq, "clicks": clicks})

    def guess(self, round_id: str, bubble_count: int, **batch: object) -> httpx.Response:
        """Ask for a guess; `start_seq=..., clicks=[...]` makes it carry new bubbles, as the page does."""
        return self.post(f"/api/rounds/{round_id}/guess/", {"bubble_count": bubble_count, **batch})

    def submit(self, round_id: str, outcome: str, bubble_count: int, **extra: object) -> httpx.Response:
        return self.post(f"/api/rounds/{round_id}/submit/", {"outcome": outcome, "bubble_count": bubble_count, **extra})

    def round(self, round_id: str) -> httpx.Response:
        return self.http.get(f"/api/rounds/{round_id}/")


def painted(count: int, *, x: int = 60, y: int = 60, step: int = 5, interval_ms: int = 50) -> list[list[int]]:
    """`count` bubbles obeying the painting rule: a zig-zag line, one bubble per interval."""
    clicks = []
    for index in range(count):
        row, column = divmod(index, 20)
        cx = x + (column if row % 2 == 0 else 19 - column) * step
        clicks.append([min(cx, 255), min(y + row * step, 255), index * interval_ms])
    return clicks
