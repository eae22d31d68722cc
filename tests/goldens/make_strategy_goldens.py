"""Write tests/goldens/strategies.json: what transformers 4.55.4's generate() answers with the decoding
strategies 4.56 moved to hub repositories (contrastive search, DoLa, diverse and constrained beam search).

Run with the 4.55.4 virtualenv (the last release that ran all four in its own generate()):

    python3 -m venv /work/venv-4554 && /work/venv-4554/bin/pip install torch==2.13.0 transformers==4.55.4 sentencepiece
    HF_HUB_OFFLINE=1 /work/venv-4554/bin/python tests/goldens/make_strategy_goldens.py [case ids...]

Each case names a fixture model, its prompts and the generate() options; the file stores the token ids
generate() returns and, for the beam strategies, `sequences_scores`. tests/decoding/test_strategies_4554.py
replays every case through nopipe's strategy functions.
"""

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "models"
OUTPUT = HERE / "strategies.json"

ENCODER_DECODER = {"bart-cnn", "t5", "marian-en-fr"}
ARTICLE = ("The old lighthouse on the northern cape was switched off on Monday after 140 years. Its keeper "
           "said ships now find their way by satellite.")


def case(id, strategy, fixture, prompts, options, seed=None):
    """One golden case; a seed (transformers.set_seed right before generate()) only where the case samples."""
    spec = dict(id=id, strategy=strategy, fixture=fixture, prompts=prompts, options=options)
    return {**spec, "seed": seed} if seed is not None else spec


CASES = [
    case("contrastive-gpt2", "contrastive", "gpt2", ["The old lighthouse keeper"],
         dict(penalty_alpha=0.6, top_k=4, max_new_tokens=20)),
    case("contrastive-gpt2-batch", "contrastive", "gpt2", ["The river", "She opened the door and went outside"],
         dict(penalty_alpha=0.4, top_k=3, max_new_tokens=15, repetition_penalty=1.1)),
    case("contrastive-llama", "contrastive", "llama", ["Once upon a time"],
         dict(penalty_alpha=0.6, top_k=5, max_new_tokens=20)),
    case("contrastive-bart", "contrastive", "bart-cnn", [ARTICLE],
         dict(penalty_alpha=0.5, top_k=4, max_new_tokens=20, min_length=0, num_beams=1)),
    case("contrastive-marian", "contrastive", "marian-en-fr", ["How old are you?", "The house is wonderful."],
         dict(penalty_alpha=0.6, top_k=4, max_new_tokens=12, num_beams=1)),
    case("contrastive-t5", "contrastive", "t5", ["translate English to German: The house is wonderful.",
                                              "summarize: " + ARTICLE],
         dict(penalty_alpha=0.8, top_k=5, max_new_tokens=15)),
    case("diverse-gpt2", "diverse_beam", "gpt2", ["The old lighthouse keeper"],
         dict(num_beams=4, num_beam_groups=2, diversity_penalty=2.0, num_return_sequences=4, max_new_tokens=15)),
    case("diverse-gpt2-batch", "diverse_beam", "gpt2", ["The river", "She opened the door and went outside"],
         dict(num_beams=6, num_beam_groups=3, diversity_penalty=0.5, num_return_sequences=3, max_new_tokens=12,
              repetition_penalty=1.2)),
    case("diverse-llama", "diverse_beam", "llama", ["Once upon a time"],
         dict(num_beams=4, num_beam_groups=4, diversity_penalty=2.0, length_penalty=0.8, max_new_tokens=15,
              num_return_sequences=4)),
    case("diverse-bart", "diverse_beam", "bart-cnn", [ARTICLE],
         dict(num_beams=4, num_beam_groups=4, diversity_penalty=2.0, max_length=30, min_length=10,
              num_return_sequences=4)),
    case("diverse-t5", "diverse_beam", "t5", ["translate English to German: The house is wonderful.",
                                             "summarize: " + ARTICLE],
         dict(num_beams=4, num_beam_groups=2, diversity_penalty=0.8, max_new_tokens=15, num_return_sequences=2)),
    case("diverse-marian-early", "diverse_beam", "marian-en-fr", ["How old are you?", "The house is wonderful."],
         dict(num_beams=6, num_beam_groups=2, diversity_penalty=1.5, max_new_tokens=12, early_stopping=False)),
    case("dola-gpt2-low", "dola", "gpt2", ["The old lighthouse keeper"],
         dict(dola_layers="low", repetition_penalty=1.2, max_new_tokens=20)),
    case("dola-gpt2-list-batch", "dola", "gpt2", ["The river", "She opened the door and went outside"],
         dict(dola_layers=[0, 1], repetition_penalty=1.2, max_new_tokens=15)),
    case("dola-llama-high", "dola", "llama", ["Once upon a time"],
         dict(dola_layers="high", repetition_penalty=1.2, max_new_tokens=20)),
    case("dola-llama-list", "dola", "llama", ["The old lighthouse keeper", "A small village"],
         dict(dola_layers=[0, 1], repetition_penalty=1.3, max_new_tokens=15)),
    case("dola-llama-sample", "dola", "llama", ["Once upon a time", "The river"],
         dict(dola_layers="low", repetition_penalty=1.2, do_sample=True, top_k=20, temperature=0.9, max_new_tokens=15),
         seed=4),
    case("constrained-gpt2-phrase", "constrained", "gpt2", ["The old lighthouse keeper"],
         dict(num_beams=4, force_words=[" the sea"], max_new_tokens=15, num_return_sequences=2)),
    case("constrained-gpt2-disjunctive-batch", "constrained", "gpt2", ["The river", "She opened the door and went outside"],
         dict(num_beams=3, force_words_ids=[[[300], [301, 302]], [45]], max_new_tokens=12)),
    case("constrained-llama", "constrained", "llama", ["Once upon a time"],
         dict(num_beams=4, force_words_ids=[[100, 101], [200]], length_penalty=0.8, max_new_tokens=15,
              num_return_sequences=2)),
    case("constrained-bart", "constrained", "bart-cnn", [ARTICLE],
         dict(num_beams=4, force_words=[" lighthouse keeper"], max_length=30, min_length=10)),
    case("constrained-t5", "constrained", "t5", ["translate English to German: The house is wonderful.",
                                                "summarize: " + ARTICLE],
         dict(num_beams=3, force_words_ids=[[[40], [41, 42]]], max_new_tokens=12, num_return_sequences=2)),
    case("constrained-marian-early", "constrained", "marian-en-fr", ["How old are you?"],
         dict(num_beams=4, force_words_ids=[[60, 61], [[70], [71, 72]]], max_new_tokens=12, early_stopping=True)),
]


