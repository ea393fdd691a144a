"""`manage.py add_researcher`: a user who can run studies from the dashboard, made or updated."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from games.services.studies import is_researcher

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("add_researcher", *args, stdout=out)
    return out.getvalue()


def test_it_creates_a_researcher_with_the_given_password() -> None:
    assert run("alice", "--password", "s3cret-pass", "--email", "alice@lab.example") == "created researcher alice\n"
    alice = User.objects.get(username="alice")
    assert is_researcher(alice) and alice.is_staff and not alice.is_superuser
    assert alice.check_password("s3cret-pass") and alice.email == "alice@lab.example"


def test_a_new_user_without_a_password_gets_a_random_one_printed_once() -> None:
    output = run("bob")
    password = output.split("password: ")[1].split()[0]
    assert User.objects.get(username="bob").check_password(password)


def test_it_makes_an_existing_user_a_researcher_and_keeps_their_password() -> None:
    User.objects.create_user("carol", password="old-password")
    assert run("carol") == "updated researcher carol\n"
    carol = User.objects.get(username="carol")
    assert is_researcher(carol) and carol.check_password("old-password")
    run("carol")  # again: still one membership, no error
    assert carol.groups.count() == 1
