"""Benchmark text classification: nopipe's TextClassifier against the text-classification pipeline
on distilbert-sst2, bert-base-multilingual (stars) and distilroberta (emotions).

    python -m benchmarks.text_classification [--models fixtures] [--quick] [--only distilbert-sst2]
"""

from benchmarks.encoders import EncoderTask
from benchmarks.suite import main


def top_label(output) -> str:
    """An answer is {"label", "score"}, or a list of them best first (top_k)."""
    return (output[0] if isinstance(output, list) else output)["label"]


BENCHMARK = EncoderTask(task="text-classification", models=["distilbert-sst2", "bert-stars", "roberta-emotion"],
                        module="text_classification", class_name="TextClassifier", answer=top_label)

if __name__ == "__main__":
    main([BENCHMARK], description=__doc__)
