"""The sampling warpers of 4.57.6 that transformers 5's core set lacks: typical, epsilon and eta sampling.

Like decoding/processors.py: pure functions on `scores: (rows, vocab)` float32 that return a new
tensor, written operation for operation as transformers' TypicalLogitsWarper, EpsilonLogitsWarper and
EtaLogitsWarper, because sampling under a seed only matches when the probabilities agree to the bit.
`min_tokens_to_keep` keeps that many best tokens whatever the cut (beam sampling needs one non-EOS).
"""

import math

import torch


def apply_typical(scores: torch.Tensor, mass: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Keep the tokens whose surprise (-log p) is closest to the entropy, until their mass reaches `mass`.

    Typical sampling (Meister et al., 2022): the most likely tokens are not always the most
    "typical" ones of a distribution, and repetitive text comes from always taking the former.
    """
    normalized = torch.nn.functional.log_softmax(scores, dim=-1)
    p = torch.exp(normalized)
    entropy = -(normalized * p).nansum(-1, keepdim=True)
    shifted = torch.abs((-normalized) - entropy)
    sorted_shifted, sorted_ids = torch.sort(shifted, descending=False)
    cumulative = scores.gather(-1, sorted_ids).softmax(dim=-1).cumsum(dim=-1)
    last = (cumulative < mass).sum(dim=1)
    last.clamp_(max=sorted_shifted.shape[-1] - 1)
    remove_sorted = sorted_shifted > sorted_shifted.gather(1, last.view(-1, 1))
    remove_sorted[..., :min_tokens_to_keep] = 0
    remove = remove_sorted.scatter(1, sorted_ids, remove_sorted)
    return scores.masked_fill(remove, -math.inf)


def _below_keep_threshold(scores: torch.Tensor, min_tokens_to_keep: int) -> torch.Tensor:
    """(rows, vocab) True where a token is worse than the `min_tokens_to_keep`-th best (so it may be cut)."""
    k = min(min_tokens_to_keep, scores.size(-1))
    return scores < torch.topk(scores, k)[0][..., -1, None]


def apply_epsilon_cutoff(scores: torch.Tensor, epsilon: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Drop the tokens whose probability is below `epsilon` (truncation sampling, Hewitt et al., 2022)."""
    remove = scores.softmax(dim=-1) < epsilon
    return scores.masked_fill(remove & _below_keep_threshold(scores, min_tokens_to_keep), -math.inf)


def apply_eta_cutoff(scores: torch.Tensor, eta: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Drop the tokens less likely than min(eta, sqrt(eta) * exp(-entropy)) (eta sampling, Hewitt et al., 2022).

    The cut adapts to the distribution: a flat one (high entropy) keeps more of its tail. The
    entropy is torch.distributions.Categorical's, as in transformers, and eta a float32 tensor.
    """
    eta_tensor = torch.tensor(eta, device=scores.device)
    probabilities = scores.softmax(dim=-1)
    entropy = torch.distributions.Categorical(logits=scores).entropy()
    threshold = torch.min(eta_tensor, torch.sqrt(eta_tensor) * torch.exp(-entropy))[..., None]
    remove = probabilities < threshold
    return scores.masked_fill(remove & _below_keep_threshold(scores, min_tokens_to_keep), -math.inf)


TOP_H_CANDIDATES = 100  # top-h looks at the 100 best tokens only, as transformers' TopHLogitsWarper


def apply_top_h(scores: torch.Tensor, top_h: float) -> torch.Tensor:
    """Keep the best tokens while their summed entropy terms stay within `top_h` times the entropy (top-h sampling).

    transformers 5's TopHLogitsWarper (not in 4.57.6): over the 100 best tokens, keep each token whose
    cumulative -p log p is at most top_h * H (the best one always), so a confident distribution keeps
    few tokens and a flat one many.
    """
    keep = torch.zeros_like(scores, dtype=torch.bool)
    best_scores, best_ids = torch.topk(scores, min(TOP_H_CANDIDATES, scores.shape[-1]), dim=-1, largest=True, sorted=True)
    distribution = torch.distributions.Categorical(logits=best_scores)
    probs = distribution.probs
    budget = (distribution.entropy() * top_h).unsqueeze(-1)
    selected = torch.cumsum(-probs * torch.log(probs), dim=-1) <= budget
    selected[:, 0] = True
    keep.scatter_(dim=1, index=best_ids, src=selected)
    return scores.masked_fill(~keep, -math.inf)
