"""Benchmark translation (English to French): nopipe's Translator against `model.generate()` and
CTranslate2 on opus-mt-en-fr and m2m100_418M; batch 16, beam 4, a fixed number of new tokens.

    python -m benchmarks.translation [--models fixtures] [--quick] [--only opus-mt-en-fr]
"""

from benchmarks.generation import Seq2SeqTask
from benchmarks.suite import main

BENCHMARK = Seq2SeqTask(task="translation", models=["opus-mt-en-fr", "m2m100-418m"], module="translation",
                        class_name="Translator", lengths=(10, 60), languages={"m2m100-418m": ("en", "fr")})

if __name__ == "__main__":
    main([BENCHMARK], description=__doc__)
