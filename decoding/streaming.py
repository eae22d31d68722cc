"""`stream()`: yield the new text while it is generated, in pieces that never split a word or a character.

Decoding token by token breaks text: a byte-level BPE token may hold half of a multi-byte UTF-8
character (decoded as the replacement character U+FFFD until the rest arrives), and a word piece
("gener" + "ation") may still grow. `TextChunker` re-decodes the new tokens after each step and
releases text only up to the last whitespace, like transformers' `TextStreamer`, holding back
anything that ends in U+FFFD; a newline or a CJK character (a word on its own) releases
everything. Joined, the pieces equal `tokenizer.decode(new_tokens, **decode_kwargs)`.

With the clean-up of tokenization spaces ("good ." -> "good."), a space can vanish only when the
next token arrives, so the chunker cuts before the last space instead of after it and releases the
cleaned-up text (see `clean_up_cut`).
"""

from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack

import torch

from decoding.config import DecodingConfig
from decoding.generation import prepare
from decoding.processors import Processor
from decoding.search import default_search
from decoding.token_loop import Strategy

REPLACEMENT_CHAR = "\ufffd"


def is_cjk(char: str) -> bool:
    """CJK ideographs are words by themselves, so they can be shown at once."""
    cp = ord(char)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


# transformers' clean-up (`tokenizer.clean_up_tokenization`) deletes the space of " .", " ?", " !", " ,",
# " n't", " 'm", " 's", " 've", " 're" and both spaces of " ' ". A text that ends in a space, " '" or
# " n" may still lose a space to the text that follows; any other end keeps its clean-up.
CLEAN_UP_OPEN_ENDS = (" ", " '", " n")


def clean_up_cut(text: str, end: int) -> int:
    """The last cut at or before `end` (a cut through whitespace) whose clean-up no later text changes:
    clean_up(text[:cut] + " " + more) == clean_up(text[:cut]) + clean_up(" " + more), whatever `more`.

    Every pattern starts with a space, so only a pattern that starts before the cut could span it, and
    with the cut before a space only one of `CLEAN_UP_OPEN_ENDS` can start one (" n" + " ' t" becomes
    " n't" once " ' " is cleaned up). A cut after a newline or a CJK character stays: no pattern holds one.
    """
    while text.endswith(CLEAN_UP_OPEN_ENDS, 0, end):
        end -= 1
    return end


def final_end(text: str, clean_up: bool) -> int:
    """How much of a growing text no later text can change: all of it after a newline or a CJK
    character, else up to its last whitespace (a word may still grow), and with the clean-up of
    tokenization spaces, before the spaces that a later text could still remove (`clean_up_cut`)."""
    if text.endswith("\n") or (text and is_cjk(text[-1])):
        end = len(text)
    else:
        end = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t")) + 1  # through the last whitespace
    return clean_up_cut(text, end) if clean_up else end


class FinalText:
    """A text that grows at its end and is shown piece by piece: `release` gets the start of it that
    no later text changes and returns what of it was not shown yet."""

    shown = 0  # characters already released

    def release(self, final_text: str) -> str:
        if len(final_text) <= self.shown:
            return ""
        piece, self.shown = final_text[self.shown:], len(final_text)
        return piece


