"""Partner versions: registration with lineage, the promotion gate, activation, promotion and roll back.

The one home of the rules of docs/evolution.md: which version may go live (`gate`), how it goes
live (`activate`: loaded into the model server first, flipped live here only once the server
answers with it) and who may do what by hand (`promote`, `roll_back`, each in the audit log).
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from games.models import Experiment, ModerationAction, PartnerModel, PartnerModelVersion, PromotionDecision
from games.partner import admin_client, forget_classes
from model_server.client import PartnerError, PartnerRequestError

logger = logging.getLogger(__name__)

Status = PartnerModelVersion.Status
NUMBERS = ("accuracy", "accuracy_revealed", "alignment")  # the evaluation's columns of a version


class PartnerVersionInvalid(ValueError):
    """A version that cannot be registered or promoted as asked; the message says why."""


class ActivationFailed(RuntimeError):
    """The model server did not load or activate the version; nothing was flipped live."""


# --- registration -----------------------------------------------------------------------------


def missing_classes(partner: PartnerModel, classes: list[str]) -> dict[str, list[str]]:
    """{experiment slug: its image categories the class list lacks} over the experiments using the partner."""
    known = set(classes)
    missing = {}
    for experiment in Experiment.objects.filter(partner=partner).select_related("image_set").order_by("slug"):
        names = set(experiment.image_set.images.values_list("category__name", flat=True).distinct())
        if names - known:
            missing[experiment.slug] = sorted(names - known)
    return missing


def check_classes(partner: PartnerModel, classes: list[str]) -> None:
    """Refuse a class list that cannot name every category of an experiment that would play the partner."""
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise PartnerVersionInvalid("classes must be a non-empty list of class names, in the network's output order")
    if len(set(classes)) != len(classes):
        raise PartnerVersionInvalid("classes must not repeat a name")
    missing = missing_classes(partner, classes)
    if missing:
        which = "; ".join(f"{slug} needs {', '.join(names)}" for slug, names in missing.items())
        raise PartnerVersionInvalid(f"the class list lacks categories of experiments that play {partner.name}: {which}")


def evaluation_numbers(result: dict[str, Any]) -> dict[str, float | None]:
    """The three numbers the gate reads from a `model_server.evaluate` result (its JSON).

    accuracy: top-1 on whole images; accuracy_revealed: top-1 with the game's reveal, the mean over
    the bubble counts evaluated; alignment: the GALA attention's (the gradient saliency's for a
    network without GALA), Spearman with the human maps over the split-half ceiling.
    """
    revealed = result.get("revealed") or {}
    values = [float(v) for v in revealed.values()] if isinstance(revealed, dict) else []
    kind = result.get("attention") or result.get("saliency") or {}
    numbers = {
        "accuracy": _number(result.get("top1")),
        "accuracy_revealed": sum(values) / len(values) if values else None,
        "alignment": _number(kind.get("alignment")) if isinstance(kind, dict) else None,
    }
    return numbers


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def register_version(
    *,
    partner: PartnerModel,
    version: str,
    checkpoint: str,
    classes: list[str],
    architecture: str = "",
    parent: PartnerModelVersion | None = None,
    export_id: int | None = None,
    dataset_version: str = "",
    evaluation: dict[str, Any] | None = None,
    user: AbstractBaseUser | None = None,
) -> PartnerModelVersion:
    """Record a checkpoint as a candidate version of partner, with its lineage and evaluation.

    `evaluation` is a `model_server.evaluate` result; its three numbers go into their columns and the
    whole of it into `metrics["evaluation"]`.
    """
    version, checkpoint = (version or "").strip(), (checkpoint or "").strip()
    if not version or len(version) > 100 or "/" in version:
        raise PartnerVersionInvalid("version must be 1-100 characters without '/' (the model server's version name)")
    if not checkpoint:
        raise PartnerVersionInvalid("checkpoint must be the path of the checkpoint as the model server sees it")
    if parent is not None and parent.partner_id != partner.pk:
        raise PartnerVersionInvalid(f"the parent {parent} is a version of another partner")
    check_classes(partner, classes)
    if PartnerModelVersion.objects.filter(partner=partner, version=version).exists():
        raise PartnerVersionInvalid(f"{partner.name} already has a version {version!r}")
    numbers = evaluation_numbers(evaluation or {})
    return PartnerModelVersion.objects.create(
        partner=partner, version=version, checkpoint=checkpoint, classes=list(classes), architecture=architecture,
        parent=parent, generation=parent.generation + 1 if parent else 0, export_id=export_id,
        dataset_version=dataset_version, metrics={"evaluation": evaluation} if evaluation else {},
        registered_by=user if user is not None and user.is_authenticated else None, **numbers,
    )  # fmt: skip


def live_version(partner: PartnerModel) -> PartnerModelVersion | None:
    """The version the model server answers with, as last activated here."""
    return PartnerModelVersion.objects.filter(partner=partner, is_active=True).first()


# --- the gate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    """The gate's decision and what it was decided on."""

    passed: bool
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


