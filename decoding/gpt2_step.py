"""A lean forward pass for GPT-2 decoders (GPT2LMHeadModel: GPT-2 of every size, DistilGPT2).

Why: in a decoding step at batch 1 GPT-2's matrix products read the weights at the machine's memory
bandwidth, and transformers' forward adds eager work around them in each of the layers (the mask
builder, the attention-function registry, keyword plumbing, output objects, and the tanh GELU
written as seven tensor operations). Measured on GPT-2 124M (real size) on this 2-core CPU, 128
greedy tokens from a 32-token prompt, one process: float32 43.7 -> 53.0 tokens/s at batch 1 and
168.6 -> 186.1 at batch 8; int8 108.7 -> 126.6 and 391.8 -> 426.1, with the same tokens.

This module computes the same layers with the same modules (an int8 model's quantized projections
and a bfloat16 model's weights work unchanged): layer norms as one F.layer_norm each, the fused-QKV
product split by views, the attention mask built once per call, the GELU as torch's fused tanh
kernel, hidden states kept (rows * n, hidden) so each product is one plain matrix product. The
numbers are those of transformers' forward up to float rounding (`tests/decoding/test_lean_passes.py`
bounds the logits and checks the tokens). Used by decoding/model_step.py when `applies(model)`.
"""

import torch
import torch.nn.functional as F
from transformers.activations import GELUTanh, NewGELUActivation

from decoding.lean_layers import attention_pattern, lean_pass_can_run, project


def applies(model) -> bool:
    """Whether the lean pass can stand in for `model`'s forward: a plain GPT2LMHeadModel without
    cross-attention, in eval mode, on one device, with SDPA attention and no hooks the pass would skip
    (`lean_pass_can_run`; eager attention, which 4.x's `reorder_and_upcast_attn` changes, keeps its path)."""
    from transformers import GPT2LMHeadModel

    return (type(model) is GPT2LMHeadModel and not model.config.add_cross_attention
            and lean_pass_can_run(model))


def forward(model, tokens: torch.Tensor, cache, positions: torch.Tensor, attention_mask: torch.Tensor | None,
            last_only: bool) -> torch.Tensor:
    """Logits for `tokens` (rows, n) after the cache's past: (rows, vocab) of the last position when
    `last_only`, else (rows, n, vocab), in the model's dtype.

    positions: (rows, n) position ids; attention_mask: (rows, past + n) 1 for real tokens, or None
    when no row has padding. The cache receives each layer's new keys and values.
    """
    decoder = model.transformer
    rows, count = tokens.shape
    hidden = (decoder.wte(tokens) + decoder.wpe(positions)).view(rows * count, -1)
    mask = attention_pattern(attention_mask, count, cache.get_seq_length(), hidden.device)
    for index, block in enumerate(decoder.h):
        hidden = hidden + attention(block.attn, layer_norm(block.ln_1, hidden), rows, cache, index, mask)
        mlp = block.mlp
        hidden = hidden + project(mlp.c_proj, activate(mlp.act, project(mlp.c_fc, layer_norm(block.ln_2, hidden))))
    hidden = hidden.view(rows, count, -1)
    if last_only:
        hidden = hidden[:, -1]
    return model.lm_head(layer_norm(decoder.ln_f, hidden))


def layer_norm(norm, states: torch.Tensor) -> torch.Tensor:
    """nn.LayerNorm's arithmetic without the module call."""
    return F.layer_norm(states, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def activate(activation, states: torch.Tensor) -> torch.Tensor:
    """The MLP's activation; GPT-2's tanh GELU as one fused kernel (transformers' NewGELUActivation
    computes the same formula in seven operations: they differ by float rounding, 2.4e-7 at most on
    unit-scale inputs)."""
    if isinstance(activation, (NewGELUActivation, GELUTanh)):
        return F.gelu(states, approximate="tanh")
    return activation(states)


def attention(module, normed: torch.Tensor, rows: int, cache, index: int, mask) -> torch.Tensor:
    """One self-attention block on (rows * n, hidden): the fused q/k/v product, cache update, SDPA, output
    projection, returned as (rows * n, hidden)."""
    count = normed.shape[0] // rows
    heads, head_dim = module.num_heads, module.head_dim
    query, key, value = project(module.c_attn, normed).view(rows, count, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    key, value = cache.update(key, value, index)
    output = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=mask is None and count > 1,
                                            scale=module.scaling)
    return project(module.c_proj, output.transpose(1, 2).reshape(rows * count, -1))
