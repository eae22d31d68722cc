"""When a row is done: it reached `max_length`, produced an EOS id, or its text ends in a stop string.

`StopCriteria` answers, after each step, which rows of the grown sequences have just finished.
Stop strings follow transformers' `StopStringCriteria`: a row stops when a stop string occurs in
the text of its last tokens *and ends inside the newest token* ("st" + "op" stops on "stop", and
so does "las" + "topper"; a stop string that was already complete one token earlier does not fire
again). Text is compared as bytes for byte-level BPE tokenizers (GPT-2, Llama 3, SmolLM), so a
stop string can end in the middle of a multi-byte character, as in transformers.
"""

import json
from collections.abc import Sequence

import torch

STATIC_PREFIX = "abcdef"  # transformers' trick to decode one token without tokenizer-specific space handling


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from bytes to printable characters, which byte-level BPE vocabularies are written in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def matching_mode(tokenizer) -> str | None:
    """'byte_level', 'byte_fallback' or None (plain text), from the fast tokenizer's decoder."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if decoder is None:
        return None
    if type(decoder).__name__ == "ByteLevel":
        return "byte_level"
    state = getattr(decoder, "__getstate__", lambda: None)()
    try:
        text = state.decode() if isinstance(state, bytes) else state
        described = json.dumps(json.loads(text)) if isinstance(text, str) else ""
    except json.JSONDecodeError:
        described = ""
    if '"ByteFallback"' in described:
        return "byte_fallback"
    if '"ByteLevel"' in described:
        return "byte_level"
    return None


class StopStringMatcher:
    """Which rows end in one of `stop_strings`; token texts are looked up once per id and cached."""

    def __init__(self, tokenizer, stop_strings: str | Sequence[str]):
        if tokenizer is None:
            raise ValueError("stop_strings needs the model's tokenizer to read the generated text; "
                             "pass tokenizer=... to generate()")
        strings = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings)
        self.tokenizer = tokenizer
        self.mode = matching_mode(tokenizer)
        self.stop_strings = [s.encode("utf-8") for s in strings] if self.mode else strings
        # One token yields at least one character, so the last `window` tokens hold any match.
        self.window = max(len(s) for s in self.stop_strings)
        self.byte_decoder = {char: byte for byte, char in bytes_to_unicode().items()}
        base_ids = tokenizer(STATIC_PREFIX, add_special_tokens=False)["input_ids"]
        self.base_tokens = tokenizer.convert_ids_to_tokens(base_ids)
        self.texts: dict[int, str | bytes] = {}

    def token_text(self, token_id: int) -> str | bytes:
        """What `token_id` adds to the text: bytes in byte modes, else a str without tokenizer markers."""
        if token_id not in self.texts:
            token = self.tokenizer.convert_ids_to_tokens(token_id)
            text = None
            if token is None:
                text = ""
            elif self.mode == "byte_level" and all(char in self.byte_decoder for char in token):
                text = bytes(self.byte_decoder[char] for char in token)
            elif self.mode == "byte_fallback" and len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
                try:
                    text = bytes([int(token[3:5], 16)])
                except ValueError:
                    text = None
            if text is None:
                decoded = self.tokenizer.convert_tokens_to_string(self.base_tokens + [token])
                text = decoded[decoded.index(STATIC_PREFIX) + len(STATIC_PREFIX):]
                if self.mode:
                    text = text.encode("utf-8")
            self.texts[token_id] = text
        return self.texts[token_id]

    def ends_with_stop(self, token_ids: list[int]) -> bool:
        """True if a stop string occurs in the tokens' text and ends inside the last token."""
        pieces = [self.token_text(t) for t in token_ids[-self.window:]]
        text = pieces[0][:0].join(pieces)
        last_start = len(text) - len(pieces[-1])
        # An occurrence ends inside the last token when it starts after last_start - len(stop).
        return any(text.find(stop, max(0, last_start - len(stop) + 1)) != -1 for stop in self.stop_strings)

    def __call__(self, sequences: torch.Tensor) -> torch.Tensor:
        """sequences: (rows, seq_len) -> (rows,) bool."""
        tails = sequences[:, -self.window:].tolist()
        return torch.tensor([self.ends_with_stop(tail) for tail in tails], dtype=torch.bool, device=sequences.device)


class StopCriteria:
    """Max length, EOS ids, stop strings and the caller's criteria together: `criteria(sequences) -> (rows,)
    bool` finished now.

    `extra`: transformers-style stopping criteria, each `(input_ids, scores) -> (rows,) bool tensor or a
    bool`, called with scores=None as 4.57.6's loops call them when scores are not kept.
    """

    def __init__(self, max_length: int, eos_ids: Sequence[int], stop_strings=None, tokenizer=None, device=None,
                 extra: Sequence = ()):
        self.max_length = max_length
        self.eos = torch.tensor(list(eos_ids), dtype=torch.long, device=device) if eos_ids else None
        self.stop_strings = StopStringMatcher(tokenizer, stop_strings) if stop_strings is not None else None
        self.extra = list(extra)

    def __call__(self, sequences: torch.Tensor) -> torch.Tensor:
        """sequences: (rows, seq_len), the newest token last."""
        done = torch.full((sequences.shape[0],), sequences.shape[1] >= self.max_length,
                          dtype=torch.bool, device=sequences.device)
        if self.stop_strings is not None:
            done = done | self.stop_strings(sequences)
        if self.eos is not None:
            done = done | torch.isin(sequences[:, -1], self.eos)
        for criterion in self.extra:
            done = done | criterion_answer(criterion, sequences)
        return done


def criterion_answer(criterion, sequences: torch.Tensor) -> torch.Tensor:
    """A caller's criterion asked about the rows: (rows,) bool, from a bool tensor of that shape or one bool."""
    answer = criterion(sequences, None)
    if isinstance(answer, bool):
        return torch.full((sequences.shape[0],), answer, dtype=torch.bool, device=sequences.device)
    if isinstance(answer, torch.Tensor) and answer.dtype == torch.bool and tuple(answer.shape) in ((sequences.shape[0],), ()):
        return answer.to(sequences.device).expand(sequences.shape[0])
    shape = tuple(answer.shape) if isinstance(answer, torch.Tensor) else type(answer).__name__
    raise TypeError(f"each of stopping_criteria must return a bool or a bool tensor of shape (rows,) = "
                    f"({sequences.shape[0]},), got {shape} from {criterion!r}")


def check_stopping_criteria(criteria) -> list:
    """stopping_criteria: a list (e.g. transformers' StoppingCriteriaList) of (input_ids, scores) -> done callables."""
    if not isinstance(criteria, (list, tuple)):
        hint = "; pass it in a list: [criterion]" if callable(criteria) else ""
        raise TypeError(f"stopping_criteria must be a list of (input_ids, scores) -> bool tensor callables, "
                        f"got {type(criteria).__name__}{hint}")
    for criterion in criteria:
        if not callable(criterion):
            raise TypeError(f"each of stopping_criteria must be a callable (input_ids, scores) -> bool tensor, "
                            f"got {criterion!r}")
    return list(criteria)
