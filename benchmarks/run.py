"""Run every benchmark, or some. Results go to benchmarks/results/ (JSON, markdown, summary chart).

    python -m benchmarks.run                                   # everything, real-size models (~40 min on 2 cores)
    python -m benchmarks.run --quick                           # smaller workloads (~10 min)
    python -m benchmarks.run --task text-generation --only gpt2
    python -m benchmarks.run --models fixtures --out /tmp/b    # the tiny test models (seconds)
"""

import sys

from benchmarks import (
    question_answering,
    summarization,
    text2text,
    text_classification,
    text_generation,
    token_classification,
    translation,
)
from benchmarks.suite import main as run_benchmarks

BENCHMARKS = [module.BENCHMARK for module in (text_classification, token_classification, question_answering,
                                              text_generation, summarization, translation, text2text)]


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.run` and `nopipe bench`: the exit code (the results are files)."""
    run_benchmarks(BENCHMARKS, argv, description=__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
