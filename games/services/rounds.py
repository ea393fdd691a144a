"""Playing: sessions, rounds, uploaded bubbles, live partner guesses and submission."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from clickme_site.tasks_enqueue import enqueue, enqueue_on_commit, runs_in_process
from games.models import Click, Experiment, Participant, PlaySession, Round
from games.models.play import completing_condition
from games.painting import Bubble, PaintingRuleBroken, check_bubbles
from games.partner import live_client, partner_classes
from games.recognition import is_recognised, recognition_floor
from games.services import remembered_guesses
from games.services.sampling import catch_rounds, choose_image
from model_server.client import GuessItem
from model_server.seeds import noise_seed

logger = logging.getLogger(__name__)

GUESSES_SHOWN = 5  # the page shows the partner's five best guesses whatever the experiment's k
RESUME_WITHIN = timedelta(hours=6)
SCORE_TASK = "games.tasks.score_round_task"  # registered by GamesConfig.ready() importing games.tasks
# Rounds a session may start per round it must complete: room for reloads and empty rounds,
# but no endless supply of images for someone who never paints.
MAX_STARTS_PER_ROUND = 3


class Conflict(Exception):
    """A request that clashes with the round's state (409); `details` helps the client recover."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class StartedRound:
    """What `start_round` answers: the session's round, whether this call created it, and for a new
    round how many of the session's rounds were done before it (every round done came before it)."""

    round: Round
    created: bool
    done_before: int | None = None

    @property
    def counts(self) -> dict[str, int] | None:
        """`RoundQuerySet.done_in_session` of a new round, for `round_state`, without counting again; None else."""
        return None if self.done_before is None else {"done": self.done_before, "before": self.done_before}


@dataclass(frozen=True)
class LiveGuess:
    """What the page shows after a query: the partner's top guesses and whether it got it."""

    query_index: int
    bubble_count: int
    guesses: list[dict]
    recognised: bool


def open_session(
    *,
    participant: Participant,
    experiment: Experiment,
    device: dict,
    address_hash: str,
    user_agent: str,
    pilot: bool = False,
) -> tuple[PlaySession, bool]:
    """Resume the participant's unfinished session in this experiment, or open a new one; the
    second value says whether it is new (and so has no rounds yet).

    A reload or a second tab must not restart the count at round 1 (and push completion
    further away); a session older than RESUME_WITHIN is left behind as abandoned. A pilot
    visit and a real one never share a session, so pilot data stays marked as such.
    """
    unfinished = (
        participant.sessions.filter(
            experiment=experiment,
            is_pilot=pilot,
            invalidated_at__isnull=True,
            completed_at__isnull=True,
            ended_at__isnull=True,
            started_at__gte=timezone.now() - RESUME_WITHIN,
        )
        .order_by("-started_at")
        .first()
    )
    if unfinished is not None:
        return unfinished, False
    return PlaySession.objects.create(
        participant=participant, experiment=experiment, address_hash=address_hash, user_agent=user_agent[:500],
        is_pilot=pilot, **device,
    ), True  # fmt: skip


def rounds_done(session: PlaySession, experiment: Experiment | None = None) -> int:
    """How many of the session's rounds count towards its completion (`RoundQuerySet.completing`).

    `experiment`: the session's, where the caller has it already read (else read with the session)."""
    return Round.objects.completing(experiment or session.experiment).filter(session_id=session.pk).count()


def _end_session(session: PlaySession, *, complete: bool) -> None:
    """Close a session; `complete` records that the participant earned the study's completion."""
    now = timezone.now()
    fields = {"ended_at": now, **({"completed_at": now} if complete else {})}
    if PlaySession.objects.filter(pk=session.pk, ended_at__isnull=True).update(**fields):
        for field, value in fields.items():
            setattr(session, field, value)
    else:  # ended meanwhile, by another request: as it ended then
        session.refresh_from_db(fields=["ended_at", "completed_at"])


