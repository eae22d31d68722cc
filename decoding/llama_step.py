"""A lean forward pass for Llama decoders (LlamaForCausalLM: SmolLM2, Llama, TinyLlama...).

Why: a decoding step at batch 1 reads every weight once, so its matrix products run at the machine's
memory bandwidth; what transformers adds around them is eager work per layer (the mask builder,
the attention-function registry, keyword plumbing, two casts in each RMSNorm). On SmolLM2-135M in
float32 on this 2-core CPU that was ~9 ms of a ~33 ms step. This module computes the same layers
with the same modules (so int8-quantized projections and bfloat16 weights work unchanged) and
fewer operations: rotary embeddings on queries and keys in one pass, RMSNorm without casts in
float32, the attention mask built once per call (not once per layer), and no output objects. An
int8 model's q/k/v and gate/up projections are one product each (decoding/joined_projections.py).

The numbers are those of transformers' forward up to float rounding (the order of a few sums and
products differs; `tests/decoding/test_lean_passes.py` bounds the logits and checks the tokens); the
tokens are the same as `generate()`'s on the parity suite.
Used by decoding/model_step.py when `applies(model)`; every other model runs its own forward.
"""

import torch
import torch.nn.functional as F

from decoding.joined_projections import joined_or_separate
from decoding.lean_layers import attention_pattern, lean_pass_can_run, project


def applies(model) -> bool:
    """Whether the lean pass can stand in for `model`'s forward: a plain LlamaForCausalLM in eval mode, on
    one device, with SDPA attention and no hooks the pass would skip (`lean_pass_can_run`)."""
    from transformers import LlamaForCausalLM

    return type(model) is LlamaForCausalLM and lean_pass_can_run(model)


def forward(model, tokens: torch.Tensor, cache, positions: torch.Tensor, attention_mask: torch.Tensor | None,
            last_only: bool) -> torch.Tensor:
    """Logits for `tokens` (rows, n) after the cache's past: (rows, vocab) of the last position when
    `last_only`, else (rows, n, vocab), in the model's dtype.

    positions: (rows, n) position ids; attention_mask: (rows, past + n) 1 for real tokens, or None
    when no row has padding. The cache receives each layer's new keys and values. The hidden states
    stay (rows * n, hidden) between layers, so each product is one plain matrix product.
    """
    decoder = model.model
    rows, count = tokens.shape
    hidden = decoder.embed_tokens(tokens).view(rows * count, -1)
    cos, sin = (part[:, None] for part in decoder.rotary_emb(hidden, positions))
    mask = attention_pattern(attention_mask, count, cache.get_seq_length(), hidden.device)
    for index, layer in enumerate(decoder.layers[: model.config.num_hidden_layers]):
        normed = rms_norm(hidden, layer.input_layernorm)
        hidden = hidden + attention(layer.self_attn, normed.view(rows, count, -1), cache, index, cos, sin, mask)
        mlp = layer.mlp
        normed = rms_norm(hidden, layer.post_attention_layernorm)
        gate, up = joined_or_separate(mlp, "gate_up_proj", ("gate_proj", "up_proj"), normed, project)
        hidden = hidden + project(mlp.down_proj, mlp.act_fn(gate) * up)
    hidden = hidden.view(rows, count, -1)
    if last_only:
        hidden = hidden[:, -1]
    return model.lm_head(rms_norm(hidden, decoder.norm))


def rms_norm(hidden: torch.Tensor, norm) -> torch.Tensor:
    """LlamaRMSNorm's arithmetic (in float32, the result back in the input's dtype), without the two
    casts when the input already is float32."""
    if hidden.dtype == torch.float32:
        return norm.weight * (hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon))
    wide = hidden.float()
    wide = wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * wide.to(hidden.dtype)


def attention(module, normed: torch.Tensor, cache, index: int, cos, sin, mask) -> torch.Tensor:
    """One self-attention block on (rows, n, hidden): projections, rotary embeddings, cache update, SDPA,
    output projection, returned as (rows * n, hidden)."""
    rows, count, _ = normed.shape
    head_dim = module.head_dim
    query, key, value = joined_or_separate(module, "qkv_proj", ("q_proj", "k_proj", "v_proj"), normed, project)
    query = query.view(rows, count, -1, head_dim)
    key = key.view(rows, count, -1, head_dim)
    heads = query.shape[2]
    # Queries and keys rotate by the same angles: one pass over both.
    rotated = rotate(torch.cat((query, key), dim=2).transpose(1, 2), cos, sin)
    query, key = rotated[:, :heads], rotated[:, heads:]
    value = value.view(rows, count, -1, head_dim).transpose(1, 2)
    key, value = cache.update(key, value, index)
    causal = mask is None and count > 1
    output = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=causal,
                                            scale=module.scaling, enable_gqa=heads != key.shape[1])
    return project(module.o_proj, output.transpose(1, 2).reshape(rows * count, -1))


def rotate(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (transformers' apply_rotary_pos_emb) of (rows, heads, n, head_dim) states."""
    first, second = states.chunk(2, dim=-1)
    return states * cos + torch.cat((-second, first), dim=-1) * sin
