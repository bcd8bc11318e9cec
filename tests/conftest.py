"""Fixtures shared by the tests (the clip builders live in helpers.py)."""
import pytest
import torch

from helpers import make_record


@pytest.fixture
def record():
    return make_record()


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The tests use tiny tensors: they gain nothing from threads, and on a busy shared CPU two threads can
    stall each other (measured: 51 s against 10 s for the VAE overfit)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
