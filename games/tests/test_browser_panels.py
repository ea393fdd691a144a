"""Panel participants in Chromium, on a desktop and on a phone: from the panel's link to the panel's completion.

Each panel (Prolific, MTurk, SONA) opens the study with the URL parameters it really adds,
gives consent, paints the rounds the study asks for (a mouse on the desktop, a finger on the
phone), reloads in the middle and resumes, and ends on the completion code and the panel's
redirect or submit form — caught here at the network edge, since the panels cannot be reached.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from django.core.management import call_command

from devtools.partner_process import DEMO_CHECKPOINT, serve_partner, wait_until_ready
from games.models import Experiment, Participant, PlaySession, Round
from games.tests.browser import CHROMIUM, current_round_id, failed, finger_paint, paint_round
from model_server.demo_data import DEMO_PARTNER

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]

CODE = "C1XK7Q2P"
PANELS = {
    # The parameters each panel appends to a study's link, as their documentation describes them.
    "prolific": {
        "query": "PROLIFIC_PID=5f1e0c2ab3d4e5f6a7b8c9d0&STUDY_ID=64a1b2c3d4e5f6a7b8c9d0e1&SESSION_ID=sess7781",
        "completion_url": "https://app.prolific.com/submissions/complete?cc={code}",
        "id_field": ("prolific_pid", "5f1e0c2ab3d4e5f6a7b8c9d0"),
    },
    "mturk": {
        "query": "assignmentId=3KYQYYSHYV0TKSCAL3F1VQ9XX2GDOB&hitId=3ZURAPD288NJ4LH8CUIRKDZ0YDKF1S"
        "&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com&workerId=A2SQDQ9B6VXEN1",
        "completion_url": "",
        "id_field": ("mturk_worker_id", "A2SQDQ9B6VXEN1"),
    },
    "sona": {
        "query": "id=48213",
        "completion_url": "https://uni.sona-systems.com/webstudy_credit.aspx?experiment_id=412&credit_token=9f2c&survey_code={sona_id}",
        "id_field": ("sona_id", "48213"),
    },
}
EXPECTED_EXIT = {
    "prolific": f"https://app.prolific.com/submissions/complete?cc={CODE}",
    "mturk": "https://workersandbox.mturk.com/mturk/externalSubmit",
    "sona": "https://uni.sona-systems.com/webstudy_credit.aspx?experiment_id=412&credit_token=9f2c&survey_code=48213",
}


@pytest.fixture
def partner_url(request: pytest.FixtureRequest, settings, tmp_path: Path) -> Iterator[str]:
    """The partner model server in its own process (the trained demo partner when it is built)."""
    checkpoint = DEMO_CHECKPOINT if DEMO_CHECKPOINT.exists() else request.getfixturevalue("partner_checkpoint")
    log_path, media = tmp_path / "partner.log", Path(settings.MEDIA_ROOT)
    with serve_partner(checkpoint=checkpoint, name=DEMO_PARTNER, image_root=media, log_path=log_path,
                       workers=1, max_delay_ms=2, device="cpu") as partner:  # fmt: skip
        call_command("seed_demo", "--per-class", "2", "--no-progress", stdout=io.StringIO())
        wait_until_ready(partner)
        settings.MODEL_SERVER_URL = partner.url
        yield partner.url


def panel_study(panel: str) -> Experiment:
    """The demo, recruited on a panel: two rounds of three seconds, a completion code."""
    experiment = Experiment.objects.get(slug="demo")
    experiment.recruitment = panel
    experiment.completion_code = CODE
    experiment.completion_url = PANELS[panel]["completion_url"]
    experiment.rounds_per_session, experiment.time_limit_ms = 2, 3000
    experiment.save()
    return experiment


def open_page(browser: object, device: str) -> tuple[object, object, object | None]:
    if device == "phone":
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
        )
    else:
        context = browser.new_context(viewport={"width": 1100, "height": 820})
    page = context.new_page()
    touch = context.new_cdp_session(page) if device == "phone" else None
    return context, page, touch


def paint(page: object, touch: object | None) -> None:
    """Paint the current round until it ends: a mouse along the object, or a finger for a while."""
    from playwright.sync_api import expect

    expect(page.locator("#stage-hint")).to_be_visible()
    if touch is None:
        paint_round(page, None)
    else:
        finger_paint(page, touch, 60)
    expect(page.locator("#round-end")).to_be_visible(timeout=20_000)
    expect(page.locator("#next-button")).to_be_enabled(timeout=20_000)


@pytest.mark.parametrize("device", ["desktop", "phone"])
@pytest.mark.parametrize("panel", ["prolific", "mturk", "sona"])
def test_a_panel_participant_goes_from_the_panels_link_to_the_completion(
    panel, device, live_server, partner_url, browser, eager_tasks, settings
) -> None:
    from playwright.sync_api import expect

    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MODEL_SERVER_TIMEOUT_MS = 5000  # the browser, the site and the partner share two cores
    panel_study(panel)
    context, page, touch = open_page(browser, device)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda response: failed(response) and errors.append(f"{response.status} {response.url}"))
    exits: list[tuple[str, str]] = []  # where the panel's completion sends the participant
    for host in (
        "https://app.prolific.com/**",
        "https://workersandbox.mturk.com/**",
        "https://uni.sona-systems.com/**",
    ):
        page.route(host, lambda route: (exits.append((route.request.url, route.request.post_data or "")),
                                        route.fulfill(status=200, body="ok", content_type="text/plain")))  # fmt: skip

    page.goto(f"{live_server.url}/play/demo/?{PANELS[panel]['query']}")
    expect(page.get_by_role("heading", name="Consent to take part")).to_be_visible()
    page.get_by_label("years of age or older").check()
    page.get_by_label("agree to take part").check()
    page.get_by_role("button", name="I agree").click()
    expect(page).to_have_url(re.compile(r"/play/demo/instructions/$"))
    page.get_by_role("link", name="Start").click()
    expect(page.locator("#round-counter")).to_have_text("1 / 2")
    expect(page.locator("#target-label")).not_to_have_text("…")
    paint(page, touch)
    expect(page.locator("#round-end-answer")).to_contain_text("It was:")
    page.get_by_role("button", name="Next").click()

    # A reload in the middle of the study resumes it: same round, same count.
    expect(page.locator("#round-counter")).to_have_text("2 / 2")
    before = current_round_id(page)
    page.reload()
    expect(page.locator("#round-counter")).to_have_text("2 / 2")
    assert current_round_id(page) == before
    paint(page, touch)
    page.get_by_role("button", name="See results").click()

    expect(page).to_have_url(re.compile(r"/play/demo/results/|mturk|prolific|sona"))
    if panel != "mturk":  # the MTurk form submits itself at once; the others show the code first
        expect(page.locator("#completion-code")).to_have_text(CODE)
    deadline = time.monotonic() + 15
    while not exits and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert exits, "the completion never left for the panel"
    url, form = exits[0]
    assert url == EXPECTED_EXIT[panel]
    if panel == "mturk":
        assert parse_qs(form) == {"assignmentId": ["3KYQYYSHYV0TKSCAL3F1VQ9XX2GDOB"], "completion_code": [CODE]}

    field, value = PANELS[panel]["id_field"]
    participant = Participant.objects.get(**{field: value})
    session = PlaySession.objects.get(participant=participant)
    assert session.completed_at is not None
    assert Round.objects.filter(session=session).count() == 2
    assert errors == []
    context.close()


def test_consenting_to_one_study_in_the_browser_does_not_open_another(
    live_server, partner_url, browser, settings
) -> None:
    from playwright.sync_api import expect

    other = Experiment.objects.get(slug="demo")
    other.pk, other.slug, other.title = None, "other-study", "Another study"
    other.pilot_token = "another-token"
    other.save()
    context, page, _ = open_page(browser, "desktop")
    page.goto(f"{live_server.url}/play/demo/")
    page.get_by_label("years of age or older").check()
    page.get_by_label("agree to take part").check()
    page.get_by_role("button", name="I agree").click()
    expect(page).to_have_url(re.compile(r"/play/demo/instructions/$"))
    status, body = page.evaluate(
        """async () => {
          const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
          const response = await fetch('/api/play/other-study/sessions/', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRFToken': token}, body: '{}'});
          return [response.status, await response.json()];
        }"""
    )
    assert status == 403 and "other-study" in body["error"]
    page.goto(f"{live_server.url}/play/other-study/game/")
    expect(page).to_have_url(re.compile(r"/play/other-study/$"))  # sent to that study's consent first
    assert PlaySession.objects.filter(experiment__slug="other-study").count() == 0
    context.close()