class TextChunker(FinalText):
    """Turns a growing list of token ids into text pieces that are safe to show."""

    def __init__(self, tokenizer, **decode_kwargs):
        self.tokenizer = tokenizer
        self.decode_kwargs = decode_kwargs
        clean_up = decode_kwargs.get("clean_up_tokenization_spaces")
        self.clean_up = tokenizer.clean_up_tokenization_spaces if clean_up is None else clean_up
        self.token_ids: list[int] = []
        self.tokenizer_cleans_up: bool | None = None  # asked once, when the clean-up first matters

    def push(self, token_id: int) -> str:
        """Add one token; return the text that became safe to show (maybe "")."""
        self.token_ids.append(token_id)
        raw = self.tokenizer.decode(self.token_ids, **{**self.decode_kwargs, "clean_up_tokenization_spaces": False})
        if raw.endswith(REPLACEMENT_CHAR):
            return ""  # an incomplete multi-byte character: wait for its other bytes
        if not self.clean_up:
            return self.release(raw[:final_end(raw, clean_up=False)])
        kept = raw[:final_end(raw, clean_up=True)]
        cleaned = self.tokenizer.clean_up_tokenization(kept)
        if cleaned != kept and self.tokenizer_cleans_up is None:
            # transformers 5 skips the clean-up for BPE tokenizers (it would corrupt their text): the
            # tokenizer's own decode of a text that holds a pattern tells whether it applies it.
            self.tokenizer_cleans_up = self.tokenizer.decode(self.token_ids, **self.decode_kwargs) != raw
        return self.release(cleaned if self.tokenizer_cleans_up else kept)

    def finish(self) -> str:
        """Whatever is still held back, at the end of generation."""
        return self.release(self.tokenizer.decode(self.token_ids, **self.decode_kwargs))


def can_stream(config: DecodingConfig) -> bool:
    """Whether these settings give one answer that can be shown token by token: beam search knows its
    best beam only at the end, and several sequences are not one text."""
    from decoding.generation import moved_strategy

    return config.num_beams == 1 and config.num_return_sequences == 1 and moved_strategy(config).name is None


def check_can_stream(config: DecodingConfig) -> None:
    """The error for settings that cannot stream (see `can_stream`), naming them and the fix."""
    from decoding.generation import moved_strategy

    moved = moved_strategy(config)
    if moved.name is not None:
        raise ValueError(f"streaming runs the token loop; {moved.name.replace('_', ' ')} search ({', '.join(moved.options)}) "
                         "runs its own: drop its options or do not stream")
    if not can_stream(config):
        raise ValueError(f"streaming shows one answer token by token: it cannot show num_beams={config.num_beams} "
                         f"or num_return_sequences={config.num_return_sequences} (the best beam is only known at "
                         "the end); pass num_beams=1 and num_return_sequences=1, or do not stream")


@torch.inference_mode()
def _stream_tokens(model, input_ids, attention_mask, tokenizer, hooks: dict, config, settings):
    with ExitStack() as scope:
        prepared = prepare(model, input_ids, attention_mask, tokenizer=tokenizer, trace=False, settings=settings,
                           config=config, scope=scope, **hooks)
        check_can_stream(prepared.config)
        for sequences in default_search(prepared.config, hooks["strategy"]).steps(model, prepared):
            yield int(sequences[0, -1])


def stream(model, tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
           skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool | None = None,
           logits_processors: Sequence[Processor] = (), strategy: Strategy | None = None,
           stopping_criteria: Sequence = (), config: DecodingConfig | None = None, **settings) -> Iterator[str]:
    """Yield the generated text of one prompt piece by piece, as `generate()` produces it.

    input_ids: (1, seq_len). Settings are those of `generate()` (no beam search), as keywords or a
    ready `config`. The pieces join to `tokenizer.decode(new_tokens, skip_special_tokens=...,
    clean_up_tokenization_spaces=...)` (None: the tokenizer's own `clean_up_tokenization_spaces`).
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[0] != 1:
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"stream() takes one prompt: input_ids of shape (1, seq_len), got {shape}")
    hooks = dict(logits_processors=logits_processors, strategy=strategy, stopping_criteria=stopping_criteria)
    tokens = _stream_tokens(model, input_ids, attention_mask, tokenizer, hooks, config, settings)
    chunker = TextChunker(tokenizer, skip_special_tokens=skip_special_tokens,
                          clean_up_tokenization_spaces=clean_up_tokenization_spaces)
    yield from released(chunker, tokens)


def released(chunker, items: Iterable) -> Iterator[str]:
    """Push each item into `chunker` (anything with push(item) -> str and finish() -> str); yield the
    text that becomes final as it does, then what is left at the end. Empty pieces are not yielded."""
    for item in items:
        piece = chunker.push(item)
        if piece:
            yield piece
    rest = chunker.finish()
    if rest:
        yield rest
