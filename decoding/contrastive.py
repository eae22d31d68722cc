"""Contrastive search (Su et al. 2022, "A Contrastive Framework for Neural Text Generation"), step for step
transformers 4.55.4's `_contrastive_search`, which 4.56 moved out of `generate()` to a hub repository.

Each step:
  1. the processors on the last logits, softmax, and the `top_k` most likely tokens are the candidates;
  2. every candidate is fed to the model (the cache repeated `top_k` times, one forward for all);
  3. each candidate scores (1 - alpha) * its probability - alpha * its degeneration penalty, the
     largest cosine similarity between its last hidden state and those of the text so far;
  4. the best candidate is appended, and its cache row, hidden state and next logits are kept, so the
     candidate's forward pass is also the next step's.
penalty_alpha = 0 would be greedy search; transformers only picks this mode for penalty_alpha > 0 and
top_k > 1, with do_sample=False and num_beams=1 (`check_contrastive_options`).
"""

from collections.abc import Sequence

import torch

from decoding.config import DecodingConfig
from decoding.processors import Processor, run_processors
from decoding.strategy_call import StrategyCall, call_processors, forward_hidden, grow_mask, prepare_call
from decoding.token_loop import append_tokens


def check_contrastive_options(penalty_alpha, top_k, *, do_sample: bool = False, num_beams: int = 1,
                              num_return_sequences: int = 1) -> None:
    """The values and combinations contrastive search needs; a ValueError names the option and the fix."""
    if isinstance(penalty_alpha, bool) or not isinstance(penalty_alpha, (int, float)) or not 0 <= penalty_alpha <= 1:
        raise ValueError(f"penalty_alpha must be a number in [0, 1] (0.6 is typical), got {penalty_alpha!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 2:
        raise ValueError(f"penalty_alpha={penalty_alpha} switches on contrastive search, which needs top_k > 1 "
                         f"candidates per step, got top_k={top_k!r}; pass e.g. top_k=4")
    if do_sample:
        raise ValueError("contrastive search (penalty_alpha) chooses tokens deterministically; "
                         "pass do_sample=False or drop penalty_alpha")
    if num_beams != 1:
        raise ValueError(f"contrastive search (penalty_alpha) keeps one sequence per prompt, got num_beams={num_beams}; "
                         "pass num_beams=1 or drop penalty_alpha")
    if num_return_sequences != 1:
        raise ValueError("contrastive search (penalty_alpha) returns one sequence per prompt, got "
                         f"num_return_sequences={num_return_sequences}; pass num_return_sequences=1")


def is_contrastive(penalty_alpha, top_k, do_sample: bool, num_beams: int) -> bool:
    """Whether generate() 4.55.4 would run contrastive search for these settings."""
    return (penalty_alpha is not None and penalty_alpha > 0 and top_k is not None and top_k > 1
            and not do_sample and num_beams == 1)


def degeneration_penalty(context_hidden: torch.Tensor, next_hidden: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
    """Each candidate's largest cosine similarity with the text so far (padding excluded).

    context_hidden: (batch * k, seq, hidden); next_hidden: (batch * k, 1, hidden);
    context_mask: (batch * k, seq), 0 at padding -> (batch * k,).
    """
    norm_context = context_hidden / context_hidden.norm(dim=2, keepdim=True)
    norm_next = next_hidden / next_hidden.norm(dim=2, keepdim=True)
    cosine = torch.matmul(norm_context, norm_next.transpose(1, 2)).squeeze(-1)
    # transformers pushes padding down with the dtype's minimum rather than masking it out.
    cosine = cosine + (1 - context_mask.to(cosine.dtype)) * torch.finfo(cosine.dtype).min
    return cosine.max(dim=-1).values


def rank_candidates(context_hidden: torch.Tensor, next_hidden: torch.Tensor, top_k_probs: torch.Tensor,
                    context_mask: torch.Tensor, penalty_alpha: float) -> torch.Tensor:
    """The index of the best candidate per prompt (transformers' `_ranking_fast`).

    top_k_probs: (batch, k) the candidates' probabilities -> (batch,) in [0, k).
    """
    penalty = degeneration_penalty(context_hidden, next_hidden, context_mask)
    score = (1.0 - penalty_alpha) * top_k_probs.reshape(-1) - penalty_alpha * penalty
    return score.view(top_k_probs.shape).max(dim=-1).indices


def pick_rows(tensor: torch.Tensor, chosen: torch.Tensor, k: int) -> torch.Tensor:
    """The chosen candidate's row of each prompt. tensor: (batch * k, ...), chosen: (batch,) -> (batch, ...)."""
    return tensor.view(-1, k, *tensor.shape[1:])[torch.arange(chosen.shape[0], device=tensor.device), chosen]


def repeat_encoder_outputs(encoder_outputs, k: int):
    """The encoder outputs with each prompt's row repeated k times, for the candidates' forward pass."""
    repeated = encoder_outputs.__class__(**encoder_outputs)
    for key, value in encoder_outputs.items():
        if isinstance(value, torch.Tensor):
            repeated[key] = value.repeat_interleave(k, dim=0)
    return repeated


def contrastive_loop(model, call: StrategyCall, processors: Sequence[Processor], logits: torch.Tensor,
                     last_hidden: torch.Tensor, *, penalty_alpha: float, top_k: int) -> torch.Tensor:
    """Grow call.sequences by contrastive search from the prefill's `logits` (batch, vocab) and
    `last_hidden` (batch, start_len, hidden). Returns the sequences (batch, len)."""
    state, sequences, k = call.state, call.sequences, top_k
    batch = sequences.shape[0]
    pad_token_id = call.config.effective_pad_token_id
    unfinished = torch.ones(batch, dtype=torch.long, device=sequences.device)
    encoder_outputs = mask = None
    if state.is_encoder_decoder:
        encoder_outputs = repeat_encoder_outputs(state.encoder_outputs, k)
        mask = None if state.attention_mask is None else state.attention_mask.repeat_interleave(k, dim=0)
        context_mask = torch.ones_like(sequences)
    else:
        mask = state.attention_mask  # (batch, len) or None (no padding); the candidates' token is added below
        context_mask = mask if mask is not None else torch.ones_like(sequences)
    context_mask = context_mask.repeat_interleave(k, dim=0)
    positions = state.next_positions
    while True:
        scores = run_processors(processors, sequences, logits)
        top_k_probs, top_k_ids = torch.topk(torch.softmax(scores, dim=-1), dim=-1, k=k)

        state.cache.batch_repeat_interleave(k)
        if not state.is_encoder_decoder:
            mask = grow_mask(mask)
        candidate_mask = mask if state.is_encoder_decoder or mask is None else mask.repeat_interleave(k, dim=0)
        candidate_positions = None if positions is None else positions.repeat_interleave(k, dim=0)
        candidate_logits, hidden = forward_hidden(model, top_k_ids.view(-1, 1), state, attention_mask=candidate_mask,
                                                  positions=candidate_positions, encoder_outputs=encoder_outputs)
        next_hidden = hidden[-1]  # (batch * k, 1, hidden)
        chosen = rank_candidates(last_hidden.repeat_interleave(k, dim=0), next_hidden, top_k_probs, context_mask,
                                 penalty_alpha)
        context_mask = grow_mask(context_mask)

        next_tokens = top_k_ids[torch.arange(batch, device=chosen.device), chosen]
        last_hidden = torch.cat([last_hidden, pick_rows(next_hidden, chosen, k)], dim=1)
        state.cache.batch_select_indices(chosen + torch.arange(batch, device=chosen.device) * k)
        logits = pick_rows(candidate_logits, chosen, k)
        if positions is not None:
            positions = positions + 1

        sequences, unfinished, next_tokens = append_tokens(sequences, next_tokens, unfinished, call.stop, pad_token_id)
        if unfinished.max() == 0:
            return sequences


@torch.inference_mode()
def contrastive_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                       penalty_alpha: float, top_k: int, config: DecodingConfig | None = None, tokenizer=None,
                       logits_processors: Sequence[Processor] = (), **settings) -> torch.Tensor:
    """Contrastive search like 4.55.4 `model.generate(input_ids, penalty_alpha=..., top_k=..., **settings)`.

    input_ids: (batch, seq_len), decoder-only batches left-padded; settings: the other DecodingConfig
    fields (max_new_tokens, repetition_penalty, eos_token_id...). Returns the sequences (batch, len),
    shaped like generate()'s.
    """
    call = prepare_call(model, input_ids, attention_mask, settings=settings, config=config, tokenizer=tokenizer,
                        logits_processors=logits_processors)
    check_contrastive_options(penalty_alpha, top_k, do_sample=call.config.do_sample, num_beams=call.config.num_beams,
                              num_return_sequences=call.config.num_return_sequences)
    state = call.state
    positions = state.next_positions
    if positions is not None:
        state.next_positions = positions[:, -1:] + 1
    logits, hidden = forward_hidden(model, call.sequences, state, attention_mask=state.attention_mask,
                                    positions=positions, encoder_outputs=state.encoder_outputs)
    processors = call_processors(call, logits.shape[-1])
    return contrastive_loop(model, call, processors, logits, hidden[-1], penalty_alpha=penalty_alpha, top_k=top_k)
