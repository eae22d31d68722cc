"""decoding/llama_step.py and decoding/gpt2_step.py: each lean forward gives the logits of the model's own
forward (up to float rounding) on every path the loop takes: a prompt with and without left padding, one
token after the cache, several tokens after it (speculative verification), in float32, bfloat16 and int8."""

import copy

import pytest
import torch
from tiny_models import DECODER_ONLY, prompt_batch, tiny_model
from transformers import AutoModelForCausalLM

from core.device import fuse_tanh_gelu, quantize_linear_layers
from decoding import generate, gpt2_step, llama_step
from decoding.cache import new_cache
from decoding.lean_layers import lean_pass_for
from tests.paths import FIXTURES

PASSES = {"llama": llama_step, "gpt2": gpt2_step}


def positions_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded prompt (padding positions at 0), as the loop numbers them."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def both_forwards(model, input_ids, attention_mask, steps):
    """Logits of the model's forward and of its lean one, fed the same tokens: the prompt, then each of
    `steps` ((rows, n) tensors) after the cache. Returns two lists of (rows, n, vocab) tensors."""
    lean_pass = lean_pass_for(model)
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
                    logits = lean_pass.forward(model, tokens, cache, positions, full_mask, last_only=False)
                else:
                    logits = model(input_ids=tokens, attention_mask=full_mask, position_ids=positions, cache=cache,
                                   use_cache=True).logits
            found.append(logits.float())
        results.append(found)
    return results


STEPS = [torch.tensor([[5], [6], [7]]), torch.tensor([[8, 9, 10], [11, 12, 13], [14, 15, 16]])]


def assert_close_logits(reference, lean, attention_mask, tolerance):
    """The prompt's logits at its real positions (padding positions differ in float), then every step's."""
    real = attention_mask.bool()
    torch.testing.assert_close(lean[0][real], reference[0][real], rtol=tolerance, atol=tolerance)
    for mine, theirs in zip(lean[1:], reference[1:]):
        torch.testing.assert_close(mine, theirs, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("padded", [True, False], ids=["left-padded", "unpadded"])
@pytest.mark.parametrize("arch", DECODER_ONLY)
def test_lean_forward_gives_the_models_logits(arch, padded):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model, lengths=(7, 4, 6) if padded else (6, 6, 6))
    reference, lean = both_forwards(model, input_ids, attention_mask, STEPS)
    assert_close_logits(reference, lean, attention_mask, 1e-5)