def gate(
    *,
    experiment: Experiment,
    candidate: dict[str, float | None],
    live: dict[str, float | None] | None,
) -> GateResult:
    """May a candidate with these numbers replace the live version with those, for this experiment?

    Both sets of numbers must come from the same held-out images (docs/evolution.md, "The gate").
    It passes when its accuracy with the reveal is not below the live one's by more than the
    experiment's `promotion_accuracy_margin` and its alignment is not below the live one's by more
    than `promotion_alignment_margin` (0 by default: not lower). With nothing live, it passes.
    """
    margins = {"accuracy_margin": experiment.promotion_accuracy_margin,
               "alignment_margin": experiment.promotion_alignment_margin}  # fmt: skip
    numbers = {"candidate": dict(candidate), "live": dict(live) if live is not None else None, **margins}
    if candidate.get("accuracy_revealed") is None or candidate.get("alignment") is None:
        return GateResult(False, "the candidate has no accuracy with the reveal or no alignment to judge", numbers)
    if live is None:
        return GateResult(True, "no version is live: the first one goes live", numbers)
    if live.get("accuracy_revealed") is None or live.get("alignment") is None:
        return GateResult(False, "the live version has no numbers on the same images to compare with", numbers)
    drop = live["accuracy_revealed"] - candidate["accuracy_revealed"]
    fall = live["alignment"] - candidate["alignment"]
    numbers |= {"accuracy_drop": drop, "alignment_drop": fall}
    problems = []
    if drop > margins["accuracy_margin"] + 1e-9:
        problems.append(f"accuracy with the reveal fell by {drop:.3f} (allowed {margins['accuracy_margin']:.3f})")
    if fall > margins["alignment_margin"] + 1e-9:
        problems.append(f"alignment fell by {fall:.3f} (allowed {margins['alignment_margin']:.3f})")
    if problems:
        return GateResult(False, "; ".join(problems), numbers)
    return GateResult(
        True,
        f"accuracy with the reveal {candidate['accuracy_revealed']:.3f} (live {live['accuracy_revealed']:.3f}), "
        f"alignment {candidate['alignment']:.3f} (live {live['alignment']:.3f})",
        numbers,
    )


def _numbers(version: PartnerModelVersion | None) -> dict[str, float | None] | None:
    if version is None:
        return None
    return {name: getattr(version, name) for name in NUMBERS}


def decide(
    *,
    experiment: Experiment,
    candidate: PartnerModelVersion,
    live_numbers: dict[str, float | None] | None = None,
) -> PromotionDecision:
    """Put a candidate through the gate; go live if it passes, else mark it failed. Record the decision.

    `live_numbers` are the live version's on the candidate's held-out images (the evolution
    evaluates both); without them, the live version's registered numbers are used.
    """
    if candidate.status != Status.CANDIDATE:
        raise PartnerVersionInvalid(f"{candidate} is {candidate.status}, not a candidate")
    if candidate.partner_id != experiment.partner_id:
        raise PartnerVersionInvalid(f"{candidate} is not a version of {experiment}'s partner")
    live = live_version(experiment.partner)
    result = gate(experiment=experiment, candidate=_numbers(candidate), live=live_numbers or _numbers(live))
    if not result.passed:
        with transaction.atomic():
            PartnerModelVersion.objects.filter(pk=candidate.pk).update(
                status=Status.FAILED, status_reason=f"refused by the gate: {result.reason}"
            )
            return PromotionDecision.objects.create(experiment=experiment, candidate=candidate, live=live,
                                                    kind=PromotionDecision.Kind.GATE, passed=False,
                                                    numbers=result.numbers, reason=result.reason)  # fmt: skip
    activate(candidate, reason=f"passed the gate: {result.reason}")
    return PromotionDecision.objects.create(experiment=experiment, candidate=candidate, live=live,
                                            kind=PromotionDecision.Kind.GATE, passed=True, numbers=result.numbers,
                                            reason=result.reason)  # fmt: skip


# --- going live -------------------------------------------------------------------------------


