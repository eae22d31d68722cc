"""Write tests/goldens/processors.json: what transformers 4.57.6's generate() makes of each option that
transformers 5's core set lacks (typical_p, epsilon_cutoff, eta_cutoff, suppress_tokens, ...), on our
fixture models.

Run with the 4.57.6 virtualenv (python3 -m venv /work/venv-4576 && /work/venv-4576/bin/pip install
torch==2.13.0 transformers==4.57.6 sentencepiece):

    HF_HUB_OFFLINE=1 /work/venv-4576/bin/python tests/goldens/make_processor_goldens.py

Each case runs `model.generate()` twice: without the options under test (`without`), then with them.
The test (tests/decoding/test_processor_goldens.py) checks that nopipe gives the second answer and
that the two answers differ, so a case would catch the option being ignored. Where an option's
value depends on what the model writes (suppress the token it would write first), `derive` picks it
from the answer without the option. Stored per case: the sequences, and for one-row-per-prompt cases
the processed score of each chosen token and the smallest processed score of each step (cheap
evidence of the scores: -inf vs the float minimum tells remove_invalid_values apart); for beam
search the sequences_scores.
"""

import json
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer, WatermarkingConfig, set_seed

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "models"
OUTPUT = HERE / "processors.json"

STORY = "The old lighthouse keeper climbed the stairs every evening and"
SHORT = "She opened the door and"
ARTICLE = ("The old lighthouse on the northern cape was switched off on Monday after 140 years. Its keeper, who "
           "climbed its 212 steps every evening for three decades, said ships now find their way by satellite.")
PROMPT = {"gpt2": STORY, "llama": SHORT, "t5": SHORT}  # prompts on which each fixture writes varied tokens
ENCODER_DECODER_DEFAULTS = dict(num_beams=1, min_length=0, no_repeat_ngram_size=0, length_penalty=1.0)


def first_new(tokens: list[int], count: int = 1) -> list[int]:
    """The first `count` distinct tokens the model wrote without the option."""
    return list(dict.fromkeys(tokens))[:count]


def case(id, fixture, prompts, options, under_test, seed=None, derive=None, negative_prompt=None):
    """One golden case. options: what both runs share plus the options under test (`under_test` names them)."""
    return dict(id=id, fixture=fixture, prompts=prompts, options=options, under_test=under_test, seed=seed,
                derive=derive, negative_prompt=negative_prompt)


SAMPLING = dict(do_sample=True, top_k=0, max_new_tokens=16)
GREEDY = dict(do_sample=False, max_new_tokens=16)
BEAMS = dict(num_beams=3, num_return_sequences=2, max_new_tokens=10)

