"""System checks of the site's configuration that Django's own deployment checklist does not cover."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

TOKEN_MIN_LENGTH = 32  # what `secrets.token_urlsafe(32)` (.env.example) gives is 43


@register(Tags.security, deploy=True)
def model_server_admin_token(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """Production needs MODEL_SERVER_ADMIN_TOKEN: without it anyone reaching the model server swaps the partner.

    A deployment check (`manage.py check --deploy`, docs/model-server.md), like Django's own checklist:
    development stacks and test servers on loopback run without one. The model server itself refuses
    a non-loopback --host without a token.
    """
    if settings.DEBUG:
        return []
    token = settings.MODEL_SERVER_ADMIN_TOKEN
    hint = 'Set it in .env; generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))".'
    if not token:
        return [Error("MODEL_SERVER_ADMIN_TOKEN is not set: with DEBUG off the model server's repository "
                      "endpoints (load, activate, unload) need it.", hint=hint, id="clickme.E001")]  # fmt: skip
    if token.startswith("change-me"):
        return [Error("MODEL_SERVER_ADMIN_TOKEN is still the placeholder of .env.example.", hint=hint,
                      id="clickme.E001")]  # fmt: skip
    if len(token) < TOKEN_MIN_LENGTH:
        return [Warning(f"MODEL_SERVER_ADMIN_TOKEN has {len(token)} characters; use at least {TOKEN_MIN_LENGTH}.",
                        hint=hint, id="clickme.W001")]  # fmt: skip
    return []