@pytest.mark.parametrize("arch", DECODER_ONLY)
def test_lean_forward_keeps_the_last_position_only_when_asked(arch):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model, lengths=(6, 6, 6))
    positions = torch.arange(6).expand(3, 6)
    with torch.inference_mode():
        everything = PASSES[arch].forward(model, input_ids, new_cache(model, 16), positions, None, last_only=False)
        last = PASSES[arch].forward(model, input_ids, new_cache(model, 16), positions, None, last_only=True)
    assert last.shape == (3, model.config.vocab_size)
    torch.testing.assert_close(last, everything[:, -1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("arch", DECODER_ONLY)
def test_lean_forward_runs_int8_modules(arch):
    """The lean pass calls the model's own projections, so a quantized model keeps its kernels. The int8
    model gets the fused tanh GELU as place_model gives it (the lean pass computes that one)."""
    model = fuse_tanh_gelu(quantize_linear_layers(AutoModelForCausalLM.from_pretrained(FIXTURES / arch).eval()))
    input_ids, attention_mask = prompt_batch(model, lengths=(7, 4, 6))
    assert lean_pass_for(model) is PASSES[arch]
    reference, lean = both_forwards(model, input_ids, attention_mask, STEPS)
    # the padding positions too must match, as they share the scale (checked through the steps after them)
    assert_close_logits(reference, lean, attention_mask, 1e-5)


@pytest.mark.parametrize("arch", DECODER_ONLY)
def test_lean_forward_in_bfloat16_is_as_close_to_float32_as_the_models_own(arch):
    """bfloat16 rounds each operation to 3 digits, so the lean pass (fewer, fused operations) and the
    model's forward differ by that rounding; what matters is that the lean one strays no farther from
    the float32 logits than the model's own bfloat16 forward does."""
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / arch).eval()
    input_ids, attention_mask = prompt_batch(model, lengths=(7, 4, 6))
    exact, _ = both_forwards(model, input_ids, attention_mask, STEPS)
    halved = copy.deepcopy(model).to(torch.bfloat16)
    assert lean_pass_for(halved) is PASSES[arch]
    reference, lean = both_forwards(halved, input_ids, attention_mask, STEPS)
    real = attention_mask.bool()
    for index, (truth, theirs, mine) in enumerate(zip(exact, reference, lean)):
        truth, theirs, mine = (t[real] if index == 0 else t for t in (truth, theirs, mine))
        their_error, my_error = (theirs - truth).abs().max(), (mine - truth).abs().max()
        assert my_error <= 1.25 * their_error, (index, float(my_error), float(their_error))


def test_only_plain_llama_and_gpt2_models_take_a_lean_pass():
    assert lean_pass_for(tiny_model("llama")) is llama_step
    assert lean_pass_for(tiny_model("gpt2")) is gpt2_step
    assert lean_pass_for(tiny_model("bart")) is None
    for arch in DECODER_ONLY:
        eager = copy.deepcopy(tiny_model(arch))
        eager.config._attn_implementation = "eager"  # its padding rows attend evenly, SDPA's give zeros
        assert lean_pass_for(eager) is None
    crossing = copy.deepcopy(tiny_model("gpt2"))
    crossing.config.add_cross_attention = True
    assert lean_pass_for(crossing) is None


@pytest.mark.parametrize("arch", DECODER_ONLY)
def test_a_model_in_training_mode_or_with_hooks_the_pass_would_skip_runs_its_own_forward(arch):
    """Dropout (training mode) and a caller's hooks on the layers belong to the model's forward, which
    the lean pass does not call; a hook on the input embeddings runs either way."""
    model = copy.deepcopy(tiny_model(arch))
    model.train()
    assert lean_pass_for(model) is None
    model.eval()
    handle = model.get_input_embeddings().register_forward_hook(lambda *_: None)
    assert lean_pass_for(model) is PASSES[arch]
    handle.remove()
    for module in (model.get_decoder().layers[0] if arch == "llama" else model.transformer.h[0], model.lm_head):
        for register in (module.register_forward_hook, module.register_forward_pre_hook):
            handle = register(lambda *_: None)
            assert lean_pass_for(model) is None
            handle.remove()
    assert lean_pass_for(model) is PASSES[arch]


@pytest.mark.parametrize("arch", DECODER_ONLY)
def test_a_hook_on_a_layer_changes_the_tokens_as_it_does_in_generate(arch):
    """A steering hook (here: the first layer's output zeroed) acts on nopipe's tokens as on generate()'s."""
    model = copy.deepcopy(tiny_model(arch))
    input_ids, attention_mask = prompt_batch(model)
    plain = generate(model, input_ids, attention_mask, max_new_tokens=6).sequences
    layer = model.get_decoder().layers[0] if arch == "llama" else model.transformer.h[0]
    handle = layer.register_forward_hook(
        lambda module, args, output: torch.zeros_like(output[0] if isinstance(output, tuple) else output))
    try:
        steered = generate(model, input_ids, attention_mask, max_new_tokens=6).sequences
        expected = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=6, do_sample=False)
    finally:
        handle.remove()
    assert torch.equal(steered, expected) and not torch.equal(steered, plain)


@pytest.mark.parametrize("arch", DECODER_ONLY)
def test_the_loop_takes_the_lean_pass(arch, monkeypatch):
    """Guard against a silent fallback: greedy decoding of each decoder fixture goes through its lean pass."""
    model = tiny_model(arch)
    calls = []
    original = PASSES[arch].forward
    monkeypatch.setattr(PASSES[arch], "forward", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    input_ids, attention_mask = prompt_batch(model)
    generate(model, input_ids, attention_mask, max_new_tokens=4, min_new_tokens=4)
    assert len(calls) == 4  # the prompt, then three single tokens
