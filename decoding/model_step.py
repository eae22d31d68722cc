"""The model side of decoding: run the encoder once, prefill the prompt, then feed one token per step.

Everything the model needs besides the new tokens lives in a `ModelState`: the KV cache
(transformers 5 `DynamicCache`, or `EncoderDecoderCache` for encoder-decoder models, with
preallocated self-attention layers: see decoding/cache.py; the forward argument is called `cache`
in transformers 5, `past_key_values` is its deprecated alias), the
attention mask and positions of a left-padded decoder-only batch, and the encoder outputs.
`prefill` and `decode_step` return float32 logits of the last position, `(rows, vocab)`, and
keep the state ready for the next step. This mirrors what `generate()` builds in
`_prepare_*`, `prepare_inputs_for_generation` and `_update_model_kwargs_for_generation`, written
out for the two model families we decode. Llama and GPT-2 decoders are computed by a lean pass
(decoding/llama_step.py, decoding/gpt2_step.py: their own modules, fewer operations around them);
every other model by its own forward.
"""

import inspect
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import torch
from transformers.cache_utils import Cache

from decoding import row_positions
from decoding.cache import new_cache
from decoding.lean_layers import lean_pass_for


@dataclass
class ModelState:
    """Per-call model inputs that persist across steps. Rows are batch * expand (beams or samples).

    attention_mask: decoder-only (rows, tokens so far), None when there is no padding (transformers
        drops an all-ones mask so attention takes its unmasked fast path); encoder-decoder: the
        encoder's mask, one row per row of `encoder_outputs` (per input when the rows share the
        cross-attention), or None.
    next_positions: decoder-only (rows, 1) positions of the next token; encoder-decoder: None, or the
        same while rows keep their own guesses (decoding/row_positions.py numbers the decoder's tokens).
    decoder_mask: encoder-decoder, while rows keep their own guesses: (rows, cache length) the positions
        of the decoder's cache each row attends to; None otherwise (all of them).
    last_position: while rows keep their own guesses, the highest position a kept token can have
        (max_length - 1); the filler a short or finished row is fed past it is numbered at most this,
        so no position table is read past its end for a token nobody keeps.
    """

    cache: Cache
    is_encoder_decoder: bool
    attention_mask: torch.Tensor | None = None
    next_positions: torch.Tensor | None = None
    encoder_outputs: object = None
    keep_last_logits: bool = False  # the model accepts logits_to_keep=1 (skip the LM head on the prompt)
    lean: ModuleType | None = None  # the lean pass (llama_step, gpt2_step) that computes the forward, if any
    decoder_mask: torch.Tensor | None = None
    last_position: int | None = None

    @property
    def self_attention_mask(self) -> torch.Tensor | None:
        """The mask over the self-attention cache (decoder-only: attention_mask; encoder-decoder: decoder_mask)."""
        return self.decoder_mask if self.is_encoder_decoder else self.attention_mask

    @self_attention_mask.setter
    def self_attention_mask(self, mask: torch.Tensor | None) -> None:
        if self.is_encoder_decoder:
            self.decoder_mask = mask
        else:
            self.attention_mask = mask

    @property
    def self_attention_cache(self) -> Cache:
        return self.cache.self_attention_cache if self.is_encoder_decoder else self.cache


@cache
def _accepts(model_class: type, argument: str) -> bool:
    return argument in inspect.signature(model_class.forward).parameters


def infer_attention_mask(input_ids: torch.Tensor, pad_token_id: int | None, eos_ids: list[int]) -> torch.Tensor:
    """A mask from the pad token when none was passed, as transformers does for decoder-only models.

    Padding can only be told from text when the pad token is not also an EOS token.
    input_ids: (batch, seq_len) -> (batch, seq_len) long.
    """
    if pad_token_id is not None and pad_token_id not in eos_ids and bool((input_ids == pad_token_id).any()):
        return input_ids.ne(pad_token_id).long()
    return torch.ones_like(input_ids, dtype=torch.long)


def start(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, *, expand: int,
          decoder_start_token_id: int | None, max_length: int,
          shared_cross_attention: bool) -> tuple[torch.Tensor, ModelState]:
    """Prepare a call: encode (encoder-decoder), repeat each row `expand` times, create the cache.

    input_ids: (batch, seq_len); attention_mask: (batch, seq_len) or None; max_length: the longest
    sequence the loop can grow, which sizes the cache. With `shared_cross_attention` (the model is
    switched to it: decoding/shared_cross_attention.py) an encoder-decoder model keeps one encoder
    output per input; otherwise the output is repeated for each row, as in `generate()`.
    Returns the sequences the loop grows, (batch * expand, start_len): the prompt for decoder-only
    models, the decoder start token for encoder-decoder ones, and the ModelState.
    """
    if model.config.is_encoder_decoder:
        # The encoder runs once per prompt, before the rows are repeated for beams or samples.
        encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        if expand > 1 and not shared_cross_attention:
            for key, value in encoder_outputs.items():
                if isinstance(value, torch.Tensor):
                    encoder_outputs[key] = value.repeat_interleave(expand, dim=0)
            if attention_mask is not None:
                attention_mask = attention_mask.repeat_interleave(expand, dim=0)
        sequences = torch.full((input_ids.shape[0] * expand, 1), decoder_start_token_id,
                               dtype=torch.long, device=input_ids.device)
        state = ModelState(new_cache(model, max_length), True, attention_mask=attention_mask, encoder_outputs=encoder_outputs)
        return sequences, state

    # Left padding shifts each row's text; positions count real tokens only, so every row's text starts at 0.
    positions = attention_mask.long().cumsum(-1) - 1
    positions = positions.masked_fill(attention_mask == 0, 0)
    if bool((attention_mask == 1).all()):
        attention_mask = None
    if expand > 1:
        input_ids = input_ids.repeat_interleave(expand, dim=0)
        positions = positions.repeat_interleave(expand, dim=0)
        if attention_mask is not None:
            attention_mask = attention_mask.repeat_interleave(expand, dim=0)
    state = ModelState(new_cache(model, max_length), False, attention_mask=attention_mask, next_positions=positions,
                       keep_last_logits=_accepts(type(model), "logits_to_keep"), lean=lean_pass_for(model))
    return input_ids, state