def complete_if_done(session: PlaySession, experiment: Experiment | None = None, *, done: int | None = None) -> bool:
    """Record the session's completion once it has the rounds the study asks for; say whether it is complete.

    `experiment`: the session's, as for `rounds_done`; `done`: `rounds_done`, where the caller has counted it."""
    experiment = experiment or session.experiment
    if (
        session.completed_at is None
        and (rounds_done(session, experiment) if done is None else done) >= experiment.rounds_per_session
    ):
        _end_session(session, complete=True)
    return session.completed_at is not None


def _why_session_ends(session: PlaySession, *, started: int, done: int) -> tuple[str, bool] | None:
    """Why no round can start in the session (`started` rounds so far, `done` of them counting towards
    its completion), with whether it is complete (recording its end), or None."""
    if complete_if_done(session, done=done):
        return "you have played all the rounds of this session", True
    if session.ended_at is not None:
        return "this session has ended", False
    if started >= session.experiment.rounds_per_session * MAX_STARTS_PER_ROUND:
        _end_session(session, complete=False)
        return "too many rounds were started and not finished in this session", False
    return None


def start_round(*, session: PlaySession, client_round_id: uuid.UUID) -> StartedRound:
    """Start the session's next round, or return the round it is already playing.

    Re-sending the same client id after a reload resumes that round; a start while another round
    of the session is still being played (a second tab, a lost client id, parallel requests)
    returns that round too, so a session plays one round at a time and its positions and images
    never repeat. A session that is complete, has run out of images, or has started many rounds
    without finishing them ends, with a Conflict that says `finished` (and, when out of images
    with work done, completion is recorded first).
    """
    existing = Round.objects.for_play().filter(participant_id=session.participant_id, client_round_id=client_round_id)
    if (found := existing.first()) is not None:
        return StartedRound(found, created=False)
    experiment = session.experiment
    if experiment.status != Experiment.Status.LIVE and not session.is_pilot:
        raise Conflict(f"this study is {experiment.get_status_display()}: no new rounds can start", finished=True)
    with transaction.atomic():
        # Serialise the session's starts: whoever comes second sees the first one's round. Only the
        # session's row is locked (`of`), not the experiment and participant read with it.
        session = (
            PlaySession.objects.select_for_update(of=("self",))
            .select_related("experiment", "participant")
            .get(pk=session.pk)
        )
        # What the start decides by, in one query after the lock: the round being played, if any, and
        # how many rounds were started and done (docs/load-testing.md, "What a round costs, and what was cut").
        counts = session.rounds.aggregate(
            playing=Min("pk", filter=Q(status=Round.Status.PLAYING)),
            started=Count("pk"),
            done=Count("pk", filter=completing_condition(experiment)),
        )
        if counts["playing"] is not None:
            return StartedRound(Round.objects.for_play().get(pk=counts["playing"]), created=False)
        position = counts["started"]
        ending = _why_session_ends(session, started=position, done=counts["done"])
        if ending is None:
            catch_trial = position in catch_rounds(experiment=experiment, session_id=session.pk)
            image = choose_image(experiment=experiment, participant=session.participant, catch_trial=catch_trial)
            if image is None:
                # Out of images: the participant did what the study could offer. Any work done
                # earns the completion; a session that could not play a single round just ends.
                complete = counts["done"] > 0
                _end_session(session, complete=complete)
                ending = ("there is no image left for you to play in this study", complete)
            else:
                round_ = Round.objects.create(
                    session=session, participant=session.participant, experiment=experiment, image=image,
                    client_round_id=client_round_id, position=position, settings=experiment.game_settings(),
                    is_catch_trial=image.is_catch_trial,
                )  # fmt: skip
    # Raised outside the block, so that the session's end (and completion) recorded above is kept.
    if ending is not None:
        raise Conflict(ending[0], finished=True, complete=ending[1])
    return StartedRound(round_, created=True, done_before=counts["done"])


