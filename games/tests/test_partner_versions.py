"""Partner versions: registration with lineage, the promotion gate, activation on a real model server, the audit log."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from games.models import ModerationAction, PartnerModelVersion, PromotionDecision
from games.services import partners
from games.tests.factories import CategoryFactory, ExperimentFactory, ImageFactory, PartnerModelFactory, UserFactory
from model_server.client import GuessItem, PartnerClient

pytestmark = pytest.mark.django_db

TOKEN = "test-admin-token-0123456789abcdefghijklmnop"
CLASSES = ["cat", "dog"]


@pytest.fixture
def experiment():
    partner = PartnerModelFactory(name="evolving")
    experiment = ExperimentFactory(partner=partner, promotion_accuracy_margin=0.05, promotion_alignment_margin=0.0)
    for name in CLASSES:
        ImageFactory(image_set=experiment.image_set, category=CategoryFactory(name=name))
    return experiment


def checkpoint(path: Path, version: str, seed: int) -> Path:
    import torch

    from model_server.config import preset
    from model_server.network import build, save_checkpoint

    torch.manual_seed(seed)
    config = preset("gala_small", widths=(4, 8, 8, 8), stem_width=8, num_classes=len(CLASSES))
    save_checkpoint(path, build(config), config, classes=CLASSES, version=version)
    return path


@pytest.fixture
def server(settings, tmp_path: Path) -> Iterator[str]:
    """A real model server on loopback (the admin token required), serving version `first` of `evolving`."""
    from model_server.serve import ServerSettings
    from model_server.tests.serving import make_images, run_server

    first = checkpoint(tmp_path / "first.pt", "first", 0)
    make_images(tmp_path / "images")
    options = ServerSettings(checkpoint=first, name="evolving", image_root=tmp_path / "images", max_delay_ms=1,
                             admin_token=TOKEN)  # fmt: skip
    with run_server(options) as running:
        settings.MODEL_SERVER_URL, settings.MODEL_SERVER_ADMIN_TOKEN = running.url, TOKEN
        yield running.url


def numbers(accuracy_revealed: float, alignment: float) -> dict:
    """A model_server.evaluate result with these numbers."""
    return {"top1": 0.9, "revealed": {"10": accuracy_revealed, "30": accuracy_revealed},
            "attention": {"alignment": alignment}, "saliency": {"alignment": 0.1}}  # fmt: skip


def served_versions(url: str) -> tuple[list[str], str]:
    with PartnerClient(url) as client:
        metadata = client.metadata("evolving")
    return metadata["versions"], metadata["active_version"]


def test_a_class_list_missing_an_experiments_category_is_refused_by_name(experiment) -> None:
    with pytest.raises(partners.PartnerVersionInvalid, match=rf"{experiment.slug} needs dog"):
        partners.register_version(partner=experiment.partner, version="v1", checkpoint="/x.pt", classes=["cat"])
    with pytest.raises(partners.PartnerVersionInvalid, match="repeat"):
        partners.register_version(partner=experiment.partner, version="v1", checkpoint="/x.pt",
                                  classes=["cat", "dog", "cat"])  # fmt: skip
    assert not PartnerModelVersion.objects.exists()


def test_a_registered_version_keeps_its_lineage_and_evaluation(experiment) -> None:
    parent = partners.register_version(partner=experiment.partner, version="v1", checkpoint="/v1.pt", classes=CLASSES)
    child = partners.register_version(
        partner=experiment.partner, version="v2", checkpoint="/v2.pt", classes=["dog", "cat", "bird"],
        parent=parent, export_id=7, dataset_version="abc123", evaluation=numbers(0.5, 0.4),
    )  # fmt: skip
    assert (child.parent, child.generation, child.export_id, child.dataset_version) == (parent, 1, 7, "abc123")
    assert (child.accuracy, child.accuracy_revealed, child.alignment) == (0.9, 0.5, 0.4)
    assert child.status == PartnerModelVersion.Status.CANDIDATE and not child.is_active
    assert child.metrics["evaluation"]["attention"]["alignment"] == 0.4
    with pytest.raises(partners.PartnerVersionInvalid, match="already has a version 'v2'"):
        partners.register_version(partner=experiment.partner, version="v2", checkpoint="/v.pt", classes=CLASSES)


@pytest.mark.parametrize(
    ("candidate", "passed", "why"),
    [
        ((0.46, 0.40), True, "accuracy with the reveal 0.460"),  # 0.04 lower: within the 0.05 margin
        ((0.44, 0.40), False, "accuracy with the reveal fell by 0.060"),
        ((0.60, 0.39), False, "alignment fell by 0.010"),  # better accuracy does not buy lower alignment
        ((0.50, None), False, "no accuracy with the reveal or no alignment"),
    ],
)
def test_the_gate_allows_the_accuracy_margin_and_no_lower_alignment(experiment, candidate, passed, why) -> None:
    live = {"accuracy": 0.9, "accuracy_revealed": 0.50, "alignment": 0.40}
    numbers = dict(zip(("accuracy_revealed", "alignment"), candidate, strict=True))
    result = partners.gate(experiment=experiment, candidate=numbers, live=live)
    assert result.passed is passed and why in result.reason
    assert result.numbers["live"] == live and result.numbers["accuracy_margin"] == 0.05


def test_with_nothing_live_the_first_candidate_passes(experiment) -> None:
    result = partners.gate(experiment=experiment, candidate={"accuracy_revealed": 0.1, "alignment": 0.0}, live=None)
    assert result.passed and "no version is live" in result.reason


def test_a_candidate_the_gate_refuses_is_never_loaded_and_never_guesses(experiment, server, tmp_path) -> None:
    live = partners.register_version(partner=experiment.partner, version="first", checkpoint=str(tmp_path / "first.pt"),
                                     classes=CLASSES, evaluation=numbers(0.5, 0.4))  # fmt: skip
    assert partners.decide(experiment=experiment, candidate=live).passed  # nothing live: it goes live
    worse = partners.register_version(
        partner=experiment.partner, version="worse", checkpoint=str(checkpoint(tmp_path / "worse.pt", "worse", 1)),
        classes=CLASSES, parent=live, evaluation=numbers(0.2, 0.1),
    )  # fmt: skip

    decision = partners.decide(experiment=experiment, candidate=worse, live_numbers={"accuracy_revealed": 0.5,
                                                                                    "alignment": 0.4})  # fmt: skip

    assert not decision.passed and decision.kind == PromotionDecision.Kind.GATE and decision.live == live
    assert decision.numbers["candidate"]["alignment"] == 0.1 and "fell by" in decision.reason
    worse.refresh_from_db()
    assert worse.status == PartnerModelVersion.Status.FAILED and "refused by the gate" in worse.status_reason
    assert served_versions(server) == (["first"], "first")  # never even loaded
    with PartnerClient(server) as client:
        (guess,) = client.guess("evolving", [GuessItem("birds/a.png", [(100, 100)], 1)], top_k=2)
    assert guess.model_version == "first"
    with pytest.raises(partners.PartnerVersionInvalid, match="not a candidate"):
        partners.decide(experiment=experiment, candidate=worse)


def test_a_passing_candidate_is_loaded_then_flipped_live_and_the_old_one_retired(experiment, server, tmp_path) -> None:
    first = partners.register_version(partner=experiment.partner, version="first",
                                      checkpoint=str(tmp_path / "first.pt"), classes=CLASSES)  # fmt: skip
    partners.activate(first, reason="the first")
    better = partners.register_version(
        partner=experiment.partner, version="better", checkpoint=str(checkpoint(tmp_path / "b.pt", "better", 2)),
        classes=CLASSES, parent=first, evaluation=numbers(0.6, 0.5),
    )  # fmt: skip
    decision = partners.decide(experiment=experiment, candidate=better, live_numbers={"accuracy_revealed": 0.5,
                                                                                     "alignment": 0.4})  # fmt: skip
    assert decision.passed
    versions, active = served_versions(server)
    assert sorted(versions) == ["better", "first"] and active == "better"
    first.refresh_from_db()
    better.refresh_from_db()
    assert (first.status, first.is_active, better.status, better.is_active) == ("retired", False, "live", True)
    assert better.live_since is not None and "passed the gate" in better.status_reason


def test_activation_that_the_server_refuses_leaves_the_live_version_live(experiment, server, tmp_path) -> None:
    first = partners.register_version(partner=experiment.partner, version="first",
                                      checkpoint=str(tmp_path / "first.pt"), classes=CLASSES)  # fmt: skip
    partners.activate(first, reason="the first")
    missing = partners.register_version(partner=experiment.partner, version="gone",
                                        checkpoint=str(tmp_path / "no-such.pt"), classes=CLASSES)  # fmt: skip
    with pytest.raises(partners.ActivationFailed, match="did not activate"):
        partners.activate(missing, reason="try")
    first.refresh_from_db()
    assert first.is_active and served_versions(server)[1] == "first"


def test_promote_and_roll_back_by_hand_need_a_reason_and_go_into_the_audit_log(experiment, server, tmp_path) -> None:
    researcher = UserFactory()
    first = partners.register_version(partner=experiment.partner, version="first",
                                      checkpoint=str(tmp_path / "first.pt"), classes=CLASSES)  # fmt: skip
    partners.activate(first, reason="the first")
    path = checkpoint(tmp_path / "s.pt", "second", 3)
    second = partners.register_version(partner=experiment.partner, version="second", parent=first,
                                       checkpoint=str(path), classes=CLASSES)  # fmt: skip
    with pytest.raises(partners.PartnerVersionInvalid, match="reason is required"):
        partners.promote(version=second, experiment=experiment, actor=researcher, reason="  ")

    partners.promote(version=second, experiment=experiment, actor=researcher, reason="looks better to me")
    assert served_versions(server)[1] == "second"
    back = partners.roll_back(experiment=experiment, actor=researcher, reason="players complain")

    assert back.candidate == first and back.live == second and back.kind == PromotionDecision.Kind.ROLL_BACK
    assert served_versions(server)[1] == "first"
    actions = list(
        ModerationAction.objects.order_by("created_at", "pk").values_list("kind", "reason", "partner_version")
    )
    assert actions == [("promote_partner", "looks better to me", second.pk), ("roll_back_partner", "players complain",
                                                                              first.pk)]  # fmt: skip


def test_register_partner_reads_the_checkpoint_and_promotes_with_a_reason(experiment, server, tmp_path) -> None:
    owner = experiment.owner
    out = io.StringIO()
    call_command("register_partner", "--partner", "evolving", "--checkpoint", str(tmp_path / "first.pt"),
                 "--promote", experiment.slug, "--user", owner.username, "--reason", "the first partner",
                 stdout=out)  # fmt: skip
    version = PartnerModelVersion.objects.get(version="first")  # the checkpoint's own name and classes
    assert version.classes == CLASSES and version.architecture == "gala_small" and version.is_active
    assert "live: the first partner" in out.getvalue()
    with pytest.raises(CommandError, match="needs --user and --reason"):
        call_command("register_partner", "--partner", "evolving", "--checkpoint", "/x.pt", "--promote", experiment.slug)
    with pytest.raises(CommandError, match="cannot read the checkpoint"):
        call_command("register_partner", "--partner", "evolving", "--checkpoint", str(tmp_path / "none.pt"))
