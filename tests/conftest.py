"""Fixtures shared by the tests (the clip builders live in helpers.py)."""
import pytest

from helpers import make_record


@pytest.fixture
def record():
    return make_record()
