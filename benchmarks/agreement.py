"""Top-1 agreement of int8 and bfloat16 with float32 on trained weights: the encoder test fixtures.

    python -m benchmarks.agreement [--texts 500] [--output benchmarks/results/agreement.txt]

The speed benchmarks run real-size models with random weights, whose label scores are near-uniform,
so a tiny change flips the argmax and their agreement says little. The classification and NER test
fixtures are trained (tests/fixtures/build_fixtures.py: a few hundred steps on labelled corpus text),
so their answers have margins like a trained model's. Each fixture is loaded by its nopipe runner in
each precision (the runner's own placement: int8 packs, bfloat16 casts), and ONNX Runtime runs the
int8 file its quantization tool makes (benchmarks/onnx_peer.py) as the peer users would pick; all read
the same texts:
the corpus lines and runs of corpus words of 8 to 64 tokens. Compared: the top label of each text
(classifiers), the top label of each token that is not a special token (NER). The question-answering
fixtures are left out: their span heads are untrained.
"""

import argparse
import math
from pathlib import Path

import torch

from benchmarks.models import FIXTURES
from benchmarks.workloads import CORPUS, mixed_texts

CLASSIFIERS = ("distilbert-sst2", "bert-stars", "roberta-emotion", "bert-multilabel")
TAGGERS = ("bert-ner", "roberta-ner")
SYSTEMS = ("int8", "bfloat16", "ONNX Runtime int8")


def agreement_texts(tokenizer, count: int) -> list[str]:
    """The corpus lines, then runs of corpus words of 8 to 64 tokens, `count` texts in all."""
    lines = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()][:count]
    return lines + mixed_texts(tokenizer, count - len(lines), 8, 64, seed=3)


def top_labels(runner, texts: list[str], tokens: bool, session=None) -> torch.Tensor:
    """The argmax label of each text, or of each non-special token when `tokens`, in one flat tensor;
    the runner's model computes the logits, or the ONNX Runtime `session` when one is given."""
    tokenizer, found = runner.tokenizer, []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            encoded = tokenizer(texts[start:start + 32], padding=True, truncation=True, return_tensors="pt",
                                return_special_tokens_mask=True)
            keep = (encoded.pop("special_tokens_mask") == 0) & encoded["attention_mask"].bool()
            logits = session_logits(session, encoded) if session is not None else runner.model(**encoded).logits
            found.append(logits.float().argmax(-1)[keep] if tokens else logits.float().argmax(-1))
    return torch.cat(found)


def session_logits(session, encoded) -> torch.Tensor:
    """The first output (the logits) of an ONNX Runtime session on a tokenized batch."""
    wanted = [entry.name for entry in session.get_inputs()]
    return torch.from_numpy(session.run(None, {name: encoded[name].numpy() for name in wanted})[0])


def runner_class(name: str):
    from tasks.text_classification import TextClassifier
    from tasks.token_classification import TokenClassifier

    return TokenClassifier if name in TAGGERS else TextClassifier


def measure(name: str, count: int) -> dict:
    """{system: (agreeing, compared)} for one fixture against its float32 answers."""
    from benchmarks.onnx_peer import onnx_files, ort_session

    cls, tokens, folder = runner_class(name), name in TAGGERS, FIXTURES / name
    reference_runner = cls.from_pretrained(str(folder), device="cpu", dtype="float32")
    texts = agreement_texts(reference_runner.tokenizer, count)
    reference = top_labels(reference_runner, texts, tokens)
    answers = {dtype: top_labels(cls.from_pretrained(str(folder), device="cpu", dtype=dtype), texts, tokens)
               for dtype in ("int8", "bfloat16")}
    head = "AutoModelForTokenClassification" if tokens else "AutoModelForSequenceClassification"
    session = ort_session(onnx_files(folder, head)["int8"], torch.get_num_threads())
    answers["ONNX Runtime int8"] = top_labels(reference_runner, texts, tokens, session)
    return {system: (int((labels == reference).sum()), reference.numel()) for system, labels in answers.items()}


def report(rows: dict, count: int) -> str:
    lines = [f"Top-1 agreement with float32 on the trained fixtures, {count} texts each "
             "(python -m benchmarks.agreement)", "",
             "| fixture | compared | " + " | ".join(f"{system} agrees" for system in SYSTEMS) + " |",
             "|---|---|" + "---|" * len(SYSTEMS)]
    for name, results in rows.items():
        unit = "tokens" if name in TAGGERS else "texts"
        compared = next(iter(results.values()))[1]
        cells = [f"{share_down(same, total)}% ({total - same} differ)" for same, total in results.values()]
        lines.append(f"| {name} | {compared} {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def share_down(same: int, total: int) -> str:
    """A percentage with one decimal, rounded down: 7 differences in 17,142 read 99.9%, not 100.0%."""
    return f"{math.floor(1000 * same / total) / 10:.1f}"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=500, help="texts per fixture (default 500)")
    parser.add_argument("--only", nargs="*", choices=CLASSIFIERS + TAGGERS, help="fixtures to measure (default all)")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.texts < 1:
        parser.error("--texts must be at least 1")
    rows = {name: measure(name, args.texts) for name in (args.only or CLASSIFIERS + TAGGERS)}
    table = report(rows, args.texts)
    print(table, end="")
    if args.output:
        args.output.write_text(table, encoding="utf-8")
    return table


if __name__ == "__main__":
    main()
