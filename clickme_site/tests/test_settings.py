"""Settings come only from the environment, and a wrong value stops the process naming it."""

from __future__ import annotations

import ast
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.DEBUG, s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.SECURE_SSL_REDIRECT)"
)


def django_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Start Python with the project's settings under exactly `env` (plus PATH)."""
    base = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "clickme_site.settings",
        "DEBUG": "0",
        "SECRET_KEY": "k" * 50,
        "DATABASE_URL": "",
        "REDIS_URL": "",
    }
    command = args or ("-c", PRINT_SETTINGS)
    return subprocess.run(
        [sys.executable, *command], env={**base, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_defaults_are_production_safe_with_sqlite_and_in_process_tasks() -> None:
    result = django_process({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "django.db.backends.sqlite3", "True", "True"]


def test_database_and_broker_urls_switch_to_postgres_and_real_workers() -> None:
    result = django_process({"DATABASE_URL": "postgres://u@db:5432/x", "REDIS_URL": "redis://r:6379/0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "django.db.backends.postgresql", "False", "True"]


def test_in_process_tasks_are_an_explicit_setting_that_needs_no_broker_only_when_on() -> None:
    result = django_process({"REDIS_URL": "redis://r:6379/0", "TASKS_IN_PROCESS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[2] == "True"
    result = django_process({"TASKS_IN_PROCESS": "0"})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "TASKS_IN_PROCESS=0 needs a broker" in result.stderr


@pytest.mark.parametrize(
    "env, message",
    [
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set when DEBUG is off"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL must be a URL with scheme"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must be a URL with scheme"),
        ({"MODEL_SERVER_URL": "ftp://x"}, "MODEL_SERVER_URL must be a URL"),
        ({"CONN_MAX_AGE": "sixty"}, "CONN_MAX_AGE must be an integer"),
        ({"MODEL_SERVER_TIMEOUT_MS": "0"}, "MODEL_SERVER_TIMEOUT_MS must be at least 1"),
        ({"SECURE_SSL_REDIRECT": "yep"}, "SECURE_SSL_REDIRECT must be a boolean"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_a_bad_value_fails_at_start_naming_the_variable(env: dict[str, str], message: str) -> None:
    result = django_process(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_debug_works_without_a_secret_key_for_development() -> None:
    result = django_process({"DEBUG": "1", "SECRET_KEY": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "True" and result.stdout.split()[3] == "False"


def production_env(**extra: str) -> dict[str, str]:
    return {"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "example.org",
            "MODEL_SERVER_ADMIN_TOKEN": secrets.token_urlsafe(32), **extra}  # fmt: skip


def test_the_deployment_checklist_is_clean_with_production_settings() -> None:
    result = django_process(production_env(), "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    "token, message",
    [("", "MODEL_SERVER_ADMIN_TOKEN is not set"),
     ("change-me-to-a-random-token-python-c-import-secrets-token-urlsafe-32", "still the placeholder"),
     ("short", "MODEL_SERVER_ADMIN_TOKEN has 5 characters")],
    ids=["unset", "placeholder", "short"],
)  # fmt: skip
def test_the_deployment_checklist_requires_the_model_server_token(token: str, message: str) -> None:
    result = django_process(production_env(MODEL_SERVER_ADMIN_TOKEN=token), "manage.py", "check", "--deploy",
                            "--fail-level", "WARNING")  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr


def test_development_needs_no_model_server_token() -> None:
    env = {"DEBUG": "1", "MODEL_SERVER_ADMIN_TOKEN": ""}
    result = django_process(env, "manage.py", "check", "--deploy")
    assert "MODEL_SERVER_ADMIN_TOKEN" not in result.stdout + result.stderr


def model_server_variables() -> set[str]:
    """MODEL_SERVER_<FIELD> for every field of the model server's settings (read from its source: no torch here)."""
    tree = ast.parse((ROOT / "model_server" / "serve.py").read_text())
    settings = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "ServerSettings")
    return {f"MODEL_SERVER_{node.target.id.upper()}" for node in settings.body if isinstance(node, ast.AnnAssign)}


def test_env_example_lists_every_variable_the_settings_read() -> None:
    source = (ROOT / "clickme_site" / "settings.py").read_text()
    read = set(re.findall(r'env(?:_bool|_int|_url|\.str|\.list|\.path)\(\s*"([A-Z_]+)"', source))
    listed = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    assert read, "found no variables in settings.py"
    assert read - listed == set(), "variables missing from .env.example"
    # The model server (same .env in docker compose) reads its own; the token is read by both.
    assert "MODEL_SERVER_ADMIN_TOKEN" in read
    assert listed - read - model_server_variables() == set(), ".env.example lists variables nothing reads"
