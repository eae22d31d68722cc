"""Constrained beam search (Hokamp & Liu 2017; Post & Vilar 2018), step for step transformers 4.55.4's
`_constrained_beam_search` and `ConstrainedBeamSearchScorer`, which 4.56 moved out of `generate()`.

The output must contain given phrases (`force_words_ids`, or `constraints` from decoding/constraints.py).
A step is a beam search step (log_softmax, processors, running score, the best 2 x num_beams
continuations; one ending in EOS is kept as finished only if it satisfies every constraint), and then
every beam is also offered the tokens that would advance its constraints. All candidates are sorted by
their constraint progress (bank) and score, and taken round-robin across banks, so beams that made
progress survive next to the likeliest ones. At the end a beam that misses a constraint is returned only
when too few beams meet them all.
"""

from collections.abc import Sequence
from contextlib import ExitStack

import torch
import torch.nn.functional as F

from decoding.beam_hypotheses import FinishedHypotheses, finalize
from decoding.cache import reorder_beams
from decoding.config import DecodingConfig
from decoding.constraints import ConstraintListState, constraints_from_force_words_ids
from decoding.generation import Prepared, prepare
from decoding.model_step import decode_step
from decoding.processors import Processor, run_processors

NEG = -1.0e9


def check_constrained_options(force_words_ids, constraints, *, num_beams: int, do_sample: bool = False,
                              num_beam_groups: int = 1, vocab_size: int | None = None) -> list:
    """The constraints to search with (force_words_ids read as 4.55.4 did, after `constraints`); a ValueError
    names the option and the fix for what 4.55.4 refused."""
    if do_sample:
        raise ValueError("force_words_ids/constraints (constrained beam search) does not sample; pass do_sample=False")
    if num_beam_groups != 1:
        raise ValueError("force_words_ids/constraints cannot be combined with num_beam_groups (diverse beam search); "
                         "pass num_beam_groups=1")
    if num_beams < 2:
        raise ValueError(f"force_words_ids/constraints run beam search and need num_beams > 1, got {num_beams}; "
                         "pass e.g. num_beams=4")
    found = list(constraints or [])
    if constraints is not None and (not isinstance(constraints, (list, tuple)) or any(
            not all(hasattr(c, name) for name in ("advance", "does_advance", "update", "remaining", "copy", "seqlen"))
            for c in found)):
        raise ValueError("constraints must be a list of decoding.constraints.PhrasalConstraint / DisjunctiveConstraint, "
                         f"got {constraints!r}")
    if force_words_ids is not None:
        found += constraints_from_force_words_ids(force_words_ids)
    if not found:
        raise ValueError("constrained beam search needs at least one constraint; pass force_words_ids=[[...]]")
    if vocab_size is not None:
        check_ids_in_vocabulary(found, vocab_size)
    return found


def constraint_ids(constraint) -> list[int]:
    """Every token id a constraint can ask for (a disjunctive one holds a list of phrases)."""
    ids = getattr(constraint, "token_ids", [])
    return [token_id for item in ids for token_id in (item if isinstance(item, list) else [item])]


def check_ids_in_vocabulary(constraints: list, vocab_size: int) -> None:
    """An id past the scores' last column would fail deep in torch's indexing: name it instead."""
    for constraint in constraints:
        outside = [token_id for token_id in constraint_ids(constraint) if token_id >= vocab_size]
        if outside:
            raise ValueError(f"force_words_ids/constraints hold token id {outside[0]}, past the model's vocabulary of "
                             f"{vocab_size} ids; use ids from the model's own tokenizer")


def completes_constraints(constraints: list, token_ids: list[int]) -> bool:
    """Whether the sequence (prompt included, as in 4.55.4) satisfies every constraint."""
    state = ConstraintListState([constraint.copy() for constraint in constraints])
    state.reset(token_ids)
    return state.completed


