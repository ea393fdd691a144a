"""What players and researchers see of the evolution: the generation on the game page, the versions on the dashboard."""

from __future__ import annotations

import pytest
from django.urls import reverse

from games.models import PartnerModelVersion, PromotionDecision
from games.tests.factories import ExperimentFactory, ImageFactory, PartnerModelFactory
from maps.tests.factories import scored_round

pytestmark = pytest.mark.django_db

TRAIL = [(100 + step, 120) for step in range(0, 40, 4)]


@pytest.fixture
def experiment():
    experiment = ExperimentFactory(partner=PartnerModelFactory(name="evolving"), evolve_every_maps=3)
    zero = PartnerModelVersion.objects.create(partner=experiment.partner, version="g0", checkpoint="/g0.pt",
                                              status="retired", accuracy_revealed=0.3, alignment=0.2)  # fmt: skip
    PartnerModelVersion.objects.create(partner=experiment.partner, version="g1", checkpoint="/g1.pt", parent=zero,
                                       generation=1, export_id=12, status="live", is_active=True,
                                       accuracy=0.8, accuracy_revealed=0.41, alignment=0.37)  # fmt: skip
    return experiment


def test_the_game_page_shows_the_generation_and_how_many_images_until_the_ai_evolves(client, experiment) -> None:
    scored_round(experiment=experiment, image=ImageFactory(image_set=experiment.image_set), clicks=TRAIL)
    client.get(f"/play/{experiment.slug}/")
    client.post(f"/play/{experiment.slug}/", {"consent": "on", "age_confirmed": "on"})
    page = client.get(reverse("games:play", args=[experiment.slug])).content.decode()
    text = " ".join(page.split())
    assert "Your partner is generation 1." in text and "The AI evolves after 2 more images." in text


def test_a_study_that_does_not_evolve_shows_only_the_generation(client, experiment) -> None:
    experiment.evolve_every_maps = 0
    experiment.save()
    client.get(f"/play/{experiment.slug}/")
    client.post(f"/play/{experiment.slug}/", {"consent": "on", "age_confirmed": "on"})
    page = " ".join(client.get(reverse("games:play", args=[experiment.slug])).content.decode().split())
    assert "Your partner is generation 1." in page and "evolves" not in page


def test_the_dashboard_lists_each_generation_with_its_numbers_lineage_and_decisions(client, experiment) -> None:
    g1 = PartnerModelVersion.objects.get(version="g1")
    PromotionDecision.objects.create(experiment=experiment, candidate=g1, kind="gate", passed=True,
                                     reason="alignment 0.370 (live 0.200)")  # fmt: skip
    client.force_login(experiment.owner)
    page = client.get(reverse("maps:dashboard-experiment", args=[experiment.slug])).content.decode()
    table = page[page.index('id="partner-versions"') :]
    table = " ".join(table[: table.index("</table>")].split())
    assert "<td>1</td><td><code>g1</code></td>" in table and "<code>g0</code>" in table
    assert "export 12" in table and "0.410" in table and "0.370" in table and 'class="live"' in table
    assert "evolves every 3 new maps" in page and "alignment 0.370 (live 0.200)" in page