def _forward(model, tokens: torch.Tensor, state: ModelState, positions: torch.Tensor | None,
             last_only: bool = True) -> torch.Tensor:
    """One model call on `tokens` (rows, n) -> float32 logits of the last position (rows, vocab), or of
    every position (rows, n, vocab) when not `last_only`."""
    if state.lean is not None:
        return state.lean.forward(model, tokens, state.cache, positions, state.attention_mask, last_only).float()
    numbering = nullcontext()
    if state.is_encoder_decoder:
        inputs = dict(decoder_input_ids=tokens, encoder_outputs=state.encoder_outputs,
                      attention_mask=state.attention_mask, decoder_attention_mask=state.decoder_mask)
        if positions is not None:  # the decoder takes no position ids: decoding/row_positions.py gives them
            numbering = row_positions.decoder_positions(model, positions)
    else:
        inputs = dict(input_ids=tokens, attention_mask=state.attention_mask, position_ids=positions)
        if last_only and state.keep_last_logits:
            inputs["logits_to_keep"] = 1
    with numbering:
        outputs = model(**inputs, cache=state.cache, use_cache=True, return_dict=True)
    state.cache = outputs.cache
    return float32_logits(outputs.logits, last_only)


def float32_logits(logits: torch.Tensor, last_only: bool) -> torch.Tensor:
    """The model's logits (rows, n, vocab) in float32 (sampling and beam scores are computed in float32
    whatever the model dtype), of the last position when `last_only`. A slice of several positions is
    copied, so that it does not keep every position's logits alive; a step's own logits are not (a beam
    step's are 64 x 59k floats: a copy costs ~0.5 ms of a ~40 ms step)."""
    if last_only:
        logits = logits[:, -1, :] if logits.shape[1] == 1 else logits[:, -1, :].clone()
    return logits.float()


def prefill(model, sequences: torch.Tensor, state: ModelState) -> torch.Tensor:
    """Run the whole prompt (or the decoder start token) through the model; fills the cache.

    sequences: (rows, start_len) -> logits (rows, vocab) for the first new token.
    """
    positions = state.next_positions
    if positions is not None:
        state.next_positions = positions[:, -1:] + 1
    return _forward(model, sequences, state, positions)


def decode_step(model, tokens: torch.Tensor, state: ModelState) -> torch.Tensor:
    """Feed the newest token of each row. tokens: (rows,) -> logits (rows, vocab) for the next one."""
    _attend_to_new(state, 1)
    return _forward(model, tokens[:, None], state, _advance_positions(state, 1))


def decode_ahead(model, tokens: torch.Tensor, state: ModelState) -> torch.Tensor:
    """Feed several tokens per row at once (the last chosen one and guesses after it).

    tokens: (rows, n) -> float32 logits (rows, n, vocab): position i holds the distribution of the
    token after tokens[:, i]. The cache and positions advance by n; `rewind` takes back what is not kept.
    """
    count = tokens.shape[1]
    positions = _numbered_as_fed_alone(model, state, tokens)
    _attend_to_new(state, count)
    if positions is None:
        positions = _advance_positions(state, count)
    return _forward(model, tokens, state, positions, last_only=False)


def _numbered_as_fed_alone(model, state: ModelState, tokens: torch.Tensor) -> torch.Tensor | None:
    """An encoder-decoder decoder with a position table that numbers the fed tokens itself: positions as
    if fed one at a time (rows, n). M2M100 numbers a block by counting its tokens that are not the pad
    id, which differs once the model writes a pad mid-text. None where the state numbers them already."""
    if not state.is_encoder_decoder or state.next_positions is not None or tokens.shape[1] == 1 \
            or row_positions.layout(model) != row_positions.ABSOLUTE:
        return None
    start = state.self_attention_cache.get_seq_length()
    return torch.arange(start, start + tokens.shape[1], device=tokens.device).expand(tokens.shape[0], -1)


def _advance_positions(state: ModelState, count: int) -> torch.Tensor | None:
    """The positions of `count` newly fed tokens per row (rows, count), or None when the model numbers them."""
    if state.next_positions is None:
        return None
    positions = state.next_positions + torch.arange(count, device=state.next_positions.device)
    state.next_positions = positions[:, -1:] + 1
    return positions if state.last_position is None else positions.clamp(max=state.last_position)


def _attend_to_new(state: ModelState, count: int) -> None:
    """Extend the self-attention mask, when there is one, over `count` newly fed positions."""
    mask = state.self_attention_mask
    if mask is not None:
        state.self_attention_mask = torch.cat([mask, mask.new_ones((mask.shape[0], count))], dim=-1)


def rewind(state: ModelState, length: int) -> None:
    """Keep the first `length` positions of the cache (and of its mask and the positions)."""
    cache = state.self_attention_cache
    taken_back = cache.get_seq_length() - length
    if taken_back <= 0:
        return
    cache.crop(length)
    if state.self_attention_mask is not None:
        state.self_attention_mask = state.self_attention_mask[:, :length]
    if state.next_positions is not None:
        state.next_positions = state.next_positions - taken_back
