"""Write tests/goldens/token_healing.json: what transformers 4.57.6 makes of `token_healing=True` on our
fixture models (their tokenizers are byte-level BPE vocabularies of 700 tokens trained on the test corpus).

Run with the 4.57.6 virtualenv (see make_processor_goldens.py; token healing needs no pygtrie there):

    HF_HUB_OFFLINE=1 /work/venv-4576/bin/python tests/goldens/make_token_healing_goldens.py

Per case: the prompts tokenized as one batch (`input_ids`, `attention_mask`, on the case's padding side),
`healed`: `model.heal_tokens(input_ids, tokenizer)`, the prompts generate() continues from, and
`sequences`: `model.generate(input_ids, attention_mask, token_healing=True, tokenizer=...,
max_new_tokens=8, **options)` (options: do_sample=False and the case's own), or `error`: the exception's type
when generate() fails.
The test is tests/decoding/test_token_healing.py.
"""

import json
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, logging

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "models"
OUTPUT = HERE / "token_healing.json"
MAX_NEW_TOKENS = 8


def case(id, fixture, prompts, padding_side="left", why="", generation_config=None, **options):
    """generation_config: values set on model.generation_config (the healing step reads it too);
    options: generate()'s own, besides max_new_tokens and do_sample=False."""
    return dict(id=id, fixture=fixture, prompts=prompts, padding_side=padding_side, why=why,
                generation_config=generation_config or {}, options=dict(do_sample=False, **options))


CASES = [
    case("gpt2-healed", "gpt2", ["the old light"], why="the last token 't' becomes 'te'"),
    case("gpt2-healed-under-suppress-tokens", "gpt2", ["the old light"], generation_config=dict(suppress_tokens=[327]),
         why="the model's suppress_tokens bans 'te' in the healing step too"),
    case("gpt2-healed-beams", "gpt2", ["the old light", "She opened the do"], num_beams=3, num_return_sequences=2,
         why="4.57.6 heals after repeating each prompt for its beams"),
    case("llama-healed", "llama", ["She opened the do"], why="the last token 'o' becomes 'og'"),
    case("gpt2-url", "gpt2", ["The url is http"], why="candidates for 'p', the +1 keeps 'p'"),
    case("llama-url", "llama", ["The url is http"]),
    case("gpt2-list", "gpt2", ["x = [1, 2,"]),
    case("llama-angle-bracket", "llama", ["if a <"], why="the candidates for '<' are special tokens ('<|im_end|>', ...)"),
    case("gpt2-space-tail", "gpt2", ["The url is"], why="a tail with a space is searched as '<is': never healed"),
    case("gpt2-trailing-space", "gpt2", ["I went to the "], why="stripped: the healed prompt is one token shorter"),
    case("gpt2-one-token", "gpt2", ["t"], why="a one-token prompt has nothing to continue from: unchanged"),
    case("gpt2-batch", "gpt2", ["the old light", "She opened the do"],
         why="left padding counts in the healing step (pad is EOS): 't' becomes another token than alone"),
    case("llama-batch-one-token-row", "llama", ["She opened the do", "t"],
         why="the one-token row is healed from BOS after its padding"),
    case("gpt2-batch-one-token-row", "gpt2", ["She opened the do", "t"], why="BOS is the pad token here"),
    case("llama-batch-empty-row", "llama", ["  ", "the old light"], why="the all-pad row is left as it is"),
    case("gpt2-batch-right-padding", "gpt2", ["the old light", "She opened the do"], padding_side="right",
         why="re-tokenized on the right: the short row's tail is the pad token"),
    case("gpt2-blank-prompt", "gpt2", ["  "], why="nothing left once stripped: heal gives (1, 0), generate fails"),
]


def load(fixture: str, padding_side: str, generation_config: dict):
    path = FIXTURES / fixture
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    for name, value in generation_config.items():
        setattr(model.generation_config, name, value)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def make_case(spec: dict) -> dict:
    model, tokenizer = load(spec["fixture"], spec["padding_side"], spec["generation_config"])
    encoded = tokenizer(spec["prompts"], return_tensors="pt", padding=True)
    answer = dict(input_ids=encoded["input_ids"].tolist(), attention_mask=encoded["attention_mask"].tolist())
    with torch.no_grad():
        answer["healed"] = model.heal_tokens(encoded["input_ids"], tokenizer).tolist()
        try:
            sequences = model.generate(**encoded, token_healing=True, tokenizer=tokenizer,
                                       max_new_tokens=MAX_NEW_TOKENS, **spec["options"])
            answer["sequences"] = sequences.tolist()
        except Exception as error:  # noqa: BLE001 - the failure is the answer
            answer["error"] = type(error).__name__
    return {**spec, **answer}


def main() -> None:
    logging.set_verbosity_error()
    cases = [make_case(spec) for spec in CASES]
    unhealed = [c["id"] for c in cases if c["healed"] == c["input_ids"]]
    print(f"prompts token healing left as they were: {unhealed}")
    # One case per line: small diffs when a case changes, and still one JSON document.
    head = json.dumps(dict(transformers=transformers.__version__, torch=torch.__version__,
                           max_new_tokens=MAX_NEW_TOKENS))[:-1]
    lines = ",\n".join(json.dumps(c) for c in cases)
    OUTPUT.write_text(f'{head}, "cases": [\n{lines}\n]}}\n', encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUTPUT}")


if __name__ == "__main__":
    main()
