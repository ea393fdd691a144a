"""Who plays and what they did: participants, sessions, rounds, bubbles and partner guesses."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Count, Exists, F, OuterRef, Q

from games.models.experiments import IMAGE_SIZE, Experiment, Image, PartnerModelVersion


class Participant(models.Model):
    """A pseudonymous player; panel ids are kept for payment only and never exported."""

    class Source(models.TextChoices):
        ANONYMOUS = "anonymous", "anonymous"
        ACCOUNT = "account", "account"
        PROLIFIC = "prolific", "Prolific"
        MTURK = "mturk", "MTurk"
        SONA = "sona", "SONA"

    class BanState(models.TextChoices):
        NONE = "none", "not banned"
        SHADOW = "shadow", "shadow-banned"

    username = models.CharField(max_length=64, unique=True, help_text="Random adjective-noun name.")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="participant"
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.ANONYMOUS)
    prolific_pid = models.CharField(max_length=64, blank=True)
    prolific_study_id = models.CharField(max_length=64, blank=True)
    prolific_session_id = models.CharField(max_length=64, blank=True)
    mturk_worker_id = models.CharField(max_length=64, blank=True)
    mturk_assignment_id = models.CharField(max_length=64, blank=True)
    mturk_hit_id = models.CharField(max_length=64, blank=True)
    mturk_submit_to = models.URLField(blank=True)
    sona_id = models.CharField(max_length=64, blank=True)
    consent_version = models.CharField(max_length=32, blank=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    age_confirmed = models.BooleanField(default=False)
    ban_state = models.CharField(max_length=16, choices=BanState.choices, default=BanState.NONE)
    banned_at = models.DateTimeField(null=True, blank=True)
    # Sum of points of rounds that count (scored, valid), recomputed by the scoring service.
    score = models.PositiveIntegerField(default=0)
    high_score = models.PositiveIntegerField(default=0, help_text="Best single-session total.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(source="prolific") | ~Q(prolific_pid=""), name="participant_prolific_has_pid"
            ),
            models.CheckConstraint(
                condition=~Q(source="mturk") | ~Q(mturk_worker_id=""), name="participant_mturk_has_worker"
            ),
            models.CheckConstraint(condition=~Q(source="sona") | ~Q(sona_id=""), name="participant_sona_has_id"),
            models.CheckConstraint(
                condition=~Q(source="account") | Q(user__isnull=False), name="participant_account_has_user"
            ),
            models.CheckConstraint(
                condition=Q(consented_at__isnull=True) | ~Q(consent_version=""), name="participant_consent_versioned"
            ),
            models.CheckConstraint(
                condition=Q(ban_state="none") | Q(banned_at__isnull=False), name="participant_ban_has_time"
            ),
            # One participant per panel identity, so a returning panel worker keeps their history.
            models.UniqueConstraint(
                fields=["prolific_pid"], condition=Q(source="prolific"), name="participant_unique_prolific"
            ),
            models.UniqueConstraint(
                fields=["mturk_worker_id"], condition=Q(source="mturk"), name="participant_unique_mturk"
            ),
            models.UniqueConstraint(fields=["sona_id"], condition=Q(source="sona"), name="participant_unique_sona"),
        ]
        indexes = [
            # The leaderboard: top scores among participants whose rounds count.
            models.Index(F("score").desc(), name="participant_leaderboard_idx", condition=Q(ban_state="none")),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def is_shadow_banned(self) -> bool:
        """Whether nothing this participant submits should count anywhere."""
        return self.ban_state == self.BanState.SHADOW


class ConsentQuerySet(models.QuerySet):
    def current(self, *, participant_id: object, experiment_id: object, version: object) -> ConsentQuerySet:
        """The consent that lets a participant play an experiment: to that experiment, at its current version.

        The arguments may be values or `OuterRef`s, so that the same rule also runs inside
        another query (the game API reads a round and this in one round trip).
        """
        return self.filter(participant_id=participant_id, experiment_id=experiment_id, version=version)


class Consent(models.Model):
    """A participant's agreement to one experiment's consent text, at one version of it.

    Consent is per experiment *and* version: agreeing to one study never opens another, and a
    new version of a study's text asks again (docs/running-a-study.md, "Consent").
    """

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="consents")
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="consents")
    version = models.CharField(max_length=32)
    age_confirmed = models.BooleanField()
    consented_at = models.DateTimeField()

    objects = ConsentQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "experiment", "version"], name="consent_unique_version"),
            models.CheckConstraint(condition=~Q(version=""), name="consent_has_version"),
            models.CheckConstraint(condition=Q(age_confirmed=True), name="consent_age_confirmed"),
        ]

    def __str__(self) -> str:
        return f"{self.participant} consented to {self.experiment} v{self.version}"


class PlaySessionQuerySet(models.QuerySet):
    def with_consent(self) -> PlaySessionQuerySet:
        """Annotate `consented`, as `RoundQuerySet.with_consent` does for rounds."""
        return self.annotate(consented=Exists(_current_consent()))


def _current_consent() -> ConsentQuerySet:
    """The consent a row's participant needs for its experiment, for rows with `participant_id`,
    `experiment_id` and an `experiment` (sessions and rounds)."""
    return Consent.objects.current(
        participant_id=OuterRef("participant_id"),
        experiment_id=OuterRef("experiment_id"),
        version=OuterRef("experiment__consent_version"),
    )


class PlaySession(models.Model):
    """One visit of a participant to an experiment, with the device it was played on."""

    class PointerType(models.TextChoices):
        MOUSE = "mouse", "mouse"
        TOUCH = "touch", "touch"
        PEN = "pen", "pen"
        UNKNOWN = "unknown", "unknown"

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="sessions")
    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="sessions")
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the experiment's rounds were done and the code shown."
    )
    user_agent = models.CharField(max_length=500, blank=True)
    # A keyed hash of the address, never the address: enough for rate limits and quality rules.
    address_hash = models.CharField(max_length=64, blank=True)
    screen_width = models.PositiveIntegerField(null=True, blank=True)
    screen_height = models.PositiveIntegerField(null=True, blank=True)
    canvas_width = models.PositiveIntegerField(null=True, blank=True, help_text="Rendered canvas, CSS px.")
    canvas_height = models.PositiveIntegerField(null=True, blank=True)
    device_pixel_ratio = models.FloatField(null=True, blank=True)
    pointer_type = models.CharField(max_length=16, choices=PointerType.choices, default=PointerType.UNKNOWN)
    invalidated_at = models.DateTimeField(null=True, blank=True)
    flag_count = models.PositiveIntegerField(default=0, help_text="Quality flags raised; the review queue key.")
    is_pilot = models.BooleanField(
        default=False, help_text="Played from the preview link: kept out of maps and exports by default."
    )

    objects = PlaySessionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")), name="session_ends_after_start"
            ),
        ]
        indexes = [
            models.Index(fields=["participant", "experiment"], name="session_participant_idx"),
            models.Index(F("flag_count").desc(), F("started_at").desc(), name="session_review_queue_idx"),
        ]

    def __str__(self) -> str:
        return f"session {self.pk} of {self.participant}"

    @property
    def is_valid(self) -> bool:
        return self.invalidated_at is None


# What the game API (games/api.py, round_state, live guesses, uploads) reads of a round and its rows.
PLAY_FIELDS = (
    *("client_round_id", "settings", "status", "outcome", "points", "bubble_count", "position"),
    *("recognised_at_query", "partner_version", "participant", "is_catch_trial"),
    *("session__completed_at", "session__ended_at", "session__is_pilot"),
    *("experiment__slug", "experiment__status", "experiment__consent_version", "experiment__rounds_per_session"),
    *("experiment__query_every", "experiment__skips_count_for_completion", "experiment__partner__name"),
    # ImageField reads its size fields when a row is built: without them, two more queries.
    *("image__crop", "image__crop_width", "image__crop_height", "image__category__name"),
)


class RoundQuerySet(models.QuerySet):
    """The rules of which rounds count for what, in one place (docs/running-a-study.md)."""

    def counting_for_player(self) -> RoundQuerySet:
        """Rounds whose points are the participant's own score: scored, not skipped, not invalidated.

        A shadow-banned participant keeps seeing their points (they must not notice the ban),
        so the ban is not a filter here; it is one in `counting`.
        """
        Status, Outcome = self.model.Status, self.model.Outcome
        return self.filter(
            status=Status.SCORED, invalidated_at__isnull=True, session__invalidated_at__isnull=True
        ).exclude(outcome=Outcome.SKIPPED)

    def counting(self) -> RoundQuerySet:
        """Rounds that feed science (maps, image counts, public leaderboards): also not from a
        shadow-banned participant and not from a pilot session."""
        return self.counting_for_player().filter(participant__ban_state="none", session__is_pilot=False)

    def moderated(self) -> RoundQuerySet:
        """Rounds a moderator excluded from science: invalidated one by one, in an invalidated
        session, or from a shadow-banned participant (what an "invalidated" export holds)."""
        return self.filter(
            Q(invalidated_at__isnull=False)
            | Q(session__invalidated_at__isnull=False)
            | Q(participant__ban_state=Participant.BanState.SHADOW)
        )

    def for_play(self) -> RoundQuerySet:
        """Rounds with what the game API reads beside them, and only that: every game call reads a
        round, and compiling and building the whole of five rows was a fifth of the web process's
        time under load (docs/load-testing.md). A field left out is still read when used, by one
        more query each time: games/tests/test_query_budget.py notices."""
        return self.select_related("session", "experiment__partner", "image__category").only(*PLAY_FIELDS)

    def with_consent(self) -> RoundQuerySet:
        """Annotate `consented`: whether the round's participant has the consent its experiment asks
        now (`ConsentQuerySet.current`), read in the same query as the round."""
        return self.annotate(consented=Exists(_current_consent()))

    def done_in_session(self, round_: Round) -> dict[str, int]:
        """How many of the round's session's rounds are done (`completing`), and how many of them came
        before it: one query."""
        return (
            self.completing(round_.experiment)
            .filter(session_id=round_.session_id)
            .aggregate(done=Count("pk"), before=Count("pk", filter=Q(pk__lt=round_.pk)))
        )

    def completing(self, experiment: Experiment) -> RoundQuerySet:
        """Rounds that count towards a session's completion (what a panel pays for).

        Submitted (or scored) and not invalidated, and either painted enough for the partner to
        look at least once (`query_every` bubbles) or, where the study says skips count, skipped.
        A round started and left, or submitted with nothing painted, is no work done.
        """
        return self.filter(completing_condition(experiment))


def completing_condition(experiment: Experiment) -> Q:
    """`RoundQuerySet.completing` as a condition, for counting the session's rounds done beside others."""
    Status, Outcome = Round.Status, Round.Outcome
    done = Q(bubble_count__gte=experiment.query_every) & ~Q(outcome=Outcome.SKIPPED)
    if experiment.skips_count_for_completion:
        done |= Q(outcome=Outcome.SKIPPED)
    return done & Q(status__in=[Status.SUBMITTED, Status.SCORED], invalidated_at__isnull=True)


