"""Fixtures of the maps app's tests."""

from maps.tests.browser import page  # noqa: F401 (a fixture: the dashboard's browser tests)
