"""The researcher's forms: a study's settings and an image-set upload, validated field by field.

Each bad value is reported on the field it belongs to, in words a researcher can act on; the
database's own constraints (games/models/experiments.py) are mirrored here so that none of them
ever surfaces as a bare "constraint violated".
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.validators import MaxValueValidator, MinValueValidator

from games.models import Experiment, ImageSet, PartnerModel
from games.services.studies import consents_given
from maps.permissions import own_image_sets

# Dashboard URLs live beside `dashboard/<slug>/`: a study may not take their names.
RESERVED_SLUGS = {"new", "image-sets", "login", "logout"}

# (minimum, maximum) of each number field. Mirrors the model's check constraints.
LIMITS: dict[str, tuple[float, float]] = {
    "bubble_size": (1, 256),
    "bubble_interval_ms": (1, 1000),
    "bubble_max_step": (1, 256),
    "query_every": (1, 1000),
    "time_limit_ms": (1000, 600_000),
    "top_k": (1, 1000),
    "noise_std": (0, 10),
    "max_points": (1, 1000),
    "rounds_per_session": (1, 10_000),
    "target_maps_per_image": (1, 10_000),
    "plateau_tolerance": (0, 1),
    "catch_trial_rate": (0, 1),
    "recognition_min_probability": (0, 1),
    "minimum_age": (0, 120),
}

# The form's sections, in the order the page shows them (docs/running-a-study.md follows it).
SECTIONS = [
    ("Study", ["title", "slug", "description", "image_set", "partner"]),
    ("Game", ["rounds_per_session", "top_k", "recognition_min_probability", "time_limit_ms", "query_every",
              "skips_count_for_completion", "max_points", "bubble_size", "bubble_interval_ms", "bubble_max_step",
              "noise_std", "catch_trial_rate"]),
    ("Collection", ["target_maps_per_image", "retire_on_plateau", "plateau_tolerance"]),
    ("Consent", ["consent_version", "consent_text", "minimum_age"]),
    ("Recruitment", ["recruitment", "completion_code", "completion_url"]),
]  # fmt: skip
LOCKED_ONCE_STARTED = ("image_set", "partner")  # what a study's data already depends on


class StudyForm(forms.ModelForm):
    """Create or edit a study (an Experiment) owned by `user`."""

    completion_url = forms.URLField(
        required=False, assume_scheme="https", label="Completion URL",
        help_text=Experiment._meta.get_field("completion_url").help_text,
    )  # fmt: skip

    class Meta:
        model = Experiment
        fields = [name for _, names in SECTIONS for name in names]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "consent_text": forms.Textarea(attrs={"rows": 6}),
        }
        labels = {"top_k": "Top-k", "slug": "Address (slug)", "recognition_min_probability": "Recognition minimum "
                  "probability"}  # fmt: skip
        help_texts = {
            "slug": "Participants play at /play/<slug>/; it cannot be changed later.",
            "image_set": "One of the image sets you uploaded.",
            "partner": "The network that guesses; it must know every class of the image set.",
            "rounds_per_session": "At most the number of active images in the set.",
            "consent_version": "Change it whenever you change the consent text: participants are asked again.",
        }

    def __init__(self, *args: object, user: AbstractBaseUser, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # The study's own set stays valid even when someone else made it (a superuser, a command).
        current = ImageSet.objects.filter(pk=self.instance.image_set_id) if self.instance.image_set_id else None
        sets = own_image_sets(user) if current is None else own_image_sets(user) | current
        self.fields["image_set"].queryset = sets.order_by("name")
        self.fields["partner"].queryset = PartnerModel.objects.order_by("name")
        for name, (low, high) in LIMITS.items():
            _bound(self.fields[name], low, high)
        if self.instance.pk:
            self.fields["slug"].disabled = True
            if self.instance.status != Experiment.Status.DRAFT:
                for name in LOCKED_ONCE_STARTED:
                    self.fields[name].disabled = True
                    self.fields[name].help_text = "Fixed once the study has gone live: its data depends on it."

    def sections(self) -> list[tuple[str, list[forms.BoundField]]]:
        """The bound fields grouped for the template."""
        return [(title, [self[name] for name in names]) for title, names in SECTIONS]

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if slug in RESERVED_SLUGS:
            raise forms.ValidationError(f"{slug!r} is a dashboard page's name; choose another address.")
        return slug

    def clean_consent_text(self) -> str:
        return self.cleaned_data["consent_text"].strip()

    def clean(self) -> dict:
        data = super().clean()
        recruitment = data.get("recruitment")
        if recruitment and recruitment != Experiment.Recruitment.OPEN and not (data.get("completion_code") or ""):
            self.add_error("completion_code", "A panel study needs a completion code (participants get it at the end).")
        url = data.get("completion_url") or ""
        if recruitment == Experiment.Recruitment.SONA and url and "{sona_id}" not in url:
            self.add_error("completion_url", "A SONA credit URL must contain {sona_id}, where SONA's id goes.")
        self._check_consent_version(data)
        return data

    def _check_consent_version(self, data: dict) -> None:
        """A text people already agreed to keeps its version: changing the text needs a new one."""
        if not self.instance.pk or "consent_text" not in data or "consent_version" not in data:
            return
        original = Experiment.objects.get(pk=self.instance.pk)
        text_changed = data["consent_text"] != original.consent_text.strip()
        agreed = consents_given(original)
        if text_changed and agreed and data["consent_version"] == original.consent_version:
            self.add_error(
                "consent_version",
                f"{agreed} participant{'s have' if agreed != 1 else ' has'} agreed to version "
                f"{original.consent_version!r} of the consent text: give the changed text a new consent version.",
            )


def _bound(field: forms.Field, low: float, high: float) -> None:
    """Give a number field exactly these bounds (replacing the model field's own 0 minimum), in the widget too."""
    field.validators = [v for v in field.validators if not isinstance(v, MinValueValidator | MaxValueValidator)]
    field.validators += [MinValueValidator(low), MaxValueValidator(high)]
    field.widget.attrs.update(min=low, max=high)
    if isinstance(field, forms.FloatField):
        field.widget.attrs["step"] = "any"


class ImageSetUploadForm(forms.ModelForm):
    """A new image set from a zip of class folders; the zip itself is checked by games.services.image_uploads."""

    archive = forms.FileField(
        label="Images (zip)",
        help_text="A zip of one folder per class, <class>/<file>; a <file stem>.mask.png beside an image is its mask.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )

    class Meta:
        model = ImageSet
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}
        help_texts = {"name": "Letters, digits, - and _; unique on this site."}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if name == "new":
            raise forms.ValidationError("'new' is a dashboard page's name; choose another.")
        return name

    def clean_archive(self) -> object:
        archive = self.cleaned_data["archive"]
        limit = settings.IMAGE_SET_ZIP_MAX_BYTES
        if archive.size > limit:
            raise forms.ValidationError(
                f"The zip is {archive.size / 2**20:.1f} MiB; at most {limit / 2**20:.1f} MiB is accepted "
                "(IMAGE_SET_ZIP_MAX_BYTES)."
            )
        if archive.size == 0:
            raise forms.ValidationError("The file is empty (0 bytes).")
        return archive


class StatusForm(forms.Form):
    """Go live, pause, resume or close: the transition itself is checked by games.services.studies."""

    status = forms.ChoiceField(choices=Experiment.Status.choices)
