"""A participant plays the demo in Chromium against the real partner server: consent to results.

Drives Debian's Chromium through Playwright (never `playwright install`). The partner is
`model_server.serve` in its own process, serving the trained demo checkpoint when it has been
built (`make run` does) and otherwise an untrained network over the demo classes: the page,
the API and the scoring are the same either way.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from devtools.partner_process import DEMO_CHECKPOINT, serve_partner, wait_until_ready
from games.models import Experiment, PartnerGuess, Round
from games.tests.browser import (
    CHROMIUM,
    ROOT,
    current_round_id,
    failed,
    finger_paint,
    paint_round,
)
from model_server.demo_data import DEMO_PARTNER

SCREENSHOTS = ROOT / "var" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]


@pytest.fixture
def experiment(transactional_db: None) -> Experiment:
    """The demo with two images per class, two rounds per session and a completion code to show."""
    call_command("seed_demo", "--per-class", "2", "--no-progress", stdout=io.StringIO())
    experiment = Experiment.objects.get(slug="demo")
    experiment.rounds_per_session = 2
    experiment.completion_code = "CLICKME-DEMO-42"
    experiment.save()
    return experiment


@pytest.fixture
def partner_process(request: pytest.FixtureRequest, settings, tmp_path: Path) -> Iterator[str]:
    """`python -m model_server.serve` on a free port, reading the site's media; the site points at it.

    The demo is seeded while the server imports torch and loads its checkpoint.
    """
    checkpoint = DEMO_CHECKPOINT if DEMO_CHECKPOINT.exists() else request.getfixturevalue("partner_checkpoint")
    log_path = tmp_path / "partner.log"
    with serve_partner(checkpoint=checkpoint, name=DEMO_PARTNER, image_root=Path(settings.MEDIA_ROOT),
                       log_path=log_path, workers=1, max_delay_ms=2, device="cpu") as partner:  # fmt: skip
        request.getfixturevalue("experiment")
        wait_until_ready(partner)
        settings.MODEL_SERVER_URL = partner.url
        yield partner.url


def consent_and_start(page: object, base_url: str, shots: Path | None = None) -> None:
    """Give consent, read the instructions and press Start (screenshots of both pages to `shots`)."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/play/demo/")
    expect(page.get_by_role("heading", name="Consent to take part")).to_be_visible()
    page.get_by_label("years of age or older").check()
    page.get_by_label("agree to take part").check()
    if shots:
        page.screenshot(path=shots / "consent.png", full_page=True)
    page.get_by_role("button", name="I agree").click()
    expect(page).to_have_url(re.compile(r"/play/demo/instructions/$"))
    if shots:
        page.screenshot(path=shots / "instructions.png", full_page=True)
    page.get_by_role("link", name="Start").click()
    expect(page).to_have_url(re.compile(r"/play/demo/game/$"))


