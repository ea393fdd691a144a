"""Fixtures of the maps app's tests."""

import pytest

from games.tests.factories import ExperimentFactory, ImageFactory
from maps.tests.browser import page  # noqa: F401 (a fixture: the dashboard's browser tests)


@pytest.fixture
def experiment():
    """An experiment of its own (test files with other needs define theirs)."""
    return ExperimentFactory()


@pytest.fixture
def image(experiment):
    """An image of the experiment's image set."""
    return ImageFactory(image_set=experiment.image_set)
