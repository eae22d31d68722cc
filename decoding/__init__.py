"""nopipe's own generation loop, replacing `model.generate()`.

    from decoding import generate, stream
    out = generate(model, input_ids, attention_mask, max_new_tokens=40, num_beams=4)
    out.sequences  # shaped like model.generate()'s return

Greedy, sampling (temperature, top-k, top-p, min-p) and beam search, token for token identical
to transformers 5 `generate()`; logits processors and strategies are plain functions, so a caller
can add one (`logits_processors=[...]`, `strategy=...`) without touching the loop.
"""

from decoding.config import DEFAULT_NEW_TOKENS, DecodingConfig
from decoding.generate import GenerationOutput, generate
from decoding.processors import (
    apply_bad_words,
    apply_min_length,
    apply_min_p,
    apply_no_repeat_ngram,
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    force_tokens,
)
from decoding.stopping import StopCriteria
from decoding.strategies import greedy, sample
from decoding.streaming import stream
from decoding.trace import Candidate, RowTrace, TraceStep, format_trace

__all__ = [
    "DEFAULT_NEW_TOKENS", "StopCriteria", "DecodingConfig", "GenerationOutput", "generate", "stream", "greedy", "sample", "format_trace",
    "Candidate", "RowTrace", "TraceStep", "apply_bad_words", "apply_min_length", "apply_min_p",
    "apply_no_repeat_ngram", "apply_repetition_penalty", "apply_temperature", "apply_top_k", "apply_top_p",
    "force_tokens",
]
