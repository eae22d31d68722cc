"""`stream()` yields text that is safe to show: whole characters and whole words, adding up to the
full decode of what `generate()` produces.

The fixture GPT-2 and Llama tokenizers are byte-level with a tiny vocabulary, so accented letters,
CJK and emoji are split over several tokens that decode alone to U+FFFD: the hard case. A scripted
processor makes the model "write" a chosen text token by token. With the clean-up of tokenization
spaces, a later token can still remove a space ("good" + " ." -> "good."): the chunker must hold it.
"""

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_models import fixture_model
from transformers import AutoTokenizer

from core.seed import set_seed
from decoding import generate, stream
from decoding.streaming import REPLACEMENT_CHAR, TextChunker, clean_up_cut, is_cjk
from tasks.generation import clean_up_tokenization
from tests.paths import FIXTURES

TEXT = "Déjà vu: naïve café, 日本語 😀 ok.\nNext line — “quoted” words and a longer tail"


class Script:
    """A processor that forces the tokens of a text one by one (a test tool: the "model" writes TEXT)."""

    def __init__(self, token_ids: list[int], prompt_length: int):
        self.token_ids, self.prompt_length = token_ids, prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        forced = torch.full_like(scores, -float("inf"))
        forced[:, self.token_ids[input_ids.shape[1] - self.prompt_length]] = 0
        return forced


def assert_whole_words(pieces: list[str], text: str) -> None:
    assert "".join(pieces) == text
    for piece in pieces:
        assert REPLACEMENT_CHAR not in piece, f"half a character was shown: {pieces}"
    for piece in pieces[:-1]:
        assert piece[-1].isspace() or is_cjk(piece[-1]), f"a piece ends inside a word: {piece!r} in {pieces}"


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_chunker_releases_whole_characters_and_words(name):
    _, tokenizer = fixture_model(name)
    token_ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert sum(REPLACEMENT_CHAR in tokenizer.decode([t]) for t in token_ids) > 5, "the text should split characters"
    chunker = TextChunker(tokenizer, skip_special_tokens=True)
    pieces = [chunker.push(token) for token in token_ids] + [chunker.finish()]
    assert_whole_words([piece for piece in pieces if piece], TEXT)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_stream_of_a_scripted_text_shows_it_whole(name):
    model, tokenizer = fixture_model(name)
    prompt = tokenizer("Say it:", return_tensors="pt")["input_ids"]
    token_ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    pieces = list(stream(model, tokenizer, prompt, max_new_tokens=len(token_ids),
                         logits_processors=[Script(token_ids, prompt.shape[1])]))
    assert len(pieces) > 5
    assert_whole_words(pieces, TEXT)


@pytest.mark.parametrize("clean_up", [None, True])
@pytest.mark.parametrize("name", ["gpt2", "t5", "marian-en-fr"])
def test_stream_adds_up_to_the_decoded_output_of_generate(name, clean_up):
    model, tokenizer = fixture_model(name)
    input_ids = tokenizer("The hotel in Paris was clean and quiet.", return_tensors="pt")["input_ids"]
    settings = dict(max_new_tokens=24, do_sample=True, top_k=30, num_beams=1)
    set_seed(4)
    pieces = list(stream(model, tokenizer, input_ids, clean_up_tokenization_spaces=clean_up, **settings))
    set_seed(4)
    sequences = generate(model, input_ids, **settings).sequences
    start = 1 if model.config.is_encoder_decoder else input_ids.shape[1]
    assert "".join(pieces) == tokenizer.decode(sequences[0, start:], skip_special_tokens=True,
                                               clean_up_tokenization_spaces=clean_up)
    assert all(REPLACEMENT_CHAR not in piece for piece in pieces[:-1])


