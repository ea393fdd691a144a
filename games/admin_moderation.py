"""The moderators' admin: actions that ask for a reason, a per-object page for each, and role scoping.

Every moderation service (games.services.moderation) is both a bulk action on the changelist,
which first shows a page asking for the reason, and a button on the change page. Staff who
may not moderate see neither; researchers see only their experiments' data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join, json_script

from games import moderation_stats as stats
from games.models import Experiment, Round
from games.services import moderation
from games.services.moderation import ModerationError, can_moderate
from games.static_modules import import_map_tag


@dataclass(frozen=True)
class Move:
    """One moderation action as the admin offers it: its service and how to find its target."""

    name: str
    label: str
    service: Callable[..., object]
    target: Callable[[Model], dict[str, Model]]


def on_self(keyword: str) -> Callable[[Model], dict[str, Model]]:
    return lambda obj: {keyword: obj}


def on_participant(obj: Model) -> dict[str, Model]:
    return {"participant": obj.participant}


class ReasonForm(forms.Form):
    """The one field every moderation action needs; blank or whitespace is refused."""

    reason = forms.CharField(
        strip=True,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "placeholder": "Why? This goes into the audit log."}),
    )


def visible_experiments(user: object) -> QuerySet[Experiment]:
    """Experiments this staff member may see: all for moderators, else `Experiment.objects.visible_to`."""
    if can_moderate(user):
        return Experiment.objects.all()
    return Experiment.objects.visible_to(user)


class ExperimentScopedAdmin(admin.ModelAdmin):
    """Researchers see only rows of experiments they own or are listed on."""

    experiment_path = "experiment"  # the lookup from this model to its Experiment

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser or can_moderate(request.user):
            return queryset
        return queryset.filter(**{f"{self.experiment_path}__in": visible_experiments(request.user)}).distinct()


class ModeratedAdmin(ExperimentScopedAdmin):
    """A model admin whose rows are moderated: never deleted, acted on only with a reason."""

    moves: tuple[Move, ...] = ()
    change_form_template = "admin/games/moderation_change_form.html"

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # collected data is invalidated or restored, never deleted

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if can_moderate(request.user):
            for move in self.moves:
                actions[move.name] = (self._bulk_action(move), move.name, f"{move.label}… (asks for a reason)")
        return actions

    def _bulk_action(self, move: Move) -> Callable:
        def action(modeladmin: ModeratedAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
            form = ReasonForm(request.POST if "apply" in request.POST else None)
            if form.is_valid():
                self._apply(request, move, list(queryset), form.cleaned_data["reason"])
                return None  # back to the changelist
            return self._reason_page(request, move, list(queryset), form, bulk=True)

        return action

    def _apply(self, request: HttpRequest, move: Move, targets: list[Model], reason: str) -> None:
        done = 0
        for obj in targets:
            try:
                move.service(actor=request.user, reason=reason, **move.target(obj))
                done += 1
            except ModerationError as error:
                self.message_user(request, f"{obj}: {error}", messages.ERROR)
        if done:
            self.message_user(request, f"{move.label}: done for {done} of {len(targets)}.", messages.SUCCESS)

    def _reason_page(
        self, request: HttpRequest, move: Move, targets: list[Model], form: ReasonForm, *, bulk: bool
    ) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "opts": self.opts, "move": move, "targets": targets,
                   "form": form, "bulk": bulk, "title": move.label}  # fmt: skip
        return TemplateResponse(request, "admin/games/moderation_reason.html", context)

    def get_urls(self) -> list:
        name = f"{self.opts.app_label}_{self.opts.model_name}_moderate"
        view = self.admin_site.admin_view(self.moderate_view)
        return [path("<path:object_id>/moderate/<str:move_name>/", view, name=name), *super().get_urls()]

    def moderate_view(self, request: HttpRequest, object_id: str, move_name: str) -> HttpResponse:
        """One action on one object: a GET asks for the reason, a POST with one acts."""
        if not can_moderate(request.user):
            raise PermissionDenied
        move = next((m for m in self.moves if m.name == move_name), None)
        obj = self.get_object(request, object_id)
        if move is None or obj is None:
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            self._apply(request, move, [obj], form.cleaned_data["reason"])
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                                                args=[obj.pk]))  # fmt: skip
        return self._reason_page(request, move, [obj], form, bulk=False)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None):
        extra_context = extra_context or {}
        if can_moderate(request.user):
            name = f"admin:{self.opts.app_label}_{self.opts.model_name}_moderate"
            extra_context["moderation_moves"] = [
                (move.label, reverse(name, args=[object_id, move.name])) for move in self.moves
            ]
        return super().change_view(request, object_id, form_url, extra_context)


def replay_widget(rounds: QuerySet[Round]) -> str:
    """A canvas, one button per round, and the rounds' bubbles as JSON for static/games/replay.js.

    The buttons start disabled and the script enables them once it listens: a click before the
    module has loaded would otherwise do nothing.
    """
    data = stats.replay_data(rounds)
    buttons = format_html_join(
        " ", '<button type="button" class="button" data-replay="{}" disabled>▶ {}</button>',
        ((i, item["label"]) for i, item in enumerate(data)),
    )  # fmt: skip
    return format_html(
        '<div class="replay"><p>{}</p><p><label>speed <select id="replay-speed"><option value="1">1×</option>'
        '<option value="4">4×</option></select></label></p>'
        '<canvas id="replay-canvas" width="256" height="256" style="width:384px;height:384px;background:#111">'
        '</canvas><p id="replay-caption" class="help">Choose a round to replay its bubbles in their recorded timing.'
        '</p>{}{}<script type="module" src="{}"></script></div>',
        buttons, json_script(data, "replay-data"), import_map_tag(), static("games/replay.js"),
    )  # fmt: skip


PARTICIPANT_MOVES = (
    Move("shadow_ban", "shadow-ban", moderation.shadow_ban, on_self("participant")),
    Move("unban", "unban", moderation.unban, on_self("participant")),
)
SESSION_MOVES = (
    Move("invalidate_session", "invalidate session", moderation.invalidate_session, on_self("session")),
    Move("restore_session", "restore session", moderation.restore_session, on_self("session")),
    Move("shadow_ban", "shadow-ban participant", moderation.shadow_ban, on_participant),
    Move("unban", "unban participant", moderation.unban, on_participant),
)
ROUND_MOVES = (
    Move("invalidate_round", "invalidate round", moderation.invalidate_round, on_self("round_")),
    Move("restore_round", "restore round", moderation.restore_round, on_self("round_")),
)
IMAGE_MOVES = (
    Move("retire_image", "retire image", moderation.retire_image, on_self("image")),
    Move("reject_image", "reject image", moderation.reject_image, on_self("image")),
    Move("restore_image", "restore image", moderation.restore_image, on_self("image")),
)
