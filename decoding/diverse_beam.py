"""Diverse beam search (Vijayakumar et al. 2016), step for step transformers 4.55.4's `_group_beam_search`
with its `HammingDiversityLogitsProcessor`, which 4.56 moved out of `generate()` to a hub repository.

The `num_beams` beams of a prompt are split into `num_beam_groups` groups of `num_beams //
num_beam_groups`. One model call per step feeds every beam; then the groups choose in turn, each an
ordinary beam search step over its own beams, except that a token already chosen at this step by an
earlier group of the same prompt costs `diversity_penalty` per time it was chosen. Each group keeps
its own finished hypotheses; the answer is the best of all groups.
"""

from collections.abc import Sequence
from contextlib import ExitStack

import torch
import torch.nn.functional as F

from decoding.beam_hypotheses import FinishedHypotheses, finalize
from decoding.cache import reorder_beams
from decoding.config import DecodingConfig
from decoding.generation import Prepared, prepare
from decoding.model_step import decode_step
from decoding.processors import Processor, run_processors

NEG = -1.0e9  # transformers' starting score of the beams that are not live yet


def check_diverse_beam_options(num_beam_groups, diversity_penalty, *, num_beams: int, do_sample: bool = False) -> None:
    """What 4.55.4 checked for group beam search (GenerationConfig.validate, HammingDiversityLogitsProcessor)."""
    if isinstance(num_beam_groups, bool) or not isinstance(num_beam_groups, int) or num_beam_groups < 1:
        raise ValueError(f"num_beam_groups must be a positive integer, got {num_beam_groups!r}")
    if isinstance(diversity_penalty, bool) or not isinstance(diversity_penalty, (int, float)) or diversity_penalty < 0:
        raise ValueError(f"diversity_penalty must be a number >= 0, got {diversity_penalty!r}")
    if num_beams < 2:
        raise ValueError(f"num_beam_groups/diversity_penalty are for beam search; got num_beams={num_beams}, "
                         "pass num_beams > 1 (e.g. num_beams=4, num_beam_groups=2)")
    if do_sample:
        raise ValueError("diverse beam search (num_beam_groups, diversity_penalty) does not sample; pass do_sample=False")
    if num_beam_groups > num_beams or num_beams % num_beam_groups != 0:
        raise ValueError(f"num_beams ({num_beams}) must be divisible by num_beam_groups ({num_beam_groups}); "
                         "pick num_beams as a multiple of num_beam_groups")
    if diversity_penalty == 0:
        raise ValueError(f"num_beam_groups={num_beam_groups} (diverse beam search) needs diversity_penalty > 0 "
                         "(with 0 every group finds the same beams); pass e.g. diversity_penalty=1.0")
    if num_beam_groups < 2:
        raise ValueError(f"diversity_penalty={diversity_penalty} needs num_beam_groups > 1 (one group has nothing to "
                         "differ from); pass e.g. num_beam_groups=2")


def is_diverse_beam(num_beam_groups, diversity_penalty, num_beams: int) -> bool:
    """Whether generate() 4.55.4 would run group beam search for these settings."""
    return num_beams > 1 and ((num_beam_groups or 1) != 1 or (diversity_penalty or 0.0) != 0.0)


def group_rows(batch: int, num_beams: int, group: int, group_size: int, device) -> torch.Tensor:
    """The flat rows (batch * group_size,) of one group's beams, prompt by prompt."""
    starts = torch.arange(batch, device=device)[:, None] * num_beams + group * group_size
    return (starts + torch.arange(group_size, device=device)[None, :]).reshape(-1)


