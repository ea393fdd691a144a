"""A researcher runs a study of their own in Chromium, from an empty dashboard to a participant's results.

Signs in as a researcher (no superuser), uploads a zip of new classes (teapot, bicycle), creates
a study, is refused go-live while its partner knows none of those classes, fixes that by picking
a second partner model that does, pilots it, goes live; then a participant plays one round.
The partner is a real model server on loopback serving two models: `demo-gala` (the demo's
shapes) and `lab-partner` (the new classes), both small random-weight networks.

Drives Debian's Chromium through Playwright (never `playwright install`). With
CLICKME_DOCS_SCREENSHOTS=1 the pictures of docs/running-a-study.md are written to docs/images/.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw

from games.models import Experiment, ImageSet, PartnerModel, PlaySession, Round
from games.tests.study_data import NEW_CLASSES, researcher

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "screenshots"
DOC_IMAGES = ROOT / "docs" / "images"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]  # fmt: skip
PASSWORD = "correct horse battery staple"
PAINT_SPEED = 130  # image px per second: just under the trail's 7 px / 50 ms, so it keeps up

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]


@pytest.fixture
def model_server(settings, tmp_path: Path) -> Iterator[str]:
    """A model server serving `demo-gala` (demo classes) and, loaded over its API, `lab-partner` (new classes)."""
    import torch

    from model_server import demo_data
    from model_server.config import preset
    from model_server.network import gala_small, save_checkpoint
    from model_server.serve import ServerSettings
    from model_server.tests.serving import run_server

    torch.manual_seed(0)
    demo, lab = tmp_path / "demo.pt", tmp_path / "lab.pt"
    save_checkpoint(demo, gala_small(), preset("gala_small"), classes=list(demo_data.CLASSES), version="demo-1")
    count = len(NEW_CLASSES)
    save_checkpoint(lab, gala_small(count), preset("gala_small", num_classes=count), classes=NEW_CLASSES,
                    version="lab-1")  # fmt: skip
    server_settings = ServerSettings(checkpoint=demo, name="demo-gala", image_root=Path(settings.MEDIA_ROOT),
                                     max_delay_ms=1)  # fmt: skip
    with run_server(server_settings) as server:
        response = httpx.post(f"{server.url}/v2/repository/models/lab-partner/load", json={"checkpoint": str(lab)})
        assert response.status_code == 200, response.text
        settings.MODEL_SERVER_URL = server.url
        yield server.url


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Headless Chromium; the test's own ORM reads need Django's async-safety check lifted under Playwright."""
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    expect.set_options(timeout=20_000)  # two shared cores run the browser, the site and the partner
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    expect.set_options(timeout=5_000)


def picture(kind: str, number: int) -> bytes:
    """A small drawing: a teapot-ish blob or a bicycle-ish pair of wheels, a little different each time."""
    image = PILImage.new("RGB", (160, 160), (236 - 9 * number, 232, 220))
    draw = ImageDraw.Draw(image)
    if kind == "teapot":
        draw.ellipse((40 + number * 3, 55, 120, 125), fill=(170, 70 + 20 * number, 40))
        draw.rectangle((115, 75, 140, 85), fill=(120, 50, 30))
    else:
        for x in (30, 90):
            draw.ellipse((x + number * 2, 70, x + 45, 115), outline=(30, 60, 150 + 20 * number), width=5)
        draw.line((55, 92, 80, 70, 112, 92), fill=(30, 30, 30), width=4)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_zip(path: Path, *, extra: dict[str, bytes] | None = None) -> Path:
    """Two teapots and a bicycle in class folders, and any `extra` members."""
    with zipfile.ZipFile(path, "w") as zipped:
        for kind, number in (("teapot", 0), ("teapot", 1), ("bicycle", 0)):
            zipped.writestr(f"{kind}/{kind}-{number}.png", picture(kind, number))
        for name, data in (extra or {}).items():
            zipped.writestr(name, data)
    return path