@transaction.atomic
def store_clicks(
    *, round_: Round, start_seq: int, clicks: list[Bubble], read_back: bool = False
) -> tuple[int, list[Bubble] | None]:
    """Append uploaded bubbles to a round; return the next expected sequence number and, with
    `read_back`, all the round's stored bubbles (what a live guess asks the partner about).

    Uploads are idempotent: bubbles already stored are compared, not stored again, so a retry
    or a duplicate request changes nothing. A batch that would leave a gap, or that disagrees
    with what is stored, is a Conflict; one that breaks a painting rule stores nothing.
    `round_` is the caller's (for_play) row: only its id and its rules snapshot are read.
    """
    # Serialise one round's uploads. A batch that follows what is stored (every upload but a retry)
    # locks the round and counts itself in with one conditional UPDATE; a rule broken below rolls it
    # back. Any other batch reads the round under a lock (docs/load-testing.md, "What a round costs,
    # and what was cut").
    claimed = Round.objects.filter(pk=round_.pk, status=Round.Status.PLAYING, bubble_count=start_seq).update(
        bubble_count=start_seq + len(clicks)
    )
    if claimed:
        stored = start_seq
    else:
        locked = Round.objects.select_for_update().only("status", "bubble_count").get(pk=round_.pk)
        if locked.status != Round.Status.PLAYING:
            raise Conflict("this round was already submitted", next_seq=locked.bubble_count)
        stored = locked.bubble_count
        if start_seq > stored:
            raise Conflict(f"bubbles {stored}..{start_seq - 1} are missing; resend from {stored}", next_seq=stored)
    # One read of the stored bubbles this call needs: those the batch overlaps, the last one (the
    # painting rule's previous bubble), and with `read_back` all of them. Read after the lock, so
    # they are the ones `stored` counts.
    first = 0 if read_back else max(0, min(start_seq, stored - 1))
    kept: list[Bubble] = (
        list(round_.clicks.filter(seq__gte=first, seq__lt=stored).order_by("seq").values_list("x", "y", "t_ms"))
        if stored > first
        else []
    )
    overlap = clicks[: stored - start_seq]
    if overlap and kept[start_seq - first : start_seq - first + len(overlap)] != [tuple(bubble) for bubble in overlap]:
        raise Conflict("these bubbles differ from the ones already stored", next_seq=stored)
    fresh = clicks[len(overlap) :]
    if fresh:
        check_bubbles(fresh, previous=kept[-1] if stored else None, stored=stored, settings=round_.settings)
        Click.objects.bulk_create(
            Click(round_id=round_.pk, seq=stored + i, x=x, y=y, t_ms=t_ms) for i, (x, y, t_ms) in enumerate(fresh)
        )
        if not claimed:
            Round.objects.filter(pk=round_.pk).update(bubble_count=stored + len(fresh))
    return stored + len(fresh), ([*kept, *(tuple(bubble) for bubble in fresh)] if read_back else None)


