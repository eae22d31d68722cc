"""What `generate()` returns besides the sequences when asked: the scores (`output_scores`) and the raw
logits (`output_logits`) of every step, as 4.57.6's `generate(return_dict_in_generate=True)` does.

The loops already hand each step's raw logits and processed scores to a tracer; `with_recording`
wraps the caller's tracer (or none) in one that also keeps those tensors, so the loops need no
second hook. Per step: (rows, vocab), rows = batch * beams for beam search (the processed scores are
then the log-probabilities after the processors, before the beam's running score is added, as in
transformers), batch * num_return_sequences otherwise.
"""

import torch

from decoding.trace import Tracer


class StepRecorder:
    """A tracer that keeps each step's scores and/or logits, and passes the step on to the caller's tracer."""

    def __init__(self, tracer: Tracer | None, keep_scores: bool, keep_logits: bool):
        self.tracer = tracer
        self.scores: list[torch.Tensor] | None = [] if keep_scores else None
        self.logits: list[torch.Tensor] | None = [] if keep_logits else None

    def record(self, raw: torch.Tensor, processed: torch.Tensor, chosen: torch.Tensor,
               parents: torch.Tensor | None = None) -> None:
        """raw, processed: (rows, vocab), copied (the loop reuses neither, but a caller may modify them)."""
        if self.tracer is not None:
            self.tracer.record(raw, processed, chosen, parents)
        if self.scores is not None:
            self.scores.append(processed.clone())
        if self.logits is not None:
            self.logits.append(raw.clone())

    @property
    def steps(self):
        """The caller's trace, or None: what `GenerationOutput.trace` holds."""
        return self.tracer.steps if self.tracer is not None else None


def with_recording(tracer: Tracer | None, config) -> Tracer | StepRecorder | None:
    """`tracer` itself when neither output_scores nor output_logits is set, else a recorder around it."""
    if not (config.output_scores or config.output_logits):
        return tracer
    return StepRecorder(tracer, config.output_scores, config.output_logits)


def recorded_outputs(tracer) -> dict:
    """{"scores": tuple of (rows, vocab), "logits": ...} for the fields of GenerationOutput that were asked for."""
    if not isinstance(tracer, StepRecorder):
        return {}
    return {name: tuple(kept) for name, kept in (("scores", tracer.scores), ("logits", tracer.logits)) if kept is not None}