class Shots:
    """Screenshots for the walk-through: to var/screenshots, and to docs/images when asked, kept small."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: object, name: str, *, full_page: bool = False, at: str = "") -> None:
        """Screenshot the page's top (filling a field scrolls it), or the element `at`."""
        path = self.folder / f"{name}.png"
        if at:
            page.locator(at).scroll_into_view_if_needed()
        else:
            page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=path, full_page=full_page)
        # A palette of 64 colours keeps a page of text and flat colour legible at a tenth of the size.
        PILImage.open(path).convert("RGB").quantize(64).save(path, optimize=True)

    def publish(self) -> None:
        targets = [SCREENSHOTS] + ([DOC_IMAGES] if os.environ.get("CLICKME_DOCS_SCREENSHOTS") == "1" else [])
        for target in targets:
            target.mkdir(parents=True, exist_ok=True)
            for shot in self.folder.iterdir():
                shutil.copy(shot, target / f"study-{shot.name}")


def expected_refusal(response: object) -> bool:
    """Refusals (go-live, a bad upload) are 400s by design; a 503 from guess/ is the documented "partner busy"."""
    refusal = response.url.endswith(("/status/", "/image-sets/new/"))
    return (response.status == 400 and refusal) or (response.status == 503 and response.url.endswith("/guess/"))


def watch(page: object, errors: list[str]) -> None:
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda r: r.status >= 400 and "favicon" not in r.url and not expected_refusal(r)
        and errors.append(f"{r.status} {r.url}"),
    )  # fmt: skip


def sign_in(page: object, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/dashboard/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def upload_images(page: object, shots: Shots, archive: Path, bad_archive: Path) -> None:
    """Upload a zip with a bad file (refused in place, every reason listed), then the good one."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Image sets").click()
    page.get_by_role("link", name="Upload an image set").click()
    expect(page.locator("#upload-form[data-enhanced=true]")).to_be_attached()  # upload.js is listening
    page.get_by_label("Name").fill("kitchen")
    page.get_by_label("Description").fill("Teapots and bicycles, drawn for the walk-through.")
    page.get_by_label("Images (zip)").set_input_files(bad_archive)
    page.get_by_role("button", name="Upload").click()
    errors = page.locator("#upload-form .field.invalid .errorlist")
    expect(errors).to_contain_text("teapot/notes.png: not an image")
    expect(page.locator("#upload-status")).to_contain_text("Nothing was stored")
    assert not ImageSet.objects.exists()
    page.get_by_label("Images (zip)").set_input_files(archive)
    shots.take(page, "upload")
    page.get_by_role("button", name="Upload").click()
    expect(page).to_have_url(re.compile(r"/dashboard/image-sets/kitchen/$"))
    expect(page.locator(".messages")).to_contain_text("uploaded: 3 images")
    expect(page.locator("#classes")).to_contain_text("3 active images in 2 classes")
    shots.take(page, "image-set")


def create_study(page: object, shots: Shots) -> None:
    from playwright.sync_api import expect

    page.get_by_role("link", name="New study").click()
    page.get_by_label("Title").fill("Kitchen things")
    page.get_by_label("Address (slug)").fill("kitchen")
    page.get_by_label("Image set").select_option(label="kitchen")
    page.get_by_label("Partner").select_option(label="demo-gala")
    page.get_by_label("Top-k").fill("1")
    page.get_by_label("Consent text").fill("You will paint over pictures of kitchen things. We store where you paint.")
    shots.take(page, "new-study")
    page.get_by_role("button", name="Create study").click()
    expect(page).to_have_url(re.compile(r"/dashboard/kitchen/$"))
    expect(page.locator("#go-live-problems")).to_contain_text("does not know 2 of the image set's classes")


def refused_then_fixed(page: object, shots: Shots) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Go live").click()
    refusal = page.locator("#status-refused")
    expect(refusal).to_contain_text("Partner demo-gala does not know 2 of the image set's classes (bicycle, teapot)")
    expect(refusal).to_contain_text("Rounds per session is 20")
    shots.take(page, "go-live-refused")
    assert Experiment.objects.get(slug="kitchen").status == "draft"

    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Partner").select_option(label="lab-partner")
    page.get_by_label("Rounds per session").fill("1")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#go-live-ready")).to_have_text("All go-live checks pass.")
    shots.take(page, "go-live-ready")


def pilot(browser: object, page: object, errors: list[str]) -> None:
    """Open the preview link as a tester would: the draft study's consent page."""
    from playwright.sync_api import expect

    link = page.locator("#pilot-link").get_attribute("href")
    assert "?pilot=" in link
    tester = browser.new_context(viewport={"width": 1000, "height": 720}).new_page()
    watch(tester, errors)
    tester.goto(link)
    expect(tester.get_by_role("heading", name="Consent to take part")).to_be_visible()
    tester.context.close()


def paint_one_round(page: object) -> None:
    """Drag the mouse over the middle of the picture in real time until the round ends."""
    from playwright.sync_api import expect

    expect(page.locator("#stage-hint")).to_be_visible()
    box = page.locator("#game-canvas").bounding_box()
    path = [(x, y) for y in range(70, 190, 12) for x in (range(60, 200, 3) if y % 24 == 22 else range(196, 57, -3))]

    def screen(point: tuple[int, int]) -> tuple[float, float]:
        return box["x"] + point[0] * box["width"] / 256, box["y"] + point[1] * box["height"] / 256

    page.mouse.move(*screen(path[0]))
    page.mouse.down()
    give_up = time.monotonic() + 12  # the round itself ends after 7 s
    for index in range(1, 10_000):
        time.sleep(3 / PAINT_SPEED)
        page.mouse.move(*screen(path[index % len(path)]))
        if index % 8 == 0 and (page.locator("#round-end").is_visible() or time.monotonic() > give_up):
            break
    page.mouse.up()
    expect(page.locator("#round-end")).to_be_visible()


def participant_plays(browser: object, base_url: str, shots: Shots, errors: list[str]) -> None:
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1000, "height": 760}).new_page()
    watch(page, errors)
    page.goto(f"{base_url}/play/kitchen/")
    page.get_by_label("years of age or older").check()
    page.get_by_label("agree to take part").check()
    page.get_by_role("button", name="I agree").click()
    expect(page).to_have_url(re.compile(r"/play/kitchen/instructions/$"))
    page.get_by_role("link", name="Start").click()
    expect(page).to_have_url(re.compile(r"/play/kitchen/game/$"))
    paint_one_round(page)
    expect(page.locator("#round-end-points")).to_have_text(re.compile(r"^\+\d+ points$"))
    shots.take(page, "participant-round")
    page.locator("#next-button").click()
    expect(page).to_have_url(re.compile(r"/play/kitchen/results/$"))
    page.context.close()


