"""The researcher's study pages: who may use them, every bad input named, and status changes by POST."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from games.models import Category, Consent, Experiment, Image, ImageSet
from games.services import studies
from games.tests.factories import (
    CategoryFactory,
    ExperimentFactory,
    ImageFactory,
    ImageSetFactory,
    ParticipantFactory,
    PartnerModelFactory,
    UserFactory,
)
from games.tests.study_data import fake_live_client, image_zip, png, researcher, zip_bytes

pytestmark = pytest.mark.django_db

CLASSES = ["bicycle", "kettle", "lantern", "teapot", "umbrella"]


@pytest.fixture(autouse=True)
def partner(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model server that serves `lab-partner` (five new classes) and `demo-gala` (the demo's shapes)."""
    models = {"lab-partner": CLASSES, "demo-gala": ["circle", "square", "triangle", "star", "cross", "heart"]}
    monkeypatch.setattr(studies, "live_client", fake_live_client(models))


def own_set(owner, name: str = "kitchen") -> ImageSet:
    image_set = ImageSetFactory(name=name, owner=owner)
    for category in ("teapot", "teapot", "bicycle"):
        ImageFactory(image_set=image_set, category=CategoryFactory(name=category))
    return image_set


def study_data(image_set: ImageSet, **changes: object) -> dict:
    """What the new-study form posts for a valid open study on `image_set`."""
    data = {"title": "Kitchen things", "slug": "kitchen", "description": "", "image_set": image_set.pk,
            "partner": PartnerModelFactory(name="lab-partner").pk, "rounds_per_session": 3, "top_k": 1,
            "recognition_min_probability": "", "time_limit_ms": 7000, "query_every": 10,
            "skips_count_for_completion": "on", "max_points": 100, "bubble_size": 21, "bubble_interval_ms": 50,
            "bubble_max_step": 7, "noise_std": 0.4, "catch_trial_rate": 0, "target_maps_per_image": 10,
            "plateau_tolerance": 0.01, "consent_version": "1", "consent_text": "I agree.", "minimum_age": 18,
            "recruitment": "open", "completion_code": "", "completion_url": ""}  # fmt: skip
    return {**data, **changes}


@pytest.fixture
def owner(client):
    user = researcher("alice")
    client.force_login(user)
    return user


def test_a_researcher_creates_a_draft_study_they_own(client, owner) -> None:
    response = client.post(reverse("maps:study-create"), study_data(own_set(owner)))
    assert response.status_code == 302
    experiment = Experiment.objects.get(slug="kitchen")
    assert (experiment.owner, experiment.status, experiment.top_k) == (owner, "draft", 1)
    page = client.get(response["Location"]).content.decode()
    assert f"?pilot={experiment.pilot_token}" in page and "All go-live checks pass." in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", "", "This field is required."),
        ("slug", "Not a slug!", "Enter a valid “slug”"),
        ("slug", "image-sets", "dashboard page's name"),
        ("rounds_per_session", 0, "greater than or equal to 1"),
        ("top_k", "", "This field is required."),
        ("top_k", 0, "greater than or equal to 1"),
        ("time_limit_ms", 500, "greater than or equal to 1000"),
        ("bubble_size", 300, "less than or equal to 256"),
        ("catch_trial_rate", 1.5, "less than or equal to 1"),
        ("noise_std", -1, "greater than or equal to 0"),
        ("recognition_min_probability", 2, "less than or equal to 1"),
        ("query_every", "many", "Enter a whole number."),
        ("recruitment", "carrier-pigeon", "Select a valid choice."),
        ("completion_url", "not a url", "Enter a valid URL."),
    ],
)
def test_each_bad_value_is_named_on_its_field_and_nothing_is_stored(client, owner, field, value, message) -> None:
    response = client.post(reverse("maps:study-create"), study_data(own_set(owner), **{field: value}))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field] and message in " ".join(errors[field]), errors
    assert not Experiment.objects.exists()


@pytest.mark.parametrize("recruitment", ["prolific", "mturk", "sona"])
def test_a_panel_study_needs_a_completion_code(client, owner, recruitment) -> None:
    response = client.post(reverse("maps:study-create"), study_data(own_set(owner), recruitment=recruitment))
    assert "completion code" in response.context["form"].errors["completion_code"][0]
    assert not Experiment.objects.exists()


def test_a_sona_credit_url_must_name_the_participant(client, owner) -> None:
    data = study_data(own_set(owner), recruitment="sona", completion_code="X",
                      completion_url="https://x.sona-systems.com/credit?id=1")  # fmt: skip
    response = client.post(reverse("maps:study-create"), data)
    assert "{sona_id}" in response.context["form"].errors["completion_url"][0]


def test_a_taken_slug_is_refused(client, owner) -> None:
    ExperimentFactory(slug="kitchen")
    response = client.post(reverse("maps:study-create"), study_data(own_set(owner)))
    assert "already exists" in response.context["form"].errors["slug"][0]


