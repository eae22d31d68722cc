"""The device/dtype manager picks what this machine can run and says so; bad requests are clear errors."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import core.device
from core import place_model, resolve_device, resolve_dtype
from core.device import conv1d_to_linear, int8_engine
from tests.paths import FIXTURES

CPU = torch.device("cpu")


def test_no_device_picks_the_best_present(monkeypatch):
    assert resolve_device(None) == CPU  # this machine has neither cuda nor mps
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == torch.device("cuda")


@pytest.mark.parametrize("device, expected", [("cpu", CPU), (-1, CPU), (torch.device("cpu"), CPU)])
def test_explicit_devices(device, expected):
    assert resolve_device(device) == expected


@pytest.mark.parametrize("device, message", [
    ("cuda", "no CUDA GPU; pass device='cpu'"),
    (0, "no CUDA GPU"),
    ("mps", "MPS is not available"),
    ("gpu7", "is not a device name"),
])
def test_devices_this_machine_lacks_are_clear_errors(device, message):
    with pytest.raises(ValueError, match=message):
        resolve_device(device)


def test_device_of_the_wrong_type():
    with pytest.raises(TypeError, match="device must be None, a string"):
        resolve_device(1.5)


def test_auto_dtype_is_float32_on_cpu():
    assert resolve_dtype("auto", CPU) == "float32"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8", torch.bfloat16])
def test_supported_cpu_dtypes_are_kept(dtype):
    assert resolve_dtype(dtype, CPU) == (dtype if isinstance(dtype, str) else "bfloat16")


def test_float16_on_cpu_warns_and_falls_back_to_float32():
    with pytest.warns(UserWarning, match="float16' on the CPU is slow.*using float32"):
        assert resolve_dtype("float16", CPU) == "float32"


@pytest.mark.parametrize("dtype", ["fp64", "half", torch.float64, 8])
def test_unknown_dtypes_list_the_choices(dtype):
    with pytest.raises(ValueError, match="not supported; use one of auto, float32, float16, bfloat16, int8"):
        resolve_dtype(dtype, CPU)


def test_int8_is_cpu_only():
    with pytest.raises(ValueError, match="CPU only"):
        resolve_dtype("int8", torch.device("cuda"))


def gpt2():
    return AutoModelForCausalLM.from_pretrained(FIXTURES / "gpt2")


def test_float16_warning_points_at_the_callers_line():
    from tasks.text_classification import TextClassifier

    with pytest.warns(UserWarning, match="float16' on the CPU") as caught:
        TextClassifier.from_pretrained(str(FIXTURES / "distilbert-sst2"), device="cpu", dtype="float16")
    assert caught[0].filename == __file__


def test_int8_packs_for_onednn_on_amx_machines_when_the_matrices_have_many_rows(monkeypatch):
    default = torch.backends.quantized.engine
    monkeypatch.setattr(core.device, "cpu_has_amx", lambda: True)
    assert int8_engine(many_rows=True) == "onednn" and int8_engine(many_rows=False) == default
    monkeypatch.setattr(core.device, "cpu_has_amx", lambda: False)
    assert int8_engine(many_rows=True) == default


def test_int8_weights_packed_for_another_engine_leave_the_global_engine_alone():
    default = torch.backends.quantized.engine
    model, _ = place_model(gpt2(), "cpu", "int8", many_rows=True)
    assert torch.backends.quantized.engine == default
    ids = torch.tensor([[1, 2, 3, 4]])
    assert model(ids).logits.shape == (1, 4, model.config.vocab_size)


def test_bfloat16_model_reports_its_placement():
    model, placement = place_model(gpt2(), "cpu", "bfloat16")
    assert placement.dtype == "bfloat16" and placement.torch_dtype == torch.bfloat16
    assert next(model.parameters()).dtype == torch.bfloat16 and not model.training


def test_conv1d_layers_become_equivalent_linear_layers():
    from transformers.pytorch_utils import Conv1D

    model = gpt2()
    inputs = torch.randn(2, 5, model.config.n_embd)
    before = model.transformer.h[0].mlp.c_fc(inputs)
    conv1d_to_linear(model)
    assert not any(isinstance(module, Conv1D) for module in model.modules())
    torch.testing.assert_close(model.transformer.h[0].mlp.c_fc(inputs), before)


def test_int8_quantizes_every_linear_layer_and_keeps_the_top_token():
    tokenizer = AutoTokenizer.from_pretrained(FIXTURES / "gpt2")
    tokenizer.pad_token = tokenizer.eos_token  # GPT-2 has none, as upstream
    inputs = tokenizer(["The weather in Paris is", "Angela Merkel visited"], return_tensors="pt", padding=True)
    reference = gpt2().eval()(**inputs).logits
    model, placement = place_model(gpt2(), "cpu", "int8")
    assert placement.dtype == "int8" and placement.torch_dtype == torch.float32
    quantized = [m for m in model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    plain = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert quantized and not plain  # the LM head and GPT-2's Conv1D projections included
    logits = model(**inputs).logits
    mask = inputs["attention_mask"].bool()
    agreement = (logits.argmax(-1)[mask] == reference.argmax(-1)[mask]).float().mean()
    assert agreement >= 0.9


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_a_cpu_decoder_keeps_its_head_by_columns_with_the_same_answers(name):
    """The LM head's weight is stored (hidden, vocab) in memory; tied embeddings share it; greedy tokens stay."""
    from decoding import generate

    original = AutoModelForCausalLM.from_pretrained(FIXTURES / name).eval()
    placed, _ = place_model(AutoModelForCausalLM.from_pretrained(FIXTURES / name), device="cpu", dtype="float32")
    weight = placed.get_output_embeddings().weight
    assert not weight.is_contiguous() and weight.t().is_contiguous()
    assert torch.equal(weight, original.get_output_embeddings().weight)
    if original.get_input_embeddings().weight is original.get_output_embeddings().weight:
        assert placed.get_input_embeddings().weight is weight
    ids = torch.tensor([[5, 17, 42, 8, 99, 23]])
    assert torch.equal(generate(placed, ids, max_new_tokens=12).sequences, generate(original, ids, max_new_tokens=12).sequences)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_a_model_with_its_head_by_columns_saves_and_loads_back(tmp_path, name):
    placed, _ = place_model(AutoModelForCausalLM.from_pretrained(FIXTURES / name), device="cpu", dtype="float32")
    placed.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(loaded.get_output_embeddings().weight, placed.get_output_embeddings().weight)
    tied = placed.get_input_embeddings().weight is placed.get_output_embeddings().weight
    assert (loaded.get_input_embeddings().weight is loaded.get_output_embeddings().weight) == tied


