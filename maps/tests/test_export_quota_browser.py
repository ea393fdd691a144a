"""In Chromium: past the export quota, the dashboard's export form says which limit and when to try again."""

from __future__ import annotations

import pytest

from maps.models import Export
from maps.tests.browser import CHROMIUM, PASSWORD
from maps.tests.world import make_world

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]


def test_the_export_form_shows_the_quota_and_the_refusal(settings, live_server: object, page: object) -> None:
    from playwright.sync_api import expect

    settings.EXPORT_MAX_PER_DAY = 1  # the world's own export, made just now, uses it up
    world = make_world(participants=1)
    world.owner.set_password(PASSWORD)
    world.owner.save()
    page.goto(f"{live_server.url}/dashboard/login/")
    page.fill("#id_username", world.owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/dashboard/{world.experiment.slug}/")
    expect(page.locator("#export-quota")).to_contain_text("1 started in the last 24 hours (at most 1)")
    page.click("#export-start")
    status = page.locator("#export-status")
    expect(status).to_contain_text("Export error: You have started 1 export in the last 24 hours")
    expect(status).to_contain_text("EXPORT_MAX_PER_DAY = 1")
    expect(status).not_to_contain_text("retry_after")
    assert Export.objects.count() == 1