def activate(version: PartnerModelVersion, *, reason: str) -> PartnerModelVersion:
    """Load the version into the model server and make it the active one there, then flip it live here.

    The model server swaps versions without dropping a request (requests in flight finish on the
    old one, docs/model-server.md). If it refuses or cannot be reached, ActivationFailed is raised
    and nothing here changes: the live version stays live. A version the server has loaded already
    is only activated.
    """
    if not version.checkpoint:
        raise PartnerVersionInvalid(f"{version} has no checkpoint to load")
    name = version.partner.name
    try:
        with admin_client() as client:
            if version.version in _loaded_versions(client, name):
                client.activate(name, version.version)
            else:
                client.load_version(name, version.checkpoint, activate=True, version=version.version)
            active = client.metadata(name).get("active_version")
    except PartnerError as error:
        raise ActivationFailed(f"the model server did not activate {version}: {error}") from error
    if active != version.version:
        raise ActivationFailed(f"the model server answers with {active!r}, not {version.version!r}")
    with transaction.atomic():
        PartnerModelVersion.objects.filter(partner_id=version.partner_id, is_active=True).exclude(pk=version.pk).update(
            is_active=False, status=Status.RETIRED, status_reason=f"replaced by {version.version}"
        )
        PartnerModelVersion.objects.filter(pk=version.pk).update(
            is_active=True, status=Status.LIVE, status_reason=reason, live_since=timezone.now()
        )
    forget_classes(name)
    logger.info("partner %s is live: %s", version, reason)
    version.refresh_from_db()
    return version


def _loaded_versions(client: Any, name: str) -> list[str]:
    """The versions of model `name` the server holds (none for a model it does not know: load creates it)."""
    try:
        return list(client.metadata(name).get("versions", []))
    except PartnerRequestError as error:
        if error.status == 404:
            return []
        raise


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise PartnerVersionInvalid("a reason is required: it goes into the audit log")
    return reason


def promote(
    *, version: PartnerModelVersion, experiment: Experiment, actor: AbstractBaseUser, reason: str
) -> PromotionDecision:
    """A researcher sends a version live by hand, past the gate, with a reason (in the audit log)."""
    reason = _check_reason(reason)
    if version.partner_id != experiment.partner_id:
        raise PartnerVersionInvalid(f"{version} is not a version of {experiment}'s partner")
    if version.is_active:
        raise PartnerVersionInvalid(f"{version} is live already")
    live = live_version(experiment.partner)
    activate(version, reason=f"promoted by {actor}: {reason}")
    return _record_manual(PromotionDecision.Kind.PROMOTE, ModerationAction.PartnerKind.PROMOTE_PARTNER,
                          experiment=experiment, version=version, live=live, actor=actor, reason=reason)  # fmt: skip


def roll_back(
    *, experiment: Experiment, actor: AbstractBaseUser, reason: str, to: PartnerModelVersion | None = None
) -> PromotionDecision:
    """Send the previous live version (or `to`) live again, with a reason (in the audit log)."""
    reason = _check_reason(reason)
    live = live_version(experiment.partner)
    if to is None:
        earlier = PartnerModelVersion.objects.filter(partner=experiment.partner, live_since__isnull=False,
                                                     is_active=False).exclude(checkpoint="")  # fmt: skip
        to = earlier.order_by("-live_since").first()
        if to is None:
            raise PartnerVersionInvalid(f"{experiment.partner} has no earlier live version to roll back to")
    if to.partner_id != experiment.partner_id:
        raise PartnerVersionInvalid(f"{to} is not a version of {experiment}'s partner")
    if to.is_active:
        raise PartnerVersionInvalid(f"{to} is live already")
    activate(to, reason=f"rolled back to by {actor}: {reason}")
    return _record_manual(PromotionDecision.Kind.ROLL_BACK, ModerationAction.PartnerKind.ROLL_BACK_PARTNER,
                          experiment=experiment, version=to, live=live, actor=actor, reason=reason)  # fmt: skip


def _record_manual(
    kind: str, action: str, *, experiment: Experiment, version: PartnerModelVersion,
    live: PartnerModelVersion | None, actor: AbstractBaseUser, reason: str,
) -> PromotionDecision:  # fmt: skip
    with transaction.atomic():
        numbers = {"candidate": _numbers(version), "live": _numbers(live)}
        details = {"experiment": experiment.slug, "version": version.version,
                   "replaced": live.version if live else None}  # fmt: skip
        ModerationAction.objects.create(actor=actor, kind=action, reason=reason, partner_version=version,
                                        details=details)  # fmt: skip
        return PromotionDecision.objects.create(experiment=experiment, candidate=version, live=live, kind=kind,
                                                passed=True, numbers=numbers, reason=reason, actor=actor)  # fmt: skip


def describe_checkpoint(path: str, *, timeout: float = 120.0) -> dict[str, Any]:
    """What a checkpoint file says about itself (version, classes, architecture, evaluation).

    Read by `python -m games.checkpoint_info` in a process of its own: torch stays out of this one.
    """
    command = [sys.executable, "-m", "games.checkpoint_info", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise PartnerVersionInvalid(f"reading {path} took over {timeout:.0f} s") from error
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PartnerVersionInvalid(f"cannot read the checkpoint {path}: {last}")
    return json.loads(done.stdout)
