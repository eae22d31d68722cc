"""The 4.57.6 processors that ban, bias or clean scores: suppressed tokens, sequence_bias, the growing
end-of-text bonus (exponential_decay_length_penalty), remove_invalid_values and renormalize_logits.

Pure functions on `scores: (rows, vocab)` float32 that return a new tensor, each the arithmetic of
the transformers class it replaces (named in its docstring), so the scores agree to the bit.
"""

import math
from collections.abc import Sequence

import torch


def suppress(scores: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """-inf for `token_ids` (SuppressTokensLogitsProcessor; at the first position: ...AtBegin...)."""
    vocab = torch.arange(scores.shape[-1], device=scores.device)
    return torch.where(torch.isin(vocab, token_ids), -math.inf, scores)


def sequence_bias_tables(items: Sequence[tuple[tuple[int, ...], float]], vocab: int, device):
    """The biases as tensors: (vocab,) for one-token sequences, and per prefix length (prefixes, last tokens, biases).

    items: (token ids, bias) pairs; a sequence given twice keeps its last bias, as in a dict.
    """
    by_ids = dict(items)
    single = torch.zeros((vocab,), dtype=torch.float, device=device)
    ones = [(ids[0], bias) for ids, bias in by_ids.items() if len(ids) == 1]
    if ones:
        single[[i for i, _ in ones]] = torch.tensor([bias for _, bias in ones], device=device)
    groups: dict[int, list] = {}
    for ids, bias in by_ids.items():
        if len(ids) > 1:
            groups.setdefault(len(ids) - 1, []).append((ids, bias))
    multi = [(torch.tensor([ids[:-1] for ids, _ in group], device=device),
              torch.tensor([ids[-1] for ids, _ in group], device=device),
              torch.tensor([bias for _, bias in group], dtype=torch.float, device=device)) for group in groups.values()]
    return single, multi


def apply_sequence_bias(scores: torch.Tensor, input_ids: torch.Tensor, single: torch.Tensor, multi) -> torch.Tensor:
    """Add a bias to the tokens that would complete a given sequence (SequenceBiasLogitsProcessor).

    single, multi: from `sequence_bias_tables`. A longer sequence's last token gets its bias in the
    rows that end with the rest. Written as transformers 5's class: the biases are summed first,
    then added; a sequence counts as soon as its prefix fits in the ids (4.57.6 waited until the
    whole sequence did, one step later).
    """
    bias = torch.zeros_like(scores)
    bias += single
    for prefixes, last_tokens, biases in multi:
        if prefixes.shape[1] > input_ids.shape[1]:
            continue
        matching = (input_ids[:, None, -prefixes.shape[1]:] == prefixes).all(dim=-1)
        bias.index_add_(1, last_tokens, torch.where(matching, biases, 0.0).to(bias.dtype))
    return scores + bias


def apply_exponential_decay(scores: torch.Tensor, length: int, start: int, factor: float,
                            eos_ids: torch.Tensor) -> torch.Tensor:
    """Past `start` (an absolute length), raise the EOS scores by |score| * (factor ** steps past start - 1).

    ExponentialDecayLengthPenalty: ends the text softly instead of at a hard max_length. As in
    transformers 5, a banned (-inf) EOS stays banned (4.57.6 made it NaN). The multiplier is capped
    at 1e30 where Python's pow would overflow (4.57.6 raised OverflowError there).
    """
    if length <= start:
        return scores
    try:
        growth = min(pow(factor, length - start) - 1, 1e30)
    except OverflowError:
        growth = 1e30
    eos_scores = scores[:, eos_ids]
    penalties = torch.zeros_like(scores)
    penalties[:, eos_ids] = (torch.abs(eos_scores) * growth).masked_fill(~torch.isfinite(eos_scores), 0.0)
    return scores + penalties


def remove_invalid(scores: torch.Tensor) -> torch.Tensor:
    """NaN -> 0, +inf -> the largest float, -inf -> the smallest (InfNanRemoveLogitsProcessor)."""
    cleaned = torch.where(scores != scores, 0.0, scores)
    cleaned = torch.where(scores == math.inf, torch.finfo(scores.dtype).max, cleaned)
    return torch.where(scores == -math.inf, torch.finfo(scores.dtype).min, cleaned)


def renormalize(scores: torch.Tensor) -> torch.Tensor:
    """log_softmax again after the processors, so the scores are log-probabilities (LogitNormalization)."""
    return scores.log_softmax(dim=-1)
