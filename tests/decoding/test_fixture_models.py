"""Parity with `model.generate()` on the committed fixture checkpoints, with their real tokenizers and
generation configs (BART-CNN's beam settings, Marian's bad_words_ids, M2M100's language tokens).

Prompts are the first words of corpus lines, so they stop mid-sentence: the trained GPT-2 and Llama
fixtures answer a whole corpus sentence with EOS at once, and a row of one EOS compares nothing.
They have different lengths and are padded as the tokenizer pads them (left for the decoder-only
models), so every batch has padding. The parity tests check that each row of what they compared
wrote at least MIN_NEW_TOKENS tokens before its EOS.
"""

import pytest
import torch
from tiny_models import assert_parity, fixture_model, new_tokens, reference

from decoding import generate
from tests.paths import corpus_lines

DECODER_ONLY = ("gpt2", "llama")
ENCODER_DECODER = ("bart-cnn", "t5", "marian-en-fr", "m2m100")
FIXTURES = DECODER_ONLY + ENCODER_DECODER
MIN_NEW_TOKENS = 3


def sentences() -> list[str]:
    """Beginnings of corpus lines, long, short and medium: "Machine learning models learn patterns from
    data rather", "Apple announced a", "Barack Obama was born in"."""
    lines = [line for line in corpus_lines() if line.strip()]
    return [" ".join(lines[index].split()[:words]) for index, words in ((44, 8), (5, 3), (18, 5))]


def encoded_batch(name: str):
    model, tokenizer = fixture_model(name)
    encoded = tokenizer(sentences(), return_tensors="pt", padding=True)
    assert (encoded["attention_mask"] == 0).any(), "the batch should contain padding"
    return model, tokenizer, encoded["input_ids"], encoded["attention_mask"]


def tokens_before_eos(model, sequences: torch.Tensor, prompt_width: int, eos_token_id) -> list[int]:
    """Per row of `generate()` output: how many tokens it wrote before its first EOS (all of them if none)."""
    eos = set(eos_token_id if isinstance(eos_token_id, list) else [eos_token_id])
    counts = []
    for row in new_tokens(model, sequences, prompt_width).tolist():
        ends = [step for step, token in enumerate(row) if token in eos]
        counts.append(ends[0] if ends else len(row))
    return counts


def assert_several_new_tokens(model, sequences, prompt_width, eos_token_id=None):
    """Each row wrote MIN_NEW_TOKENS tokens or more before its EOS: a degenerate output fails here."""
    if eos_token_id is None:
        eos_token_id = model.generation_config.eos_token_id
    counts = tokens_before_eos(model, sequences, prompt_width, eos_token_id)
    assert min(counts) >= MIN_NEW_TOKENS, f"rows wrote {counts} tokens before EOS; the comparison checks too little"


def written_eos(model, tokenizer, input_ids, attention_mask, settings: dict) -> int:
    """A token to use as EOS so that rows and beams finish part-way through, after several tokens.

    Candidates are the tokens these settings make the model write (special ones aside), the earliest
    written first; the first with which every row still writes MIN_NEW_TOKENS tokens and some row
    ends before max_new_tokens is chosen, else the first with which every row writes them. Each
    candidate is tried by running it: with another EOS, beam search can take other paths.
    """
    width = input_ids.shape[1]
    written = new_tokens(model, reference(model, input_ids, attention_mask, **settings), width)

    def first_step(token: int) -> int:
        return min(int(row.eq(token).nonzero()[0]) if row.eq(token).any() else len(row) for row in written)

    candidates = set(written.flatten().tolist()) - set(tokenizer.all_special_ids)
    long_enough = None
    for token in sorted(candidates, key=lambda token: (first_step(token), token)):
        out = reference(model, input_ids, attention_mask, **settings, eos_token_id=token)
        counts = tokens_before_eos(model, out, width, token)
        if min(counts) >= MIN_NEW_TOKENS:
            if min(counts) < settings["max_new_tokens"]:
                return token
            long_enough = token if long_enough is None else long_enough
    if long_enough is None:
        raise AssertionError(f"no token the model writes lets every row write {MIN_NEW_TOKENS} tokens before it")
    return long_enough


CASES = {
    "greedy": dict(max_new_tokens=12),
    "greedy_eos": dict(max_new_tokens=12, eos="written"),
    "beam_length_penalty_early_true": dict(num_beams=4, max_new_tokens=10, length_penalty=2.0, early_stopping=True,
                                           num_return_sequences=2, eos="written"),
    "beam_early_false": dict(num_beams=3, max_new_tokens=10, early_stopping=False, length_penalty=0.5, eos="written"),
    "beam_never": dict(num_beams=3, max_new_tokens=10, early_stopping="never", length_penalty=1.5, eos="written"),
    "beam_no_repeat_ngram": dict(num_beams=3, max_new_tokens=12, no_repeat_ngram_size=2),
    "beam_min_length": dict(num_beams=3, max_new_tokens=12, min_new_tokens=8, eos="written"),
    "sampling": dict(do_sample=True, max_new_tokens=10, top_k=20, top_p=0.9, temperature=0.8, seed=3),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_model_matches_generate(name, case):
    model, tokenizer, input_ids, attention_mask = encoded_batch(name)
    settings = dict(CASES[case])
    if (model.generation_config.min_length or 0) > settings["max_new_tokens"]:
        settings.setdefault("min_length", 0)  # BART-CNN asks for 56 tokens; test_errors checks that warning
    if settings.pop("eos", None) == "written":
        settings["eos_token_id"] = written_eos(model, tokenizer, input_ids, attention_mask, settings)
    actual = assert_parity(model, input_ids, attention_mask, **settings)
    assert_several_new_tokens(model, actual, input_ids.shape[1], settings.get("eos_token_id"))


@pytest.mark.parametrize("name", ENCODER_DECODER)
def test_fixture_model_own_generation_config(name):
    """No settings: BART-CNN's 4 beams, length_penalty 2, min_length 56, no_repeat_ngram 3, forced BOS/EOS;
    Marian's 4 beams with bad_words_ids=[[pad]] and forced EOS; M2M100's 5 beams; T5 greedy."""
    model, _, input_ids, attention_mask = encoded_batch(name)
    actual = assert_parity(model, input_ids[:2], attention_mask[:2])
    assert_several_new_tokens(model, actual, input_ids.shape[1])


@pytest.mark.parametrize("num_beams", [1, 3])
def test_m2m100_forced_target_language(num_beams):
    """M2M100 starts its output with the target language id through forced_bos_token_id."""
    model, tokenizer, input_ids, attention_mask = encoded_batch("m2m100")
    french = tokenizer.get_lang_id("fr")
    actual = assert_parity(model, input_ids, attention_mask, forced_bos_token_id=french, num_beams=num_beams,
                           max_new_tokens=8, forced_eos_token_id=model.generation_config.eos_token_id)
    assert (actual[:, 1] == french).all()
    assert_several_new_tokens(model, actual, input_ids.shape[1])


def test_bart_forced_bos_and_eos_at_max_length():
    model, _, input_ids, attention_mask = encoded_batch("bart-cnn")
    actual = assert_parity(model, input_ids, attention_mask, num_beams=2, max_length=9, min_length=0)
    assert (actual[:, 1] == model.generation_config.forced_bos_token_id).all()
    ends = [row[row != model.generation_config.pad_token_id][-1] for row in actual]
    assert torch.stack(ends).eq(model.generation_config.forced_eos_token_id).all()
    assert_several_new_tokens(model, actual, input_ids.shape[1])


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
