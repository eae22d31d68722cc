"""Checks of the options 4.57.6's generate() has beyond transformers 5's core set: typical_p, epsilon and
eta cutoffs, encoder penalties, sequence_bias, suppressed tokens, the length penalty on EOS, guidance,
watermarking, max_time and the output flags; and of top_h and prefix_allowed_tokens_fn (5.x).

Each check is what the 4.57.6 processor's constructor (or GenerationConfig.validate) refuses, made
stricter where 4.57.6 silently ignored a value it could not use (typical_p=1.5, epsilon_cutoff=2):
here every value is either used or refused, with an error that names the option and the fix.
Called by `decoding.config.validate`; reads the config's attributes only, so it imports nothing of
decoding but the watermark's own check.
"""

import math
import numbers

import torch

from decoding.watermark import watermark_settings

MAX_TOKENS = 2**24  # lengths and n-gram sizes: above any context a model has, and exact in float32
MAX_SCALE = 1e30  # factors and scales: scores multiplied or divided by them stay finite in float32


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_token_id(value) -> bool:
    """A non-negative int, numpy's included (ids often come from a tokenizer's numpy output)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _is_number(value) -> bool:
    """A finite int or float; an int too large for a float (10**400) is not one (math.isfinite would overflow)."""
    if _is_int(value):
        return abs(value) <= 1e300
    return isinstance(value, float) and math.isfinite(value)


def check_open_unit(name: str, value, off: float | None, include_one: bool) -> None:
    """`value` in (0, 1) (or (0, 1] when `include_one`), or `off`, the value that disables the option."""
    if not _is_number(value):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    if value == off:
        return
    if not (0 < value < 1 or (include_one and value == 1)):
        interval = "(0, 1]" if include_one else f"(0, 1) ({off} disables it)"
        interval += " (or None to disable it)" if off is None else ""
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def check_token_list(name: str, value) -> None:
    """A list of non-negative token ids (transformers takes any iterable; we take a list or tuple)."""
    if value is None:
        return
    if not isinstance(value, (list, tuple)) or not all(_is_token_id(i) for i in value):
        raise TypeError(f"{name} must be a list of non-negative token ids, e.g. [7, 9], got {value!r}")


def check_no_forced_token_suppressed(c) -> None:
    """A forced token (forced_bos_token_id, forced_eos_token_id) in suppress_tokens leaves no token to write at
    its position: sampling fails on it and greedy decoding writes token 0. Refuse it instead."""
    if not c.suppress_tokens:
        return
    eos = c.forced_eos_token_id  # its type is checked later, by decoding.config.validate
    forced_eos = [eos] if _is_int(eos) else list(eos) if isinstance(eos, (list, tuple)) else []
    forced = {"forced_bos_token_id": [c.forced_bos_token_id] if c.forced_bos_token_id is not None else [],
              "forced_eos_token_id": forced_eos}
    for name, ids in forced.items():
        clash = sorted(set(ids) & set(c.suppress_tokens))
        if clash:
            raise ValueError(f"suppress_tokens contains {clash}, the {name} (maybe from model.generation_config): "
                             f"no token would be left to write there; remove it from suppress_tokens or set {name}=None")


def sequence_bias_items(sequence_bias) -> list[tuple[tuple[int, ...], float]]:
    """The (token ids, bias) pairs of a sequence_bias given as {(7, 9): -5.0} or [[[7, 9], -5.0]], checked."""
    example = "e.g. {(7, 9): -5.0} or [[[7, 9], -5.0]]"
    if isinstance(sequence_bias, dict):
        pairs = list(sequence_bias.items())
    elif isinstance(sequence_bias, (list, tuple)):
        if not all(isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in sequence_bias):
            raise ValueError(f"sequence_bias as a list must hold [token ids, bias] pairs, {example}; got {sequence_bias!r}")
        pairs = [(pair[0], pair[1]) for pair in sequence_bias]
    else:
        raise TypeError(f"sequence_bias must be a dict or a list of pairs, {example}; got {sequence_bias!r}")
    if not pairs:
        raise ValueError(f"sequence_bias must not be empty, {example}")
    items = []
    for ids, bias in pairs:
        if not isinstance(ids, (list, tuple)) or not ids or not all(_is_token_id(i) for i in ids):
            raise ValueError(f"each sequence of sequence_bias must be a non-empty tuple of token ids, got {ids!r}")
        if not _is_number(bias) or abs(bias) > MAX_SCALE:
            raise ValueError(f"each bias of sequence_bias must be a finite number, got {bias!r} for {tuple(ids)}")
        items.append((tuple(int(i) for i in ids), float(bias)))
    return items


def check_exponential_decay(value, eos_ids) -> None:
    """(start, factor): start new tokens >= 0, factor a finite number > 0; needs an EOS id to raise."""
    if value is None:
        return
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and _is_int(value[0]) and _is_number(value[1])):
        raise TypeError("exponential_decay_length_penalty must be a pair (start, factor), e.g. (10, 1.5), "
                        f"got {value!r}")
    start, factor = value
    if not 0 <= start <= MAX_TOKENS:
        raise ValueError(f"exponential_decay_length_penalty's start must be between 0 and {MAX_TOKENS:,} new tokens, "
                         f"got {start}")
    if not 0 < factor <= MAX_SCALE:
        raise ValueError(f"exponential_decay_length_penalty's factor must be > 0 (above 1 makes EOS more likely as "
                         f"the text grows), got {factor}")
    if not eos_ids:
        raise ValueError("exponential_decay_length_penalty raises the end-of-text score, but there is no "
                         "eos_token_id; pass eos_token_id=...")


def check_guidance(c, is_encoder_decoder: bool) -> None:
    """guidance_scale: a finite number (1 or None: off), decoder-only; the negative prompt needs it."""
    if c.guidance_scale is not None:
        if not _is_number(c.guidance_scale) or abs(c.guidance_scale) > MAX_SCALE:
            raise ValueError(f"guidance_scale must be a finite number (1 or None disables it), got {c.guidance_scale!r}")
        if c.guidance_scale != 1 and is_encoder_decoder:
            raise ValueError("guidance_scale (classifier-free guidance) works with decoder-only models; "
                             "remove it for this encoder-decoder model")
    for name in ("negative_prompt_ids", "negative_prompt_attention_mask"):
        value = getattr(c, name)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor) or value.dim() != 2 or value.is_floating_point() or value.numel() == 0:
            raise TypeError(f"{name} must be a non-empty 2-D tensor of ints (batch, length), as the tokenizer "
                            f"returns with return_tensors='pt'; got {value!r}")
        if c.guidance_scale is None or c.guidance_scale == 1:
            raise ValueError(f"{name} is the unconditional input of classifier-free guidance; "
                             "it needs guidance_scale != 1")
    ids, mask = c.negative_prompt_ids, c.negative_prompt_attention_mask
    if mask is not None and (ids is None or tuple(mask.shape) != tuple(ids.shape)):
        raise ValueError("negative_prompt_attention_mask needs negative_prompt_ids of the same shape")


def check_flags(c) -> None:
    """The boolean options: True or False only."""
    for name in ("remove_invalid_values", "renormalize_logits", "token_healing", "output_scores", "output_logits",
                 "return_dict_in_generate"):
        if not isinstance(getattr(c, name), bool):
            raise TypeError(f"{name} must be True or False, got {getattr(c, name)!r}")


def check_processor_options(c, is_encoder_decoder: bool) -> None:
    """Refuse a bad value of any 4.57.6 option, naming it and the fix."""
    check_open_unit("typical_p", c.typical_p, off=1.0, include_one=True)
    if c.top_h is not None:
        check_open_unit("top_h", c.top_h, off=None, include_one=True)
    check_open_unit("epsilon_cutoff", c.epsilon_cutoff, off=0.0, include_one=False)
    check_open_unit("eta_cutoff", c.eta_cutoff, off=0.0, include_one=False)
    penalty = c.encoder_repetition_penalty
    if not _is_number(penalty) or not 1 / MAX_SCALE <= penalty <= MAX_SCALE:
        raise ValueError(f"encoder_repetition_penalty must be a finite number > 0 (1.0 disables it; above 1 favours "
                         f"the input's tokens), got {penalty!r}")
    size = c.encoder_no_repeat_ngram_size
    if not _is_int(size) or not 0 <= size <= MAX_TOKENS:
        raise ValueError(f"encoder_no_repeat_ngram_size must be an int >= 0 (0 disables it), got {size!r}")
    if c.sequence_bias is not None:
        sequence_bias_items(c.sequence_bias)
    check_token_list("suppress_tokens", c.suppress_tokens)
    check_token_list("begin_suppress_tokens", c.begin_suppress_tokens)
    check_no_forced_token_suppressed(c)
    check_exponential_decay(c.exponential_decay_length_penalty, c.eos_ids)
    if c.max_time is not None and (not _is_number(c.max_time) or c.max_time < 0):
        raise ValueError(f"max_time must be a number of seconds >= 0 (or None), got {c.max_time!r}")
    check_guidance(c, is_encoder_decoder)
    if c.prefix_allowed_tokens_fn is not None and not callable(c.prefix_allowed_tokens_fn):
        raise TypeError("prefix_allowed_tokens_fn must be a function (prompt_index, row_ids) -> allowed token ids, "
                        f"got {c.prefix_allowed_tokens_fn!r}")
    check_flags(c)
    if c.watermarking_config is not None:
        watermark_settings(c.watermarking_config)
