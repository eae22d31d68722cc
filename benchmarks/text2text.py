"""Benchmark text2text generation: nopipe's Text2TextGenerator against `model.generate()` and
CTranslate2 on flan-t5-base; batch 16, beam 4, a fixed number of new tokens.

    python -m benchmarks.text2text [--models fixtures] [--quick]
"""

from benchmarks.generation import Seq2SeqTask
from benchmarks.suite import main

BENCHMARK = Seq2SeqTask(task="text2text-generation", models=["flan-t5-base"], module="text2text",
                        class_name="Text2TextGenerator", lengths=(20, 120))

if __name__ == "__main__":
    main([BENCHMARK], description=__doc__)
