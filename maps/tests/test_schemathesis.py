"""Schemathesis fuzzes every operation of the served OpenAPI schema against a live site, with all its checks.

Every check Schemathesis has runs on every answer (`--checks all`): no 5xx, and also each status
code, content type, header and body documented (maps/schema.py), schema-valid requests accepted,
schema-violating ones refused, authentication not ignored, unsupported methods answered 405.

The schema is loaded over HTTP from `/api/schema/`, as a client would. The experiment, image
and export in the path are pinned to seeded ones, so requests reach the views' real work
(serializers, map files, export creation) rather than stopping at 404; everything else — bodies,
query strings, file names — is generated, valid and invalid.

One pytest test per operation, driving `APIOperation.as_strategy()` with Hypothesis: Schemathesis'
own pytest loader (`schemathesis.pytest.from_fixture`) needs `Function._nodeid`, which pytest 9 removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from maps.tests.schemathesis_hooks import window_in_order
from maps.tests.world import make_world
from maps.urls import api_urlpatterns

# Per operation: the eleven stay around a minute on two shared cores; raise it for a deeper run
# (docs/running-a-study.md, "The researcher API").
MAX_EXAMPLES = int(os.environ.get("CLICKME_SCHEMATHESIS_EXAMPLES", "20"))
TOKEN = "schemathesis0000000000000000000000000000"  # 40 characters, DRF's token length
OPERATIONS = [
    (method.upper(), path)
    for path, methods in SchemaGenerator(patterns=api_urlpatterns).get_schema(public=True)["paths"].items()
    for method in methods
]

load_all_checks()
ALL_CHECKS = CHECKS.get_all()  # `--checks all`: every check Schemathesis has, not only "no 5xx"

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
def test_every_operation_passes_every_schemathesis_check(served: tuple, method: str, path: str) -> None:
    schema, seeded = served
    operation = schema[path][method]
    pinned = {name: seeded[name] for name in (parameter.name for parameter in operation.path_parameters)}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=pinned).map(window_in_order),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=pinned),
        # Generated slugs and ids too: somebody else's, or none.
        operation.as_strategy(GenerationMode.POSITIVE).map(window_in_order),
    )
    statuses: Counter[int] = Counter()

    @hypothesis.given(case=cases)
    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))  # fmt: skip
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call_and_validate(checks=ALL_CHECKS)
        statuses[response.status_code] += 1

    fuzz()
    print(f"{method} {path}: {dict(sorted(statuses.items()))}")  # shown with -s: which answers were exercised
    assert statuses and all(code < 500 for code in statuses)


CLI_EXAMPLES = max(1, MAX_EXAMPLES // 4)  # the CLI adds a coverage phase and a stateful one of its own


def test_the_schemathesis_command_with_all_checks_passes(served: tuple, tmp_path, live_server: object) -> None:
    """`st run --checks all` as CI would run it by hand: every phase (examples, coverage, fuzzing, stateful)."""
    _, seeded = served
    config = tmp_path / "schemathesis.toml"
    pinned = "\n".join(f'"path.{name}" = {json.dumps(value)}' for name, value in seeded.items())
    config.write_text(f'headers = {{ Authorization = "Token {TOKEN}" }}\n\n[parameters]\n{pinned}\n')
    command = [str(Path(sys.executable).with_name("st")), "--config-file", str(config), "run",
               f"{live_server.url}/api/schema/", "--checks", "all", "--max-examples", str(CLI_EXAMPLES),
               "--workers", "1", "--no-shrink", "--request-timeout", "10", "--seed", "0"]  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "maps.tests.schemathesis_hooks", "PYTHONPATH": str(root)}
    # Run from tmp_path: the command writes its cache (.schemathesis/) where it runs.
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=env, cwd=tmp_path)
    print(result.stdout[-4000:])  # shown with -s: the phases, operations and checks it ran
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
