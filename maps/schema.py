"""The researcher API's OpenAPI schema: every answer an operation can give, errors included (docs/running-a-study.md).

drf-spectacular documents the success answer of each view; this schema class adds the errors
DRF and our views really send, so that a client (and Schemathesis, maps/tests/test_schemathesis.py)
can rely on the schema for all of them:

- 401 without credentials, on every operation;
- 404 for an experiment, image or export the researcher may not see (or that does not exist),
  and for a page past the end of a list;
- 400 (validation or a malformed body), 403 (a session without its CSRF token), 413 (a body over
  DATA_UPLOAD_MAX_MEMORY_SIZE) and 415 (a body that is not JSON) on operations with a body;
- 429 with Retry-After on starting an export past the researcher's quota;
- 503 with Retry-After when the site cannot reach its database.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What is wrong, in words.")


class ValidationErrorSerializer(serializers.Serializer):
    """A field's errors under its name (nested objects nest), or one sentence under `detail`."""

    detail = serializers.CharField(required=False, help_text="A malformed body, or a request the service refused.")

    class Meta:
        ref_name = "ValidationError"


class ExportQuotaSerializer(serializers.Serializer):
    running = serializers.IntegerField(help_text="The researcher's unfinished exports.")
    max_running = serializers.IntegerField(help_text="EXPORT_MAX_RUNNING; 0 = no limit.")
    last_day = serializers.IntegerField(help_text="Exports the researcher started in the last 24 hours.")
    max_per_day = serializers.IntegerField(help_text="EXPORT_MAX_PER_DAY; 0 = no limit.")


class ExportQuotaErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Which limit, and when to try again.")
    retry_after = serializers.IntegerField(help_text="Seconds to wait, as in the Retry-After header.")
    quota = ExportQuotaSerializer()


RETRY_AFTER = {"schema": {"type": "integer", "minimum": 0}, "description": "Seconds to wait before trying again."}
JSON = ["application/json"]


class ResearcherApiSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with the error answers every operation can give."""

    def _error(self, code: str, serializer: Any, description: str, *, retry_after: bool | None = None) -> dict:
        response = self._get_response_for_code(OpenApiResponse(serializer, description=description), code, JSON)
        if retry_after is not None:
            response["headers"] = {"Retry-After": {**RETRY_AFTER, "required": retry_after}}
        return response

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        has_body = self.method in ("POST", "PUT", "PATCH")
        errors = {"401": (ErrorSerializer, "No credentials, or wrong ones (a token or a session).")}
        if "{" in self.path or self._is_list_view():
            errors["404"] = (ErrorSerializer, "No such experiment, image, map or export that you may see, or no "
                             "such page of the list.")  # fmt: skip
        if has_body:
            errors.update({
                "400": (ValidationErrorSerializer, "The body is malformed or a field is wrong (named, with why)."),
                "403": (ErrorSerializer, "A session-authenticated request without its CSRF token."),
                "413": (ErrorSerializer, "The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE."),
                "415": (ErrorSerializer, "The body is not JSON (form bodies are refused, never half-read)."),
            })  # fmt: skip
        for code, (serializer, description) in errors.items():
            responses.setdefault(code, self._error(code, serializer, description))
        if self.method == "POST" and self.path.endswith("/exports/"):
            responses.setdefault("429", self._error(
                "429", ExportQuotaErrorSerializer, "The researcher's export quota is used up "
                "(EXPORT_MAX_RUNNING or EXPORT_MAX_PER_DAY).", retry_after=True))  # fmt: skip
        responses.setdefault("503", self._error(
            "503", OpenApiTypes.OBJECT, "The site cannot reach its database for now.", retry_after=False))  # fmt: skip
        return responses