CASES = [
    # sampling warpers
    *(case(f"{m}-typical-p", m, [PROMPT[m]], dict(SAMPLING, typical_p=0.3), ["typical_p"], seed=3) for m in ("gpt2", "llama")),
    *(case(f"{m}-epsilon-cutoff", m, [PROMPT[m]], dict(SAMPLING, epsilon_cutoff=0.01), ["epsilon_cutoff"], seed=4)
      for m in ("gpt2", "llama")),
    *(case(f"{m}-eta-cutoff", m, [PROMPT[m]], dict(SAMPLING, eta_cutoff=0.2), ["eta_cutoff"], seed=5)
      for m in ("gpt2", "llama")),
    case("gpt2-typical-p-batch", "gpt2", [STORY, SHORT], dict(SAMPLING, typical_p=0.4, num_return_sequences=2),
         ["typical_p"], seed=6),
    case("t5-epsilon-cutoff", "t5", [ARTICLE], dict(SAMPLING, epsilon_cutoff=0.1), ["epsilon_cutoff"], seed=7),
    # bans and biases
    *(case(f"{m}-suppress-tokens", m, [PROMPT[m]], dict(GREEDY), ["suppress_tokens"], derive="suppress_first_two")
      for m in ("gpt2", "llama", "t5")),
    *(case(f"{m}-begin-suppress-tokens", m, [PROMPT[m]], dict(GREEDY), ["begin_suppress_tokens"], derive="begin_suppress_first")
      for m in ("gpt2", "llama", "t5")),
    case("bart-cnn-begin-suppress-after-forced-bos", "bart-cnn", [ARTICLE], dict(GREEDY, **ENCODER_DECODER_DEFAULTS),
         ["begin_suppress_tokens"], derive="begin_suppress_second"),
    *(case(f"{m}-sequence-bias", m, [PROMPT[m]], dict(GREEDY), ["sequence_bias"], derive="bias_first_and_pair")
      for m in ("gpt2", "llama", "t5")),
    # penalties that read the input
    *(case(f"{m}-encoder-repetition-penalty", m, [PROMPT[m]], dict(GREEDY, encoder_repetition_penalty=3.0),
           ["encoder_repetition_penalty"]) for m in ("gpt2", "llama", "t5")),
    case("bart-cnn-encoder-repetition-penalty", "bart-cnn", [ARTICLE],
         dict(GREEDY, encoder_repetition_penalty=0.3, **ENCODER_DECODER_DEFAULTS), ["encoder_repetition_penalty"]),
    case("gpt2-encoder-repetition-penalty-batch", "gpt2", [STORY, SHORT], dict(GREEDY, encoder_repetition_penalty=3.0),
         ["encoder_repetition_penalty"]),
    *(case(f"{m}-encoder-no-repeat-ngram", m, [ARTICLE], dict(GREEDY, encoder_no_repeat_ngram_size=1,
                                                              **({} if m == "t5" else ENCODER_DECODER_DEFAULTS)),
           ["encoder_no_repeat_ngram_size"]) for m in ("bart-cnn", "t5")),
    case("t5-encoder-no-repeat-ngram-beams", "t5", [ARTICLE],
         dict(max_new_tokens=12, num_beams=3, encoder_no_repeat_ngram_size=1), ["encoder_no_repeat_ngram_size"]),
    case("gpt2-encoder-no-repeat-ngram", "gpt2", [STORY + " " + STORY], dict(GREEDY, encoder_no_repeat_ngram_size=2),
         ["encoder_no_repeat_ngram_size"]),
    # length and cleaning
    *(case(f"{m}-exponential-decay-length-penalty", m, [PROMPT[m]], dict(GREEDY, max_new_tokens=30,
                                                                     exponential_decay_length_penalty=(2, 1.8)),
           ["exponential_decay_length_penalty"]) for m in ("gpt2", "llama", "t5")),
    case("gpt2-remove-invalid-values", "gpt2", [STORY], dict(GREEDY, bad_words_ids=[[5], [6]], remove_invalid_values=True),
         ["remove_invalid_values"]),
    case("llama-renormalize-logits-beams", "llama", [STORY],
         dict(max_new_tokens=10, num_beams=3, repetition_penalty=3.0, renormalize_logits=True), ["renormalize_logits"]),
    case("t5-renormalize-logits-beams", "t5", [ARTICLE],
         dict(max_new_tokens=10, num_beams=3, no_repeat_ngram_size=1, renormalize_logits=True), ["renormalize_logits"]),
    *(case(f"{m}-max-time-zero", m, [PROMPT[m]], dict(GREEDY, max_time=0.0), ["max_time"]) for m in ("gpt2", "t5")),
    *(case(f"{m}-max-time-zero-beams", m, [PROMPT[m]], dict(BEAMS, max_time=0.0), ["max_time"]) for m in ("llama", "t5")),
    # classifier-free guidance (decoder-only)
    *(case(f"{m}-guidance", m, [PROMPT[m]], dict(GREEDY, guidance_scale=3.0), ["guidance_scale"]) for m in ("gpt2", "llama")),
    *(case(f"{m}-guidance-negative-prompt", m, [PROMPT[m]], dict(GREEDY, guidance_scale=2.0), ["guidance_scale"],
           negative_prompt="A dull and boring text about") for m in ("gpt2", "llama")),
    case("gpt2-guidance-sampling", "gpt2", [STORY], dict(SAMPLING, guidance_scale=1.5), ["guidance_scale"], seed=8),
    # the green-list watermark (a dict of WatermarkingConfig's fields), greedy and sampled, both seeding schemes
    *(case(f"{m}-watermark", m, [PROMPT[m]], dict(GREEDY, watermarking_config=dict(bias=4.0)), ["watermarking_config"])
      for m in ("gpt2", "llama", "t5")),
    case("llama-watermark-sampling", "llama", [SHORT, STORY],
         dict(SAMPLING, watermarking_config=dict(bias=2.5, greenlist_ratio=0.5, hashing_key=7, context_width=2)),
         ["watermarking_config"], seed=9),
    case("gpt2-watermark-selfhash", "gpt2", [SHORT], dict(GREEDY, watermarking_config=dict(bias=4.0, seeding_scheme="selfhash")),
         ["watermarking_config"]),
]


