"""Every case of tests/goldens/processors.json, made by transformers 4.57.6's generate() on our fixture
models (tests/goldens/make_processor_goldens.py), replayed through decoding.generate: the same token
ids, exactly, and the same scores to 1e-5, relative for large ones (the chosen tokens' processed scores and each step's
smallest score; beam search: sequences_scores).

Each case also stores 4.57.6's answer without the options under test; it differs from the answer
with them (checked here too), so a case fails if nopipe ignored its option.
"""

import json

import pytest
import torch
from tiny_models import fixture_model

from core.seed import set_seed
from decoding import generate
from decoding.watermark import watermark_z_scores
from tests.paths import GOLDENS

CASES = json.loads((GOLDENS / "processors.json").read_text(encoding="utf-8"))["cases"]


def run_case(case: dict, options: dict):
    """decoding.generate on the case's prompts with `options`, seeded as the script seeded generate()."""
    model, tokenizer = fixture_model(case["fixture"])
    encoded = tokenizer(case["prompts"], return_tensors="pt", padding=True)
    if case["negative_prompt"] is not None and "guidance_scale" in options:
        negative = tokenizer([case["negative_prompt"]], return_tensors="pt")
        options = dict(options, negative_prompt_ids=negative["input_ids"],
                       negative_prompt_attention_mask=negative["attention_mask"])
    if case["seed"] is not None:
        set_seed(case["seed"])
    out = generate(model, encoded["input_ids"], encoded["attention_mask"], output_scores=True, **options)
    start = 1 if model.config.is_encoder_decoder else encoded["input_ids"].shape[1]
    return out, start


def assert_close(expected, actual, what: str) -> None:
    """Nested lists of floats equal to 1e-5; infinities must match exactly."""
    expected, actual = torch.tensor(expected, dtype=torch.float64), torch.tensor(actual, dtype=torch.float64)
    assert expected.shape == actual.shape, f"{what}: shape {tuple(actual.shape)}, 4.57.6 {tuple(expected.shape)}"
    # rtol: T5's logits are ~70 (~200 after a penalty), where float32 steps by 7.6e-6 (3e-5), and the T5 of
    # transformers 5 (which nopipe runs) rounds differently from 4.57.6's: up to 4e-6 relative, same tokens.
    assert torch.allclose(actual, expected, atol=1e-5, rtol=1e-5), f"{what}: max diff {(actual - expected).abs().max()}"


def chosen_and_min_scores(out, start: int) -> tuple[list, list]:
    chosen = out.sequences[:, start:]
    picked = [step.gather(1, chosen[:, i:i + 1]).squeeze(1).tolist() for i, step in enumerate(out.scores)]
    return picked, [step.min(dim=1).values.tolist() for step in out.scores]


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_same_answer_as_4576(case):
    out, start = run_case(case, case["options"])
    expected = case["expected"]
    assert out.sequences.tolist() == expected["sequences"], (
        f"{case['id']}: nopipe {out.sequences[:, start:].tolist()}\n4.57.6 "
        f"{[row[start:] for row in expected['sequences']]}")
    if "sequences_scores" in expected:
        assert_close(expected["sequences_scores"], out.sequences_scores.tolist(), "sequences_scores")
    else:
        picked, smallest = chosen_and_min_scores(out, start)
        assert_close(expected["chosen_scores"], picked, "chosen token scores")
        assert_close(expected["min_scores"], smallest, "smallest scores")


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_each_case_would_catch_an_ignored_option(case):
    """4.57.6's answer without the options under test is another answer: the sequences or the scores."""
    assert case["expected"] != case["without"], f"{case['id']} does not depend on {case['under_test']}"
    assert set(case["under_test"]) <= set(case["options"]), "the options under test are the ones the case sets"


WATERMARKED = [case for case in CASES if "watermarking_config" in case["under_test"]]


@pytest.mark.parametrize("case", WATERMARKED, ids=[case["id"] for case in WATERMARKED])
def test_the_detector_sees_the_watermark(case):
    """decoding.watermark's detector gives the watermarked new tokens a higher z-score than the plain ones.

    Each new token is scored with the token before it (the prompt's last, or the decoder start token) as its
    context; a repeated n-gram counts once (a tiny model repeats one token, green or not, to the end).
    """
    model, tokenizer = fixture_model(case["fixture"])
    start = 1 if model.config.is_encoder_decoder else len(tokenizer(case["prompts"], padding=True)["input_ids"][0])

    def z_scores(answer: dict) -> list[float]:
        new = torch.tensor([row[start - 1:] for row in answer["sequences"]])
        return watermark_z_scores(new, case["options"]["watermarking_config"], model.config.vocab_size,
                                  ignore_repeated_ngrams=True).z_score

    marked, plain = z_scores(case["expected"]), z_scores(case["without"])
    assert min(marked) > max(plain), f"watermarked {marked}, plain {plain}"
