"""Write tests/goldens/question_answering.json: what the 4.57.6 `question-answering` pipeline answers.

transformers 5.3 removed the question-answering pipeline, so the reference runs in its own
virtualenv with transformers 4.57.6:

    HF_HUB_OFFLINE=1 /work/venv457/bin/python tests/goldens/make_qa_goldens.py

Each case names the fixture model, the inputs and the call options, and stores the pipeline's
answer; tests/tasks/test_question_answering.py replays every case through `QuestionAnswerer`.
`inputs` holds the keyword arguments (`question=`, `context=`), or, with `"positional": true`,
the one positional argument (a {"question", "context"} dict or a list of them).

Scores can differ in the last digits from one CPU to another (they run other float kernels): on
another machine a re-run can move them by ~1e-7, well within the tests' 1e-5, while answers, starts
and ends stay the same; such a re-run is no reason to rewrite the scores of existing cases.
"""

import warnings
from pathlib import Path

from golden_file import make_goldens
from transformers import pipeline

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "models"
CORPUS = HERE.parent / "fixtures" / "corpus.txt"
OUTPUT = HERE / "question_answering.json"

LINES = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
WOLFGANG = "My name is Wolfgang and I live in Berlin."
CURIE = " ".join(LINES[22:24])
# More than the fixtures' 128 tokens with any question: several windows at the default doc_stride.
LONG = " ".join(LINES[:12])
LONGER = " ".join(LINES[15:40])
# Long words split into many pieces: with align_to_words many spans become the same answer, so the
# pipeline can return fewer than top_k answers (huggingface/transformers#38984).
LONG_WORDS = "Antidisestablishmentarianism and floccinaucinihilipilification."


def case(id, fixture, inputs, options=None, positional=False):
    return dict(id=id, fixture=fixture, inputs=inputs, options=options or {}, positional=positional)


def cases_for(fixture: str) -> list[dict]:
    """The same set of cases for each fixture (WordPiece and byte-level BPE tokenizers)."""
    name = fixture.split("-")[0]
    ask = lambda question, context: {"question": question, "context": context}  # noqa: E731
    return [
        case(f"{name}-single", fixture, ask("Where do I live?", WOLFGANG)),
        case(f"{name}-top-k-3", fixture, ask("Who was Marie Curie?", CURIE), dict(top_k=3)),
        case(f"{name}-top-k-10", fixture, ask("What did she win?", CURIE), dict(top_k=10)),
        case(f"{name}-impossible", fixture, ask("What is the price of bread?", WOLFGANG),
             dict(handle_impossible_answer=True)),
        case(f"{name}-impossible-top-k", fixture, ask("What is the price of bread?", CURIE),
             dict(handle_impossible_answer=True, top_k=4)),
        case(f"{name}-max-answer-len-1", fixture, ask("Who met Macron?", LINES[3]), dict(max_answer_len=1, top_k=3)),
        case(f"{name}-max-answer-len-4", fixture, ask("Where is the hotel?", LINES[2]), dict(max_answer_len=4)),
        case(f"{name}-not-aligned", fixture, ask("Who was Marie Curie?", CURIE), dict(align_to_words=False, top_k=3)),
        case(f"{name}-long-default-stride", fixture, ask("Where does Sarah Johnson work?", LONG), dict(top_k=2)),
        case(f"{name}-long-stride-32", fixture, ask("Which city has the Louvre?", LONGER),
             dict(doc_stride=32, top_k=3)),
        case(f"{name}-long-small-windows", fixture, ask("Who wrote Hamlet?", LONGER),
             dict(max_seq_len=48, doc_stride=16, top_k=5)),
        case(f"{name}-long-impossible", fixture, ask("Who wrote Hamlet?", LONGER),
             dict(max_seq_len=64, doc_stride=24, handle_impossible_answer=True, top_k=3)),
        case(f"{name}-long-top-k-20", fixture, ask("What is the capital of France?", LONGER),
             dict(max_seq_len=64, doc_stride=20, top_k=20)),
        case(f"{name}-long-not-aligned", fixture, ask("Who wrote Hamlet?", LONGER),
             dict(max_seq_len=64, doc_stride=24, align_to_words=False, top_k=2)),
        case(f"{name}-fewer-than-top-k-4", fixture, ask("What is it?", LONG_WORDS), dict(top_k=4)),
        case(f"{name}-fewer-than-top-k-12", fixture, ask("What is it?", LONG_WORDS), dict(top_k=12)),
        # Three valid answers only; the pipeline pads its list with zero-score spans outside the context.
        case(f"{name}-top-k-beyond-spans", fixture, ask("What is it?", "Paris."), dict(top_k=6)),
        case(f"{name}-batch-long", fixture,
             {"question": ["Who wrote Hamlet?", "Where does Sarah Johnson work?"], "context": [LONGER, LONG]},
             dict(max_seq_len=64, doc_stride=24, top_k=3)),
        case(f"{name}-max-question-len-ignored", fixture,
             ask("In which city does the person called Wolfgang live these days?", WOLFGANG),
             dict(max_question_len=4)),
        case(f"{name}-batch-lists", fixture,
             {"question": ["Where do I live?", "Who was Marie Curie?", "Where does Sarah Johnson work?"],
              "context": [WOLFGANG, CURIE, LONG]}),
        case(f"{name}-batch-one-context", fixture,
             {"question": ["What is my name?", "Where do I live?"], "context": WOLFGANG}, dict(top_k=2)),
        case(f"{name}-batch-dicts", fixture,
             [ask("Where do I live?", WOLFGANG), ask("What did she win?", CURIE)], positional=True),
        case(f"{name}-one-dict", fixture, ask("What did she win?", CURIE), dict(top_k=2), positional=True),
        case(f"{name}-list-of-one", fixture, {"question": ["Where do I live?"], "context": [WOLFGANG]}),
    ]