def test_stream_keeps_special_tokens_when_asked():
    model, tokenizer = fixture_model("gpt2")
    input_ids = tokenizer("Hello", return_tensors="pt")["input_ids"]
    eos = tokenizer.eos_token_id
    pieces = list(stream(model, tokenizer, input_ids, max_new_tokens=3, skip_special_tokens=False,
                         logits_processors=[Script([eos, eos, eos], input_ids.shape[1])]))
    assert "".join(pieces) == tokenizer.eos_token  # the EOS ends generation after one token


# -- clean-up of tokenization spaces ----------------------------------------------------------------


@functools.cache
def tokenizer_of(name: str, **options):
    """A tokenizer of our own (fixture_model's is shared: tests must not change it)."""
    return AutoTokenizer.from_pretrained(FIXTURES / name, **options)


def test_clean_up_removes_the_space_before_punctuation_without_losing_text():
    tokenizer = AutoTokenizer.from_pretrained(FIXTURES / "t5", clean_up_tokenization_spaces=True)
    token_ids = tokenizer("He said it is good. Yes, I don't know.", add_special_tokens=False)["input_ids"]
    chunker = TextChunker(tokenizer, skip_special_tokens=True)
    pieces = [chunker.push(token) for token in token_ids] + [chunker.finish()]
    assert "".join(pieces) == tokenizer.decode(token_ids, skip_special_tokens=True)
    assert "".join(pieces) == "He said it is good. Yes, I don't know."
    assert " good." in pieces  # the space before "good" waited for the "."


def test_clean_up_cut_holds_back_the_spaces_a_later_text_can_remove():
    assert clean_up_cut("it is good ", 11) == 10  # " ." may come: "good ." -> "good."
    assert clean_up_cut("it is good\n", 11) == 11  # no clean-up pattern holds a newline
    assert clean_up_cut("do ' ", 5) == 2  # " ' s" may come: "do ' s" -> "do's"
    assert clean_up_cut("x n ", 4) == 1  # " ' t" may come: "x n ' t" -> "x n't" -> "xn't"
    assert clean_up_tokenization("x n ' t") == "xn't"
    assert clean_up_cut("the dogs' ", 10) == 9  # only a quote after a space can open " ' "


# Every tokenizer kind we decode; GPT-2 twice, as transformers 5 ignores the clean-up for BPE tokenizers
# unless forced, and forced it meets byte-level text (runs of spaces) that no word-piece tokenizer makes.
FORCED = {"clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output": True}
TOKENIZERS = {"t5": {}, "marian-en-fr": {}, "bert-ner": {}, "gpt2": {}, "gpt2, BPE clean-up forced": FORCED}
# Text whose tokens the clean-up acts on, mixed into the random ids so that its patterns come up often.
PUNCTUATED = "I don't know, he 's here ! n't ' t ' s 're 've 'm ? don ' t  ,  two  spaces . \n 日本 é"


@pytest.mark.parametrize("clean_up", [False, True])
@pytest.mark.parametrize("name", TOKENIZERS)
@settings(max_examples=60, deadline=None)
@given(data=st.data(), skip_special_tokens=st.booleans())
def test_released_text_is_final_and_joins_to_the_decode(name, clean_up, data, skip_special_tokens):
    tokenizer = tokenizer_of(name.split(",")[0], **TOKENIZERS[name])
    punctuated = tokenizer(PUNCTUATED, add_special_tokens=False)["input_ids"]
    token_ids = data.draw(st.lists(st.one_of(st.integers(0, len(tokenizer) - 1), st.sampled_from(punctuated)),
                                   max_size=30))
    kwargs = dict(skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=clean_up)
    full = tokenizer.decode(token_ids, **kwargs)
    chunker = TextChunker(tokenizer, **kwargs)
    shown = ""
    for token in token_ids:
        shown += chunker.push(token)
        # What is shown is the start of the full decode, so a later token never changes it, and a U+FFFD
        # is shown only where the full decode has one (bytes that never make a character).
        assert full.startswith(shown), f"shown {shown!r}, but the decode is {full!r}"
    assert shown + chunker.finish() == full
