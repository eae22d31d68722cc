"""Search strategies as plug-ins: a search owns the step loop of one call.

`strategy=` replaces the choice of one token; a search replaces the whole loop, so it can drive the
model itself: look ahead, propose several tokens and verify them, keep beams. `generate()` does the
part every loop shares (checks, settings, the encoder and the prefill, the processors and the stop
criteria) and hands the result to the search:

    search(model, call) -> Found

`call` (generation.Prepared) holds what the loop starts from and works with:
    call.sequences  (rows, start_len)  the prompt, or the decoder start token
    call.logits     (rows, vocab)      float32 logits of the first new token
    call.state      ModelState         the KV cache, mask and positions
    call.processors, call.stop, call.config, call.lengths, call.tracer
and the model is used through decoding/model_step.py: `decode_step(model, tokens, state)` feeds one
token per row, `decode_ahead(model, tokens, state)` several (logits at each), `rewind(state, length)`
takes positions back, `cache.reorder_beams(state.cache, rows)` moves histories between rows;
`run_processors(call.processors, sequences, logits)` gives the processed scores and
`call.stop(sequences)` the rows that just finished. The built-in loops are searches below. A search
that can show its answer token by token also has `steps(model, call)`, a generator of the sequences
after each new token: `decoding.stream` reads it.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from decoding.assistant_rows import AssistantGuesses
from decoding.beam_search import beam_search
from decoding.speculative import Acceptance, AssistantDrafts, LookupDrafts, articles, speculative_steps
from decoding.speculative_rows import LookupGuesses, cache_can_keep_rows, per_row_speculation, rows_can_keep_their_own
from decoding.token_loop import Strategy, decode_tokens, greedy_or_sample


@dataclass
class Found:
    """What a search returns: the sequences (rows, len) like model.generate()'s, and what else it knows."""

    sequences: torch.Tensor
    sequences_scores: torch.Tensor | None = None
    speculation: Acceptance | None = None


@dataclass
class Prompt:
    """What a search with its own prefill (`own_prefill = True`) gets instead of a prepared call: the
    call's inputs and settings, not yet run (decoding/moved_searches.py)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    config: object  # DecodingConfig
    tokenizer: object
    logits_processors: Sequence


class MovedStrategy:
    """The strategies transformers 4.56 moved to the hub (decoding/moved_searches.py): a name for messages,
    the options that select it; they feed no trace, scores or stream."""

    name = ""
    own_prefill = False

    @property
    def options(self) -> dict:
        return dict(vars(self))


class TokenLoop:
    """Greedy, sampling, or a `strategy` (scores -> tokens) choosing one token per step."""

    def __init__(self, strategy: Strategy | None = None):
        self.strategy = strategy

    def steps(self, model, call) -> Iterator[torch.Tensor]:
        """The sequences after each new token (streaming reads them)."""
        choose = self.strategy or greedy_or_sample(call.config.do_sample)
        return decode_tokens(model, call.sequences, call.state, call.logits, processors=call.processors,
                             choose=choose, stop=call.stop, pad_token_id=call.config.effective_pad_token_id,
                             tracer=call.tracer)

    def __call__(self, model, call) -> Found:
        return Found(last(self.steps(model, call), call.sequences))


def last(steps: Iterator[torch.Tensor], start: torch.Tensor) -> torch.Tensor:
    """The sequences after the last step."""
    sequences = start
    for grown in steps:
        sequences = grown
    return sequences


class BeamSearch:
    """Beam search, step for step transformers' algorithm (decoding/beam_search.py)."""

    def __call__(self, model, call) -> Found:
        config = call.config
        sequences, scores = beam_search(
            model, call.sequences, call.state, call.logits, processors=call.processors, stop=call.stop,
            num_beams=config.num_beams, max_length=call.lengths.max_length, length_penalty=config.length_penalty,
            early_stopping=config.early_stopping, num_return_sequences=config.num_return_sequences,
            eos_ids=config.eos_ids, pad_token_id=config.effective_pad_token_id, do_sample=config.do_sample,
            tracer=call.tracer)
        return Found(sequences, scores)


