"""A huge input costs what the model reads of it, not its size: a 20 MB single line classified with
truncation once took minutes and gigabytes (the whole line was tokenized to keep 128 tokens)."""

import subprocess
import sys
from pathlib import Path

from tests.paths import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
MEASURE = """
import resource, sys, warnings
import tasks
runner = tasks.load("text-classification", model=sys.argv[1])
runner("word word", truncation=True)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    answer = runner("word " * 4_000_000, truncation=True)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown // 1024, answer[0]["label"], str(caught[0].message))
"""


def test_a_20_mb_line_with_truncation_needs_little_memory():
    done = subprocess.run([sys.executable, "-c", MEASURE, str(FIXTURES / "distilbert-sst2")], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    grown_mb, label, warning = done.stdout.split(" ", 2)
    assert int(grown_mb) < 150  # the text itself is 20 MB; tokenizing it whole took about 200 bytes per character
    assert label in ("POSITIVE", "NEGATIVE")
    assert "is at least" in warning and "truncated to its first 128 tokens" in warning