# With handle_impossible_answer, the null answer {"answer": "", "start": 0, "end": 0} wins, or ranks
# among the top_k: its score p_start[CLS] * p_end[CLS] beats the best span's (or some spans'). Found by
# searching corpus questions and short contexts on each fixture; the *-impossible cases above all
# answer a span, so they never compare the null answer's score.
NULL_ANSWERS = [
    case("distilbert-null-answer", "distilbert-squad",
         {"question": "What is the capital of France?", "context": "Paris."}, dict(handle_impossible_answer=True)),
    case("distilbert-null-answer-top-k-3", "distilbert-squad",
         {"question": "Who was Marie Curie?", "context": "Yes."}, dict(handle_impossible_answer=True, top_k=3)),
    case("distilbert-null-answer-in-batch", "distilbert-squad",
         {"question": ["What is the capital of France?", "Where do I live?"], "context": ["Paris.", WOLFGANG]},
         dict(handle_impossible_answer=True)),
    case("roberta-null-answer", "roberta-squad",
         {"question": "Where is the hotel?", "context": "The capital"}, dict(handle_impossible_answer=True)),
    case("roberta-null-answer-second-of-3", "roberta-squad",
         {"question": "Why?", "context": "Paris."}, dict(handle_impossible_answer=True, top_k=3)),
]

CASES = cases_for("distilbert-squad") + cases_for("roberta-squad") + NULL_ANSWERS


def run(spec: dict, pipelines: dict):
    if spec["fixture"] not in pipelines:
        pipelines[spec["fixture"]] = pipeline("question-answering", model=str(FIXTURES / spec["fixture"]),
                                              device="cpu")
    pipe = pipelines[spec["fixture"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # positional inputs are deprecated in 4.57.6
        if spec["positional"]:
            return pipe(spec["inputs"], **spec["options"])
        return pipe(**spec["inputs"], **spec["options"])


if __name__ == "__main__":
    make_goldens(CASES, run, OUTPUT)