def apply_hamming_diversity(scores: torch.Tensor, current_tokens: torch.Tensor, group: int, group_size: int,
                            num_beams: int, diversity_penalty: float) -> torch.Tensor:
    """Penalise the tokens earlier groups of the same prompt chose at this step, once per choice.

    scores: (batch * group_size, vocab) this group's; current_tokens: (batch * num_beams,) this step's
    choices so far (the earlier groups' entries are filled).
    """
    if group == 0:
        return scores
    batch, vocab = current_tokens.shape[0] // num_beams, scores.shape[-1]
    earlier = current_tokens.view(batch, num_beams)[:, :group * group_size]
    frequency = torch.zeros((batch, vocab), dtype=torch.int64, device=scores.device)
    frequency.scatter_add_(1, earlier, torch.ones_like(earlier))
    penalty = diversity_penalty * frequency  # float32, as `penalty * torch.bincount(...)` in transformers
    return (scores.view(batch, group_size, vocab) - penalty[:, None, :]).view(scores.shape)


def choose_group_beams(hypotheses: list[FinishedHypotheses], done: list[bool], group_ids: torch.Tensor,
                       top_scores: torch.Tensor, top_tokens: torch.Tensor, top_sources: torch.Tensor, *,
                       eos_ids: list[int], pad_token_id: int | None, prompt_len: int):
    """One group's beam step for every prompt (4.55.4 `BeamSearchScorer.process`).

    group_ids: (batch * group_size, len) the group's sequences; top_*: (batch, 2 * group_size) the best
    continuations, best first, with the beam (0..group_size) each continues. A continuation ending in
    EOS among the first group_size becomes a finished hypothesis; the best others are the next beams.
    Returns next scores, tokens and source rows (into group_ids), each (batch * group_size,).
    """
    batch, group_size = len(hypotheses), group_ids.shape[0] // len(hypotheses)
    cur_len = group_ids.shape[1] + 1
    scores = torch.zeros((batch, group_size), dtype=top_scores.dtype)
    tokens = torch.zeros((batch, group_size), dtype=torch.long)
    sources = torch.zeros((batch, group_size), dtype=torch.long)
    for b in range(batch):
        if done[b]:
            # transformers pads a finished prompt's beams; they stay on the prompt's own rows here.
            tokens[b, :] = pad_token_id
            sources[b, :] = b * group_size
            continue
        kept = 0
        for rank, (token, score, source) in enumerate(zip(top_tokens[b].tolist(), top_scores[b].tolist(),
                                                           top_sources[b].tolist())):
            row = b * group_size + source
            if token in eos_ids:
                if rank < group_size:
                    hypotheses[b].add(group_ids[row].clone(), score, generated_len=cur_len - prompt_len)
            else:
                scores[b, kept], tokens[b, kept], sources[b, kept] = top_scores[b, rank], token, row
                kept += 1
            if kept == group_size:
                break
        done[b] = done[b] or hypotheses[b].is_done(top_scores[b].max().item(), cur_len, prompt_len)
    device = group_ids.device
    return scores.view(-1).to(device), tokens.view(-1).to(device), sources.view(-1).to(device)


