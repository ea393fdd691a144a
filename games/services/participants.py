"""Participants: pseudonyms, recruitment-panel identities and consent."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from games.models import Consent, Experiment, Participant

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
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"  # MTurk's assignmentId while a worker previews a HIT
# The field that identifies a participant of each panel, and the URL parameter that carries it.
PANEL_PREFIX = {
    Experiment.Recruitment.PROLIFIC: "prolific_",
    Experiment.Recruitment.MTURK: "mturk_",
    Experiment.Recruitment.SONA: "sona_",
}
PANEL_KEYS = {
    Experiment.Recruitment.PROLIFIC: ("prolific_pid", "PROLIFIC_PID"),
    Experiment.Recruitment.MTURK: ("mturk_worker_id", "workerId"),
    Experiment.Recruitment.SONA: ("sona_id", "id"),
}


class ConsentRequired(ValueError):
    """The consent form was not completed; the message says what is missing."""


class PanelEntryRefused(ValueError):
    """A panel study was opened without the panel's parameters; the message says where to start."""


def new_username() -> str:
    """A random adjective-noun-number pseudonym (no personal data)."""
    return f"{secrets.choice(ADJECTIVES)}-{secrets.choice(NOUNS)}-{secrets.randbelow(10_000):04d}"


def panel_identity(params: dict[str, str], experiment: Experiment) -> dict[str, str]:
    """The recruitment fields of the experiment's own panel present in an entry URL, cleaned.

    Only the study's panel is read: `id` or `workerId` on an open study's link is just a
    parameter, and an open study is played anonymously.
    """
    prefix = PANEL_PREFIX.get(experiment.recruitment)
    identity = {}
    for param, field in PANEL_FIELDS.items():
        value = (params.get(param) or "").strip()[:64]
        if value and prefix and field.startswith(prefix):
            identity[field] = value
    if identity.get("mturk_submit_to", "").rstrip("/") not in ("", *MTURK_SUBMIT_HOSTS):
        identity.pop("mturk_submit_to")  # an arbitrary host would make us post to it: refuse
    if identity.get("mturk_assignment_id") == MTURK_PREVIEW:
        identity.pop("mturk_assignment_id")  # not an assignment: the worker has not accepted the HIT yet
    return identity


def is_mturk_preview(params: dict[str, str], experiment: Experiment) -> bool:
    """Whether an MTurk worker is only previewing the HIT: they may read about it, not play it."""
    return experiment.recruitment == Experiment.Recruitment.MTURK and params.get("assignmentId") == MTURK_PREVIEW


def check_panel_entry(identity: dict[str, str], experiment: Experiment, *, pilot: bool) -> None:
    """Refuse a panel study opened without its panel's participant id (a pilot link is exempt).

    Without the id nobody could be paid, and an anonymous player could take a panel study's
    images; the message names the parameter the panel should have added to the link.
    """
    if pilot or experiment.recruitment == Experiment.Recruitment.OPEN:
        return
    field, parameter = PANEL_KEYS[experiment.recruitment]
    if not identity.get(field):
        panel = experiment.get_recruitment_display()
        raise PanelEntryRefused(
            f"This study is run on {panel}: please open it from {panel}, whose link adds your "
            f"participant id (the {parameter} parameter)."
        )


def is_other_panel_participant(participant: Participant | None, identity: dict[str, str]) -> bool:
    """Whether the entry URL names another panel participant than the one this browser remembers."""
    if participant is None:
        return False
    return any(
        identity.get(field) and identity[field] != getattr(participant, field) for field, _ in PANEL_KEYS.values()
    )


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
        returning = Participant.objects.select_for_update().filter(source=source, **{key_field: identity[key_field]})
        # A browser remembering another panel participant (a shared computer) must not merge them.
        known = (
            participant if participant is not None and getattr(participant, key_field) == identity[key_field] else None
        )
        participant = returning.first() or known
        if participant is None:
            participant = _create(source, identity)
    elif participant is None:
        participant = _create(source, identity)
    if source != Participant.Source.ANONYMOUS:
        participant.source = source
    for field, value in identity.items():
        setattr(participant, field, value)
    now = timezone.now()
    participant.consent_version = experiment.consent_version
    participant.consented_at = now
    participant.age_confirmed = True
    participant.save()
    Consent.objects.get_or_create(
        participant=participant, experiment=experiment, version=experiment.consent_version,
        defaults={"age_confirmed": True, "consented_at": now},
    )  # fmt: skip
    return participant


def _create(source: str, identity: dict[str, str]) -> Participant:
    """A new participant with its panel fields set from the start (the database requires the id).

    Two tabs consenting at once with the same new panel id race to create it: the loser finds the
    winner's row instead of failing.
    """
    for _ in range(5):  # 30·30·10⁴ names: a clash is rare, and retried
        try:
            with transaction.atomic():
                return Participant.objects.create(username=new_username(), source=source, **identity)
        except IntegrityError:
            key = {"prolific": "prolific_pid", "mturk": "mturk_worker_id", "sona": "sona_id"}.get(source)
            if key and (twin := Participant.objects.filter(source=source, **{key: identity[key]}).first()):
                return twin
            continue
    return Participant.objects.create(username=f"player-{secrets.token_hex(6)}", source=source, **identity)


def has_consented(participant: Participant | int | None, experiment: Experiment) -> bool:
    """Whether the participant (or the participant with this id) agreed to this experiment's current
    consent version, never another's (`ConsentQuerySet.current`)."""
    if participant is None:
        return False
    participant_id = participant if isinstance(participant, int) else participant.pk
    return Consent.objects.current(
        participant_id=participant_id, experiment_id=experiment.pk, version=experiment.consent_version
    ).exists()


def address_hash(address: str) -> str:
    """A keyed hash of a client address: enough to compare, useless to identify anyone."""
    return hmac.new(settings.SECRET_KEY.encode(), address.encode(), hashlib.sha256).hexdigest()