@pytest.mark.usefixtures("eager_tasks")
def test_a_researcher_runs_a_study_of_new_classes_from_upload_to_a_played_round(
    live_server, model_server, browser, settings, tmp_path
) -> None:
    from playwright.sync_api import expect

    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MODEL_SERVER_TIMEOUT_MS = 5000  # two shared CPU cores run the browser, the site and the partner
    for name in ("demo-gala", "lab-partner"):
        PartnerModel.objects.create(name=name)
    researcher("dana", password=PASSWORD)
    shots = Shots(tmp_path / "shots")
    errors: list[str] = []
    page = browser.new_context(viewport={"width": 1000, "height": 720}).new_page()
    watch(page, errors)

    sign_in(page, live_server.url, "dana")
    expect(page.get_by_role("heading", name="Your experiments")).to_be_visible()
    shots.take(page, "empty-dashboard")
    bad = write_zip(tmp_path / "bad.zip", extra={"teapot/notes.png": b"a text file named like a picture"})
    upload_images(page, shots, write_zip(tmp_path / "kitchen.zip"), bad)
    create_study(page, shots)
    refused_then_fixed(page, shots)
    pilot(browser, page, errors)

    page.get_by_role("button", name="Go live").click()
    expect(page.locator(".messages")).to_contain_text("Kitchen things is now live.")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    shots.take(page, "live", full_page=True)

    participant_plays(browser, live_server.url, shots, errors)
    played = Round.objects.get(experiment__slug="kitchen", session__is_pilot=False)
    assert played.status == Round.Status.SCORED and played.bubble_count >= 10
    assert played.image.category.name in {"teapot", "bicycle"}
    assert played.partner_version.partner.name == "lab-partner"
    assert PlaySession.objects.filter(experiment__slug="kitchen", is_pilot=False).count() == 1

    page.reload()
    expect(page.locator("#progress")).to_contain_text("1 more have started")
    page.locator("#export-start").click()
    expect(page.locator("#export-status")).to_contain_text("succeeded", timeout=60_000)
    shots.take(page, "export", at="#exports")
    assert errors == []
    shots.publish()
