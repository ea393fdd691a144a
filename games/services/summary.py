"""What a participant sees between and after rounds: score, this study's leaderboard, completion."""

from __future__ import annotations

from urllib.parse import quote

from django.db.models import Sum

from games.models import Experiment, Participant, PlaySession, Round
from games.services.rounds import rounds_done

LEADERBOARD_SIZE = 10


def latest_session(*, participant: Participant, experiment: Experiment) -> PlaySession | None:
    """The participant's most recent session in this experiment."""
    return participant.sessions.filter(experiment=experiment).order_by("-started_at", "-pk").first()


def _experiment_scores(experiment: Experiment) -> list[tuple[int, str, int]]:
    """(participant id, username, points) of the study's public leaderboard, best first.

    Only rounds that count for science (`RoundQuerySet.counting`) rank anyone publicly, so a
    shadow-banned or pilot player is never on it.
    """
    rows = (
        Round.objects.counting()
        .filter(experiment=experiment)
        .values("participant_id", "participant__username")
        .annotate(total=Sum("points"))
        .filter(total__gt=0)
        .order_by("-total", "participant_id")
    )
    return [(row["participant_id"], row["participant__username"], row["total"]) for row in rows]


def summary(*, participant: Participant, experiment: Experiment) -> dict:
    """Score and high score in this study, its top-10 leaderboard plus the participant's rank, completion.

    The participant's own numbers count their own rounds (`counting_for_player`), so a
    shadow-banned participant sees their points as before and notices nothing.
    """
    own = Round.objects.counting_for_player().filter(participant=participant, experiment=experiment)
    score = own.aggregate(total=Sum("points"))["total"] or 0
    high_score = (
        own.values("session_id").annotate(total=Sum("points")).order_by("-total").values_list("total", flat=True)
    ).first() or 0
    session = latest_session(participant=participant, experiment=experiment)
    board = _experiment_scores(experiment)
    completed = participant.sessions.filter(experiment=experiment, completed_at__isnull=False).exists()
    return {
        "username": participant.username,
        "score": score,
        "high_score": high_score,
        "rounds_done": rounds_done(session) if session else 0,
        "rounds_total": experiment.rounds_per_session,
        "session_ended": session is not None and session.ended_at is not None,
        "leaderboard": [
            {"rank": rank, "username": username, "score": total}
            for rank, (_, username, total) in enumerate(board[:LEADERBOARD_SIZE], start=1)
        ],
        "you": {"rank": sum(1 for *_, total in board if total > score) + 1, "score": score},
        "completion": completion(participant=participant, experiment=experiment) if completed else None,
    }


def completion(*, participant: Participant, experiment: Experiment) -> dict:
    """How the participant gets credit: a code, a panel redirect, or MTurk's submit form.

    Given only once a session of theirs has recorded its completion (`rounds.complete_if_done`):
    the rounds the study asks for, submitted with work in them, or every image it could offer.
    An open study has nothing to claim: its completion is a thank-you.
    """
    code = experiment.completion_code
    redirect_url = ""
    mturk_submit = None
    if experiment.recruitment == Experiment.Recruitment.PROLIFIC:
        template = experiment.completion_url or "https://app.prolific.com/submissions/complete?cc={code}"
        redirect_url = template.replace("{code}", quote(code))
    elif experiment.recruitment == Experiment.Recruitment.SONA and experiment.completion_url:
        redirect_url = experiment.completion_url.replace("{sona_id}", quote(participant.sona_id))
    elif experiment.recruitment == Experiment.Recruitment.MTURK and participant.mturk_submit_to:
        mturk_submit = {
            "action": participant.mturk_submit_to.rstrip("/") + "/mturk/externalSubmit",
            "assignmentId": participant.mturk_assignment_id,
        }
    return {
        "code": code,
        "redirect_url": redirect_url,
        "mturk_submit": mturk_submit,
        "is_panel": experiment.recruitment != Experiment.Recruitment.OPEN,
    }
