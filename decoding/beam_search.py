"""Beam search, step for step the algorithm of transformers 5 `_beam_search`, so the beams are identical.

Per prompt we keep `num_beams` running beams and the `num_beams` best finished hypotheses.
One step:
  1. log_softmax of the last logits, then the processors, then add each beam's running score;
  2. take the best `max(2, 1 + n_eos) * num_beams` continuations over all beams x vocab (more
     than num_beams, so enough survive when some of them end in EOS);
  3. the best ones that did not stop become the new running beams (cache rows reordered to match);
  4. the ones that stopped, if among the top num_beams, compete for the finished slots with
     score sum_logprobs / generated_length ** length_penalty;
  5. stop when no running beam can still beat the worst finished one (`early_stopping` decides how
     optimistic that check is), when all finished slots are full and early_stopping=True, or
     when every candidate hit a stop criterion (e.g. max_length).
Tensors are (batch, beams, ...) inside and flattened to (batch * beams, ...) for the model.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from decoding.cache import reorder_beams
from decoding.model_step import ModelState, decode_step
from decoding.processors import Processor, run_processors
from decoding.stopping import StopCriteria
from decoding.trace import Tracer

NEG = -1.0e9  # transformers' "impossible" score for beams and hypotheses


def gather_beams(tensor: torch.Tensor, beam_indices: torch.Tensor) -> torch.Tensor:
    """Pick beams per prompt. tensor: (batch, beams, ...); beam_indices: (batch, k) -> (batch, k, ...)."""
    while beam_indices.dim() < tensor.dim():
        beam_indices = beam_indices.unsqueeze(-1)
    return torch.take_along_dim(tensor, beam_indices, dim=1)


def length_normalised(scores: torch.Tensor, generated_length: int, length_penalty: float) -> torch.Tensor:
    """A hypothesis' score: summed log-probs / length ** length_penalty (> 0 favours long outputs)."""
    return scores / (generated_length ** length_penalty)


def can_still_improve(improvable: torch.Tensor, running_scores: torch.Tensor, finished_scores: torch.Tensor,
                      is_finished: torch.Tensor, cur_len: int, max_length: int, prompt_len: int,
                      early_stopping, length_penalty: float) -> torch.Tensor:
    """(batch, 1) whether the best running beam could still beat the worst finished hypothesis.

    early_stopping=False estimates the best running beam's final score at the current length;
    "never" with a positive length penalty at max_length (the most optimistic, canonical beam search).
    """
    if early_stopping == "never" and length_penalty > 0.0:
        best_length = max_length - prompt_len
    else:
        best_length = cur_len - prompt_len
    best_running = running_scores[:, :1] / (best_length ** length_penalty)
    worst_finished = torch.where(is_finished, torch.min(finished_scores, dim=1, keepdim=True)[0], NEG)
    return improvable & torch.any(best_running > worst_finished, dim=-1, keepdim=True)


