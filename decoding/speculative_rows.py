"""Speculative decoding of a batch in which every row keeps all the guesses it accepted.

The aligned loop (decoding/speculative.py) keeps, at each call, the fewest guesses any running row
accepted, so one row that copies nothing holds back a row that copies a whole paragraph. Here each
row moves on by its own count. Every row is still fed the same number of positions per call (one
rectangular forward pass); the positions a row did not keep become holes: its attention mask is 0
there and its position ids skip them, so its next token sees exactly its own text, numbered
0..n-1, as in plain decoding. The cache is cut back after the row that kept the most; when holes
take more than a quarter of it, each row's kept positions are gathered to the right end, which
turns the holes into left padding (the layout of a padded prompt).

This applies when no row's answer depends on the others' lengths: a decoder-only model whose cache
layers nopipe preallocates, processors that never read the sequences (the sampling warpers,
suppress_tokens...), finished rows padded (EOS ids and a pad id), no trace and no stopping_criteria
of the caller's (they may read the whole batch), prompt-lookup guesses.
Otherwise the aligned loop runs; both give plain decoding's tokens.
"""

from collections.abc import Sequence

import torch

from decoding.cache import PreallocatedLayer
from decoding.model_step import ModelState, decode_ahead
from decoding.processor_chain import reads_ids
from decoding.processors import Processor, run_processors
from decoding.speculative import Acceptance, lookup_draft, next_width
from decoding.stopping import StopCriteria

HOLES_BEFORE_CLOSING = 0.25  # the share of the cache that may be holes before rows are gathered to the right


def rows_can_keep_their_own(state: ModelState, processors: Sequence[Processor], stop: StopCriteria,
                            pad_token_id: int | None, tracer, rows: int) -> bool:
    """Whether a batch may accept guesses per row (the conditions in the module docstring)."""
    layers = getattr(state.cache, "layers", None)
    return (rows > 1 and not state.is_encoder_decoder and tracer is None and stop.eos is not None
            and pad_token_id is not None and not stop.extra and bool(layers)
            and all(type(layer) is PreallocatedLayer for layer in layers)
            and not any(reads_ids(processor) for processor in processors))


class Rows:
    """Each row's text so far (a python list, for lookups and stop checks) and whether it is finished."""

    def __init__(self, sequences: torch.Tensor, stop: StopCriteria, max_length: int, pad_token_id: int):
        self.texts = sequences.tolist()
        self.start_length = sequences.shape[1]
        self.finished = [False] * len(self.texts)
        self.stop, self.pad_token_id = stop, pad_token_id
        self.buffer = torch.full((len(self.texts), max_length), pad_token_id, dtype=torch.long,
                                 device=sequences.device)
        self.buffer[:, :self.start_length] = sequences

    def running(self) -> list[int]:
        return [row for row, done in enumerate(self.finished) if not done]

    def append(self, row: int, token: int) -> bool:
        """Add a token to one row; True when the row has just finished."""
        text = self.texts[row]
        text.append(token)
        self.buffer[row, len(text) - 1] = token
        self.finished[row] = bool(self.stop(self.buffer[row:row + 1, :len(text)])[0])
        return self.finished[row]

    def sequences(self) -> torch.Tensor:
        """(rows, longest) like plain decoding's: finished rows padded with the pad token."""
        return self.buffer[:, :max(map(len, self.texts))].clone()


