"""Running a study: who may run one, the checks before it goes live, and its status changes.

The walk-through for researchers is docs/running-a-study.md; the checks here are the ones it
lists under "Go-live checks", in the same order.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from games.models import Category, Consent, Experiment, Image
from games.partner import live_client
from model_server.client import PartnerError, PartnerRequestError

logger = logging.getLogger(__name__)

RESEARCHERS_GROUP = "researchers"  # made by games/migrations/0002_roles.py
# Above this share of the partner's classes in the top-k, a random guess is "recognised" too often
# for a round's outcome to say anything about the bubbles (docs/running-a-study.md, "Recognised").
MAX_TOP_K_SHARE = Fraction(1, 5)  # exact: 1 of 5 classes is allowed, not lost to float rounding

Status = Experiment.Status
TRANSITIONS: dict[str, set[str]] = {
    Status.DRAFT: {Status.LIVE},
    Status.LIVE: {Status.PAUSED, Status.CLOSED},
    Status.PAUSED: {Status.LIVE, Status.CLOSED},
    Status.CLOSED: set(),  # final: its data stays, nobody plays it again
}


class StudyRefused(Exception):
    """A status change that may not happen; `problems` says why, one sentence each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def is_researcher(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether the user may run studies: a superuser or a member of the researchers group."""
    if not user.is_authenticated:
        return False
    return user.is_superuser or user.groups.filter(name=RESEARCHERS_GROUP).exists()


def can_change(experiment: Experiment, user: AbstractBaseUser | AnonymousUser) -> bool:
    """Only the owner (while still a researcher) or a superuser may change a study; others listed may look."""
    if not user.is_authenticated:
        return False
    return user.is_superuser or (experiment.owner_id == user.pk and is_researcher(user))


def partner_classes(experiment: Experiment) -> list[str]:
    """The class names the study's partner knows, as the model server reports them.

    Raises PartnerError when the server cannot be asked or does not serve that model.
    """
    with live_client() as client:
        return list(client.metadata(experiment.partner.name)["classes"])


def servable_images(experiment: Experiment) -> int:
    """Images a participant can be served: active ones (neither retired nor rejected) of the study's set."""
    return Image.objects.filter(image_set_id=experiment.image_set_id, state=Image.State.ACTIVE).count()


def go_live_problems(experiment: Experiment) -> list[str]:
    """Everything that must be fixed before the study may go live; empty when it may."""
    problems = [
        *_consent_problems(experiment),
        *_panel_problems(experiment),
        *_image_problems(experiment),
        *_partner_problems(experiment),
    ]
    return problems


def _consent_problems(experiment: Experiment) -> list[str]:
    if not experiment.consent_text.strip():
        return ["Consent text is empty: participants must be shown what they agree to."]
    return []


def _panel_problems(experiment: Experiment) -> list[str]:
    Recruitment = Experiment.Recruitment
    panel = experiment.get_recruitment_display()
    if experiment.recruitment in (Recruitment.PROLIFIC, Recruitment.MTURK) and not experiment.completion_code.strip():
        return [f"Completion code is empty: {panel} participants need it to be paid."]
    if experiment.recruitment == Recruitment.SONA and "{sona_id}" not in experiment.completion_url:
        return ["Completion URL must contain {sona_id}: SONA grants the credit to the participant it names."]
    return []


def _image_problems(experiment: Experiment) -> list[str]:
    servable = servable_images(experiment)
    if servable == 0:
        return [f"Image set {experiment.image_set} has no active images: upload some, or pick another set."]
    if experiment.rounds_per_session > servable:
        return [
            f"Rounds per session is {experiment.rounds_per_session}, but image set {experiment.image_set} has only "
            f"{servable} active image{'s' if servable != 1 else ''} a participant can be served: "
            f"use at most {servable} rounds per session, or add images."
        ]
    return []


def _partner_problems(experiment: Experiment) -> list[str]:
    partner = experiment.partner
    try:
        known = partner_classes(experiment)
    except PartnerRequestError as error:
        if error.status == 404:
            return [f"The model server does not serve a model named {partner.name}: load it there, or pick another "
                    "partner."]  # fmt: skip
        return [f"The model server refused to describe partner {partner.name} ({error.message})."]
    except PartnerError as error:
        return [f"The model server cannot be reached, so partner {partner.name}'s classes cannot be checked ({error})."]
    problems = []
    needed = Category.objects.filter(images__image_set_id=experiment.image_set_id).values_list("name", flat=True)
    unknown = sorted(set(needed) - set(known))
    if unknown:
        problems.append(
            f"Partner {partner.name} does not know {len(unknown)} of the image set's classes ({', '.join(unknown)}): "
            'every round of those images would end in "Time\'s up". Pick a partner that knows them.'
        )
    problems += top_k_problems(experiment.top_k, len(known))
    return problems


def top_k_problems(top_k: int, classes: int) -> list[str]:
    """Refuse a top-k under which a random guess is 'recognised' more often than MAX_TOP_K_SHARE."""
    if classes == 0:
        return ["The partner reports no classes at all."]
    if Fraction(top_k, classes) <= MAX_TOP_K_SHARE:
        return []
    chance = round(100 * min(top_k / classes, 1))
    largest = math.floor(classes * MAX_TOP_K_SHARE)
    fewest = math.ceil(1 / MAX_TOP_K_SHARE)
    advice = f"use top-k ≤ {largest}" if largest else f"even top-1 needs a partner with at least {fewest} classes"
    return [f"top-{top_k} of {classes} classes: a random guess is 'recognised' {chance} % of the time; {advice}."]


def set_status(experiment: Experiment, status: str, *, by: AbstractBaseUser) -> Experiment:
    """Move a study to `status` if its owner (or a superuser) asks and the transition is allowed.

    Going live (from draft or paused) runs the go-live checks first; any problem refuses it.
    """
    if not can_change(experiment, by):
        raise StudyRefused(["Only the study's owner or a superuser may change its status."])
    with transaction.atomic():
        # Locked and re-read, so that two clicks at once cannot both pass the same check.
        current = Experiment.objects.select_for_update().select_related("partner", "image_set").get(pk=experiment.pk)
        if status not in TRANSITIONS.get(current.status, set()):
            allowed = ", ".join(sorted(TRANSITIONS.get(current.status, set()))) or "nothing (it is final)"
            raise StudyRefused([f"A {current.status} study cannot become {status}; it can become: {allowed}."])
        if status == Status.LIVE:
            problems = go_live_problems(current)
            if problems:
                raise StudyRefused(problems)
        current.status = status
        current.save(update_fields=["status"])
    logger.info("study %s is now %s (by %s)", current.slug, status, by)
    experiment.status = status
    return experiment


def consents_given(experiment: Experiment) -> int:
    """How many participants agreed to the study's current consent version."""
    if experiment.pk is None:
        return 0
    return Consent.objects.filter(experiment=experiment, version=experiment.consent_version).count()
