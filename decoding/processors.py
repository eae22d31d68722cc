"""Logits processors: small pure functions that reshape next-token scores before a token is chosen.

Every function takes `scores: (rows, vocab)` float32 and returns a new tensor of the same shape;
none writes into its input, so a trace can keep the scores from before. The arithmetic is the
one of transformers' LogitsProcessor classes, operation for operation, because sampling under a
fixed seed only reproduces `generate()` when the probabilities agree to the last bit.

`build_processors` picks the ones the settings switch on, in transformers' order:
repetition penalty, no-repeat n-gram, bad words, min length, min new tokens, forced BOS,
forced EOS, then the caller's own processors, then (sampling only) temperature, top-h, top-k, top-p,
min-p. The options 4.57.6 has on top of these (typical_p, sequence_bias, guidance, the watermark...)
take their places in the same chain: decoding/processor_chain.py lists the whole order.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from decoding.bans import Ban, Processor, forbid, join_bans
from decoding.config import DecodingConfig
from decoding.prefix_constraint import prefix_constraint_processors
from decoding.processor_chain import (
    encoder_ngram_processors,
    extra_warpers,
    final_processors,
    leading_processors,
    scores_only,
    trailing_processors,
)
from decoding.warpers import apply_top_h


def apply_repetition_penalty(scores: torch.Tensor, input_ids: torch.Tensor, penalty: float,
                             skip_before: torch.Tensor | None = None) -> torch.Tensor:
    """Make every token already in `input_ids` less likely: negative scores * penalty, positive / penalty.

    scores: (rows, vocab); input_ids: (rows, seq_len); skip_before: (rows,) or None, the number of
    leading positions to ignore per row (left padding is not text, so it is not penalised).
    """
    vocab = scores.shape[-1]
    if skip_before is not None:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        input_ids = input_ids.masked_fill(positions[None, :] < skip_before[:, None], vocab)
    # Ids past the output vocabulary (skipped pads, or an embedding larger than the LM head) land in
    # one spare column that is dropped at the end.
    input_ids = input_ids.clamp(max=vocab)
    padded = F.pad(scores, (0, 1))
    seen = torch.gather(padded, 1, input_ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return padded.scatter(1, input_ids, seen)[..., :vocab]


def apply_no_repeat_ngram(scores: torch.Tensor, input_ids: torch.Tensor, ngram_size: int) -> torch.Tensor:
    """Ban every token that would repeat an n-gram already present in `input_ids`."""
    return forbid(scores, repeated_ngrams(input_ids, scores, ngram_size))


def repeated_ngrams(input_ids: torch.Tensor, scores: torch.Tensor, ngram_size: int) -> list[torch.Tensor]:
    """The bans of apply_no_repeat_ngram.

    scores: (rows, vocab); input_ids: (rows, seq_len). The last n-1 tokens are the prefix of the
    n-gram the next token would complete; every earlier window starting with that prefix bans its
    last token.
    """
    seq_len = input_ids.shape[-1]
    if seq_len < ngram_size:
        return []
    prefix = input_ids[:, seq_len + 1 - ngram_size:]  # (rows, n-1)
    windows = input_ids.unfold(dimension=1, size=ngram_size, step=1)  # (rows, seq_len-n+1, n)
    matches = (windows[..., :-1] == prefix.unsqueeze(1)).all(dim=-1)  # (rows, seq_len-n+1)
    vocab = scores.shape[-1]
    banned = scores.new_zeros((scores.shape[0], vocab + 1), dtype=torch.bool)
    banned.scatter_(1, torch.where(matches, windows[..., -1].clamp(max=vocab), vocab), True)
    return [banned[:, :vocab]]


def apply_bad_words(scores: torch.Tensor, input_ids: torch.Tensor, single_ids: torch.Tensor,
                    multi: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Ban the tokens that would complete a forbidden sequence."""
    return forbid(scores, bad_words(input_ids, scores, single_ids, multi))


