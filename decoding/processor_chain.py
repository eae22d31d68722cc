"""Where the 4.57.6 processors go in the chain `build_processors` makes, in 4.57.6's order:

    guidance, sequence_bias, encoder_repetition_penalty, | repetition_penalty, no_repeat_ngram_size, |
    encoder_no_repeat_ngram_size, | bad words, min lengths, | prefix_allowed_tokens_fn, | forced BOS/EOS, | remove_invalid_values,
    exponential_decay_length_penalty, suppress_tokens, begin_suppress_tokens, | the caller's processors,
    temperature, top-k, top-p, min-p (sampling), | typical_p, epsilon_cutoff, eta_cutoff (sampling), |
    watermarking_config, renormalize_logits

Each function returns the processors of one stretch between transformers 5's core ones, as
(input_ids, scores) -> scores callables; an option left at its default adds nothing.
"""

import torch

from decoding.bans import Ban
from decoding.biases import (
    apply_exponential_decay,
    apply_sequence_bias,
    remove_invalid,
    renormalize,
    sequence_bias_tables,
    suppress,
)
from decoding.encoder_processors import apply_encoder_repetition_penalty, encoder_ngram_bans, encoder_ngrams
from decoding.option_checks import sequence_bias_items
from decoding.warpers import apply_epsilon_cutoff, apply_eta_cutoff, apply_typical
from decoding.watermark import GreenLists, apply_watermark, watermark_settings


def scores_only(processor):
    """Mark a processor that never reads the sequences (only the scores): a batch whose rows have
    different lengths can run it on all rows at once (decoding/speculative_rows.py)."""
    processor.reads_ids = False
    return processor


def reads_ids(processor) -> bool:
    """Whether a processor may read the sequences; any processor not marked `scores_only` may."""
    return getattr(processor, "reads_ids", True)


def check_in_vocabulary(name: str, ids, vocab: int) -> None:
    """Refuse ids the model cannot write (4.57.6 refused them for sequence_bias and ignored them for the rest)."""
    outside = sorted({i for i in ids if i >= vocab})
    if outside:
        raise ValueError(f"{name} contains ids {outside} outside the model's vocabulary of {vocab} tokens")


def encoder_input_needed(name: str, encoder_input_ids) -> torch.Tensor:
    """The prompt / encoder input an encoder_* option reads; the loop passes it."""
    if encoder_input_ids is None:
        raise ValueError(f"{name} reads the model's input ids; pass encoder_input_ids to build_processors")
    return encoder_input_ids


def leading_processors(config, encoder_input_ids, vocab: int, device) -> list:
    """sequence_bias and encoder_repetition_penalty, which 4.57.6 runs before the repetition penalty."""
    processors = []
    if config.sequence_bias is not None:
        items = sequence_bias_items(config.sequence_bias)
        check_in_vocabulary("sequence_bias", [i for ids, _ in items for i in ids], vocab)
        single, multi = sequence_bias_tables(items, vocab, device)
        processors.append(lambda ids, s: apply_sequence_bias(s, ids, single, multi))
    if config.encoder_repetition_penalty != 1.0:
        source = encoder_input_needed("encoder_repetition_penalty", encoder_input_ids)
        penalty = config.encoder_repetition_penalty
        processors.append(lambda ids, s: apply_encoder_repetition_penalty(s, source, penalty))
    return processors


def encoder_ngram_processors(config, encoder_input_ids) -> list:
    """encoder_no_repeat_ngram_size, which 4.57.6 runs right after no_repeat_ngram_size."""
    size = config.encoder_no_repeat_ngram_size
    if size <= 0:
        return []
    tables = encoder_ngrams(encoder_input_needed("encoder_no_repeat_ngram_size", encoder_input_ids), size)
    return [Ban(lambda ids, s: encoder_ngram_bans(ids, s, tables, size))]


def trailing_processors(config, *, prompt_length: int, vocab: int, device) -> list:
    """remove_invalid_values, exponential_decay_length_penalty, suppress_tokens, begin_suppress_tokens.

    prompt_length: the length the loop starts from (prompt, or 1 for the decoder start token).
    The first generated position is `prompt_length`, one later when a forced BOS token takes it.
    """
    processors = []
    if config.remove_invalid_values:
        processors.append(scores_only(lambda ids, s: remove_invalid(s)))
    if config.exponential_decay_length_penalty is not None:
        start, factor = config.exponential_decay_length_penalty
        eos = torch.tensor(config.eos_ids, dtype=torch.long, device=device)
        processors.append(lambda ids, s: apply_exponential_decay(s, ids.shape[-1], start + prompt_length, factor, eos))
    if config.suppress_tokens is not None:
        check_in_vocabulary("suppress_tokens", config.suppress_tokens, vocab)
        banned = torch.tensor(list(config.suppress_tokens), dtype=torch.long, device=device)
        processors.append(scores_only(lambda ids, s: suppress(s, banned)))
    if config.begin_suppress_tokens is not None:
        check_in_vocabulary("begin_suppress_tokens", config.begin_suppress_tokens, vocab)
        banned_first = torch.tensor(list(config.begin_suppress_tokens), dtype=torch.long, device=device)
        first = prompt_length + (1 if prompt_length == 1 and config.forced_bos_token_id is not None else 0)
        processors.append(lambda ids, s: suppress(s, banned_first) if ids.shape[-1] == first else s)
    return processors


def extra_warpers(config, keep: int) -> list:
    """typical_p, epsilon_cutoff, eta_cutoff: after min-p, sampling only (the caller checks do_sample)."""
    warpers = []
    if config.typical_p < 1.0:
        warpers.append(scores_only(lambda ids, s: apply_typical(s, config.typical_p, keep)))
    if 0.0 < config.epsilon_cutoff < 1.0:
        warpers.append(scores_only(lambda ids, s: apply_epsilon_cutoff(s, config.epsilon_cutoff, keep)))
    if 0.0 < config.eta_cutoff < 1.0:
        warpers.append(scores_only(lambda ids, s: apply_eta_cutoff(s, config.eta_cutoff, keep)))
    return warpers


def final_processors(config, vocab: int, device) -> list:
    """The watermark (after every other processor, sampling or not), then renormalize_logits, always the last.

    vocab: the scores' width; 4.57.6 split config.vocab_size, the same number for the LM heads we load.
    """
    processors = []
    if config.watermarking_config is not None:
        lists = GreenLists(watermark_settings(config.watermarking_config), vocab, device)
        processors.append(lambda ids, s: apply_watermark(s, ids, lists))
    if config.renormalize_logits:
        processors.append(scores_only(lambda ids, s: renormalize(s)))
    return processors