def offer_constraint_tokens(constraints: list, prompt_ids: torch.Tensor, all_scores: torch.Tensor,
                            beam_scores: torch.Tensor, beam_tokens: torch.Tensor, beam_rows: torch.Tensor, start: int):
    """One prompt's next beams, with the tokens that advance each beam's constraints offered too
    (4.55.4 `step_sentence_constraint`).

    prompt_ids: (num_beams, len) this prompt's beams before the step; all_scores: (num_beams, vocab) their
    accumulated scores; beam_*: (num_beams,) the ordinary beam step's choice, rows global (start = the
    prompt's first row). Returns the new (scores, tokens, rows), each (num_beams,).
    """
    num_beams = beam_rows.shape[0]
    chosen = torch.cat((prompt_ids[beam_rows - start], beam_tokens.unsqueeze(-1)), dim=-1)
    states = []
    for row in chosen.tolist():
        state = ConstraintListState(constraints)
        state.reset(row)
        states.append(state)
    seen = chosen.tolist()
    new_rows, new_tokens, new_scores = [], [], []
    for beam, previous in enumerate(prompt_ids):
        state = ConstraintListState(constraints)
        state.reset(previous.tolist())
        if state.completed:
            continue
        for token in torch.tensor(state.advance() or [], dtype=torch.long):
            advanced = state.copy(stateful=True)
            advanced.add(token.tolist())
            sequence = previous.tolist() + [token.item()]
            if sequence not in seen:
                seen.append(sequence)
                new_rows.append(start + beam)
                new_tokens.append(token)
                new_scores.append(all_scores[beam].take(token))
                states.append(advanced)
    if not new_rows:
        return beam_scores, beam_tokens, beam_rows
    scores = torch.cat((beam_scores, torch.stack(new_scores)), -1)
    tokens = torch.cat((beam_tokens, torch.stack(new_tokens)), -1)
    rows = torch.cat((beam_rows, torch.tensor(new_rows)), -1)
    order = round_robin_by_bank(torch.tensor([state.get_bank() for state in states]), scores)[:num_beams]
    return scores[order], tokens[order], rows[order]