def bad_words(input_ids: torch.Tensor, scores: torch.Tensor, single_ids: torch.Tensor,
              multi: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """The bans of apply_bad_words.

    single_ids: (n,) one-token sequences, always banned. multi: groups of same-length sequences as
    (prefixes (m, k), last_tokens (m,)); a last token is banned in the rows whose ids end with its prefix.
    """
    bans = [single_ids] if len(single_ids) else []
    for prefixes, last_tokens in multi:
        if prefixes.shape[1] > input_ids.shape[1]:
            continue
        matching = (input_ids[:, None, -prefixes.shape[1]:] == prefixes).all(dim=-1)  # (rows, m)
        # index_add, not indexed assignment: two sequences may share their last token.
        hits = torch.zeros_like(scores).index_add_(1, last_tokens, matching.to(scores.dtype))
        bans.append(hits > 0)
    return bans


def apply_min_length(scores: torch.Tensor, length: int, min_length: int, eos_ids: torch.Tensor) -> torch.Tensor:
    """Forbid EOS while the sequence (`length` tokens so far) is shorter than `min_length`."""
    return forbid(scores, eos_while_short(length, min_length, eos_ids))


def eos_while_short(length: int, min_length: int, eos_ids: torch.Tensor) -> list[torch.Tensor]:
    """The bans of apply_min_length."""
    return [eos_ids] if length < min_length else []


def force_tokens(scores: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """Leave only `token_ids` possible: score 0 for them, -inf for the rest (forced BOS / EOS)."""
    forced = torch.full_like(scores, -math.inf)
    forced[:, token_ids] = 0
    return forced


def apply_temperature(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sharpen (T < 1) or flatten (T > 1) the distribution: scores / T."""
    return scores / temperature


def apply_top_k(scores: torch.Tensor, top_k: int, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Keep the `top_k` best tokens per row (ties with the k-th are kept too), -inf elsewhere."""
    k = min(max(top_k, min_tokens_to_keep), scores.shape[-1])
    kth_best = torch.topk(scores, k)[0][..., -1, None]
    return scores.masked_fill(scores < kth_best, -math.inf)


def apply_top_p(scores: torch.Tensor, top_p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Keep the smallest set of best tokens whose probability reaches `top_p` (nucleus sampling).

    scores: (rows, vocab). Sorting ascending and dropping tokens whose cumulative probability is
    <= 1 - top_p is transformers' formulation; it keeps the token that crosses the threshold.
    """
    sorted_scores, sorted_ids = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -min_tokens_to_keep:] = 0
    remove = remove_sorted.scatter(1, sorted_ids, remove_sorted)
    return scores.masked_fill(remove, -math.inf)


def apply_min_p(scores: torch.Tensor, min_p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Drop tokens less likely than `min_p` times the best token's probability."""
    probs = torch.softmax(scores, dim=-1)
    threshold = min_p * probs.amax(dim=-1, keepdim=True)
    remove = probs < threshold
    keep = torch.topk(probs, min(min_tokens_to_keep, probs.shape[-1]), dim=-1).indices
    remove.scatter_(-1, keep, False)
    return scores.masked_fill(remove, -math.inf)


def _bad_word_groups(bad_words_ids, eos_ids: list[int], vocab: int, device):
    """Split forbidden sequences into one-token ids and per-length (prefixes, last tokens) groups."""
    # transformers never bans EOS on its own through bad_words_ids.
    sequences = [list(seq) for seq in bad_words_ids if not (len(seq) == 1 and seq[0] in eos_ids)]
    too_large = sorted({i for seq in sequences for i in seq if i >= vocab})
    if too_large:
        raise ValueError(f"bad_words_ids contains ids {too_large} outside the model's vocabulary of {vocab} tokens")
    single = torch.tensor([seq[0] for seq in sequences if len(seq) == 1], dtype=torch.long, device=device)
    by_length = {}
    for seq in sequences:
        if len(seq) > 1:
            by_length.setdefault(len(seq), []).append(seq)
    multi = [(torch.tensor([s[:-1] for s in group], device=device), torch.tensor([s[-1] for s in group], device=device))
             for group in by_length.values()]
    return single, multi


def build_processors(config: DecodingConfig, *, prompt_length: int, max_length: int, min_length: int,
                     vocab_size: int, device, skip_before: torch.Tensor | None = None,
                     user_processors: Sequence[Processor] = (), encoder_input_ids: torch.Tensor | None = None,
                     guidance: Processor | None = None) -> list[Processor]:
    """The processors these settings switch on, in transformers' order, as (input_ids, scores) callables.

    Built once per call, so the per-step work is only the tensor arithmetic. `skip_before` (rows,)
    are the left-padding lengths the repetition penalty ignores. User processors go after the
    built-in ones and before the sampling warpers, where `generate(logits_processor=...)` puts them.
    encoder_input_ids: (batch, len) the model's input (the prompt of a decoder-only model), read by
    the encoder_* options; guidance: the classifier-free guidance processor, first when given.
    decoding/processor_chain.py places the 4.57.6 options among transformers 5's core ones.
    """
    c = config
    eos = torch.tensor(c.eos_ids, dtype=torch.long, device=device)
    processors: list[Processor] = [guidance] if guidance is not None else []
    processors.extend(leading_processors(c, encoder_input_ids, vocab_size, device))
    if c.repetition_penalty != 1.0:
        processors.append(lambda ids, s: apply_repetition_penalty(s, ids, c.repetition_penalty, skip_before))
    if c.no_repeat_ngram_size > 0:
        processors.append(Ban(lambda ids, s: repeated_ngrams(ids, s, c.no_repeat_ngram_size)))
    processors.extend(encoder_ngram_processors(c, encoder_input_ids))
    # min_length and min_new_tokens (transformers' two processors, one after the other) both forbid
    # EOS below a length: one check at the longer of the two gives the same scores with one copy less.
    min_total = max(min_length, prompt_length + c.min_new_tokens if c.min_new_tokens else 0)
    if c.bad_words_ids is not None:
        single, multi = _bad_word_groups(c.bad_words_ids, c.eos_ids, vocab_size, device)
        processors.append(Ban(lambda ids, s: bad_words(ids, s, single, multi)))
    if min_total > 0 and len(eos):
        processors.append(Ban(lambda ids, s: eos_while_short(ids.shape[-1], min_total, eos)))
    processors.extend(prefix_constraint_processors(c))
    if c.forced_bos_token_id is not None:
        bos = torch.tensor([c.forced_bos_token_id], device=device)
        processors.append(lambda ids, s: force_tokens(s, bos) if ids.shape[-1] == 1 else s)
    if c.forced_eos_token_id is not None:
        forced_eos = torch.tensor(_ids(c.forced_eos_token_id), device=device)
        processors.append(lambda ids, s: force_tokens(s, forced_eos) if ids.shape[-1] == max_length - 1 else s)
    processors.extend(trailing_processors(c, prompt_length=prompt_length, vocab=vocab_size, device=device))
    processors.extend(user_processors)
    if c.do_sample:
        # Beam sampling must leave one non-EOS candidate per beam, hence more tokens to keep.
        keep = len(c.eos_ids) + 1 if c.num_beams > 1 and c.eos_ids else (2 if c.num_beams > 1 else 1)
        if c.temperature != 1.0:
            processors.append(scores_only(lambda ids, s: apply_temperature(s, c.temperature)))
        if c.top_h is not None:
            processors.append(scores_only(lambda ids, s: apply_top_h(s, c.top_h)))
        if c.top_k:
            processors.append(scores_only(lambda ids, s: apply_top_k(s, c.top_k, keep)))
        if c.top_p < 1.0:
            processors.append(scores_only(lambda ids, s: apply_top_p(s, c.top_p, keep)))
        if c.min_p is not None:
            processors.append(scores_only(lambda ids, s: apply_min_p(s, c.min_p, keep)))
        processors.extend(extra_warpers(c, keep))
    processors.extend(final_processors(c, vocab_size, device))
    return join_bans(processors)


def _ids(value) -> list[int]:
    return [value] if isinstance(value, int) else list(value)


def run_processors(processors: Sequence[Processor], input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Apply each processor in turn. input_ids: (rows, seq_len); scores: (rows, vocab)."""
    for processor in processors:
        scores = processor(input_ids, scores)
    return scores
