"""Stop strings end a row as `generate(stop_strings=..., tokenizer=...)` does, with real tokenizers:
byte-level BPE (GPT-2, Llama fixtures) and SentencePiece (T5, Marian).

The stop strings are cut from what the model writes without them, so they really occur: inside a
token, across a token boundary, and in one row only, so rows stop at different steps. GPT-2 and
Llama continue the first words of corpus lines: given a whole corpus sentence, these trained fixtures
answer EOS at once; cut mid-sentence, they write on, greedily too, and their rows end with EOS at
different steps, which the stop strings have to work with. T5 and Marian read whole corpus lines,
as sources to turn into something else.
"""

import pytest
from tiny_models import assert_same_tokens, fixture_model, reference

from core.seed import set_seed
from decoding import generate
from tests.paths import corpus_lines

NEW_TOKENS = 20
# (corpus line, words kept): "The film won three", "What a wonderful surprise! I am", "The weather
# today is neither good".
PROMPT_STARTS = [(21, 4), (10, 6), (15, 6)]
# Each case: (fixture, settings).
SETTINGS = {
    "gpt2": ("gpt2", dict()),
    "gpt2-sampled": ("gpt2", dict(do_sample=True, top_k=40, seed=0)),
    "llama": ("llama", dict()),
    "llama-sampled": ("llama", dict(do_sample=True, top_k=40, seed=0)),
    "t5": ("t5", dict()),
    "marian-en-fr": ("marian-en-fr", dict(num_beams=1)),
}


def run(generate_fn, model, encoded, settings, **extra):
    settings = dict(settings, **extra)
    seed = settings.pop("seed", None)
    if seed is not None:
        set_seed(seed)
    return generate_fn(model, encoded["input_ids"], encoded["attention_mask"], max_new_tokens=NEW_TOKENS, **settings)


def ours(model, input_ids, attention_mask, **settings):
    return generate(model, input_ids, attention_mask, **settings).sequences


def prompts(model) -> list[str]:
    lines = [line for line in corpus_lines() if line]
    if model.config.is_encoder_decoder:
        return lines[:3]
    return [" ".join(lines[index].split()[:words]) for index, words in PROMPT_STARTS]


def written_texts(fixture, settings):
    """The model, tokenizer, batch, and the text each row writes without stop strings."""
    model, tokenizer = fixture_model(fixture)
    encoded = tokenizer(prompts(model), return_tensors="pt", padding=True)
    out = run(reference, model, encoded, settings)
    start = 1 if model.config.is_encoder_decoder else encoded["input_ids"].shape[1]
    texts = tokenizer.batch_decode(out[:, start:], skip_special_tokens=True)
    assert all(len(text) > 12 for text in texts), texts
    if not model.config.is_encoder_decoder:  # the sentences cut short get finished, with EOS, in some row
        assert out[:, start:].eq(model.generation_config.eos_token_id).any(), texts
    return model, tokenizer, encoded, texts


def stop_string_cases(texts: list[str]) -> dict[str, list[str]]:
    first, second = texts[0], texts[1]
    return {
        "middle_of_row_0": [first[6:9]],
        "one_character": [first[10]],
        "late_in_row_1_and_another": [second[-5:-2], "\u00a7never\u00a7"],
        "two_rows_two_strings": [first[4:6], second[8:11]],
    }


@pytest.mark.parametrize("name", SETTINGS)
def test_stop_strings_stop_where_generate_stops(name):
    fixture, settings = SETTINGS[name]
    model, tokenizer, encoded, texts = written_texts(fixture, settings)
    stopped_early = 0
    for _case, stop_strings in stop_string_cases(texts).items():
        expected = run(reference, model, encoded, settings, stop_strings=stop_strings, tokenizer=tokenizer)
        actual = run(ours, model, encoded, settings, stop_strings=stop_strings, tokenizer=tokenizer)
        assert_same_tokens(expected, actual)
        stopped_early += actual.shape[1] < run(ours, model, encoded, settings).shape[1]
    assert stopped_early >= 2, "most cases should end generation before max_new_tokens"


def test_stop_strings_in_beam_search():
    model, tokenizer, encoded, texts = written_texts(*SETTINGS["t5"])
    for stop_strings in stop_string_cases(texts).values():
        settings = dict(num_beams=3, stop_strings=stop_strings, tokenizer=tokenizer)
        assert_same_tokens(run(reference, model, encoded, settings), run(ours, model, encoded, settings))
