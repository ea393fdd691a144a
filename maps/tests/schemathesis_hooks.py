"""Schemathesis hooks (`SCHEMATHESIS_HOOKS=maps.tests.schemathesis_hooks st run ...`): the one body rule of the
researcher API that JSON Schema cannot say, applied to generated cases (Schemathesis' advice for cross-field rules).

An export window runs forwards: `filters.from` before `filters.to` (the service refuses a backwards
one with 400). Generated windows that run backwards lose their `to`.
"""

from __future__ import annotations

import os

import django
import schemathesis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clickme_site.settings")
django.setup()  # the command loads this module outside pytest; export_jobs reads the settings

from maps import export_jobs  # noqa: E402 (after django.setup)


def window_in_order(case: schemathesis.Case) -> schemathesis.Case:
    """The case, with a backwards `from`/`to` window made open-ended; any other body is left as it is."""
    filters = case.body.get("filters") if isinstance(case.body, dict) else None
    if not (isinstance(filters, dict) and isinstance(filters.get("from"), str) and isinstance(filters.get("to"), str)):
        return case
    try:
        start, end = (export_jobs._parse_moment(name, filters[name]) for name in ("from", "to"))
    except export_jobs.ExportRequestInvalid:
        return case  # not a moment at all: the request is invalid anyway and must get its 400
    if export_jobs._bound(start, end=False) >= export_jobs._bound(end, end=True):
        del filters["to"]
    return case


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    return window_in_order(case)