def test_int8_weights_have_a_scale_per_output_channel():
    model, _ = place_model(gpt2(), "cpu", "int8")
    head = model.get_output_embeddings()
    assert head.weight().qscheme() == torch.per_channel_affine
    assert head.weight().q_per_channel_scales().shape == (head.out_features,)


@pytest.mark.parametrize("vnni", [True, False])
def test_activations_use_8_bits_only_where_the_cpu_has_vnni(monkeypatch, vnni):
    monkeypatch.setattr(core.device, "cpu_has_vnni", lambda: vnni)
    model, _ = place_model(gpt2(), "cpu", "int8")
    kinds = {type(module) for module in model.modules() if isinstance(module, torch.ao.nn.quantized.dynamic.Linear)}
    assert kinds == {core.device.FullRangeLinear if vnni else torch.ao.nn.quantized.dynamic.Linear}


@pytest.mark.skipif(not core.device.cpu_has_vnni(), reason="8-bit activations are used only on CPUs with VNNI")
def test_8_bit_activations_are_closer_to_float32_than_torchs_7_bit():
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 64)
    inputs = torch.randn(16, 256)
    expected = layer(inputs)
    full = core.device.quantize_linear_layers(torch.nn.Sequential(layer))
    assert isinstance(full[0], core.device.FullRangeLinear)
    packed = full[0]._packed_params._packed_params  # the same int8 weights, activations in 7 bits as torch's Linear
    reduced_error = (torch.ops.quantized.linear_dynamic(inputs, packed, reduce_range=True) - expected).abs().mean()
    full_error = (full(inputs) - expected).abs().mean()
    assert full_error < 0.75 * reduced_error


def test_int8_models_run_the_fused_tanh_gelu_and_float32_keeps_transformers_own():
    from transformers.activations import GELUTanh, NewGELUActivation

    int8, _ = place_model(gpt2(), "cpu", "int8")
    float32, _ = place_model(gpt2(), "cpu", "float32")
    assert isinstance(int8.transformer.h[0].mlp.act, GELUTanh)
    assert not any(isinstance(module, NewGELUActivation) for module in int8.modules())
    assert isinstance(float32.transformer.h[0].mlp.act, NewGELUActivation)
    inputs = torch.randn(4, 3072) * 3
    torch.testing.assert_close(int8.transformer.h[0].mlp.act(inputs), float32.transformer.h[0].mlp.act(inputs),
                               atol=1e-6, rtol=0)


def test_a_cpu_placement_keeps_freed_memory_for_reuse(monkeypatch):
    calls = []
    monkeypatch.setattr(core.device, "reuse_freed_memory", lambda: calls.append(True))
    place_model(gpt2(), "cpu", "float32")
    place_model(gpt2(), "cpu", "int8")
    assert len(calls) == 2


@pytest.mark.skipif(not hasattr(__import__("ctypes").CDLL(None), "mallopt"), reason="glibc's mallopt only")
def test_glibc_takes_the_reuse_thresholds():
    core.device.reuse_freed_memory.cache_clear()
    assert core.device.reuse_freed_memory() is True
