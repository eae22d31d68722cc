"""Run every benchmark, or some: nopipe against the transformers pipeline, generate(), CTranslate2 and
ONNX Runtime, each system in a worker process of its own, every figure beside the machine's limit.

    nopipe bench                                         # everything, real-size models (writes benchmarks/results/)
    nopipe bench --quick                                 # each task's first model, small workloads (12 min here, busy 2 cores)
    nopipe bench --task text-generation --only gpt2      # part of it (results in a scratch folder, printed)
    nopipe bench --task translation --check-alone nopipe:int8   # is nopipe's speed in the suite its speed alone?
    nopipe bench --models fixtures --in-process          # the tiny test models, one process (seconds; no numbers)

Only a full run writes benchmarks/results/; --quick, --task, --only and --models fixtures write to a
scratch folder unless --out names one. `python -m benchmarks.run` is the same command.
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
    """`nopipe bench` and `python -m benchmarks.run`: the exit code (the results are files)."""
    run_benchmarks(BENCHMARKS, argv, description=__doc__, prog="nopipe bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
