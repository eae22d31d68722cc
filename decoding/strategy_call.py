"""What the strategies transformers 4.56 moved to the hub (contrastive search, DoLa) share: a call prepared
up to the prefill, and a model call that also returns hidden states.

`generate.prepare` runs the prefill itself and keeps only the last logits; contrastive search needs the
prompt's hidden states and DoLa every layer's, so these strategies start from `prepare_call`, which does
the same checks, lengths and encoder run, and leaves the prefill to them. The cache is transformers'
plain one (`DynamicCache`, `EncoderDecoderCache`): contrastive search repeats and selects its rows
(`batch_repeat_interleave`, `batch_select_indices`), which the preallocated layers do not implement.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from decoding.config import DecodingConfig
from decoding.generation import check_inputs, resolve_config
from decoding.lengths import Lengths, check_output_fits, check_prompt_fits, resolve_lengths
from decoding.model_step import ModelState, infer_attention_mask, start
from decoding.processors import Processor, build_processors
from decoding.stopping import StopCriteria


@dataclass
class StrategyCall:
    """A call before the prefill. sequences: (batch, start_len), the prompt or the decoder start token."""

    config: DecodingConfig
    lengths: Lengths
    sequences: torch.Tensor
    state: ModelState
    stop: StopCriteria
    user_processors: Sequence[Processor]


def plain_cache(model):
    """transformers' own growing cache, which can repeat and select rows."""
    config = model.config.get_text_config(decoder=True)
    if model.config.is_encoder_decoder:
        return EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
    return DynamicCache(config=config)


def prepare_call(model, input_ids, attention_mask, *, settings: dict, config: DecodingConfig | None = None,
                 tokenizer=None, logits_processors: Sequence[Processor] = ()) -> StrategyCall:
    """`generate.prepare` without the prefill: resolve and check the settings, encode, make the cache.

    input_ids: (batch, seq_len); attention_mask: (batch, seq_len) or None (decoder-only: inferred
    from the pad token, as generate() does).
    """
    check_inputs(model, input_ids, attention_mask)
    config = resolve_config(model, config, settings)
    device = model.device
    input_ids = input_ids.to(device)
    if attention_mask is not None:
        attention_mask = attention_mask.to(device)
    is_encoder_decoder = bool(model.config.is_encoder_decoder)
    if not is_encoder_decoder and attention_mask is None:
        attention_mask = infer_attention_mask(input_ids, config.effective_pad_token_id, config.eos_ids)
    check_prompt_fits(model, input_ids.shape[1])
    start_length = 1 if is_encoder_decoder else input_ids.shape[1]
    lengths = resolve_lengths(config, start_length, model.config)
    check_output_fits(model, lengths)
    decoder_start = config.decoder_start_token_id if config.decoder_start_token_id is not None else config.bos_token_id
    sequences, state = start(model, input_ids, attention_mask, expand=1, decoder_start_token_id=decoder_start,
                             max_length=lengths.max_length, shared_cross_attention=False)
    state.cache = plain_cache(model)
    stop = StopCriteria(lengths.max_length, config.eos_ids, config.stop_strings, tokenizer, device=device)
    return StrategyCall(config, lengths, sequences, state, stop, list(logits_processors))


def call_processors(call: StrategyCall, vocab_size: int) -> list[Processor]:
    """The processors the call's settings switch on (as generate() builds them), after the prefill."""
    state = call.state
    skip_before = None
    if not state.is_encoder_decoder and state.attention_mask is not None:
        skip_before = (state.attention_mask != 0).int().argmax(dim=1)
    return build_processors(call.config, prompt_length=call.sequences.shape[1], max_length=call.lengths.max_length,
                            min_length=call.lengths.min_length, vocab_size=vocab_size, device=call.sequences.device,
                            skip_before=skip_before, user_processors=call.user_processors)


def forward_hidden(model, tokens: torch.Tensor, state: ModelState, *, attention_mask=None, positions=None,
                   encoder_outputs=None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """One model call that also returns the decoder's hidden states; updates `state.cache`.

    tokens: (rows, n). attention_mask / positions / encoder_outputs: this call's (rows may be
    batch * top_k for contrastive candidates); the encoder's mask comes from `attention_mask` for
    encoder-decoder models. Returns float32 logits of the last position (rows, vocab) and the hidden
    states, one (rows, n, hidden) per layer plus the embeddings (transformers' `hidden_states`).
    """
    if state.is_encoder_decoder:
        inputs = dict(decoder_input_ids=tokens, encoder_outputs=encoder_outputs, attention_mask=attention_mask)
    else:
        inputs = dict(input_ids=tokens, attention_mask=attention_mask, position_ids=positions)
    outputs = model(**inputs, cache=state.cache, use_cache=True, return_dict=True, output_hidden_states=True)
    state.cache = outputs.cache
    hidden = outputs.decoder_hidden_states if state.is_encoder_decoder else outputs.hidden_states
    return outputs.logits[:, -1, :].to(copy=True, dtype=torch.float32), hidden


def grow_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """A decoder-only mask (rows, len) with one more attended position, for the token fed next."""
    if mask is None:
        return None
    return torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
