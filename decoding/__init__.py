"""nopipe's own generation loop, replacing `model.generate()`.

    from decoding import generate, stream
    out = generate(model, input_ids, attention_mask, max_new_tokens=40, num_beams=4)
    out.sequences  # shaped like model.generate()'s return

Greedy, sampling (temperature, top-k, top-p, min-p) and beam search, token for token identical
to transformers 5 `generate()`; logits processors and strategies are plain functions, so a caller
can add one (`logits_processors=[...]`, `strategy=...`) without touching the loop.

Where things are, in the order a call meets them:

    generation.py        generate(): check, resolve settings, prefill, run a loop, shape the output
    config.py            DecodingConfig: every setting, where each came from, explain()
    option_checks.py     the range and combination checks of the settings
    lengths.py           max_new_tokens / max_length -> absolute lengths; prompt and output must fit
    memory.py            refuse a call whose cache cannot fit in the device's memory
    model_step.py        the model side: start (encoder, cache), prefill, decode_step
    llama_step.py, gpt2_step.py   lean forward passes for Llama and GPT-2 decoders (the model's modules,
                         fewer operations); lean_layers.py: what they share, and which model takes which
    joined_projections.py  projections that read one input as one int8 product (exact): an encoder's
                         query/key/value, an int8 Llama's q/k/v and gate/up
    cache.py             the KV cache, preallocated; shared_cross_attention.py: one copy per input
    processor_chain.py   the processors of a call, in transformers' order
    bans.py              the processors that only forbid tokens, joined into one copy of the scores
    processors.py, warpers.py, biases.py, encoder_processors.py, prefix_constraint.py,
    guidance.py, watermark.py      the processors themselves, each a pure function on the scores
    search.py            a search owns the step loop (generate(search=...)); the built-in ones
    token_loop.py        the greedy / sampling / your-strategy loop (decode_tokens)
    speculative.py       speculative decoding (prompt lookup, an assistant): plain decoding's tokens
                         (greedy) or distribution (sampling), several per call
    speculative_rows.py  the same for a batch whose rows keep their own guesses; row_positions.py:
                         each row's own decoder positions in an encoder-decoder model;
                         assistant_rows.py: an assistant's guesses for such a batch
    beam_search.py       beam search, step for step transformers' algorithm
    strategy_options.py  which strategy transformers 4.56 moved to the hub the settings ask for;
    moved_searches.py    those strategies as searches: contrastive.py, dola.py, diverse_beam.py,
                         constrained_beam.py (+ constraints.py, beam_hypotheses.py, strategy_call.py)
    token_healing.py     token_healing: the prompt's last token re-chosen, as 4.57.6 did
    stopping.py, time_limit.py     when a row ends: max_length, EOS, stop strings, max_time,
                         the caller's stopping_criteria
    streaming.py         stream(): the token loop's text as it grows
    trace.py, recording.py         why each token won; output_scores / output_logits
    warn.py              warnings that point at the caller's line
"""

from importlib import import_module

# Public name -> the module that defines it. Imported on first use, so that `import decoding` (and the
# command's --help, which imports decoding/warn.py) costs nothing until the loop is needed.
EXPORTS = {
    "DEFAULT_NEW_TOKENS": "config", "DecodingConfig": "config",
    "GenerationOutput": "generation", "generate": "generation",
    "stream": "streaming", "StopCriteria": "stopping",
    "greedy": "token_loop", "sample": "token_loop",
    "Candidate": "trace", "RowTrace": "trace", "TraceStep": "trace", "format_trace": "trace",
    "apply_bad_words": "processors", "apply_min_length": "processors", "apply_min_p": "processors",
    "apply_no_repeat_ngram": "processors", "apply_repetition_penalty": "processors",
    "apply_temperature": "processors", "apply_top_k": "processors", "apply_top_p": "processors",
    "force_tokens": "processors",
    "apply_typical": "warpers", "apply_epsilon_cutoff": "warpers", "apply_eta_cutoff": "warpers",
    "apply_top_h": "warpers", "apply_sequence_bias": "biases", "apply_exponential_decay": "biases",
    "apply_encoder_repetition_penalty": "encoder_processors", "apply_encoder_no_repeat_ngram": "encoder_processors",
    "watermark_z_scores": "watermark",
    "contrastive_search": "contrastive", "dola_generate": "dola", "diverse_beam_search": "diverse_beam",
    "constrained_beam_search": "constrained_beam", "PhrasalConstraint": "constraints",
    "DisjunctiveConstraint": "constraints",
    "Found": "search", "TokenLoop": "search", "BeamSearch": "search", "PromptLookup": "search",
    "AssistedDecoding": "search", "Prompt": "search",
    "ContrastiveSearch": "moved_searches", "DoLa": "moved_searches", "DiverseBeamSearch": "moved_searches",
    "ConstrainedBeamSearch": "moved_searches", "heal_prompt": "token_healing",
    "decode_step": "model_step", "decode_ahead": "model_step", "rewind": "model_step",
    "run_processors": "processors",
}
__all__ = list(EXPORTS)


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module 'decoding' has no attribute {name!r}")
    value = getattr(import_module(f"decoding.{EXPORTS[name]}"), name)
    globals()[name] = value  # the next look-up does not come here
    return value


def __dir__():
    return sorted(set(globals()) | set(EXPORTS))