def test_a_participant_plays_the_demo_in_chromium(
    live_server, partner_process, experiment, browser, eager_tasks, settings, tmp_path
) -> None:
    from playwright.sync_api import expect

    settings.CELERY_TASK_ALWAYS_EAGER = True  # eager_tasks makes the Celery app itself follow
    settings.MODEL_SERVER_TIMEOUT_MS = 5000  # two shared CPU cores run the browser, the site and the partner
    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A failed request is reported below with its URL; the console's copy of it has none.
    page.on(
        "console",
        lambda msg: msg.type == "error" and "Failed to load resource" not in msg.text and errors.append(msg.text),
    )
    page.on("response", lambda response: failed(response) and errors.append(f"{response.status} {response.url}"))
    posted: list[tuple[str, dict]] = []  # (call, body) of each round API post: guess, clicks, submit
    page.on("request", lambda r: r.method == "POST" and "/api/rounds/" in r.url and r.url.endswith("/")
            and posted.append((r.url.rstrip("/").rsplit("/", 1)[-1], r.post_data_json)))  # fmt: skip
    consent_and_start(page, live_server.url, shots)

    guesses: list[set[tuple[str, str]]] = []
    for number in (1, 2):
        expect(page.locator("#round-counter")).to_have_text(f"{number} / 2")
        expect(page.locator("#stage-hint")).to_be_visible()
        guesses.append(paint_round(page, shots if number == 1 else None))
        expect(page.locator("#round-end")).to_be_visible()
        expect(page.locator("#round-end-points")).to_have_text(re.compile(r"^\+\d+ points$"))
        if number == 1:
            page.screenshot(path=shots / "play.png")
        page.get_by_role("button", name="Next" if number == 1 else "See results").click()

    expect(page).to_have_url(re.compile(r"/play/demo/results/$"))
    expect(page.locator("#completion-code")).to_have_text("CLICKME-DEMO-42")
    expect(page.locator("#leaderboard-rows tr")).not_to_have_count(0)
    page.screenshot(path=shots / "results.png", full_page=True)

    assert all(guesses), f"the partner's guesses never showed in some round: {guesses}"
    assert len(set.union(*guesses)) >= 2, f"the guesses never changed on screen: {guesses}"
    if DEMO_CHECKPOINT.exists():  # a trained partner changes its mind; an untrained one barely does
        assert len({labels for labels, _ in set.union(*guesses)}) >= 2, guesses
    rounds = list(Round.objects.filter(session__experiment=experiment).order_by("pk"))
    assert [r.status for r in rounds] == ["scored", "scored"]
    assert all(r.bubble_count >= 10 for r in rounds), [r.bubble_count for r in rounds]
    assert PartnerGuess.objects.filter(round__in=rounds).count() >= 2
    assert errors == []
    # The bubbles ride along with the guesses; a plain upload is left for the end of a round at most.
    assert any("clicks" in body for call, body in posted if call == "guess"), posted
    assert sum(call == "clicks" for call, _ in posted) <= len(rounds), posted

    play_on_a_phone(browser, live_server.url, shots)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for shot in shots.iterdir():
        shutil.copy(shot, SCREENSHOTS / shot.name)


def play_on_a_phone(browser: object, base_url: str, shots: Path) -> None:
    """A phone: the canvas fills the width and a finger paints without scrolling the page.

    Every upload of the first round (the clicks calls and the guesses that carry bubbles) is dropped
    by the network, then the page is reloaded: the bubbles kept in localStorage still reach the
    server and the round is closed cleanly.
    """
    from playwright.sync_api import expect

    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    touch = context.new_cdp_session(page)
    consent_and_start(page, base_url)
    expect(page.locator("#stage-hint")).to_be_visible()
    box = page.locator("#game-canvas").bounding_box()
    assert box["width"] >= 340 and box["y"] + box["height"] <= 844, box

    round_id = current_round_id(page)
    uploads = re.compile(r".*/api/rounds/[^/]+/(clicks|guess)/$")
    page.route(uploads, lambda route: route.abort())
    finger_paint(page, touch, 40)
    assert page.evaluate("window.scrollY") == 0, "the page scrolled while painting"
    expect(page.locator("#game-status")).to_contain_text("retrying")
    queued = page.evaluate(f"JSON.parse(localStorage.getItem('clickme:round:{round_id}')).clicks.length")
    assert queued >= 10
    page.unroute(uploads)
    page.reload()
    expect(page.locator("#round-end-title")).to_have_text("Round interrupted")
    expect(page.locator("#round-end-points")).to_have_text(re.compile(r"^\+\d+ points$"))
    interrupted = Round.objects.get(client_round_id=round_id)
    assert (interrupted.status, interrupted.bubble_count) == ("scored", queued)

    page.get_by_role("button", name="Next").click()
    expect(page.locator("#round-counter")).to_have_text("2 / 2")
    expect(page.locator("#stage-hint")).to_be_visible()
    finger_paint(page, touch, 40)
    expect(page.locator("#guesses li").first).to_be_visible()
    page.screenshot(path=shots / "play-phone.png")
    context.close()
