"""Benchmark NER: nopipe's TokenClassifier against the token-classification pipeline on
bert-large-cased (CoNLL-03), labels per token (aggregation_strategy="none", both sides' default).

    python -m benchmarks.token_classification [--models fixtures] [--quick]
"""

from benchmarks.encoders import EncoderTask
from benchmarks.suite import main


def token_labels(entities: list[dict]) -> dict:
    """Position -> label of one text's answer: per token (`index`) or per grouped span (start, end)."""
    return {entity.get("index", (entity.get("start"), entity.get("end"))):
            entity.get("entity", entity.get("entity_group")) for entity in entities}


BENCHMARK = EncoderTask(task="token-classification", models=["bert-ner"], module="token_classification",
                        class_name="TokenClassifier", answer=token_labels)

if __name__ == "__main__":
    main([BENCHMARK], description=__doc__)
