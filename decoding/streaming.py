"""`stream()`: yield the new text while it is generated, in pieces that never split a word or a character.

Decoding token by token breaks text: a byte-level BPE token may hold half of a multi-byte UTF-8
character (decoded as the replacement character U+FFFD until the rest arrives), and a word piece
("gener" + "ation") may still grow. `TextChunker` re-decodes the new tokens after each step and
releases text only up to the last whitespace, like transformers' `TextStreamer`, holding back
anything that ends in U+FFFD; a newline or a CJK character (a word on its own) releases
everything. Joined, the pieces equal `tokenizer.decode(new_tokens, **decode_kwargs)`.
"""

from collections.abc import Iterable, Iterator, Sequence

import torch

from decoding.generate import prepare, token_steps
from decoding.processors import Processor
from decoding.strategies import Strategy

REPLACEMENT_CHAR = "\ufffd"


def is_cjk(char: str) -> bool:
    """CJK ideographs are words by themselves, so they can be shown at once."""
    cp = ord(char)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class TextChunker:
    """Turns a growing list of token ids into text pieces that are safe to show."""

    def __init__(self, tokenizer, **decode_kwargs):
        self.tokenizer = tokenizer
        self.decode_kwargs = decode_kwargs
        self.token_ids: list[int] = []
        self.shown = 0  # characters of the decoded text already released

    def push(self, token_id: int) -> str:
        """Add one token; return the text that became safe to show (maybe "")."""
        self.token_ids.append(token_id)
        text = self.tokenizer.decode(self.token_ids, **self.decode_kwargs)
        if text.endswith(REPLACEMENT_CHAR):
            return ""  # an incomplete multi-byte character: wait for its other bytes
        if text.endswith("\n") or (text and is_cjk(text[-1])):
            end = len(text)
        else:
            end = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t")) + 1  # through the last whitespace
        return self._release(text, end)

    def finish(self) -> str:
        """Whatever is still held back, at the end of generation."""
        text = self.tokenizer.decode(self.token_ids, **self.decode_kwargs)
        return self._release(text, len(text))

    def _release(self, text: str, end: int) -> str:
        if end <= self.shown:
            return ""
        piece = text[self.shown:end]
        self.shown = end
        return piece


@torch.inference_mode()
def _stream_tokens(model, input_ids, attention_mask, tokenizer, logits_processors, strategy, settings):
    prepared = prepare(model, input_ids, attention_mask, tokenizer=tokenizer, logits_processors=logits_processors,
                       strategy=strategy, trace=False, settings=settings)
    config = prepared.config
    if config.num_beams > 1:
        raise ValueError(f"stream() decodes one token at a time and cannot show beam search (num_beams="
                         f"{config.num_beams}): the best beam is only known at the end; use generate()")
    if prepared.sequences.shape[0] != 1:
        raise ValueError("stream() shows one sequence: pass a single prompt and num_return_sequences=1")
    for sequences in token_steps(model, prepared, strategy):
        yield int(sequences[0, -1])


def stream(model, tokenizer, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
           skip_special_tokens: bool = True, logits_processors: Sequence[Processor] = (),
           strategy: Strategy | None = None, **settings) -> Iterator[str]:
    """Yield the generated text of one prompt piece by piece, as `generate()` produces it.

    input_ids: (1, seq_len). Settings are those of `generate()` (no beam search). The pieces join
    to `tokenizer.decode(new_tokens, skip_special_tokens=skip_special_tokens)`.
    """
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[0] != 1:
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"stream() takes one prompt: input_ids of shape (1, seq_len), got {shape}")
    tokens = _stream_tokens(model, input_ids, attention_mask, tokenizer, logits_processors, strategy, settings)
    yield from released(TextChunker(tokenizer, skip_special_tokens=skip_special_tokens), tokens)


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
