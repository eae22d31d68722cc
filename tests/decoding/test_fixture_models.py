"""Parity with `model.generate()` on the committed fixture checkpoints, with their real tokenizers and
generation configs (BART-CNN's beam settings, Marian's bad_words_ids, M2M100's language tokens).

Inputs are corpus sentences of different lengths, padded as the tokenizer pads them (left for the
decoder-only models), so every batch has padding.
"""

import pytest
import torch
from tiny_models import assert_parity, fixture_model, frequent_token

from decoding import generate
from tests.paths import corpus_lines

DECODER_ONLY = ("gpt2", "llama")
ENCODER_DECODER = ("bart-cnn", "t5", "marian-en-fr", "m2m100")
FIXTURES = DECODER_ONLY + ENCODER_DECODER


def sentences() -> list[str]:
    lines = [line for line in corpus_lines() if line.strip()]
    return [lines[0], lines[4][:30], lines[3]]  # long, short, medium


def encoded_batch(name: str):
    model, tokenizer = fixture_model(name)
    encoded = tokenizer(sentences(), return_tensors="pt", padding=True)
    assert (encoded["attention_mask"] == 0).any(), "the batch should contain padding"
    return model, tokenizer, encoded["input_ids"], encoded["attention_mask"]


CASES = {
    "greedy": dict(max_new_tokens=12),
    "greedy_eos": dict(max_new_tokens=12, eos="liked"),
    "beam_length_penalty_early_true": dict(num_beams=4, max_new_tokens=10, length_penalty=2.0, early_stopping=True,
                                           num_return_sequences=2, eos="liked"),
    "beam_early_false": dict(num_beams=3, max_new_tokens=10, early_stopping=False, length_penalty=0.5, eos="liked"),
    "beam_never": dict(num_beams=3, max_new_tokens=10, early_stopping="never", length_penalty=1.5, eos="liked"),
    "beam_no_repeat_ngram": dict(num_beams=3, max_new_tokens=12, no_repeat_ngram_size=2),
    "beam_min_length": dict(num_beams=3, max_new_tokens=12, min_new_tokens=8, eos="liked"),
    "sampling": dict(do_sample=True, max_new_tokens=10, top_k=20, top_p=0.9, temperature=0.8, seed=3),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_model_matches_generate(name, case):
    model, _, input_ids, attention_mask = encoded_batch(name)
    settings = dict(CASES[case])
    if (model.generation_config.min_length or 0) > settings["max_new_tokens"]:
        settings.setdefault("min_length", 0)  # BART-CNN asks for 56 tokens; test_errors checks that warning
    if settings.pop("eos", None) == "liked":
        # A token the model produces often, so beams and rows finish part-way through.
        settings["eos_token_id"] = frequent_token(model, input_ids, attention_mask)
    assert_parity(model, input_ids, attention_mask, **settings)


@pytest.mark.parametrize("name", ENCODER_DECODER)
def test_fixture_model_own_generation_config(name):
    """No settings: BART-CNN's 4 beams, length_penalty 2, min_length 56, no_repeat_ngram 3, forced BOS/EOS;
    Marian's 4 beams with bad_words_ids=[[pad]] and forced EOS; M2M100's 5 beams; T5 greedy."""
    model, _, input_ids, attention_mask = encoded_batch(name)
    assert_parity(model, input_ids[:2], attention_mask[:2])


@pytest.mark.parametrize("num_beams", [1, 3])
def test_m2m100_forced_target_language(num_beams):
    """M2M100 starts its output with the target language id through forced_bos_token_id."""
    model, tokenizer, input_ids, attention_mask = encoded_batch("m2m100")
    french = tokenizer.get_lang_id("fr")
    actual = assert_parity(model, input_ids, attention_mask, forced_bos_token_id=french, num_beams=num_beams,
                           max_new_tokens=8, forced_eos_token_id=model.generation_config.eos_token_id)
    assert (actual[:, 1] == french).all()


def test_bart_forced_bos_and_eos_at_max_length():
    model, _, input_ids, attention_mask = encoded_batch("bart-cnn")
    actual = assert_parity(model, input_ids, attention_mask, num_beams=2, max_length=9, min_length=0)
    assert (actual[:, 1] == model.generation_config.forced_bos_token_id).all()
    ends = [row[row != model.generation_config.pad_token_id][-1] for row in actual]
    assert torch.stack(ends).eq(model.generation_config.forced_eos_token_id).all()


@pytest.mark.parametrize("name", DECODER_ONLY)
def test_left_padding_gives_each_row_its_unpadded_output(name):
    """Positions and masks of a left-padded batch are right: each row decodes as it would alone."""
    model, tokenizer, input_ids, attention_mask = encoded_batch(name)
    batched = generate(model, input_ids, attention_mask, max_new_tokens=8, min_new_tokens=8).sequences
    for row, sentence in enumerate(sentences()):
        alone = tokenizer(sentence, return_tensors="pt")
        single = generate(model, alone["input_ids"], alone["attention_mask"], max_new_tokens=8,
                          min_new_tokens=8).sequences
        assert batched[row, -8:].tolist() == single[0, -8:].tolist()