def group_beam_loop(model, prepared: Prepared, *, num_beam_groups: int, diversity_penalty: float):
    """Run diverse beam search on a prepared call (sequences (batch * num_beams, start_len)).

    Returns (sequences (batch * num_return_sequences, len), scores (batch * num_return_sequences,)).
    """
    config, state, processors = prepared.config, prepared.state, prepared.processors
    sequences, logits = prepared.sequences, prepared.logits
    rows, prompt_len = sequences.shape
    num_beams, device = config.num_beams, sequences.device
    batch, group_size = rows // num_beams, num_beams // num_beam_groups
    eos_ids, pad_token_id = config.eos_ids, config.effective_pad_token_id
    keep = max(2, 1 + len(eos_ids)) * group_size
    beam_scores = torch.full((batch, num_beams), NEG, dtype=torch.float, device=device)
    beam_scores[:, ::group_size] = 0  # one live beam per group at the start
    beam_scores = beam_scores.view(-1)
    hypotheses = [[FinishedHypotheses(group_size, config.length_penalty, config.early_stopping,
                                      prepared.lengths.max_length) for _ in range(num_beam_groups)] for _ in range(batch)]
    done = [[False] * num_beam_groups for _ in range(batch)]
    while True:
        current_tokens = torch.zeros(rows, dtype=sequences.dtype, device=device)
        reorder = torch.zeros(rows, dtype=torch.long, device=device)
        log_probs = F.log_softmax(logits, dim=-1)
        for group in range(num_beam_groups):
            index = group_rows(batch, num_beams, group, group_size, device)
            group_ids = sequences[index]
            diverse = log_probs.clone()
            diverse[index] = apply_hamming_diversity(log_probs[index], current_tokens, group, group_size, num_beams,
                                                     diversity_penalty)
            # The processors run on every row (their per-row state, e.g. left padding, covers all rows); only
            # this group's rows are kept. Each works row by row, so the other rows change nothing.
            group_scores = run_processors(processors, sequences, diverse)[index]
            vocab = group_scores.shape[-1]
            total = (group_scores + beam_scores[index, None]).view(batch, group_size * vocab)
            top_scores, top_ids = torch.topk(total, keep, dim=1, largest=True, sorted=True)
            group_done = [done[b][group] for b in range(batch)]
            next_scores, next_tokens, sources = choose_group_beams(
                [hypotheses[b][group] for b in range(batch)], group_done, group_ids, top_scores, top_ids % vocab,
                top_ids // vocab, eos_ids=eos_ids, pad_token_id=pad_token_id, prompt_len=prompt_len)
            for b in range(batch):
                done[b][group] = group_done[b]
            beam_scores[index] = next_scores
            sequences[index] = group_ids[sources]
            current_tokens[index] = next_tokens
            reorder[index] = num_beams * (sources // group_size) + group * group_size + sources % group_size
        sequences = torch.cat([sequences, current_tokens[:, None]], dim=-1)
        reorder_beams(state.cache, reorder)
        if all(all(row) for row in done) or bool(prepared.stop(sequences).all()):
            break
        logits = decode_step(model, current_tokens, state)
    add_running_beams(hypotheses, done, sequences, beam_scores, group_size, prompt_len)
    return finalize(hypotheses, config.num_return_sequences, prepared.lengths.max_length, pad_token_id, eos_ids,
                    sequences)


def add_running_beams(hypotheses, done, sequences: torch.Tensor, beam_scores: torch.Tensor, group_size: int,
                      prompt_len: int) -> None:
    """At the end, the beams of every group not done yet compete with its finished hypotheses.

    sequences: (batch * num_beams, len); beam_scores: (batch * num_beams,) summed log-probabilities.
    """
    num_beam_groups = len(hypotheses[0])
    for b, groups in enumerate(hypotheses):
        for group, group_hypotheses in enumerate(groups):
            if done[b][group]:
                continue
            for beam in range(group_size):
                row = (b * num_beam_groups + group) * group_size + beam
                group_hypotheses.add(sequences[row], beam_scores[row].item(), sequences.shape[1] - prompt_len)


@torch.inference_mode()
def diverse_beam_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                        num_beam_groups: int, diversity_penalty: float, config: DecodingConfig | None = None,
                        tokenizer=None, logits_processors: Sequence[Processor] = (),
                        **settings) -> tuple[torch.Tensor, torch.Tensor]:
    """Diverse beam search like 4.55.4 `model.generate(input_ids, num_beams=..., num_beam_groups=...,
    diversity_penalty=..., **settings)`.

    input_ids: (batch, seq_len), decoder-only batches left-padded; settings: DecodingConfig fields,
    num_beams among them. Returns (sequences (batch * num_return_sequences, len), sequences_scores
    (batch * num_return_sequences,)), best first per prompt, as generate() returns them.
    """
    with ExitStack() as scope:
        prepared = prepare(model, input_ids, attention_mask, tokenizer=tokenizer, logits_processors=logits_processors,
                           strategy=None, trace=False, settings=settings, scope=scope, config=config)
        check_diverse_beam_options(num_beam_groups, diversity_penalty, num_beams=prepared.config.num_beams,
                                   do_sample=prepared.config.do_sample)
        return group_beam_loop(model, prepared, num_beam_groups=num_beam_groups, diversity_penalty=diversity_penalty)