class Round(models.Model):
    """One image played once: its rules snapshot, its bubbles, and the authoritative score."""

    class Status(models.TextChoices):
        PLAYING = "playing", "playing"
        SUBMITTED = "submitted", "submitted, waiting to be scored"
        SCORED = "scored", "scored"

    class Outcome(models.TextChoices):
        CORRECT = "correct", "recognised"
        WRONG = "wrong", "time ran out"
        SKIPPED = "skipped", "skipped (strange label or poor quality)"

    session = models.ForeignKey(PlaySession, on_delete=models.PROTECT, related_name="rounds")
    # Denormalised from the session: ownership checks and per-participant queries stay one join away.
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="rounds")
    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="rounds")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="rounds")
    client_round_id = models.UUIDField(help_text="Chosen by the browser; makes start and uploads idempotent.")
    position = models.PositiveSmallIntegerField(help_text="0-based index of the round in its session.")
    settings = models.JSONField(help_text="Experiment.game_settings() when the round started.")
    is_catch_trial = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PLAYING)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    client_outcome = models.CharField(
        max_length=16, choices=Outcome.choices, blank=True, help_text="What the browser claimed; never trusted."
    )
    bubble_count = models.PositiveIntegerField(default=0)
    recognised_at_query = models.PositiveSmallIntegerField(null=True, blank=True)
    recognised_at_ms = models.PositiveIntegerField(null=True, blank=True, help_text="From the stored bubbles.")
    points = models.PositiveSmallIntegerField(null=True, blank=True)
    partner_version = models.ForeignKey(
        PartnerModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="rounds"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    scoring_attempts = models.PositiveSmallIntegerField(default=0)
    invalidated_at = models.DateTimeField(null=True, blank=True)

    objects = RoundQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["participant", "client_round_id"], name="round_client_id_unique"),
            # One round per place in a session: parallel starts (two tabs, a retried request)
            # cannot make extra rounds. (The sampler never serves a participant an image twice.)
            models.UniqueConstraint(fields=["session", "position"], name="round_one_per_position"),
            models.CheckConstraint(condition=Q(points__isnull=True) | Q(points__lte=1000), name="round_points_range"),
            models.CheckConstraint(
                condition=Q(status="playing") | ~Q(outcome="") & Q(submitted_at__isnull=False),
                name="round_submitted_has_outcome",
            ),
            models.CheckConstraint(
                condition=~Q(status="scored")
                | Q(points__isnull=False, partner_version__isnull=False, scored_at__isnull=False),
                name="round_scored_has_score",
            ),
            models.CheckConstraint(
                condition=Q(submitted_at__isnull=True) | Q(submitted_at__gte=F("started_at")),
                name="round_submitted_after_start",
            ),
        ]
        indexes = [
            # Map building and per-image statistics: an image's rounds by state.
            models.Index(fields=["image", "status"], name="round_image_idx"),
            # The sampler's "not yet played by this participant".
            models.Index(fields=["participant", "image"], name="round_participant_image_idx"),
            # The sweep that re-enqueues rounds left unscored; partial, so it stays tiny.
            models.Index(fields=["submitted_at"], condition=Q(status="submitted"), name="round_unscored_idx"),
            # Dashboard and exports: an experiment's rounds over time.
            models.Index(fields=["experiment", "submitted_at"], name="round_experiment_time_idx"),
        ]

    def __str__(self) -> str:
        return f"round {self.pk} ({self.image})"


