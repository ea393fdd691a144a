"""The two staff roles as groups: "moderators" act on sessions, "researchers" see their experiments.

Add a person to a role (they must be staff to reach the admin at all):

    python manage.py shell -c "from django.contrib.auth.models import Group, User; \
        u = User.objects.get(username='alice'); u.is_staff = True; u.save(); \
        u.groups.add(Group.objects.get(name='moderators'))"

or in the admin: Users → alice → tick "Staff status" and choose the group under "Groups".
Researchers see, in the admin, only experiments they own or are listed on (and those
experiments' sessions, rounds and images); maps and exports are in their dashboard.
"""

from __future__ import annotations

from django.db import migrations

MODERATE = ("moderate", "Can moderate participants, sessions, rounds and images", "moderationaction")
MODERATOR_VIEWS = ["participant", "playsession", "round", "image", "qualityflag", "moderationaction", "experiment",
                   "partnerguess", "category", "imageset"]  # fmt: skip
RESEARCHER_VIEWS = ["experiment", "playsession", "round", "image", "category", "imageset"]


def _permission(apps, codename: str, name: str, model: str):
    # Default permissions appear only after migrate (post_migrate): create them here if missing.
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    content_type, _ = ContentType.objects.get_or_create(app_label="games", model=model)
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=codename, defaults={"name": name}
    )
    return permission


def create_roles(apps, schema_editor) -> None:
    Group = apps.get_model("auth", "Group")
    names = {model: apps.get_model("games", model)._meta.verbose_name for model in MODERATOR_VIEWS}
    views = {model: _permission(apps, f"view_{model}", f"Can view {name}", model) for model, name in names.items()}
    moderators, _ = Group.objects.get_or_create(name="moderators")
    moderators.permissions.add(*views.values(), _permission(apps, *MODERATE))
    researchers, _ = Group.objects.get_or_create(name="researchers")
    researchers.permissions.add(*(views[model] for model in RESEARCHER_VIEWS))


def remove_roles(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=["moderators", "researchers"]).delete()
    apps.get_model("auth", "Permission").objects.filter(content_type__app_label="games", codename="moderate").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("games", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
