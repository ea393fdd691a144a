"""Moderators' actions: each needs a reason, deletes nothing, is logged, and propagates.

Design: docs/architecture.md, "Quality and moderation".

Every action writes exactly one ModerationAction, even when it changes nothing (acting twice is
harmless and still leaves a trace of who tried what). What an action changes reaches the rest of
the site the same way scoring does: the affected images' valid-round counts (which the sampler
orders by, so images that lost rounds are served again) and participants' scores are recomputed
in the same transaction, and the affected maps are rebuilt by workers once it commits.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from games.models import Image, ModerationAction, Participant, PlaySession, Round
from games.services.scoring import refresh_image_counts, refresh_participant_score
from games.signals import announce_rounds_changed

MODERATE_PERMISSION = "games.moderate"
Kind = ModerationAction.Kind


class ModerationError(ValueError):
    """A moderation action that cannot be done as asked."""


class ReasonRequired(ModerationError):
    """A moderation action was attempted without a reason."""

    def __init__(self) -> None:
        super().__init__("a reason is required for every moderation action")


class ActionRefused(ModerationError):
    """The action makes no sense in the target's current state."""


def can_moderate(user: AbstractBaseUser) -> bool:
    """Whether this user may act on participants, sessions, rounds and images."""
    return bool(user.is_active and user.is_staff and user.has_perm(MODERATE_PERMISSION))


def _check(actor: AbstractBaseUser, reason: str) -> str:
    if not can_moderate(actor):
        raise PermissionDenied(f"{actor} may not moderate (needs the {MODERATE_PERMISSION} permission)")
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    return reason


def _propagate(rounds: QuerySet[Round], *, rescore: bool = True) -> dict[str, int]:
    """Recompute counts (and scores) now and announce the touched images after commit; returns what was touched."""
    rows = set(rounds.values_list("experiment_id", "image_id", "participant_id").distinct())
    pairs = sorted({(experiment_id, image_id) for experiment_id, image_id, _ in rows})
    participants = sorted({participant_id for *_, participant_id in rows}) if rescore else []
    for image_id in sorted({image_id for _, image_id in pairs}):
        refresh_image_counts(image_id=image_id)
    for participant_id in participants:
        refresh_participant_score(participant_id=participant_id)
    announce_rounds_changed(pairs)  # maps rebuilds these images' maps once this commits
    return {"maps_rebuilt": len(pairs), "participants_rescored": len(participants)}


def _log(actor: AbstractBaseUser, kind: str, reason: str, **target_and_details: object) -> ModerationAction:
    targets = {key: target_and_details.pop(key) for key in ("participant", "session", "round", "image")
               if key in target_and_details}  # fmt: skip
    return ModerationAction.objects.create(actor=actor, kind=kind, reason=reason, details=target_and_details, **targets)


def _lock(model: type, pk: int) -> object:
    return model.objects.select_for_update().get(pk=pk)


def _set_ban(actor: AbstractBaseUser, participant: Participant, reason: str, *, banned: bool) -> ModerationAction:
    reason = _check(actor, reason)
    locked: Participant = _lock(Participant, participant.pk)
    changed = locked.is_shadow_banned != banned
    if changed:
        locked.ban_state = Participant.BanState.SHADOW if banned else Participant.BanState.NONE
        locked.banned_at = timezone.now() if banned else None
        locked.save(update_fields=["ban_state", "banned_at"])
    rounds = Round.objects.filter(participant=locked)
    touched = _propagate(rounds) if changed else {}
    kind = Kind.SHADOW_BAN if banned else Kind.UNBAN
    return _log(actor, kind, reason, participant=locked, changed=changed, rounds_affected=rounds.count(), **touched)


@transaction.atomic
def shadow_ban(*, actor: AbstractBaseUser, participant: Participant, reason: str) -> ModerationAction:
    """Stop everything the participant submitted, before and after, from counting anywhere but their own view."""
    return _set_ban(actor, participant, reason, banned=True)


@transaction.atomic
def unban(*, actor: AbstractBaseUser, participant: Participant, reason: str) -> ModerationAction:
    """Let the participant's rounds count again, including those played while banned."""
    return _set_ban(actor, participant, reason, banned=False)


