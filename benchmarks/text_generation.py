"""Benchmark text generation: nopipe (TextGenerator, or decoding.generate while it does not exist)
against `model.generate()`, CTranslate2 (float32 and int8) and the text-generation pipeline on GPT-2
124M and SmolLM2-135M; batch 1 and 8, greedy and sampled, a fixed number of new tokens.

    python -m benchmarks.text_generation [--models fixtures] [--quick] [--only gpt2]
"""

from benchmarks.generation import TextGenerationTask
from benchmarks.suite import main

BENCHMARK = TextGenerationTask(models=["gpt2", "smollm2-135m"])

if __name__ == "__main__":
    main([BENCHMARK], description=__doc__)