def live_guess(*, round_: Round, bubble_count: int, stored: Sequence[Bubble] | None = None) -> LiveGuess:
    """Ask the partner what it sees after the first `bubble_count` stored bubbles (`stored`: all of
    them, as store_clicks just read them back, else read here).

    Raises PartnerUnavailable quickly when the model server cannot answer in time. The answer is
    remembered for scoring, which would put the partner the same question (remembered_guesses).
    """
    every = round_.settings["query_every"]
    if bubble_count < every or bubble_count % every:
        raise PaintingRuleBroken(f"bubble_count must be a positive multiple of {every}")
    if bubble_count > round_.bubble_count:
        raise Conflict(f"only {round_.bubble_count} bubbles are stored; upload them first",
                       next_seq=round_.bubble_count)  # fmt: skip
    query_index = bubble_count // every - 1
    if stored is None:
        points = list(round_.clicks.order_by("seq").values_list("x", "y")[:bubble_count])
    else:
        points = [(x, y) for x, y, _ in stored[:bubble_count]]
    item = GuessItem(image_key=round_.image.crop.name, bubbles=points, seed=noise_seed(round_.pk, query_index))
    with live_client() as client:
        (guess,) = client.guess(
            round_.experiment.partner.name, [item], top_k=max(GUESSES_SHOWN, round_.settings["top_k"]),
            bubble_size=round_.settings["bubble_size"],
        )  # fmt: skip
    target = round_.image.category.name
    floor = recognition_floor(round_.settings, len(partner_classes(round_.experiment.partner.name)))
    answer = LiveGuess(
        query_index=query_index,
        bubble_count=bubble_count,
        guesses=[
            {"label": label, "probability": round(p, 4)}
            for label, p in zip(guess.classes[:GUESSES_SHOWN], guess.probabilities, strict=False)
        ],
        recognised=is_recognised(
            guess.classes, guess.probabilities, target, top_k=round_.settings["top_k"], floor=floor
        ),
    )
    remembered_guesses.remember(round_, query_index, guess)  # scoring asks the partner the same question
    return answer


def submit_round(*, round_: Round, claimed_outcome: str, bubble_count: int) -> tuple[Round, dict[str, int] | None]:
    """Close a round for scoring; the worker decides the outcome from the stored bubbles.

    `round_` comes with its session and experiment (`RoundQuerySet.for_play`, or start_round's).
    Returns it, updated, with its session's counts after it (`RoundQuerySet.done_in_session`) when
    this call submits it; else the round as stored and None. Idempotent: submitting again returns
    the round as it is. Scoring is enqueued when the transaction commits; if the broker is down
    the round waits for the periodic sweep. Where tasks run in-process (TASKS_IN_PROCESS), scoring
    has run by the time this returns, and the round returned carries its outcome.
    """
    # Until the worker scores it, the only outcome the server can vouch for is a skip.
    skipped = claimed_outcome == Round.Outcome.SKIPPED
    submitted = {
        "status": Round.Status.SUBMITTED, "client_outcome": claimed_outcome, "submitted_at": timezone.now(),
        "outcome": Round.Outcome.SKIPPED if skipped else Round.Outcome.WRONG,
    }  # fmt: skip
    with transaction.atomic():
        # A round still playing with every painted bubble stored is locked and submitted by one
        # conditional UPDATE; anything else (a second submit, bubbles still on their way) is read
        # under the lock (docs/load-testing.md, "What a round costs, and what was cut").
        playing = Round.objects.filter(pk=round_.pk, status=Round.Status.PLAYING)
        if not playing.filter(bubble_count=bubble_count).update(**submitted):
            stored = Round.objects.select_for_update().get(pk=round_.pk)
            if stored.status != Round.Status.PLAYING:
                return Round.objects.for_play().get(pk=round_.pk), None
            if bubble_count != stored.bubble_count:
                raise Conflict(
                    f"{stored.bubble_count} bubbles are stored but {bubble_count} were painted; upload the rest first",
                    next_seq=stored.bubble_count,
                )
            playing.update(**submitted)  # the missing bubbles arrived in between
        for field, value in submitted.items():
            setattr(round_, field, value)
        counts = Round.objects.done_in_session(round_)  # what completion and the answer need, counted once
        complete_if_done(
            round_.session, round_.experiment, done=counts["done"]
        )  # the round's experiment is its session's
        enqueue_on_commit(SCORE_TASK, round_.pk, purpose=f"score round {round_.pk}", log=logger)
    if runs_in_process():  # scored as the transaction committed
        round_ = Round.objects.for_play().get(pk=round_.pk)
    return round_, counts


def enqueue_scoring(round_id: int) -> None:
    """Send a round to the scoring workers; never raises (clickme_site/tasks_enqueue.py).

    The round is already safely stored as submitted, and the periodic sweep re-enqueues it.
    """
    enqueue(SCORE_TASK, round_id, purpose=f"score round {round_id}", log=logger)
