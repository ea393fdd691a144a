"""The researcher API of partner versions: who may read, register, promote; input checked at the edge."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from games.models import ModerationAction, PartnerModelVersion
from games.tests.factories import CategoryFactory, ExperimentFactory, ImageFactory, PartnerModelFactory
from games.tests.study_data import researcher

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment():
    owner = researcher("olga")
    experiment = ExperimentFactory(owner=owner, partner=PartnerModelFactory(name="evolving"))
    ImageFactory(image_set=experiment.image_set, category=CategoryFactory(name="cat"))
    return experiment


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def url(experiment, tail: str = "versions/") -> str:
    return f"/api/researcher/experiments/{experiment.slug}/partner/{tail}"


def test_the_owner_registers_a_version_and_every_researcher_of_the_study_reads_its_lineage(experiment) -> None:
    owner = client_of(experiment.owner)
    first = owner.post(url(experiment), {"version": "v1", "checkpoint": "/ckpt/v1.pt", "classes": ["cat", "dog"]},
                       format="json")  # fmt: skip
    assert first.status_code == 201 and first.json()["status"] == "candidate"
    second = owner.post(url(experiment), {"version": "v2", "checkpoint": "/ckpt/v2.pt", "classes": ["cat"],
                                          "parent": "v1", "export_id": 3, "evaluation": {"top1": 0.5}},
                        format="json")  # fmt: skip
    assert second.status_code == 201 and second.json()["generation"] == 1 and second.json()["accuracy"] == 0.5

    colleague = researcher("carl")
    experiment.researchers.add(colleague)
    listing = client_of(colleague).get(url(experiment))
    assert listing.status_code == 200
    body = listing.json()
    assert [(v["version"], v["parent"]) for v in body["versions"]] == [("v1", None), ("v2", "v1")]
    assert body["maps_until_next"] is None and body["generations"] == [] and body["partner"] == "evolving"
    # An added researcher may look, not change; anyone else does not learn the study exists.
    refused = client_of(colleague).post(url(experiment), {"version": "v3", "checkpoint": "/c", "classes": ["cat"]},
                                        format="json")  # fmt: skip
    assert refused.status_code == 403
    assert client_of(researcher("eve")).get(url(experiment)).status_code == 404
    assert APIClient().get(url(experiment)).status_code in (401, 403)


def test_a_version_is_checked_at_the_edge_with_a_clear_error(experiment) -> None:
    owner = client_of(experiment.owner)
    missing = owner.post(url(experiment), {"version": "v1", "checkpoint": "/c.pt", "classes": ["dog"]}, format="json")
    assert missing.status_code == 400 and f"{experiment.slug} needs cat" in missing.json()["detail"]
    bad = owner.post(url(experiment), {"version": "a/b", "checkpoint": "/c.pt", "classes": ["cat"]}, format="json")
    assert bad.status_code == 400 and "without '/'" in bad.json()["detail"]
    assert owner.post(url(experiment), {"version": "v1"}, format="json").status_code == 400
    assert not PartnerModelVersion.objects.exists()


def test_a_manual_promotion_needs_a_reason_and_an_unknown_action_is_404(experiment) -> None:
    PartnerModelVersion.objects.create(partner=experiment.partner, version="v1", checkpoint="/c.pt", classes=["cat"])
    owner = client_of(experiment.owner)
    assert owner.post(url(experiment, "versions/v1/promote/"), {}, format="json").status_code == 400
    assert owner.post(url(experiment, "versions/v1/launch/"), {}, format="json").status_code == 404
    assert owner.post(url(experiment, "versions/nope/promote/"), {"reason": "x"}, format="json").status_code == 404
    no_earlier = owner.post(url(experiment, "roll-back/"), {"reason": "bad"}, format="json")
    assert no_earlier.status_code == 400 and "no earlier live version" in no_earlier.json()["detail"]
    assert not ModerationAction.objects.exists()
