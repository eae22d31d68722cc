"""Benchmark extractive QA: nopipe's QuestionAnswerer on distilbert-squad. transformers 5 has no
question-answering pipeline, so there is no peer: the rows give nopipe's speed (float32, int8), its
latency, and how often int8 finds the same answer span as float32.

    python -m benchmarks.question_answering [--models fixtures] [--quick]
"""

from benchmarks.encoders import EncoderTask
from benchmarks.suite import main
from benchmarks.workloads import questions_and_contexts


def answer_span(output) -> tuple:
    """The best answer's character span (a list of answers when top_k > 1: take the first)."""
    best = output[0] if isinstance(output, list) else output
    return best["start"], best["end"]


def question_pairs(tokenizer, count: int, sizes) -> list[dict]:
    return questions_and_contexts(tokenizer, count, sizes.min_tokens, sizes.max_tokens)


BENCHMARK = EncoderTask(task="question-answering", models=["distilbert-squad"], module="question_answering",
                        class_name="QuestionAnswerer", answer=answer_span, make_inputs=question_pairs,
                        int8_agreement_target=None)  # QA's agreement is reported, without a target

if __name__ == "__main__":
    main([BENCHMARK], description=__doc__)
