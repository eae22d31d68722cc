"""decoding.token_healing against transformers 4.57.6's token healing (tests/goldens/token_healing.json,
made by tests/goldens/make_token_healing_goldens.py): the same healed prompts, and, continued by
decoding.generate, the same generated ids; plus its refusals and its prefix search.
"""

import contextlib
import copy
import json

import pytest
import torch
from tiny_models import fixture_model
from transformers.tokenization_python import ExtensionsTrie

from decoding import generate
from decoding.token_healing import SortedVocabulary, heal_prompt, healing_bias, tail_texts
from tests.paths import GOLDENS

GOLDEN = json.loads((GOLDENS / "token_healing.json").read_text(encoding="utf-8"))
CASES = GOLDEN["cases"]
# 4.57.6 continues these with the attention mask of the prompt before healing, of another length
# (positions shift by the difference): decoding.generate refuses such a mask, so only the healed prompt is compared.
STALE_MASK = [c for c in CASES if "sequences" in c and len(c["healed"][0]) != len(c["input_ids"][0])]
CONTINUED = [c for c in CASES if "sequences" in c and c not in STALE_MASK]


def load(case: dict):
    """The case's fixture, with copies where the case changes it (fixture_model shares one per session)."""
    model, tokenizer = fixture_model(case["fixture"])
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.padding_side = case["padding_side"]
    if case["generation_config"]:
        model = copy.deepcopy(model)
        for name, value in case["generation_config"].items():
            setattr(model.generation_config, name, value)
    return model, tokenizer


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_same_healed_prompt_as_4576(case):
    model, tokenizer = load(case)
    healed = heal_prompt(model, torch.tensor(case["input_ids"]), tokenizer)
    assert healed.tolist() == case["healed"]


@pytest.mark.parametrize("case", CONTINUED, ids=[c["id"] for c in CONTINUED])
def test_same_generation_as_4576(case):
    """heal_prompt, then decoding.generate with the prompt's attention mask, as 4.57.6's generate() does.

    With beams, 4.57.6 heals each prompt's copies; nopipe heals before copying, the same when the
    healing step is greedy."""
    model, tokenizer = load(case)
    healed = heal_prompt(model, torch.tensor(case["input_ids"]), tokenizer)
    right_padded = case["padding_side"] == "right"
    with pytest.warns(UserWarning, match="right padding") if right_padded else contextlib.nullcontext():
        out = generate(model, healed, torch.tensor(case["attention_mask"]), max_new_tokens=GOLDEN["max_new_tokens"],
                       **case["options"])
    assert out.sequences.tolist() == case["sequences"]


def test_the_goldens_heal_and_keep():
    """Some cases change the prompt's last token, and some keep it although it had other candidates."""
    changed = {c["id"] for c in CASES if c["healed"] != c["input_ids"]}
    assert {"gpt2-healed", "llama-healed", "gpt2-batch"} <= changed
    model, tokenizer = load(next(c for c in CASES if c["id"] == "gpt2-url"))
    tail = tokenizer("The url is http").input_ids[-1]
    bias = healing_bias(tail, tokenizer.decode(tail), SortedVocabulary(tokenizer.get_vocab()), tokenizer)
    assert bias is not None and len(bias) > 1 and bias[(tail,)] == 11.0  # the model chose 'p' again


def test_a_prompt_that_strips_to_nothing():
    """4.57.6 heals it to a (1, 0) prompt and generate() then fails; decoding.generate refuses it by name."""
    case = next(c for c in CASES if c["id"] == "gpt2-blank-prompt")
    model, tokenizer = load(case)
    healed = heal_prompt(model, torch.tensor(case["input_ids"]), tokenizer)
    assert tuple(healed.shape) == (1, 0)
    with pytest.raises(ValueError, match="input_ids is empty"):
        generate(model, healed, max_new_tokens=2)


def test_a_tail_with_a_space_is_searched_with_the_unknown_tokens_first_character():
    _, tokenizer = fixture_model("gpt2")
    assert tail_texts([tokenizer.convert_tokens_to_ids("Ġis")], tokenizer) == ["<is"]


def test_a_tail_missing_from_its_own_candidates_is_refused():
    """4.57.6 fails with a KeyError when the last token is not among the tokens starting with its text (a
    SentencePiece '▁word' decodes to 'word'). Here: a lone space token, searched as '<', finds '<' and EOS."""
    _, tokenizer = fixture_model("gpt2")
    space = tokenizer.convert_tokens_to_ids("Ġ")
    [text] = tail_texts([space], tokenizer)
    with pytest.raises(ValueError, match=f"last token {space} .* is not among the 2 tokens"):
        healing_bias(space, text, SortedVocabulary(tokenizer.get_vocab()), tokenizer)


def test_needs_a_tokenizer():
    model, _ = fixture_model("gpt2")
    with pytest.raises(ValueError, match="tokenizer="):
        heal_prompt(model, torch.tensor([[84, 261]]), None)


