"""Schemathesis fuzzes every operation of the served OpenAPI schema against a live site: no 5xx anywhere.

The schema is loaded over HTTP from `/api/schema/`, as a client would. The experiment, image
and export in the path are pinned to seeded ones, so requests reach the views' real work
(serializers, map files, export creation) rather than stopping at 404; everything else — bodies,
query strings, file names — is generated, valid and invalid.

One pytest test per operation, driving `APIOperation.as_strategy()` with Hypothesis: Schemathesis'
own pytest loader (`schemathesis.pytest.from_fixture`) needs `Function._nodeid`, which pytest 9 removed.
"""

from __future__ import annotations

from collections import Counter

import hypothesis
import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from maps.tests.test_api_ownership import make_world
from maps.urls import api_urlpatterns

MAX_EXAMPLES = 20  # per operation: ten operations stay under a minute on two shared cores
TOKEN = "schemathesis0000000000000000000000000000"  # 40 characters, DRF's token length
OPERATIONS = [
    (method.upper(), path)
    for path, methods in SchemaGenerator(patterns=api_urlpatterns).get_schema(public=True)["paths"].items()
    for method in methods
]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def served(live_server: object) -> tuple[schemathesis.BaseSchema, dict[str, object]]:
    """The served schema of a site with one experiment, a ready map and a finished export, and their path values."""
    world = make_world()
    Token.objects.create(user=world.owner, key=TOKEN)
    config = SchemathesisConfig.from_dict({"headers": {"Authorization": f"Token {TOKEN}"}})
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/", config=config, timeout=10)
    seeded = {"slug": world.experiment.slug, "image_id": world.image.pk, "export_id": world.export.pk,
              "name": "clicks.csv"}  # fmt: skip
    return schema, seeded


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_operation_answers_with_a_server_error(served: tuple, method: str, path: str) -> None:
    schema, seeded = served
    operation = schema[path][method]
    pinned = {name: seeded[name] for name in (parameter.name for parameter in operation.path_parameters)}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=pinned),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=pinned),
        operation.as_strategy(GenerationMode.POSITIVE),  # generated slugs and ids too: somebody else's, or none
    )
    statuses: Counter[int] = Counter()

    @hypothesis.given(case=cases)
    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))  # fmt: skip
    def fuzz(case: schemathesis.Case) -> None:
        # Besides "no 5xx", successful answers must match their documented content type and schema.
        response = case.call_and_validate(checks=[not_a_server_error, content_type_conformance,
                                                  response_schema_conformance])  # fmt: skip
        statuses[response.status_code] += 1

    fuzz()
    print(f"{method} {path}: {dict(sorted(statuses.items()))}")  # shown with -s: which answers were exercised
    assert statuses and all(code < 500 for code in statuses)
