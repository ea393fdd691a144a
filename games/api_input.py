"""What the site's JSON APIs accept at the edge: JSON bodies only, shallow, with JSON's own types.

Both the game API (docs/game-api.md) and the researcher API parse bodies with `StrictJSONParser`
(settings.REST_FRAMEWORK, with `exception_handler`): a body that is not JSON is 415, malformed or nested deeper than
`MAX_DEPTH` is 400 before anything walks it (Python's json module recurses and would end in a
500), and a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE is 413.

DRF's own fields coerce: IntegerField takes "5" and 5.0, FloatField takes true and "5",
CharField takes 5, UUIDField takes an integer. The fields here take only the JSON type they name,
so a coordinate sent as "5" is a 400 naming the field, never a stored 5.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

MAX_DEPTH = 8  # our deepest body is {"clicks": [[x, y, t]]}, depth 3; the researcher API's is 2
# A string (with its escapes) or one bracket: brackets inside strings are not nesting.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the request body is too large"
    default_code = "too_large"


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, with Django's "body too big" (raised while DRF reads the body) as a JSON 413, not a 400 page."""
    from rest_framework.views import exception_handler as drf_exception_handler  # it reads these settings

    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        exc = PayloadTooLarge(f"the request body is larger than {limit} bytes")
    return drf_exception_handler(exc, context)


def nesting_depth(raw: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest, counted without recursion."""
    depth = deepest = 0
    for token in _TOKENS.finditer(raw):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


class StrictJSONParser(JSONParser):
    """DRF's JSON parser (NaN and Infinity refused), with a size cap and a nesting limit checked first."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        depth = nesting_depth(raw)
        if depth > MAX_DEPTH:
            raise exceptions.ParseError(f"JSON nested {depth} levels deep; at most {MAX_DEPTH} are accepted")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def json_type(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"a string ({value[:20]!r})"
    if isinstance(value, list):
        return "an array"
    return "an object"


def is_integer(value: object) -> bool:
    """A JSON integer: an int, never a bool (True is an int in Python), a float or a string."""
    return isinstance(value, int) and not isinstance(value, bool)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: not "5", not 5.0, not true."""

    def to_internal_value(self, data: object) -> int:
        if not is_integer(data):
            raise serializers.ValidationError(f"must be an integer, not {json_type(data)}")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number (integer or not): not "0.5", not true."""

    def to_internal_value(self, data: object) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise serializers.ValidationError(f"must be a number, not {json_type(data)}")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false: not 1, not "yes"."""

    def to_internal_value(self, data: object) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError(f"must be true or false, not {json_type(data)}")
        return data


class JSONStringOnly:
    """A field mixin: the value must be a JSON string before the field's own parsing (DRF would take 5 as "5")."""

    string_error = "must be a string"

    def to_internal_value(self, data: object) -> Any:
        if not isinstance(data, str):
            raise serializers.ValidationError(f"{self.string_error}, not {json_type(data)}")
        return super().to_internal_value(data)


class StrictCharField(JSONStringOnly, serializers.CharField):
    """A JSON string: not a number."""


class StrictChoiceField(JSONStringOnly, serializers.ChoiceField):
    """One of the string choices, given as a string (DRF would match 1 to "1")."""


class StrictUUIDField(JSONStringOnly, serializers.UUIDField):
    """A UUID in a JSON string (DRF would also take an integer)."""

    string_error = "must be a UUID string"