def beam_search(model, sequences: torch.Tensor, state: ModelState, logits: torch.Tensor, *,
                processors: Sequence[Processor], stop: StopCriteria, num_beams: int, max_length: int,
                length_penalty: float, early_stopping, num_return_sequences: int, eos_ids: list[int],
                pad_token_id: int | None, do_sample: bool = False,
                tracer: Tracer | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run beam search from the prefill `logits` (batch * beams, vocab).

    sequences: (batch * beams, prompt_len), each prompt repeated num_beams times.
    Returns (sequences (batch * num_return_sequences, len), scores (batch * num_return_sequences,)),
    best first per prompt, padded to the longest returned hypothesis.
    """
    rows, prompt_len = sequences.shape
    batch = rows // num_beams
    device = sequences.device
    keep = max(2, 1 + len(eos_ids)) * num_beams
    top_num_beams = torch.arange(keep, device=device) < num_beams  # (keep,) candidates allowed to finish
    # transformers fills unused positions with `pad_token_id or eos[0]`: a pad id of 0 counts as unset.
    fill = (pad_token_id or eos_ids[0]) if eos_ids else -1

    running = torch.full((batch, num_beams, max_length), fill, dtype=torch.int64, device=device)
    running[:, :, :prompt_len] = sequences.view(batch, num_beams, prompt_len)
    finished = running.clone()
    # Only the first beam is live at the start, otherwise all beams would pick the same tokens.
    running_scores = torch.zeros((batch, num_beams), dtype=torch.float, device=device)
    running_scores[:, 1:] = NEG
    finished_scores = torch.full((batch, num_beams), NEG, dtype=torch.float, device=device)
    is_finished = torch.zeros((batch, num_beams), dtype=torch.bool, device=device)
    improvable = torch.ones((batch, 1), dtype=torch.bool, device=device)
    # Which flat row each generated token came from: gives the cache reordering and the output lengths.
    running_origin = torch.full((batch, num_beams, max_length - prompt_len), -1, dtype=torch.int32, device=device)
    finished_origin = running_origin.clone()
    batch_offset = torch.arange(batch, device=device).view(-1, 1) * num_beams

    cur_len = prompt_len
    flat_running = sequences
    while True:
        if cur_len > prompt_len:
            flat_running = running[:, :, :cur_len].reshape(rows, cur_len)
            logits = decode_step(model, flat_running[:, -1], state)

        # 1. scores of every continuation, accumulated over the beam
        log_probs = run_processors(processors, flat_running, F.log_softmax(logits, dim=-1))
        vocab = log_probs.shape[-1]
        accumulated = (log_probs.view(batch, num_beams, vocab) + running_scores[:, :, None]).view(batch, -1)

        # 2. the best `keep` continuations over beams x vocab
        if do_sample:
            top_ids = torch.multinomial(F.softmax(accumulated, dim=-1), num_samples=keep)
            top_scores = torch.gather(accumulated, 1, top_ids)
            top_scores, order = top_scores.sort(dim=-1, descending=True)
            top_ids = top_ids.gather(-1, order)
        else:
            top_scores, top_ids = torch.topk(accumulated, k=keep)
        source_beam = top_ids // vocab  # (batch, keep)
        top_sequences = gather_beams(running, source_beam)
        top_sequences[:, :, cur_len] = top_ids % vocab
        top_origin = gather_beams(running_origin, source_beam)
        top_origin[:, :, cur_len - prompt_len] = (source_beam + batch_offset).to(top_origin.dtype)

        # 3. which candidates stop here (EOS, max_length, stop strings)
        stops = stop(top_sequences[:, :, :cur_len + 1].reshape(batch * keep, cur_len + 1)).view(batch, keep)

        # 4. the best non-stopped candidates are the next running beams
        still_running_scores = top_scores + stops.to(torch.float32) * NEG
        next_beams = torch.topk(still_running_scores, k=num_beams)[1]
        running = gather_beams(top_sequences, next_beams)
        running_scores = gather_beams(still_running_scores, next_beams)
        running_origin = gather_beams(top_origin, next_beams)

        # 5. stopped candidates among the top num_beams compete for the finished slots
        just_finished = stops & top_num_beams[None, :]
        candidate_scores = length_normalised(top_scores, cur_len + 1 - prompt_len, length_penalty)
        all_full = torch.all(is_finished, dim=-1, keepdim=True) & (early_stopping is True)
        candidate_scores = candidate_scores + all_full.to(torch.float32) * NEG
        candidate_scores = candidate_scores + (~improvable).to(torch.float32) * NEG
        candidate_scores = candidate_scores + (~just_finished) * NEG
        merged_scores = torch.cat((finished_scores, candidate_scores), dim=1)
        best = torch.topk(merged_scores, k=num_beams)[1]
        finished = gather_beams(torch.cat((finished, top_sequences), dim=1), best)
        finished_scores = gather_beams(merged_scores, best)
        finished_origin = gather_beams(torch.cat((finished_origin, top_origin), dim=1), best)
        is_finished = gather_beams(torch.cat((is_finished, just_finished), dim=1), best)

        if tracer is not None:
            chosen = running[:, :, cur_len].reshape(-1)
            parents = running_origin[:, :, cur_len - prompt_len].reshape(-1) - batch_offset.repeat_interleave(
                num_beams).to(torch.int32)
            tracer.record(logits, log_probs, chosen, parents)

        # the cache rows follow their beams
        reorder_beams(state.cache, running_origin[:, :, cur_len - prompt_len].reshape(-1))
        cur_len += 1
        improvable = can_still_improve(improvable, running_scores, finished_scores, is_finished, cur_len,
                                       max_length, prompt_len, early_stopping, length_penalty)
        exists_open_beam = ~(torch.all(is_finished) & (early_stopping is True))
        if not bool(torch.any(improvable) & exists_open_beam & ~torch.all(stops)):
            break

    sequences = finished[:, :num_return_sequences].reshape(batch * num_return_sequences, max_length)
    scores = finished_scores[:, :num_return_sequences].reshape(-1)
    origin = finished_origin[:, :num_return_sequences].reshape(batch * num_return_sequences, -1)
    # Cut to the longest returned hypothesis: count the steps that wrote a token.
    generated = int((origin + 1).bool().sum(dim=1).max())
    return sequences[:, :prompt_len + generated], scores