def derived_options(how: str, new_tokens: list[int]) -> dict:
    """Options that depend on the model's answer without them (new_tokens: the first row's new tokens)."""
    if how == "suppress_first_two":
        return dict(suppress_tokens=first_new(new_tokens, 2))
    if how == "begin_suppress_first":
        return dict(begin_suppress_tokens=first_new(new_tokens, 1))
    if how == "begin_suppress_second":  # after the forced BOS token
        return dict(begin_suppress_tokens=[new_tokens[1]])
    if how == "bias_first_and_pair":
        return dict(sequence_bias=[[[new_tokens[0]], -8.0], [new_tokens[1:3], -20.0]])
    raise ValueError(how)


def load(fixture: str):
    path = FIXTURES / fixture
    config = AutoConfig.from_pretrained(path)
    head = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = head.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not config.is_encoder_decoder:
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def run(model, tokenizer, spec: dict, options: dict) -> dict:
    """generate() on the case's prompts with `options`; the sequences and cheap evidence of the scores."""
    encoded = tokenizer(spec["prompts"], return_tensors="pt", padding=True)
    extra = {}
    if spec["negative_prompt"] is not None and "guidance_scale" in options:
        negative = tokenizer([spec["negative_prompt"]], return_tensors="pt")
        extra = dict(negative_prompt_ids=negative["input_ids"], negative_prompt_attention_mask=negative["attention_mask"])
    if "watermarking_config" in options:  # stored as a dict; 4.57.6's generate() keyword takes only the object
        options = dict(options, watermarking_config=WatermarkingConfig(**options["watermarking_config"]))
    if spec["seed"] is not None:
        set_seed(spec["seed"])
    with torch.no_grad():
        out = model.generate(**encoded, **options, **extra, return_dict_in_generate=True, output_scores=True)
    answer = dict(sequences=out.sequences.tolist())
    if getattr(out, "sequences_scores", None) is not None:
        answer["sequences_scores"] = out.sequences_scores.tolist()
    else:
        start = 1 if model.config.is_encoder_decoder else encoded["input_ids"].shape[1]
        chosen = out.sequences[:, start:]
        answer["chosen_scores"] = [step.gather(1, chosen[:, i:i + 1]).squeeze(1).tolist() for i, step in enumerate(out.scores)]
        answer["min_scores"] = [step.min(dim=1).values.tolist() for step in out.scores]
    return answer


def make_case(spec: dict, models: dict) -> dict:
    model, tokenizer = models.setdefault(spec["fixture"], load(spec["fixture"]))
    without = {key: value for key, value in spec["options"].items() if key not in spec["under_test"]}
    baseline = run(model, tokenizer, spec, without)
    options = dict(spec["options"])
    if spec["derive"]:
        start = 1 if model.config.is_encoder_decoder else len(tokenizer(spec["prompts"])["input_ids"][0])
        options.update(derived_options(spec["derive"], baseline["sequences"][0][start:]))
    answer = run(model, tokenizer, spec, options)
    stored = {key: value for key, value in spec.items() if key != "derive"}
    return {**stored, "options": options, "without": baseline, "expected": answer}


def main() -> None:
    models: dict = {}
    cases = [make_case(spec, models) for spec in CASES]
    unchanged = [c["id"] for c in cases if c["expected"] == c["without"]]
    if unchanged:
        raise SystemExit(f"these cases would not catch an ignored option (same answer without it): {unchanged}")
    # One case per line: small diffs when a case changes, and still one JSON document.
    head = json.dumps(dict(transformers=transformers.__version__, torch=torch.__version__))[:-1]
    lines = ",\n".join(json.dumps(case) for case in cases)
    OUTPUT.write_text(f'{head}, "cases": [\n{lines}\n]}}\n', encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUTPUT}")


if __name__ == "__main__":
    main()
