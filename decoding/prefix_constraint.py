"""`prefix_allowed_tokens_fn`: the caller names, for each row and step, the only tokens it may write next
(constrained generation: a grammar, a list of entity names), as transformers 5's PrefixConstrainedLogitsProcessor.

The function is called as `fn(prompt_index, row_ids)` with the row's ids so far (1-D) and returns the
allowed token ids. Rows are laid out `per_prompt` per prompt (beams or samples), prompt i owning rows
i * per_prompt ... (i + 1) * per_prompt - 1; transformers 5 counts them as max(num_beams,
num_return_sequences), and so do we (4.57.6 used num_beams, which misnumbered the prompts of
several samples). When every row of a prompt has only -inf left among its allowed tokens, they are
forced with score 0, so the constraint still holds.
"""

import math
from collections.abc import Callable

import torch


def allowed_ids(fn: Callable, prompt: int, row_ids: torch.Tensor, vocab: int) -> list[int]:
    """The caller's allowed ids for one row, checked: a non-empty list of ids the model can write."""
    allowed = fn(prompt, row_ids)
    if isinstance(allowed, torch.Tensor):
        allowed = allowed.tolist()
    if not isinstance(allowed, (list, tuple, range)) or len(allowed) == 0:
        raise ValueError(f"prefix_allowed_tokens_fn returned {allowed!r} for prompt {prompt}; it must return a "
                         "non-empty list of token ids (an empty one means the constraint cannot be met)")
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab for i in allowed):
        raise ValueError(f"prefix_allowed_tokens_fn returned ids outside the model's vocabulary of {vocab} tokens "
                         f"for prompt {prompt}: {list(allowed)[:10]}")
    return list(allowed)


def apply_prefix_constraint(scores: torch.Tensor, input_ids: torch.Tensor, fn: Callable, per_prompt: int) -> torch.Tensor:
    """-inf for every token `fn` does not allow in a row; a prompt whose allowed tokens are all -inf gets them at 0."""
    mask = torch.full_like(scores, -math.inf)
    for row in range(scores.shape[0]):
        mask[row, allowed_ids(fn, row // per_prompt, input_ids[row], scores.shape[-1])] = 0
    constrained = scores + mask
    prompts = scores.shape[0] // per_prompt
    stuck = constrained.amax(dim=-1).isneginf().view(prompts, -1).all(dim=-1, keepdim=True)
    return torch.where(stuck.repeat_interleave(per_prompt, dim=0), mask, constrained)


def prefix_constraint_processors(config) -> list:
    """The constraint processor when `prefix_allowed_tokens_fn` is set (after the minimum lengths, before forced BOS)."""
    fn = config.prefix_allowed_tokens_fn
    if fn is None:
        return []
    per_prompt = max(config.num_beams, config.num_return_sequences)
    return [lambda ids, s: apply_prefix_constraint(s, ids, fn, per_prompt)]