class Click(models.Model):
    """One bubble, at image-pixel (x, y), `t_ms` after the pointer first went down.

    At ~100 bubbles per round, a large study reaches 10^8 rows, so the row is kept lean:
    no surrogate id, small integer columns, and the primary key (round, seq) doubles as the
    index that reads a round's bubbles in order. A round's bubbles are inserted together and
    so sit on one or two heap pages; reading one image's clicks for all its rounds is one
    index range scan per round (found through round_image_idx) rather than a table scan.
    """

    pk = models.CompositePrimaryKey("round_id", "seq")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="clicks")
    seq = models.PositiveSmallIntegerField()
    x = models.SmallIntegerField()
    y = models.SmallIntegerField()
    t_ms = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(x__gte=0, x__lt=IMAGE_SIZE, y__gte=0, y__lt=IMAGE_SIZE), name="click_inside_image"
            ),
        ]

    def __str__(self) -> str:
        return f"({self.x}, {self.y}) @ {self.t_ms} ms"


class PartnerGuess(models.Model):
    """The partner's top-k after one query point of a round, with the network that made it."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="guesses")
    partner_version = models.ForeignKey(PartnerModelVersion, on_delete=models.PROTECT, related_name="guesses")
    query_index = models.PositiveSmallIntegerField()
    bubble_count = models.PositiveIntegerField(help_text="Bubbles revealed when the partner looked.")
    classes = models.JSONField(help_text="Top-k class names, best first.")
    probabilities = models.JSONField(help_text="Their probabilities.")
    target_rank = models.PositiveSmallIntegerField(null=True, blank=True, help_text="0-based; null if not in top-k.")
    is_correct = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Re-scoring with another network adds rows; scoring twice with the same one cannot.
            models.UniqueConstraint(fields=["round", "partner_version", "query_index"], name="guess_unique_per_query"),
            models.CheckConstraint(
                condition=Q(is_correct=False) | Q(target_rank__isnull=False), name="guess_correct_has_rank"
            ),
        ]

    def __str__(self) -> str:
        return f"guess {self.query_index} of round {self.round_id}"
