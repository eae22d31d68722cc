"""How long a call's sequences may grow, and whether they fit in the model's positions.

`max_new_tokens` and `max_length` (and their minimums) become absolute lengths of the sequence the
loop grows, as transformers' `_prepare_generated_length` computes them; a prompt or an output past
the model's position table is refused before the first forward pass.
"""

from dataclasses import dataclass

from torch import nn

from decoding.config import DEFAULT_NEW_TOKENS, DecodingConfig
from decoding.warn import warn_caller


@dataclass(frozen=True)
class Lengths:
    """Lengths of the grown sequence for one call: stop at `max_length`, no EOS before `min_length`."""

    max_length: int
    min_length: int


def resolve_lengths(config: DecodingConfig, prompt_length: int, model_config) -> Lengths:
    """Turn the settings into absolute lengths, like transformers' `_prepare_generated_length`.

    prompt_length: tokens the loop starts from (padded prompt for decoder-only, 1 for the decoder
    start token of encoder-decoder models).
    """
    if config.max_new_tokens is not None:
        max_length = prompt_length + config.max_new_tokens
    elif config.max_length is None:
        # Nobody chose a length: transformers generates 20 new tokens, capped at the position table.
        max_length = prompt_length + DEFAULT_NEW_TOKENS
        max_positions = getattr(model_config, "max_position_embeddings", None)
        if max_positions is not None:
            max_length = min(max_length, max_positions)
    else:
        max_length = config.max_length
    min_length = config.min_length
    if config.min_new_tokens is not None:
        min_length = prompt_length + config.min_new_tokens

    if prompt_length >= max_length:
        what = "decoder input" if getattr(model_config, "is_encoder_decoder", False) else "prompt"
        raise ValueError(f"the {what} is {prompt_length} tokens long but max_length is {max_length}, so no token "
                         "would be generated; set max_new_tokens (counts new tokens only) or a larger max_length")
    if min_length > max_length:
        if config.min_new_tokens is not None:
            message = (f"min_new_tokens ({config.min_new_tokens}) is more than the {max_length - prompt_length} new "
                       "tokens max_length/max_new_tokens allow; lower min_new_tokens or raise max_new_tokens")
        else:
            message = (f"min_length ({min_length}) is larger than max_length ({max_length}); lower min_length "
                       "or raise max_new_tokens/max_length")
        if {"min_length", "min_new_tokens"} & config.set_by_caller:
            raise ValueError(message)
        # The minimum came from the model's generation_config (e.g. BART-CNN's min_length=56) and the caller
        # only shortened the output: transformers warns and stops at max_length, so do we.
        warn_caller(message + " (the minimum comes from model.generation_config; generation stops at max_length)")
    return Lengths(max_length=max_length, min_length=min_length)


def context_size(model) -> int | None:
    """The context length the model declares (`n_positions` / `max_position_embeddings`), or None."""
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def has_position_table(model) -> bool:
    """True when positions come from a fixed table that fails past its end.

    GPT-2's `wpe`, BART's learned and Marian's sinusoidal `embed_positions` are such tables; rotary
    (Llama), relative (T5) and self-extending sinusoidal (M2M100) positions have no end.
    """
    for name, module in model.named_modules():
        short = name.rsplit(".", 1)[-1]
        if isinstance(module, nn.Embedding) and (short == "wpe" or "position" in short):
            return True
    return False


def check_prompt_fits(model, prompt_length: int) -> None:
    """Refuse a prompt longer than the model's context.

    Decoder-only models never saw positions past their context (rotary ones would run, but on
    positions they were not trained for); encoder-decoder models are refused only when their
    position table would run out (T5's relative positions take long inputs, as in transformers).
    """
    limit = context_size(model)
    if limit is None or (model.config.is_encoder_decoder and not has_position_table(model)):
        return
    if prompt_length > limit:
        what = "input" if model.config.is_encoder_decoder else "prompt"
        raise ValueError(f"the {what} is {prompt_length} tokens long but the model's context is {limit} positions; "
                         f"truncate it, e.g. tokenizer(..., truncation=True, max_length={limit})")


def check_output_fits(model, lengths: Lengths) -> None:
    """Refuse a max_length that would run past the model's position table."""
    limit = context_size(model)
    if limit is not None and lengths.max_length > limit and has_position_table(model):
        raise ValueError(f"max_length {lengths.max_length} is past the model's context of {limit} positions; "
                         f"lower max_new_tokens/max_length so that the output fits in {limit} tokens")