def _set_round_validity(actor: AbstractBaseUser, round_: Round, reason: str, *, valid: bool) -> ModerationAction:
    reason = _check(actor, reason)
    locked: Round = _lock(Round, round_.pk)
    if valid and PlaySession.objects.filter(pk=locked.session_id, invalidated_at__isnull=False).exists():
        raise ActionRefused(f"session {locked.session_id} is invalidated: restore the session instead")
    changed = (locked.invalidated_at is None) != valid
    if changed:
        locked.invalidated_at = None if valid else timezone.now()
        locked.save(update_fields=["invalidated_at"])
    touched = _propagate(Round.objects.filter(pk=locked.pk)) if changed else {}
    kind = Kind.RESTORE_ROUND if valid else Kind.INVALIDATE_ROUND
    return _log(actor, kind, reason, round=locked, session_id=locked.session_id, changed=changed, **touched)


@transaction.atomic
def invalidate_round(*, actor: AbstractBaseUser, round_: Round, reason: str) -> ModerationAction:
    """Exclude one round from maps, scores and valid exports, keeping it stored."""
    return _set_round_validity(actor, round_, reason, valid=False)


@transaction.atomic
def restore_round(*, actor: AbstractBaseUser, round_: Round, reason: str) -> ModerationAction:
    """Let an invalidated round count again; a round of an invalidated session waits for its session."""
    return _set_round_validity(actor, round_, reason, valid=True)


def _set_session_validity(
    actor: AbstractBaseUser, session: PlaySession, reason: str, *, valid: bool
) -> ModerationAction:
    reason = _check(actor, reason)
    locked: PlaySession = _lock(PlaySession, session.pk)
    round_ids: list[int] = []
    changed = (locked.invalidated_at is None) != valid
    if changed:
        # The session's own invalidated_at picks the rounds: None (its valid rounds) when
        # invalidating, then the stamp they were given when restoring, so rounds invalidated one
        # by one beforehand stay invalidated.
        stamp = None if valid else timezone.now()
        rounds = Round.objects.select_for_update().filter(session=locked, invalidated_at=locked.invalidated_at)
        round_ids = sorted(rounds.values_list("pk", flat=True))
        Round.objects.filter(pk__in=round_ids).update(invalidated_at=stamp)
        locked.invalidated_at = stamp
        locked.save(update_fields=["invalidated_at"])
    touched = _propagate(Round.objects.filter(session=locked)) if changed else {}
    kind = Kind.RESTORE_SESSION if valid else Kind.INVALIDATE_SESSION
    return _log(actor, kind, reason, session=locked, participant_id=locked.participant_id, changed=changed,
                rounds_affected=round_ids, **touched)  # fmt: skip


@transaction.atomic
def invalidate_session(*, actor: AbstractBaseUser, session: PlaySession, reason: str) -> ModerationAction:
    """Invalidate a session and its valid rounds, all stamped with one time so a restore finds exactly them."""
    return _set_session_validity(actor, session, reason, valid=False)


@transaction.atomic
def restore_session(*, actor: AbstractBaseUser, session: PlaySession, reason: str) -> ModerationAction:
    """Undo invalidate_session: its rounds count again, except those invalidated one by one beforehand."""
    return _set_session_validity(actor, session, reason, valid=True)


def _set_image_state(actor: AbstractBaseUser, image: Image, reason: str, kind: str, state: str) -> ModerationAction:
    reason = _check(actor, reason)
    locked: Image = _lock(Image, image.pk)
    previous = locked.state
    changed = previous != state
    if changed:
        locked.state, locked.state_changed_at = state, timezone.now()
        locked.save(update_fields=["state", "state_changed_at"])
    # The sampler reads the state itself; maps are rebuilt so every view of the image is current.
    touched = _propagate(Round.objects.filter(image=locked), rescore=False) if changed else {}
    return _log(actor, kind, reason, image=locked, changed=changed, previous_state=previous, state=state,
                maps_rebuilt=touched.get("maps_rebuilt", 0))  # fmt: skip


@transaction.atomic
def retire_image(*, actor: AbstractBaseUser, image: Image, reason: str) -> ModerationAction:
    """Stop serving an image that has enough data; its map stays published."""
    return _set_image_state(actor, image, reason, Kind.RETIRE_IMAGE, Image.State.RETIRED)


@transaction.atomic
def reject_image(*, actor: AbstractBaseUser, image: Image, reason: str) -> ModerationAction:
    """Stop serving an image judged unusable (strange label, poor quality)."""
    return _set_image_state(actor, image, reason, Kind.REJECT_IMAGE, Image.State.REJECTED)


@transaction.atomic
def restore_image(*, actor: AbstractBaseUser, image: Image, reason: str) -> ModerationAction:
    """Serve a retired or rejected image again."""
    return _set_image_state(actor, image, reason, Kind.RESTORE_IMAGE, Image.State.ACTIVE)
