"""A record of why each token won: the best candidates before and after the processors, and the pick.

With `generate(..., trace=True)` every step adds a `TraceStep`; each row of the batch gets a
`RowTrace` with the top candidates of the model's own distribution (`before`), of the distribution
after penalties, bans and warpers (`after`), and the chosen token. Reading the two lists side by
side shows e.g. a repetition penalty demoting the favourite, or top-k cutting the tail.
Recording costs a softmax, a top-k and a copy to Python per step, so it is off by default.
"""

from dataclasses import dataclass

import torch

DEFAULT_TOP = 5


@dataclass(frozen=True)
class Candidate:
    token_id: int
    prob: float


@dataclass(frozen=True)
class RowTrace:
    """One row at one step.

    For beam search, `before`/`after` describe running beam r, and `chosen`/`parent` the new beam r
    after the step: old beam `parent` extended by `chosen`.
    """

    before: list[Candidate]
    after: list[Candidate]
    chosen: int
    parent: int | None = None


@dataclass(frozen=True)
class TraceStep:
    step: int
    rows: list[RowTrace]


def top_candidates(scores: torch.Tensor, k: int) -> list[list[Candidate]]:
    """The k most probable tokens of each row. scores: (rows, vocab) logits or log-probs."""
    probs = torch.softmax(scores.float(), dim=-1)
    values, ids = torch.topk(probs, min(k, probs.shape[-1]), dim=-1)
    return [[Candidate(int(i), float(p)) for i, p in zip(row_ids, row_values)]
            for row_ids, row_values in zip(ids.tolist(), values.tolist())]


class Tracer:
    """Collects TraceSteps; the loops call `record` once per step when tracing is on."""

    def __init__(self, top: int = DEFAULT_TOP):
        self.top = top
        self.steps: list[TraceStep] = []

    def record(self, raw: torch.Tensor, processed: torch.Tensor, chosen: torch.Tensor,
               parents: torch.Tensor | None = None) -> None:
        """raw, processed: (rows, vocab); chosen: (rows,); parents: (rows,) beam indices or None."""
        before = top_candidates(raw, self.top)
        after = top_candidates(processed, self.top)
        parent_list = parents.tolist() if parents is not None else [None] * len(before)
        rows = [RowTrace(b, a, int(c), p) for b, a, c, p in zip(before, after, chosen.tolist(), parent_list)]
        self.steps.append(TraceStep(len(self.steps), rows))


def make_tracer(trace) -> Tracer | None:
    """`trace=True` keeps the top 5 candidates, `trace=<int>` that many, False/0/None nothing."""
    if trace is None or trace is False:
        return None
    if trace is True:
        return Tracer()
    if isinstance(trace, int) and trace > 0:
        return Tracer(trace)
    raise ValueError(f"trace must be True/False or a positive number of candidates to keep, got {trace!r}")


def format_trace(steps: list[TraceStep], tokenizer=None, row: int = 0) -> str:
    """A readable table of one row's steps: chosen token, then top candidates before -> after."""

    def name(token_id: int) -> str:
        return repr(tokenizer.decode([token_id])) if tokenizer is not None else str(token_id)

    lines = []
    for step in steps:
        r = step.rows[row]
        before = ", ".join(f"{name(c.token_id)} {c.prob:.3f}" for c in r.before)
        after = ", ".join(f"{name(c.token_id)} {c.prob:.3f}" for c in r.after)
        lines.append(f"step {step.step}: chose {name(r.chosen)}\n  before: {before}\n  after:  {after}")
    return "\n".join(lines)
