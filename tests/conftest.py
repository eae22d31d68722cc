"""What every test shares."""

import os

import pytest
import torch
from hypothesis import settings

# The same examples on every run, so CI passes or fails on the code, not on the draw; set
# HYPOTHESIS_PROFILE=explore to draw new examples while hunting for bugs.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The fixture models are tiny: a second thread gains nothing, and on a busy machine two threads
    that spin-wait for each other make a forward pass many times slower. Benchmarks set their own."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def transformers_logging_at_start():
    """transformers' verbosity and progress-bar switch as the session found them."""
    from transformers.utils import logging

    return logging.get_verbosity(), logging.is_progress_bar_enabled()


@pytest.fixture(autouse=True)
def transformers_logging_restored(transformers_logging_at_start):
    """The command and the benchmarks quiet transformers for the rest of their process
    (core.hub.quiet_process); tests run them in this process (some in module fixtures, set up before
    any per-test fixture), so after each test the logging goes back to what the session started with."""
    from transformers.utils import logging

    yield
    verbosity, bars = transformers_logging_at_start
    logging.set_verbosity(verbosity)
    if bars:
        logging.enable_progress_bar()
    else:
        logging.disable_progress_bar()