def round_robin_by_bank(banks: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Candidate order: the best of each bank (most progress first), then the second of each, and so on.

    banks: (n,) int; scores: (n,) float32 -> (n,) indices.
    """
    indices = (banks * 100 + scores).sort(descending=True).indices
    sorted_banks = banks[indices].tolist()
    rank_in_bank, counter, current = [], -1, sorted_banks[0]
    for bank in sorted_banks:
        counter = counter + 1 if bank == current else 0
        current = bank
        rank_in_bank.append(counter)
    return indices[sorted(range(len(rank_in_bank)), key=rank_in_bank.__getitem__)]  # stable, as numpy's mergesort


def constrained_step(constraints, hypotheses: list[FinishedHypotheses], done: list[bool], sequences: torch.Tensor,
                     all_scores: torch.Tensor, top_scores: torch.Tensor, top_tokens: torch.Tensor,
                     top_sources: torch.Tensor, *, eos_ids: list[int], pad_token_id: int | None, prompt_len: int):
    """4.55.4 `ConstrainedBeamSearchScorer.process` for every prompt.

    sequences: (batch * num_beams, len); all_scores: (batch * num_beams, vocab); top_*: (batch, keep).
    Returns next scores, tokens, rows, each (batch * num_beams,).
    """
    batch, num_beams = len(hypotheses), sequences.shape[0] // len(hypotheses)
    cur_len = sequences.shape[1] + 1
    out_scores = torch.zeros((batch, num_beams), dtype=top_scores.dtype)
    out_tokens = torch.zeros((batch, num_beams), dtype=torch.long)
    out_rows = torch.zeros((batch, num_beams), dtype=torch.long)
    for b in range(batch):
        start = b * num_beams
        if done[b]:
            out_tokens[b, :] = pad_token_id
            out_rows[b, :] = start  # 4.55.4 points at row 0; a finished prompt's rows are never read again
            continue
        kept = 0
        for rank, (token, score, source) in enumerate(zip(top_tokens[b].tolist(), top_scores[b].tolist(),
                                                           top_sources[b].tolist())):
            row = start + source
            if token in eos_ids:
                if rank < num_beams and completes_constraints(constraints, sequences[row].tolist()):
                    hypotheses[b].add(sequences[row].clone(), score, generated_len=cur_len - prompt_len)
            else:
                out_scores[b, kept], out_tokens[b, kept], out_rows[b, kept] = top_scores[b, rank], token, row
                kept += 1
            if kept == num_beams:
                break
        out_scores[b], out_tokens[b], out_rows[b] = offer_constraint_tokens(
            constraints, sequences[start:start + num_beams], all_scores[start:start + num_beams], out_scores[b],
            out_tokens[b], out_rows[b], start)
        done[b] = done[b] or hypotheses[b].is_done(top_scores[b].max().item(), cur_len, prompt_len)
    device = sequences.device
    return out_scores.view(-1).to(device), out_tokens.view(-1).to(device), out_rows.view(-1).to(device)


def add_running_beams(constraints, hypotheses, done, sequences, beam_scores, num_return_sequences, prompt_len):
    """At the end: the beams that meet every constraint join the finished ones; if fewer than
    num_return_sequences do, every other beam joins too (4.55.4 `finalize`)."""
    num_beams = sequences.shape[0] // len(hypotheses)
    for b, finished in enumerate(hypotheses):
        if done[b]:
            continue
        rows = range(b * num_beams, (b + 1) * num_beams)
        meeting = [row for row in rows if completes_constraints(constraints, sequences[row].tolist())]
        for row in meeting:
            finished.add(sequences[row], beam_scores[row].item(), sequences.shape[1] - prompt_len)
        if len(meeting) < num_return_sequences:
            for row in rows:
                if row not in meeting:
                    finished.add(sequences[row], beam_scores[row].item(), sequences.shape[1] - prompt_len)


def constrained_beam_loop(model, prepared: Prepared, constraints: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Run constrained beam search on a prepared call (sequences (batch * num_beams, start_len))."""
    config, state = prepared.config, prepared.state
    sequences, logits = prepared.sequences, prepared.logits
    rows, prompt_len = sequences.shape
    num_beams = config.num_beams
    batch = rows // num_beams
    eos_ids, pad_token_id = config.eos_ids, config.effective_pad_token_id
    keep = max(2, 1 + len(eos_ids)) * num_beams
    beam_scores = torch.zeros((batch, num_beams), dtype=torch.float, device=sequences.device)
    beam_scores[:, 1:] = NEG  # only the first beam is live at the start
    beam_scores = beam_scores.view(-1)
    hypotheses = [FinishedHypotheses(num_beams, config.length_penalty, config.early_stopping,
                                     prepared.lengths.max_length) for _ in range(batch)]
    done = [False] * batch
    while True:
        processed = run_processors(prepared.processors, sequences, F.log_softmax(logits, dim=-1))
        all_scores = processed + beam_scores[:, None]
        vocab = all_scores.shape[-1]
        top_scores, top_ids = torch.topk(all_scores.view(batch, num_beams * vocab), keep, dim=1, largest=True,
                                         sorted=True)
        sources = (top_ids / vocab).long()  # 4.55.4 divides in floating point here
        beam_scores, next_tokens, next_rows = constrained_step(
            constraints, hypotheses, done, sequences, all_scores, top_scores, top_ids % vocab, sources,
            eos_ids=eos_ids, pad_token_id=pad_token_id, prompt_len=prompt_len)
        sequences = torch.cat([sequences[next_rows], next_tokens[:, None]], dim=-1)
        reorder_beams(state.cache, next_rows)
        if all(done) or bool(prepared.stop(sequences).all()):
            break
        logits = decode_step(model, next_tokens, state)
    add_running_beams(constraints, hypotheses, done, sequences, beam_scores, config.num_return_sequences, prompt_len)
    return finalize([[finished] for finished in hypotheses], config.num_return_sequences, prepared.lengths.max_length,
                    pad_token_id, eos_ids, sequences)


@torch.inference_mode()
def constrained_beam_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                            force_words_ids=None, constraints=None, num_beam_groups: int = 1,
                            config: DecodingConfig | None = None, tokenizer=None,
                            logits_processors: Sequence[Processor] = (), **settings) -> tuple[torch.Tensor, torch.Tensor]:
    """Constrained beam search like 4.55.4 `model.generate(input_ids, num_beams=..., force_words_ids=...)`.

    force_words_ids: [[ids], ...] phrases that must all appear, an entry [[ids], [ids]] meaning one of
    them; constraints: PhrasalConstraint / DisjunctiveConstraint objects. input_ids: (batch, seq_len),
    decoder-only batches left-padded. Returns (sequences (batch * num_return_sequences, len),
    sequences_scores (batch * num_return_sequences,)), best first per prompt.
    """
    with ExitStack() as scope:
        prepared = prepare(model, input_ids, attention_mask, tokenizer=tokenizer, logits_processors=logits_processors,
                           strategy=None, trace=False, settings=settings, scope=scope, config=config)
        found = check_constrained_options(force_words_ids, constraints, num_beams=prepared.config.num_beams,
                                          do_sample=prepared.config.do_sample, num_beam_groups=num_beam_groups,
                                          vocab_size=prepared.logits.shape[-1])
        return constrained_beam_loop(model, prepared, found)
