"""`manage.py add_researcher USERNAME`: make (or update) a user who runs studies from the dashboard."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from games.services.studies import RESEARCHERS_GROUP


class Command(BaseCommand):
    help = (
        "Create USERNAME, or update that user, and put them in the researchers group: they can then sign in "
        "at /dashboard/, upload image sets and run their own studies (docs/running-a-study.md). They are made "
        "staff too, so the admin shows them their studies' sessions and rounds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default=None, help="Set the user's e-mail address.")
        parser.add_argument(
            "--password",
            default=None,
            help="Set this password; a new user without one gets a random password, printed once.",
        )

    def handle(self, *args: object, username: str, email: str | None, password: str | None, **options: object) -> None:
        group = Group.objects.filter(name=RESEARCHERS_GROUP).first()
        if group is None:
            raise CommandError(f"there is no {RESEARCHERS_GROUP!r} group: run `manage.py migrate` first")
        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(username=username)
            generated = password is None and created
            if generated:
                password = secrets.token_urlsafe(12)
            if password is not None:
                user.set_password(password)
            if email is not None:
                user.email = email
            user.is_staff = True
            user.save()
            user.groups.add(group)
        self.stdout.write(f"{'created' if created else 'updated'} researcher {username}")
        if generated:
            self.stdout.write(f"password: {password}  (give it to them; they can change it in the admin)")