def test_another_researchers_image_set_cannot_be_picked(client, owner) -> None:
    theirs = own_set(researcher("bob"), name="bobs-set")
    page = client.get(reverse("maps:study-create")).content.decode()
    assert "bobs-set" not in page
    response = client.post(reverse("maps:study-create"), study_data(theirs))
    assert "Select a valid choice" in response.context["form"].errors["image_set"][0]
    assert not Experiment.objects.exists()


def draft(owner, **fields: object) -> Experiment:
    defaults = {"slug": "kitchen", "owner": owner, "status": "draft", "image_set": own_set(owner),
                "partner": PartnerModelFactory(name="demo-gala"), "top_k": 1, "rounds_per_session": 20,
                "consent_text": "I agree."}  # fmt: skip
    return ExperimentFactory(**{**defaults, **fields})


def test_go_live_is_refused_with_the_checks_messages_until_they_are_fixed(client, owner) -> None:
    experiment = draft(owner)
    page = client.get(reverse("maps:dashboard-experiment", args=["kitchen"])).content.decode()
    assert "Before this study can go live" in page and "does not know 2 of the image set" in page
    response = client.post(reverse("maps:study-status", args=["kitchen"]), {"status": "live"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "bicycle, teapot" in page and "Rounds per session is 20" in page
    assert Experiment.objects.get(pk=experiment.pk).status == "draft"

    data = study_data(experiment.image_set, partner=PartnerModelFactory(name="lab-partner").pk)
    assert client.post(reverse("maps:study-settings", args=["kitchen"]), data).status_code == 302
    response = client.post(reverse("maps:study-status", args=["kitchen"]), {"status": "live"})
    assert response.status_code == 302
    assert Experiment.objects.get(pk=experiment.pk).status == "live"


def test_a_study_is_paused_resumed_and_closed_from_its_page(client, owner) -> None:
    experiment = draft(owner, partner=PartnerModelFactory(name="lab-partner"), rounds_per_session=3)
    url = reverse("maps:study-status", args=["kitchen"])
    for status in ("live", "paused", "live", "closed"):
        assert client.post(url, {"status": status}).status_code == 302
        assert Experiment.objects.get(pk=experiment.pk).status == status
    response = client.post(url, {"status": "live"})
    assert response.status_code == 400 and "it is final" in response.content.decode()
    assert client.post(url, {"status": "nonsense"}).status_code == 400


def test_changing_consented_text_needs_a_new_version(client, owner) -> None:
    experiment = draft(owner)
    Consent.objects.create(participant=ParticipantFactory(), experiment=experiment, version="1",
                           age_confirmed=True, consented_at=experiment.created_at)  # fmt: skip
    url = reverse("maps:study-settings", args=["kitchen"])
    data = study_data(experiment.image_set, partner=experiment.partner.pk, consent_text="New wording.")
    response = client.post(url, data)
    assert response.status_code == 400
    assert "1 participant has agreed to version '1'" in response.context["form"].errors["consent_version"][0]
    assert Experiment.objects.get(pk=experiment.pk).consent_text == "I agree."
    assert client.post(url, {**data, "consent_version": "2"}).status_code == 302
    assert Experiment.objects.get(pk=experiment.pk).consent_text == "New wording."
    # The same text with other settings changed needs no new version.
    assert client.post(url, {**data, "consent_version": "2", "top_k": 1, "title": "Renamed"}).status_code == 302


def test_image_set_and_partner_are_fixed_once_live(client, owner) -> None:
    experiment = draft(owner, status="live")
    other = own_set(owner, name="other-set")
    data = study_data(other, partner=PartnerModelFactory(name="lab-partner").pk, title="Renamed")
    assert client.post(reverse("maps:study-settings", args=["kitchen"]), data).status_code == 302
    experiment.refresh_from_db()
    assert (experiment.title, experiment.image_set.name, experiment.partner.name) == ("Renamed", "kitchen", "demo-gala")


# --- Who may see and change what ------------------------------------------------------------


def test_another_researcher_gets_404_for_a_study_and_an_image_set_that_are_not_theirs(client) -> None:
    alice = researcher("alice")
    experiment = draft(alice)
    client.force_login(researcher("bob"))
    settings_url = reverse("maps:study-settings", args=["kitchen"])
    for url in (reverse("maps:dashboard-experiment", args=["kitchen"]), settings_url,
                reverse("maps:image-set", args=["kitchen"])):  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("maps:study-status", args=["kitchen"]), {"status": "live"}).status_code == 404
    assert client.post(settings_url, study_data(experiment.image_set)).status_code == 404
    assert "kitchen" not in client.get(reverse("maps:image-sets")).content.decode()
    assert Experiment.objects.get(pk=experiment.pk).status == "draft"


def test_a_listed_colleague_sees_a_study_but_may_not_change_it(client) -> None:
    experiment = draft(researcher("alice"))
    colleague = researcher("carol")
    experiment.researchers.add(colleague)
    client.force_login(colleague)
    page = client.get(reverse("maps:dashboard-experiment", args=["kitchen"])).content.decode()
    assert experiment.pilot_token not in page and "Go live" not in page
    assert client.get(reverse("maps:study-settings", args=["kitchen"])).status_code == 403
    assert client.post(reverse("maps:study-status", args=["kitchen"]), {"status": "live"}).status_code == 403


def test_a_signed_in_user_who_is_no_researcher_gets_a_clear_403(client) -> None:
    client.force_login(UserFactory(username="visitor"))
    for url in (reverse("maps:dashboard"), reverse("maps:study-create"), reverse("maps:image-sets"),
                reverse("maps:image-set-upload")):  # fmt: skip
        response = client.get(url)
        assert response.status_code == 403, url
        assert "add_researcher visitor" in response.content.decode()


def test_a_superuser_changes_anyones_study(client) -> None:
    experiment = draft(researcher("alice"), partner=PartnerModelFactory(name="lab-partner"), rounds_per_session=3)
    client.force_login(UserFactory(username="root", is_superuser=True))
    assert client.post(reverse("maps:study-status", args=["kitchen"]), {"status": "live"}).status_code == 302
    assert Experiment.objects.get(pk=experiment.pk).status == "live"


def test_pages_need_a_login(client) -> None:
    for url in (reverse("maps:study-create"), reverse("maps:image-set-upload"), reverse("maps:image-sets")):
        assert client.get(url)["Location"].startswith(reverse("maps:login"))


# --- Uploads through the page ---------------------------------------------------------------


def zip_file(data: bytes, name: str = "images.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/zip")


def nothing_stored(settings) -> bool:
    media = Path(settings.MEDIA_ROOT)
    files = [path for path in media.rglob("*") if path.is_file()] if media.exists() else []
    return not ImageSet.objects.exists() and not Image.objects.exists() and not Category.objects.exists() and not files


def test_an_upload_makes_an_image_set_the_uploader_owns(client, owner) -> None:
    response = client.post(reverse("maps:image-set-upload"), {"name": "kitchen", "archive": zip_file(
        image_zip({"teapot": 2, "bicycle": 1}))})  # fmt: skip
    assert response.status_code == 302 and response["Location"] == reverse("maps:image-set", args=["kitchen"])
    assert ImageSet.objects.get(name="kitchen").owner == owner
    page = client.get(response["Location"]).content.decode()
    assert "3 active images in 2 classes" in page and "teapot" in page


def test_the_upload_script_gets_json_back(client, owner) -> None:
    url = reverse("maps:image-set-upload")
    response = client.post(url, {"name": "kitchen", "archive": zip_file(image_zip({"teapot": 1}))},
                           headers={"Accept": "application/json"})  # fmt: skip
    assert response.json() == {"url": reverse("maps:image-set", args=["kitchen"])}
    response = client.post(url, {"name": "kitchen2", "archive": zip_file(b"nope")},
                           headers={"Accept": "application/json"})  # fmt: skip
    assert response.status_code == 400
    assert response.json()["errors"]["archive"][0]["message"] == "The file is not a zip archive (or it is damaged)."


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a zip", "not a zip archive"),
        (zip_bytes({}), "The zip is empty"),
        (zip_bytes({"a.png": png()}), "no class folders"),
        (zip_bytes({"teapot/a.png": png(), "teapot/fake.png": b"text"}), "teapot/fake.png: not an image"),
        (zip_bytes({"teapot/a.png": png(), "bicycle/a.png": png((1, 1, 1))}), "duplicate name 'a'"),
        (b"", "The submitted file is empty."),
    ],
)
def test_a_bad_zip_is_refused_on_the_page_with_its_reasons(client, owner, settings, data, message) -> None:
    response = client.post(reverse("maps:image-set-upload"), {"name": "kitchen", "archive": zip_file(data)})
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors["archive"])
    assert nothing_stored(settings)


