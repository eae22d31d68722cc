"""Token-by-token decoding: greedy and sampling, plus any strategy a caller plugs in.

A strategy is a function `(scores: (rows, vocab) float32) -> next_tokens: (rows,) long`, called on
the processed scores of each step. `greedy` and `sample` are the two transformers has; a caller
can pass e.g. typical sampling as `generate(..., strategy=my_fn)` without touching the loop.

`decode_tokens` is transformers' `_sample` loop: process the last logits, choose, pad the rows
that already finished, append, check the stop criteria, feed the new tokens back.
"""

from collections.abc import Callable, Iterator, Sequence

import torch

from decoding.model_step import ModelState, decode_step
from decoding.processors import Processor, run_processors
from decoding.stopping import StopCriteria
from decoding.trace import Tracer

Strategy = Callable[[torch.Tensor], torch.Tensor]


def greedy(scores: torch.Tensor) -> torch.Tensor:
    """The best token of each row. scores: (rows, vocab) -> (rows,)."""
    return torch.argmax(scores, dim=-1)


def sample(scores: torch.Tensor) -> torch.Tensor:
    """Draw one token per row from softmax(scores). scores: (rows, vocab) -> (rows,).

    One `torch.multinomial(probs, 1)` call per step on the global generator, exactly as
    transformers does, so the same seed draws the same tokens.
    """
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, num_samples=1).squeeze(1)


def greedy_or_sample(do_sample: bool) -> Strategy:
    """The token choice the settings ask for when no strategy is given."""
    return sample if do_sample else greedy


def pad_if_finished(next_tokens: torch.Tensor, unfinished: torch.Tensor, stop: StopCriteria,
                    pad_token_id: int | None) -> torch.Tensor:
    """A finished row gets the pad token instead of its choice (only when there are EOS ids, as in transformers)."""
    if stop.eos is None or pad_token_id is None:
        return next_tokens
    return next_tokens * unfinished + pad_token_id * (1 - unfinished)


def append_tokens(sequences: torch.Tensor, next_tokens: torch.Tensor, unfinished: torch.Tensor, stop: StopCriteria,
                  pad_token_id: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step's tokens appended as every token loop appends them: finished rows padded, then the stop
    criteria asked which rows end now. Returns (sequences, unfinished, the tokens appended)."""
    next_tokens = pad_if_finished(next_tokens, unfinished, stop, pad_token_id)
    sequences = torch.cat([sequences, next_tokens[:, None]], dim=-1)
    return sequences, unfinished & ~stop(sequences), next_tokens


def decode_tokens(model, sequences: torch.Tensor, state: ModelState, logits: torch.Tensor, *,
                  processors: Sequence[Processor], choose: Strategy, stop: StopCriteria,
                  pad_token_id: int | None, tracer: Tracer | None = None) -> Iterator[torch.Tensor]:
    """Grow `sequences` one token per step; yields the sequences (rows, len) after each step.

    sequences: (rows, start_len) the prompt (or decoder start); logits: (rows, vocab) from the prefill.
    A finished row keeps receiving `pad_token_id` while others go on (only when there are EOS ids,
    as in transformers). Stops when every row is finished.
    """
    unfinished = torch.ones(sequences.shape[0], dtype=torch.long, device=sequences.device)
    while True:
        scores = run_processors(processors, sequences, logits)
        next_tokens = pad_if_finished(choose(scores), unfinished, stop, pad_token_id)
        if tracer is not None:
            tracer.record(logits, scores, next_tokens)
        sequences, unfinished, _ = append_tokens(sequences, next_tokens, unfinished, stop, pad_token_id)
        yield sequences
        if unfinished.max() == 0:
            return
        logits = decode_step(model, next_tokens, state)
