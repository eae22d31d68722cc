"""pytest setup for the decoding tests: `tiny_models` importable, and the `slow` marker."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: loads real weights (tens of seconds); still part of the default run")
