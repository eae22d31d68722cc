"""`stream()` yields text that is safe to show: whole characters and whole words, adding up to the
full decode of what `generate()` produces.

The fixture GPT-2 and Llama tokenizers are byte-level with a tiny vocabulary, so accented letters,
CJK and emoji are split over several tokens that decode alone to U+FFFD: the hard case. A scripted
processor makes the model "write" a chosen text token by token.
"""

import pytest
import torch
from tiny_models import fixture_model

from core.seed import set_seed
from decoding import generate, stream
from decoding.streaming import REPLACEMENT_CHAR, TextChunker, is_cjk

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


@pytest.mark.parametrize("name", ["gpt2", "t5", "marian-en-fr"])
def test_stream_adds_up_to_the_decoded_output_of_generate(name):
    model, tokenizer = fixture_model(name)
    input_ids = tokenizer("The hotel in Paris was clean and quiet.", return_tensors="pt")["input_ids"]
    settings = dict(max_new_tokens=24, do_sample=True, top_k=30, num_beams=1)
    set_seed(4)
    pieces = list(stream(model, tokenizer, input_ids, **settings))
    set_seed(4)
    sequences = generate(model, input_ids, **settings).sequences
    start = 1 if model.config.is_encoder_decoder else input_ids.shape[1]
    assert "".join(pieces) == tokenizer.decode(sequences[0, start:], skip_special_tokens=True)
    assert all(REPLACEMENT_CHAR not in piece for piece in pieces[:-1])


def test_stream_keeps_special_tokens_when_asked():
    model, tokenizer = fixture_model("gpt2")
    input_ids = tokenizer("Hello", return_tensors="pt")["input_ids"]
    eos = tokenizer.eos_token_id
    pieces = list(stream(model, tokenizer, input_ids, max_new_tokens=3, skip_special_tokens=False,
                         logits_processors=[Script([eos, eos, eos], input_ids.shape[1])]))
    assert "".join(pieces) == tokenizer.eos_token  # the EOS ends generation after one token
