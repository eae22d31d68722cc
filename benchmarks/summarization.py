"""Benchmark summarization: nopipe's Summarizer against `model.generate()` and CTranslate2 on
distilbart-cnn-12-6; batch 16, beam 4, a fixed number of new tokens, inputs of 60 to 120 tokens.

The inputs are shorter than news articles: with beams, `generate()` copies every beam's
cross-attention cache at each step (on 2 busy cores, about 1 s per step per 100 source tokens at
16 texts x 4 beams), which would take longer inputs past the suite's time budget.

    python -m benchmarks.summarization [--models fixtures] [--quick] [--profile]
"""

from benchmarks.generation import Seq2SeqTask
from benchmarks.suite import main

BENCHMARK = Seq2SeqTask(task="summarization", models=["distilbart-cnn"], module="summarization",
                        class_name="Summarizer", lengths=(60, 120))

if __name__ == "__main__":
    main([BENCHMARK], description=__doc__)
