"""decoding/llama_step.py: the lean Llama forward gives the logits of the model's own forward (up to
float rounding) on every path the loop takes: a prompt with and without left padding, one token after
the cache, several tokens after it (speculative verification), in float32, bfloat16 and int8."""

import copy

import pytest
import torch
from tiny_models import prompt_batch, tiny_model
from transformers import AutoModelForCausalLM

from core.device import quantize_linear_layers
from decoding import generate, llama_step
from decoding.cache import new_cache
from tests.paths import FIXTURES


def positions_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded prompt (padding positions at 0), as the loop numbers them."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def both_forwards(model, input_ids, attention_mask, steps):
    """Logits of the model's forward and of the lean one, fed the same tokens: the prompt, then each of
    `steps` ((rows, n) tensors) after the cache. Returns two lists of (rows, n, vocab) tensors."""
    results = []
    for lean in (False, True):
        cache, mask, found = new_cache(model, 64), attention_mask, []
        positions = positions_of(attention_mask)
        for tokens in [input_ids, *steps]:
            if tokens is not input_ids:
                mask = torch.cat([mask, mask.new_ones(tokens.shape)], dim=-1)
                positions = positions[:, -1:] + 1 + torch.arange(tokens.shape[1])
            full_mask = None if bool(mask.all()) else mask
            with torch.inference_mode():
                if lean:
                    logits = llama_step.forward(model, tokens, cache, positions, full_mask, last_only=False)
                else:
                    logits = model(input_ids=tokens, attention_mask=full_mask, position_ids=positions, cache=cache,
                                   use_cache=True).logits
            found.append(logits.float())
        results.append(found)
    return results


STEPS = [torch.tensor([[5], [6], [7]]), torch.tensor([[8, 9, 10], [11, 12, 13], [14, 15, 16]])]


@pytest.mark.parametrize("padded", [True, False], ids=["left-padded", "unpadded"])
def test_lean_forward_gives_the_models_logits(padded):
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model, lengths=(7, 4, 6) if padded else (6, 6, 6))
    reference, lean = both_forwards(model, input_ids, attention_mask, STEPS)
    real = attention_mask.bool()
    torch.testing.assert_close(lean[0][real], reference[0][real], rtol=1e-5, atol=1e-5)  # padding positions differ
    for mine, theirs in zip(lean[1:], reference[1:]):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_lean_forward_keeps_the_last_position_only_when_asked():
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model, lengths=(6, 6, 6))
    positions = torch.arange(6).expand(3, 6)
    with torch.inference_mode():
        everything = llama_step.forward(model, input_ids, new_cache(model, 16), positions, None, last_only=False)
        last = llama_step.forward(model, input_ids, new_cache(model, 16), positions, None, last_only=True)
    assert last.shape == (3, model.config.vocab_size)
    torch.testing.assert_close(last, everything[:, -1], rtol=1e-6, atol=1e-6)


def test_lean_forward_runs_int8_and_bfloat16_modules():
    """The lean pass calls the model's own projections, so a quantized or bfloat16 model keeps its kernels."""
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / "llama").eval()
    input_ids, attention_mask = prompt_batch(model, lengths=(7, 4, 6))
    for variant, tolerance in ((quantize_linear_layers(copy.deepcopy(model)), 1e-5),
                               (copy.deepcopy(model).to(torch.bfloat16), 2e-2)):
        assert llama_step.applies(variant)
        reference, lean = both_forwards(variant, input_ids, attention_mask, STEPS)
        real = attention_mask.bool()  # int8: the padding positions too must match, they share the scale
        torch.testing.assert_close(lean[0][real], reference[0][real], rtol=tolerance, atol=tolerance)
        for mine, theirs in zip(lean[1:], reference[1:]):
            torch.testing.assert_close(mine, theirs, rtol=tolerance, atol=tolerance)


def test_only_plain_llama_models_take_the_lean_pass():
    assert llama_step.applies(tiny_model("llama"))
    assert not llama_step.applies(tiny_model("gpt2"))
    eager = copy.deepcopy(tiny_model("llama"))
    eager.config._attn_implementation = "eager"  # its padding rows attend evenly, SDPA's give zeros
    assert not llama_step.applies(eager)


def test_the_loop_takes_the_lean_pass_for_llama(monkeypatch):
    """Guard against a silent fallback: greedy decoding of the llama fixture goes through llama_step."""
    model = tiny_model("llama")
    calls = []
    original = llama_step.forward
    monkeypatch.setattr(llama_step, "forward", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    input_ids, attention_mask = prompt_batch(model)
    generate(model, input_ids, attention_mask, max_new_tokens=4, min_new_tokens=4)
    assert len(calls) == 4  # the prompt, then three single tokens
