"""Participants: pseudonyms, recruitment-panel identities and consent."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from games.models import Experiment, Participant

ADJECTIVES = (
    "amber", "bold", "brave", "bright", "calm", "clever", "curious", "eager", "gentle", "golden",
    "happy", "keen", "lively", "lucky", "merry", "nimble", "patient", "quick", "quiet", "sharp",
    "silver", "steady", "sunny", "swift", "tidy", "vivid", "wise", "witty", "young", "zesty",
)  # fmt: skip
NOUNS = (
    "badger", "beaver", "crane", "dolphin", "falcon", "ferret", "finch", "fox", "gecko", "heron",
    "ibis", "jaguar", "koala", "lemur", "lynx", "marten", "newt", "otter", "owl", "panda",
    "puffin", "quokka", "raven", "seal", "stoat", "tapir", "toucan", "vole", "walrus", "wren",
)  # fmt: skip

# Query parameters of each panel (Prolific, MTurk, SONA) → Participant fields.
PANEL_FIELDS = {
    "PROLIFIC_PID": "prolific_pid",
    "STUDY_ID": "prolific_study_id",
    "SESSION_ID": "prolific_session_id",
    "workerId": "mturk_worker_id",
    "assignmentId": "mturk_assignment_id",
    "hitId": "mturk_hit_id",
    "turkSubmitTo": "mturk_submit_to",
    "id": "sona_id",
}
MTURK_SUBMIT_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")


class ConsentRequired(ValueError):
    """The consent form was not completed; the message says what is missing."""


def new_username() -> str:
    """A random adjective-noun-number pseudonym (no personal data)."""
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(NOUNS)}-{secrets.randbelow(10_000):04d}"


def panel_identity(params: dict[str, str], experiment: Experiment) -> dict[str, str]:
    """The recruitment fields present in an entry URL, cleaned and length-checked."""
    identity = {}
    for param, field in PANEL_FIELDS.items():
        value = (params.get(param) or "").strip()[:64]
        if value:
            identity[field] = value
    if identity.get("mturk_submit_to", "").rstrip("/") not in ("", *MTURK_SUBMIT_HOSTS):
        identity.pop("mturk_submit_to")  # an arbitrary host would make us post to it: refuse
    if experiment.recruitment != Experiment.Recruitment.SONA:
        identity.pop("sona_id", None)  # `id` is a common parameter name; only SONA studies read it
    return identity


def _source(identity: dict[str, str]) -> str:
    if identity.get("prolific_pid"):
        return Participant.Source.PROLIFIC
    if identity.get("mturk_worker_id"):
        return Participant.Source.MTURK
    if identity.get("sona_id"):
        return Participant.Source.SONA
    return Participant.Source.ANONYMOUS


@transaction.atomic
def consent(
    *,
    experiment: Experiment,
    participant: Participant | None,
    identity: dict[str, str],
    age_confirmed: bool,
    agreed: bool,
) -> Participant:
    """Record consent to this experiment's current text, creating or finding the participant.

    A panel worker who returns (same Prolific/MTurk/SONA id) gets their earlier participant back,
    so their rounds and score stay theirs and the sampler does not show them images twice.
    """
    if not agreed:
        raise ConsentRequired("please tick the box to say you agree to take part")
    if not age_confirmed:
        raise ConsentRequired(f"please confirm that you are {experiment.minimum_age} or older")
    source = _source(identity)
    key_field = {"prolific": "prolific_pid", "mturk": "mturk_worker_id", "sona": "sona_id"}.get(source)
    if key_field:
        returning = Participant.objects.filter(source=source, **{key_field: identity[key_field]}).first()
        participant = returning or participant
    if participant is None:
        participant = _create(source)
    if source != Participant.Source.ANONYMOUS:
        participant.source = source
    for field, value in identity.items():
        setattr(participant, field, value)
    participant.consent_version = experiment.consent_version
    participant.consented_at = timezone.now()
    participant.age_confirmed = True
    participant.save()
    return participant


def _create(source: str) -> Participant:
    for _ in range(5):  # 30·30·10⁴ names: a clash is rare, and retried
        try:
            with transaction.atomic():
                return Participant.objects.create(username=new_username(), source=source)
        except IntegrityError:
            continue
    return Participant.objects.create(username=f"player-{secrets.token_hex(6)}", source=source)


def has_consented(participant: Participant | None, experiment: Experiment) -> bool:
    """Whether the participant agreed to the experiment's current consent version."""
    return (
        participant is not None
        and participant.consented_at is not None
        and participant.consent_version == experiment.consent_version
    )


def address_hash(address: str) -> str:
    """A keyed hash of a client address: enough to compare, useless to identify anyone."""
    return hmac.new(settings.SECRET_KEY.encode(), address.encode(), hashlib.sha256).hexdigest()
