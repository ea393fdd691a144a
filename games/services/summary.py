"""What a participant sees between and after rounds: score, leaderboard, completion."""

from __future__ import annotations

from urllib.parse import quote

from games.models import Experiment, Participant, PlaySession

LEADERBOARD_SIZE = 10


def latest_session(*, participant: Participant, experiment: Experiment) -> PlaySession | None:
    """The participant's most recent session in this experiment."""
    return participant.sessions.filter(experiment=experiment).order_by("-started_at", "-pk").first()


def summary(*, participant: Participant, experiment: Experiment) -> dict:
    """Score, high score, top-10 leaderboard plus the participant's rank, and completion."""
    participant.refresh_from_db(fields=["score", "high_score"])
    session = latest_session(participant=participant, experiment=experiment)
    rounds_done = session.rounds.count() if session else 0
    ranked = Participant.objects.filter(ban_state=Participant.BanState.NONE, score__gt=0)
    top = ranked.order_by("-score", "pk")[:LEADERBOARD_SIZE]
    return {
        "username": participant.username,
        "score": participant.score,
        "high_score": participant.high_score,
        "rounds_done": rounds_done,
        "rounds_total": experiment.rounds_per_session,
        "leaderboard": [
            {"rank": rank, "username": row.username, "score": row.score} for rank, row in enumerate(top, start=1)
        ],
        "you": {"rank": ranked.filter(score__gt=participant.score).count() + 1, "score": participant.score},
        "completion": completion(participant=participant, experiment=experiment)
        if rounds_done >= experiment.rounds_per_session
        else None,
    }


def completion(*, participant: Participant, experiment: Experiment) -> dict:
    """How the participant gets credit: a code, a panel redirect, or MTurk's submit form.

    Decided from rounds started, not rounds uploaded, so a participant whose last upload failed
    still gets paid; the data of such a round is simply missing.
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
    return {"code": code, "redirect_url": redirect_url, "mturk_submit": mturk_submit}