def load(fixture: str):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    folder = FIXTURES / fixture
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model_class = AutoModelForSeq2SeqLM if fixture in ENCODER_DECODER else AutoModelForCausalLM
    model = model_class.from_pretrained(folder).eval()
    if fixture not in ENCODER_DECODER:
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def encode(tokenizer, prompts: list[str]) -> dict:
    """The prompts as a left-padded (decoder-only) batch; the tests tokenize the same way."""
    return tokenizer(prompts, return_tensors="pt", padding=True)


def run(spec: dict, models: dict) -> dict:
    if spec["fixture"] not in models:
        models[spec["fixture"]] = load(spec["fixture"])
    model, tokenizer = models[spec["fixture"]]
    inputs = encode(tokenizer, spec["prompts"])
    options = dict(spec["options"])
    if spec["strategy"] == "constrained" and "force_words" in options:
        options["force_words_ids"] = [tokenizer(words, add_special_tokens=False).input_ids
                                      for words in options.pop("force_words")]
    if spec.get("seed") is not None:
        from transformers import set_seed

        set_seed(spec["seed"])
    with torch.no_grad():
        out = model.generate(**inputs, **options, return_dict_in_generate=True, output_scores=True)
    answer = dict(input_ids=inputs["input_ids"].tolist(), attention_mask=inputs["attention_mask"].tolist(),
                  sequences=out.sequences.tolist())
    if getattr(out, "sequences_scores", None) is not None:
        answer["sequences_scores"] = out.sequences_scores.tolist()
    if "force_words_ids" in options:
        answer["force_words_ids"] = options["force_words_ids"]
    return answer


def main() -> None:
    import transformers

    selected = sys.argv[1:]
    previous = json.loads(OUTPUT.read_text(encoding="utf-8"))["cases"] if OUTPUT.exists() and selected else []
    kept = {spec["id"]: spec for spec in previous}
    models = {}
    for spec in CASES:
        if selected and spec["id"] not in selected:
            continue
        kept[spec["id"]] = {**spec, "expected": run(spec, models)}
        print(spec["id"], kept[spec["id"]]["expected"]["sequences"])
    order = [spec["id"] for spec in CASES]
    cases = sorted(kept.values(), key=lambda spec: order.index(spec["id"]) if spec["id"] in order else len(order))
    document = dict(transformers=transformers.__version__, torch=torch.__version__, cases=cases)
    OUTPUT.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