class PromptLookup:
    """Prompt-lookup guesses (decoding/speculative.py): greedy's or sampling's tokens, fewer model calls.
    A batch whose rows may move on by different counts does (decoding/speculative_rows.py)."""

    def __init__(self, num_tokens: int):
        self.num_tokens = num_tokens

    def steps(self, model, call, acceptance: Acceptance | None = None) -> Iterator[torch.Tensor]:
        """The sequences after each new token, all rows kept aligned (streaming reads them)."""
        source = LookupDrafts(call_articles(model, call), self.num_tokens)
        return guessed_steps(model, call, source=source, acceptance=acceptance)

    def __call__(self, model, call) -> Found:
        acceptance = Acceptance()
        if rows_may_keep_their_own(model, call):
            source = LookupGuesses(self.num_tokens, call.sequences.shape[0], call_articles(model, call))
            sequences = guessed_per_row(model, call, source, acceptance)
        else:
            sequences = last(self.steps(model, call, acceptance), call.sequences)
        return Found(sequences, speculation=acceptance)


class AssistedDecoding:
    """An assistant model's guesses (decoding/speculative.py): greedy's tokens, or sampling's distribution.
    A batch whose rows may move on by different counts does (decoding/assistant_rows.py)."""

    def __init__(self, assistant, num_tokens: int = 20, confidence: float = 0.4):
        self.assistant, self.num_tokens, self.confidence = assistant, num_tokens, confidence

    def steps(self, model, call, acceptance: Acceptance | None = None) -> Iterator[torch.Tensor]:
        """The sequences after each new token (streaming reads them)."""
        source = AssistantDrafts(self.assistant, call.input_ids, call.attention_mask,
                                 call.lengths.max_length + self.num_tokens + 1, call.sequences, self.num_tokens,
                                 processors=call.processors, sampling=call.config.do_sample,
                                 confidence=self.confidence)
        return guessed_steps(model, call, source=source, acceptance=acceptance)

    def __call__(self, model, call) -> Found:
        acceptance = Acceptance()
        source = self.per_row_source(model, call)
        if source is not None:
            return Found(guessed_per_row(model, call, source, acceptance), speculation=acceptance)
        return Found(last(self.steps(model, call, acceptance), call.sequences), speculation=acceptance)

    def per_row_source(self, model, call) -> AssistantGuesses | None:
        """The assistant's guesses for rows that keep their own, when both caches allow it."""
        if not rows_may_keep_their_own(model, call):
            return None
        source = AssistantGuesses(self.assistant, call.input_ids, call.attention_mask, call.sequences,
                                  max_length=call.lengths.max_length, processors=call.processors,
                                  row_processors=call.row_processors, num_tokens=self.num_tokens,
                                  confidence=self.confidence, sampling=call.config.do_sample)
        return source if cache_can_keep_rows(self.assistant, source.state, call.sequences.shape[0]) else None


def rows_may_keep_their_own(model, call) -> bool:
    """speculative_rows.rows_can_keep_their_own on a prepared call."""
    return rows_can_keep_their_own(model, call.state, call.processors, call.stop, call.config.effective_pad_token_id,
                                   call.tracer, rows=call.sequences.shape[0], row_processors=call.row_processors)


def guessed_per_row(model, call, source, acceptance: Acceptance) -> torch.Tensor:
    """The loop of decoding/speculative_rows.py on a prepared call."""
    return per_row_speculation(model, call.sequences, call.state, call.logits, processors=call.processors,
                               stop=call.stop, pad_token_id=call.config.effective_pad_token_id,
                               max_length=call.lengths.max_length, choose=greedy_or_sample(call.config.do_sample),
                               source=source, acceptance=acceptance, row_processors=call.row_processors)


def call_articles(model, call) -> list[list[int]]:
    """Per row, what prompt lookup searches besides the row's text (speculative.articles)."""
    return articles(model, call.input_ids, call.attention_mask, call.sequences.shape[0])


def guessed_steps(model, call, source, acceptance: Acceptance | None):
    """The guess-and-verify loop of decoding/speculative.py on a prepared call."""
    return speculative_steps(model, call.sequences, call.state, call.logits, processors=call.processors,
                             stop=call.stop, pad_token_id=call.config.effective_pad_token_id,
                             choose=greedy_or_sample(call.config.do_sample), tracer=call.tracer, acceptance=acceptance,
                             source=source)


def default_search(config, strategy: Strategy | None):
    """The built-in search the settings ask for."""
    if config.num_beams > 1:
        return BeamSearch()
    if config.prompt_lookup_num_tokens is not None:
        return PromptLookup(config.prompt_lookup_num_tokens)
    if config.assistant_model is not None:
        return AssistedDecoding(config.assistant_model, config.num_assistant_tokens,
                                config.assistant_confidence_threshold)
    return TokenLoop(strategy)
