"""What every test shares."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The fixture models are tiny: a second thread gains nothing, and on a busy machine two threads
    that spin-wait for each other make a forward pass many times slower. Benchmarks set their own."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