def per_row_speculation(model, sequences: torch.Tensor, state: ModelState, logits: torch.Tensor, *,
                        processors: Sequence[Processor], stop: StopCriteria, pad_token_id: int, max_length: int,
                        num_tokens: int, choose, acceptance: Acceptance | None = None) -> torch.Tensor:
    """Prompt-lookup decoding of a batch, each row keeping its own guesses; returns plain decoding's sequences.

    sequences: (rows, start_len) the left-padded prompts after the prefill; logits: (rows, vocab).
    """
    acceptance = acceptance if acceptance is not None else Acceptance()
    rows = Rows(sequences, stop, max_length, pad_token_id)
    first = choose(run_processors(processors, sequences[:, :0], logits))
    for row, token in enumerate(first.tolist()):
        rows.append(row, token)
    width = num_tokens
    while rows.running():
        guesses = {row: lookup_draft(rows.texts[row], width) for row in rows.running()}
        fed = feed_tokens(rows, guesses, width=max(map(len, guesses.values())))
        ahead = decode_ahead(model, fed, state)  # (rows, K + 1, vocab)
        scores = run_processors(processors, fed[:, :0].repeat_interleave(fed.shape[1], 0), ahead.flatten(0, 1))
        choices = choose(scores).view(fed.shape).tolist()
        kept = {row: walk_row(rows, row, choices[row], guesses[row]) for row in guesses}
        count(acceptance, guesses, kept)
        width = next_width(width, num_tokens, all_kept=all(kept[row] == len(guesses[row]) for row in guesses))
        keep_positions(state, kept, rows, fed_width=fed.shape[1])
    return rows.sequences()


def feed_tokens(rows: Rows, guesses: dict[int, list[int]], width: int) -> torch.Tensor:
    """(rows, 1 + width): each row's newest token, then its guesses; short rows and finished rows are
    filled with their newest token (read by the model, kept by nobody)."""
    fed = []
    for row, text in enumerate(rows.texts):
        guess = guesses.get(row, [])
        fed.append([text[-1]] + guess + [text[-1]] * (width - len(guess)))
    return torch.tensor(fed, dtype=torch.long, device=rows.buffer.device)


def walk_row(rows: Rows, row: int, choices: list[int], guess: list[int]) -> int:
    """Append the row's choices while they confirm its guesses; returns how many guesses it kept.

    choices[j] is the token chosen after the newest token and guesses 0..j-1. The choice at the
    first guess that differs (or after the last guess) is the model's own next token, appended too.
    """
    for position, token in enumerate(choices):
        if rows.append(row, token):
            return position
        if position >= len(guess) or token != guess[position]:
            return position
    return len(choices) - 1


def count(acceptance: Acceptance, guesses: dict[int, list[int]], kept: dict[int, int]) -> None:
    acceptance.calls += 1
    acceptance.proposed += sum(map(len, guesses.values()))
    acceptance.accepted += sum(kept.values())
    acceptance.tokens += max(kept.values()) + 1


def keep_positions(state: ModelState, kept: dict[int, int], rows: Rows, fed_width: int) -> None:
    """After a call that fed `fed_width` positions: each running row keeps its newest token and the
    guesses it kept; the rest become holes. The cache ends after the running row that kept the most."""
    cache_length = state.cache.get_seq_length()
    before = cache_length - fed_width
    running = rows.running()
    keep = [1 + kept[row] if row in running else 0 for row in range(len(rows.texts))]
    length = before + max(keep)
    mask = state.attention_mask if state.attention_mask is not None else torch.ones(
        (len(keep), cache_length), dtype=torch.long, device=rows.buffer.device)
    mask = mask[:, :length].clone()
    new = torch.arange(max(keep), device=mask.device)[None, :]
    mask[:, before:] = (new < torch.tensor(keep, device=mask.device)[:, None]).long()
    state.attention_mask = mask
    state.next_positions = state.next_positions - fed_width + torch.tensor(keep, device=mask.device)[:, None]
    for layer in state.cache.layers:
        layer.crop(length)
    if (mask == 0).sum() > HOLES_BEFORE_CLOSING * mask.numel():
        close_holes(state)


def close_holes(state: ModelState) -> None:
    """Gather each row's kept positions to the right end of the cache: holes become left padding."""
    mask = state.attention_mask
    kept = mask.sum(dim=1)
    length = int(kept.max())
    # Stable sort: holes (0) first, then the kept positions in their order; the last `length` are kept.
    order = torch.sort(mask, dim=1, stable=True).indices[:, -length:]
    state.attention_mask = torch.gather(mask, 1, order)
    for layer in state.cache.layers:
        layer.gather_positions(order)
