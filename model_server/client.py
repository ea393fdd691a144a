"""Client of the partner model server for the Django site and the Celery workers.

Imports no torch (web and worker images do not install it), only httpx. Speaks the server's Open
Inference Protocol JSON; retries, a bounded number of times, only what may succeed later:
connection errors, timeouts and 502/503/504.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from model_server.wire import ATTENTION_PREFIX, INTERACTIVE, infer_request

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})  # overloaded, or a proxy in front lost the server


class PartnerError(Exception):
    """The partner could not answer (base class; a bare one means an unexpected server error)."""


class PartnerUnavailable(PartnerError):
    """The server is down, unreachable, too slow or overloaded, even after the retries."""


class PartnerRequestError(PartnerError):
    """The server refused the request (4xx); the message is the server's own."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class GuessItem:
    """One partner query: an image (by key under the server's image root), bubbles and seed."""

    image_key: str
    bubbles: list[tuple[int, int]]  # image pixels (x, y) of the 256x256 canvas
    seed: int  # reveal.noise_seed(round_id, query_index)


@dataclass(frozen=True)
class Guess:
    """The partner's top-k answer for one item, with the model version that gave it."""

    classes: list[str]
    indices: list[int]
    probabilities: list[float]
    model_version: str
    attention: list[list[list[float]]] = field(default_factory=list)  # per GALA block, H x W


def infer_body(
    items: list[GuessItem], *, top_k: int, bubble_size: int, attention: bool, priority: str = INTERACTIVE
) -> dict:
    """Build the OIP infer request for items (wire.infer_request), padding bubble lists with (-1, -1)."""
    return infer_request(
        [item.image_key for item in items], [item.bubbles for item in items], [item.seed for item in items],
        top_k=top_k, bubble_size=bubble_size, attention=attention, priority=priority,
    )  # fmt: skip


def parse_guesses(response: dict) -> list[Guess]:
    """Split an OIP infer response into one Guess per item."""
    outputs = {output["name"]: output for output in response["outputs"]}
    batch, k = outputs["indices"]["shape"]
    maps = [outputs[name] for name in sorted(outputs) if name.startswith(ATTENTION_PREFIX)]
    guesses = []
    for row in range(batch):
        rows = slice(row * k, (row + 1) * k)
        attention = []
        for output in maps:  # shape (B, 1, H, W), flat row-major
            _, _, height, width = output["shape"]
            flat = output["data"][row * height * width : (row + 1) * height * width]
            attention.append([flat[y * width : (y + 1) * width] for y in range(height)])
        guesses.append(
            Guess(
                classes=outputs["classes"]["data"][rows],
                indices=outputs["indices"]["data"][rows],
                probabilities=outputs["probabilities"]["data"][rows],
                model_version=response["model_version"],
                attention=attention,
            )
        )
    return guesses


class PartnerClient:
    """Talks to one model server (or a load balancer in front of several); thread-safe."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.2,
        admin_token: str = "",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.retries = max(0, retries)
        self.backoff = backoff
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers, transport=transport)

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def ready(self) -> bool:
        """Say whether the server is up with a model loaded (one try, never raises)."""
        try:
            return self._http.get("/v2/health/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def metadata(self, model: str) -> dict:
        """Return a model's metadata: versions, active version, inputs, outputs and classes."""
        return self._request("GET", f"/v2/models/{model}")

    def guess(
        self,
        model: str,
        items: list[GuessItem],
        *,
        top_k: int = 5,
        bubble_size: int = 21,
        attention: bool = False,
        version: str | None = None,
        priority: str = "interactive",
    ) -> list[Guess]:
        """Ask the partner for its top-k guesses on items, all in one request.

        `priority` "bulk" lets the server batch waiting "interactive" requests (live guesses) first.
        """
        if not items:
            return []
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        body = infer_body(items, top_k=top_k, bubble_size=bubble_size, attention=attention, priority=priority)
        return parse_guesses(self._request("POST", path, body))

    def load_version(self, model: str, checkpoint: str, *, activate: bool = True, version: str = "") -> dict:
        """Load a checkpoint (a path on the server) as a version of model, active by default."""
        body = {"checkpoint": checkpoint, "activate": activate, "version": version}
        return self._request("POST", f"/v2/repository/models/{model}/load", body)

    def activate(self, model: str, version: str) -> dict:
        """Make an already loaded version the active one."""
        return self._request("POST", f"/v2/repository/models/{model}/activate", {"version": version})

    def unload(self, model: str, version: str) -> dict:
        """Forget a loaded version that is not the active one."""
        return self._request("POST", f"/v2/repository/models/{model}/unload", {"version": version})

    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        """Send a request, retrying transient failures with exponential backoff."""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._http.request(method, path, json=body)
            except httpx.TransportError as error:  # refused, reset, timed out
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 400:
                    return response.json()
                message = _error_message(response)
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code < 500:
                        raise PartnerRequestError(response.status_code, message)
                    raise PartnerError(f"{response.status_code}: {message}")
                problem = f"{response.status_code}: {message}"
            logger.warning("partner %s %s failed (try %d): %s", method, path, attempt + 1, problem)
        raise PartnerUnavailable(f"{method} {path} failed after {self.retries + 1} tries: {problem}")


def _error_message(response: httpx.Response) -> str:
    """Return the server's {"error": ...} message, or the start of the body."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