def test_a_zip_over_the_size_cap_is_refused(client, owner, settings) -> None:
    data = image_zip({"teapot": 3})
    settings.IMAGE_SET_ZIP_MAX_BYTES = len(data) - 1
    response = client.post(reverse("maps:image-set-upload"), {"name": "kitchen", "archive": zip_file(data)})
    assert "IMAGE_SET_ZIP_MAX_BYTES" in response.context["form"].errors["archive"][0]
    assert nothing_stored(settings)


def test_an_upload_needs_a_fresh_valid_name_and_a_file(client, owner, settings) -> None:
    ImageSetFactory(name="taken")
    url = reverse("maps:image-set-upload")
    for name, message in (("taken", "already exists"), ("no spaces", "valid “slug”"), ("new", "page's name")):
        response = client.post(url, {"name": name, "archive": zip_file(image_zip({"teapot": 1}))})
        assert message in response.context["form"].errors["name"][0], name
    response = client.post(url, {"name": "kitchen"})
    assert response.context["form"].errors["archive"] == ["This field is required."]
    assert ImageSet.objects.count() == 1 and not Image.objects.exists()


def test_the_dashboard_offers_a_researcher_new_studies_and_image_sets(client, owner) -> None:
    page = client.get(reverse("maps:dashboard")).content.decode()
    assert reverse("maps:study-create") in page and reverse("maps:image-sets") in page
    assert "You have no image sets yet" in client.get(reverse("maps:study-create")).content.decode()