def test_needs_a_pad_token():
    model, tokenizer = fixture_model("gpt2")
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.pad_token = None
    with pytest.raises(ValueError, match="tokenizer.pad_token"):
        heal_prompt(model, torch.tensor([[84, 261]]), tokenizer)


def test_refuses_an_encoder_decoder_model():
    model, tokenizer = fixture_model("t5")
    with pytest.raises(ValueError, match="decoder-only"):
        heal_prompt(model, torch.tensor([[84, 261]]), tokenizer)


def test_prefix_search_is_the_4576_trie():
    """SortedVocabulary.extensions gives ExtensionsTrie.extensions (unchanged from 4.57.6 in transformers 5),
    for every token's text and for prefixes no token starts with (the trie's quirk)."""
    _, tokenizer = fixture_model("gpt2")
    vocab = tokenizer.get_vocab()
    trie, ours = ExtensionsTrie(vocab), SortedVocabulary(vocab)
    prefixes = [*vocab, "", "<is", "ĠtheX", "Ġth\n", "é", "zzzz"]
    different = [p for p in prefixes if sorted(ours.extensions(p)) != sorted(trie.extensions(p))]
    assert not different
    assert sorted(ours.extensions("ĠtheX")) == sorted("ĠtheX" + token[len("Ġthe"):] for token in vocab
                                                       if token.startswith("Ġthe"))


def test_generation_continues_with_the_attention_mask_from_before_healing():
    """Which mask generate() gives the healed prompt shows: one inferred from the healed ids (where pad is EOS:
    all ones) lets the row of 't' see its padding, and 4.57.6's answer is another."""
    case = next(c for c in CASES if c["id"] == "llama-batch-one-token-row")
    model, tokenizer = load(case)
    healed = heal_prompt(model, torch.tensor(case["input_ids"]), tokenizer)
    out = generate(model, healed, max_new_tokens=GOLDEN["max_new_tokens"], do_sample=False)
    assert out.sequences[0].tolist() == case["sequences"][0]
    assert out.sequences[1].tolist() != case["sequences"][1]


def test_a_prompt_healed_to_another_length_cannot_keep_its_mask():
    """'I went to the ' loses its last space token; 4.57.6 goes on with the 6-token mask (positions one off),
    decoding.generate refuses a mask of another shape: generate() must choose a mask for such prompts."""
    [case] = STALE_MASK
    model, tokenizer = load(case)
    healed = heal_prompt(model, torch.tensor(case["input_ids"]), tokenizer)
    with pytest.raises(ValueError, match="attention_mask must have the shape of input_ids"):
        generate(model, healed, torch.tensor(case["attention_mask"]), max_new_tokens=2)


# -- through generate(token_healing=True) ---------------------------------------------------------------


@pytest.mark.parametrize("case", CONTINUED, ids=[c["id"] for c in CONTINUED])
def test_generate_with_token_healing_gives_4576s_tokens(case):
    """The option itself: generate() heals, keeps the mask from before healing, and continues as 4.57.6."""
    model, tokenizer = load(case)
    right_padded = case["padding_side"] == "right"
    with pytest.warns(UserWarning, match="right padding") if right_padded else contextlib.nullcontext():
        out = generate(model, torch.tensor(case["input_ids"]), torch.tensor(case["attention_mask"]),
                       max_new_tokens=GOLDEN["max_new_tokens"], token_healing=True, tokenizer=tokenizer,
                       **case["options"])
    assert out.sequences.tolist() == case["sequences"]


def test_generate_continues_a_prompt_healed_to_another_length_with_its_own_mask():
    """4.57.6 kept the mask of the longer prompt (positions one off); nopipe infers the healed prompt's."""
    [case] = STALE_MASK
    model, tokenizer = load(case)
    out = generate(model, torch.tensor(case["input_ids"]), max_new_tokens=3, token_healing=True, tokenizer=tokenizer)
    healed = torch.tensor(case["healed"])
    assert out.sequences[:, :healed.shape[1]].tolist() == case["healed"]
    alone = generate(model, healed, max_new_tokens=3)
    assert torch.equal(out.sequences, alone.sequences)


def test_generate_needs_a_tokenizer_and_a_flag():
    model, _ = fixture_model("gpt2")
    with pytest.raises(ValueError, match="tokenizer="):
        generate(model, torch.tensor([[84, 261]]), max_new_tokens=2, token_healing=True)
    with pytest.raises(TypeError, match="token_healing must be True or False"):
        generate(model, torch.tensor([[84, 261]]), max_new_tokens=2, token_healing="yes")


def test_runners_point_to_generate():
    import tasks
    from tests.paths import FIXTURES

    generator = tasks.load("text-generation", model=str(FIXTURES / "gpt2"))
    with pytest.raises(TypeError, match="decoding.generate.*token_healing=True"):
        generator("The url is http", max_new_tokens=3, token_healing=True)
