"""What nopipe's lean forward passes (decoding/llama_step.py, decoding/gpt2_step.py) share, and which
model takes which pass.

A lean pass computes a decoder's layers with the model's own modules and fewer operations around
them than transformers' forward (no mask builder per layer, no attention-function registry, no
keyword plumbing or output objects): at batch 1 a decoding step's matrix products run at the
machine's memory bandwidth, so that per-layer work is a large share of the step.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D


def lean_pass_for(model):
    """The module (llama_step or gpt2_step) whose lean pass stands in for `model`'s forward, or None."""
    from decoding import gpt2_step, llama_step

    return next((family for family in (llama_step, gpt2_step) if family.applies(model)), None)


def lean_pass_can_run(model) -> bool:
    """The conditions every lean pass needs: the model in eval mode (the pass has no dropout), weights on
    one device (no offloading or device map, no meta tensors), SDPA attention, transformers' default
    (eager attention and other kernels treat padding rows their own way), and no forward hooks on the
    modules the pass computes by hand (a caller's probe or steering hook must run: only the input
    embeddings, which every pass calls as a module, may carry one)."""
    if model.training or getattr(model, "hf_device_map", None) is not None \
            or getattr(model.config, "_attn_implementation", "sdpa") != "sdpa" \
            or any(parameter.is_meta for parameter in model.parameters()):
        return False
    embeddings = model.get_input_embeddings()
    return not any(has_hooks(module) for module in model.modules() if module is not embeddings)


def has_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def project(linear, states: torch.Tensor) -> torch.Tensor:
    """A projection of 2-D `states`: F.linear on a plain nn.Linear's weights, addmm on a GPT-2 Conv1D's
    (skipping the module call), else the module itself (an int8 layer keeps its kernel)."""
    kind = type(linear)
    if kind is nn.Linear:
        return F.linear(states, linear.weight, linear.bias)
    if kind is Conv1D:
        return torch.addmm(linear.bias, states, linear.weight)
    return linear(states)


def attention_pattern(attention_mask: torch.Tensor | None, count: int, past: int, device) -> torch.Tensor | None:
    """The boolean (rows, 1, n, past + n) mask of who attends to whom, or None when SDPA's own causal
    flag (a prompt without padding) or no mask at all (one token without padding) says it.

    As in transformers' SDPA mask, a query with no allowed key (a padding position of a left-padded
    prompt) keeps an all-False row, for which SDPA returns zeros: the padding positions then hold what
    they hold in transformers' forward, which matters to int8 (a batch's activations share one scale).
    """
    if attention_mask is None and (count == 1 or past == 0):
        return None
    total = past + count
    allowed = torch.ones(count, total, dtype=torch.bool, device=device).tril(diagonal=past)[None, None]
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, :].bool()
    return allowed
