"""Go-live checks, one by one, and the status a study may move to (games.services.studies)."""

from __future__ import annotations

import pytest

from games.models import Experiment, Image
from games.services import studies
from games.services.studies import StudyRefused, go_live_problems, set_status, top_k_problems
from games.tests.factories import CategoryFactory, ExperimentFactory, ImageFactory, PartnerModelFactory, UserFactory
from games.tests.study_data import fake_live_client, researcher

pytestmark = pytest.mark.django_db

CLASSES = ["bicycle", "kettle", "lantern", "teapot", "umbrella"]


@pytest.fixture
def partner_knows(monkeypatch: pytest.MonkeyPatch):
    """Say which models the (fake) model server serves, with their classes."""

    def serve(models: dict[str, list[str]]) -> None:
        monkeypatch.setattr(studies, "live_client", fake_live_client(models))

    serve({"lab-partner": CLASSES})
    return serve


def ready_study(**fields: object) -> Experiment:
    """A draft study that passes every check: two teapots and a bicycle, top-1 of five classes."""
    owner = researcher("owner")
    defaults = {"status": Experiment.Status.DRAFT, "owner": owner, "partner": PartnerModelFactory(name="lab-partner"),
                "top_k": 1, "rounds_per_session": 3, "consent_text": "I agree to take part."}  # fmt: skip
    experiment = ExperimentFactory(**{**defaults, **fields})
    for name in ("teapot", "teapot", "bicycle"):
        ImageFactory(image_set=experiment.image_set, category=CategoryFactory(name=name))
    return experiment


def test_a_study_that_passes_every_check_has_no_problems(partner_knows) -> None:
    assert go_live_problems(ready_study()) == []


def test_an_image_class_the_partner_does_not_know_is_named(partner_knows) -> None:
    partner_knows({"lab-partner": ["kettle", "lantern", "teapot", "umbrella", "vase"]})
    (problem,) = go_live_problems(ready_study())
    assert "does not know 1 of the image set's classes (bicycle)" in problem and "Time's up" in problem


def test_a_partner_the_model_server_does_not_serve_is_refused(partner_knows) -> None:
    partner_knows({"other": CLASSES})
    (problem,) = go_live_problems(ready_study())
    assert "does not serve a model named lab-partner" in problem


def test_an_unreachable_model_server_refuses_go_live_saying_so(settings) -> None:
    settings.MODEL_SERVER_URL = "http://127.0.0.1:9"  # the discard port: nothing listens
    (problem,) = go_live_problems(ready_study())
    assert problem.startswith("The model server cannot be reached")


def test_more_rounds_per_session_than_servable_images_is_refused(partner_knows) -> None:
    experiment = ready_study(rounds_per_session=4)
    (problem,) = go_live_problems(experiment)
    assert "Rounds per session is 4" in problem and "only 3 active images" in problem


def test_retired_and_rejected_images_are_not_servable(partner_knows) -> None:
    experiment = ready_study()
    first = experiment.image_set.images.first()
    first.state = Image.State.REJECTED
    first.save()
    assert "only 2 active images" in go_live_problems(experiment)[0]


def test_a_set_without_active_images_is_refused(partner_knows) -> None:
    experiment = ready_study()
    experiment.image_set.images.update(state=Image.State.RETIRED)
    assert "has no active images" in go_live_problems(experiment)[0]


def test_a_top_k_that_makes_guessing_easy_is_refused_with_its_chance(partner_knows) -> None:
    (problem,) = go_live_problems(ready_study(top_k=2))
    assert problem == "top-2 of 5 classes: a random guess is 'recognised' 40 % of the time; use top-k ≤ 1."


def test_top_k_is_judged_against_the_number_of_partner_classes() -> None:
    (problem,) = top_k_problems(5, 6)
    assert problem == "top-5 of 6 classes: a random guess is 'recognised' 83 % of the time; use top-k ≤ 1."
    assert top_k_problems(1, 5) == [] and top_k_problems(2, 10) == [] and top_k_problems(100, 1000) == []
    assert "at least 5 classes" in top_k_problems(1, 4)[0]
    assert "100 %" in top_k_problems(8, 6)[0]


def test_an_empty_consent_text_is_refused(partner_knows) -> None:
    assert go_live_problems(ready_study(consent_text="  \n")) == [
        "Consent text is empty: participants must be shown what they agree to."
    ]


@pytest.mark.parametrize(
    ("recruitment", "fields", "expected"),
    [
        ("prolific", {"completion_code": " "}, "Completion code is empty"),
        ("mturk", {"completion_code": " "}, "Completion code is empty"),
        ("sona", {"completion_code": "X", "completion_url": "https://x.sona-systems.com/credit?id=1"}, "{sona_id}"),
    ],
)
def test_incomplete_panel_settings_are_refused(partner_knows, recruitment, fields, expected) -> None:
    (problem,) = go_live_problems(ready_study(recruitment=recruitment, **fields))
    assert expected in problem


def test_complete_panel_settings_pass(partner_knows) -> None:
    url = "https://x.sona-systems.com/credit?id=1&survey_code={sona_id}"
    assert go_live_problems(ready_study(recruitment="sona", completion_code="X", completion_url=url)) == []
    assert go_live_problems(ready_study(recruitment="prolific", completion_code="C0DE")) == []


def test_a_draft_goes_live_only_when_its_checks_pass(partner_knows) -> None:
    experiment = ready_study(rounds_per_session=9)
    with pytest.raises(StudyRefused) as refusal:
        set_status(experiment, "live", by=experiment.owner)
    assert "Rounds per session is 9" in refusal.value.problems[0]
    assert Experiment.objects.get(pk=experiment.pk).status == "draft"
    experiment.rounds_per_session = 3
    experiment.save()
    set_status(experiment, "live", by=experiment.owner)
    assert Experiment.objects.get(pk=experiment.pk).status == "live"


def test_a_live_study_pauses_resumes_and_closes_for_good(partner_knows) -> None:
    experiment = ready_study()
    for status in ("live", "paused", "live", "paused", "closed"):
        set_status(experiment, status, by=experiment.owner)
        assert Experiment.objects.get(pk=experiment.pk).status == status
    for status in ("live", "paused", "draft"):
        with pytest.raises(StudyRefused, match="it can become: nothing"):
            set_status(experiment, status, by=experiment.owner)


@pytest.mark.parametrize(("start", "target"), [("draft", "paused"), ("draft", "closed"), ("live", "draft"),
                                               ("paused", "draft"), ("live", "live")])  # fmt: skip
def test_transitions_outside_the_lifecycle_are_refused(partner_knows, start, target) -> None:
    experiment = ready_study(status=start)
    with pytest.raises(StudyRefused, match=f"A {start} study cannot become {target}"):
        set_status(experiment, target, by=experiment.owner)
    assert Experiment.objects.get(pk=experiment.pk).status == start


def test_resuming_a_paused_study_runs_the_checks_again(partner_knows) -> None:
    experiment = ready_study(status="paused")
    partner_knows({})
    with pytest.raises(StudyRefused, match="does not serve"):
        set_status(experiment, "live", by=experiment.owner)


def test_only_the_owner_or_a_superuser_changes_a_study(partner_knows) -> None:
    experiment = ready_study()
    colleague = researcher("colleague")
    experiment.researchers.add(colleague)
    with pytest.raises(StudyRefused, match="Only the study's owner"):
        set_status(experiment, "live", by=colleague)
    admin = UserFactory(username="admin", is_superuser=True)
    set_status(experiment, "live", by=admin)
    assert Experiment.objects.get(pk=experiment.pk).status == "live"
