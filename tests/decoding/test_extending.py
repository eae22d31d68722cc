"""Extending the loop without editing it: a logits processor is any `(input_ids, scores) -> scores`
callable, a strategy any `(scores) -> next_tokens` callable.

Both examples here are checked against transformers doing the same thing its own way: a
processor banning a token after another one, passed to both loops; and typical sampling written
as a strategy, against `generate(do_sample=True, typical_p=...)` under the same seed.
"""

import pytest
import torch
from tiny_models import ARCHITECTURES, assert_same_tokens, liked_eos, prompt_batch, reference, tiny_model
from transformers import LogitsProcessorList

from core.seed import set_seed
from decoding import generate


class NoTokenAfter:
    """Forbid `banned` right after `trigger`: a user processor of four lines."""

    def __init__(self, trigger: int, banned: int):
        self.trigger, self.banned = trigger, banned

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        after_trigger = input_ids[:, -1] == self.trigger
        scores = scores.clone()
        scores[after_trigger, self.banned] = -float("inf")
        return scores


def typical_sampling(mass: float):
    """Locally typical sampling (Meister et al. 2022) as a strategy: keep the tokens whose surprise is
    closest to the distribution's entropy, up to `mass` of probability, then draw from them.

    Written the way transformers' TypicalLogitsWarper computes it, so the same seed draws the same tokens.
    """
    def choose(scores: torch.Tensor) -> torch.Tensor:  # (rows, vocab) -> (rows,)
        log_probs = torch.log_softmax(scores, dim=-1)
        entropy = -(log_probs * log_probs.exp()).nansum(-1, keepdim=True)
        distance, order = torch.sort(torch.abs(-log_probs - entropy))
        cumulative = scores.gather(-1, order).softmax(dim=-1).cumsum(dim=-1)
        last = (cumulative < mass).sum(dim=1).clamp(max=scores.shape[-1] - 1)
        drop = distance > distance.gather(1, last[:, None])
        drop[:, :1] = False
        scores = scores.masked_fill(drop.scatter(1, order, drop), -float("inf"))
        return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
    return choose


@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_custom_processor_gives_the_tokens_of_generate_with_the_same_processor(arch):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    plain = generate(model, input_ids, attention_mask, max_new_tokens=10).sequences
    start = 1 if model.config.is_encoder_decoder else input_ids.shape[1]
    trigger, banned = plain[0, start].item(), plain[0, start + 1].item()  # greedy picks `banned` after `trigger`
    processor = NoTokenAfter(trigger, banned)
    for settings in (dict(max_new_tokens=10), dict(max_new_tokens=10, num_beams=3),
                     dict(max_new_tokens=10, do_sample=True, top_k=10, seed=5)):
        seed = settings.pop("seed", None)
        if seed is not None:
            set_seed(seed)
        expected = reference(model, input_ids, attention_mask, logits_processor=LogitsProcessorList([processor]),
                             **settings)
        if seed is not None:
            set_seed(seed)
        actual = generate(model, input_ids, attention_mask, logits_processors=[processor], **settings).sequences
        assert_same_tokens(expected, actual)
    changed = generate(model, input_ids, attention_mask, max_new_tokens=10, logits_processors=[processor]).sequences
    assert changed[0, start + 1] != banned, "the processor should change greedy's second token"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_typical_sampling_strategy_matches_generate_typical_p(arch):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    common = dict(max_new_tokens=10, eos_token_id=liked_eos(arch))
    set_seed(21)
    expected = reference(model, input_ids, attention_mask, do_sample=True, typical_p=0.6, top_k=0, **common)
    set_seed(21)
    actual = generate(model, input_ids, attention_mask, strategy=typical_sampling(0.6), **common).sequences
    assert_same_tokens(expected, actual)


def test_strategy_sees_the_processed_scores():
    """A strategy gets the scores after the built-in processors: here bad_words_ids bans the greedy choice."""
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    greedy_first = generate(model, input_ids, attention_mask, max_new_tokens=1).sequences[:, -1]
    seen = []

    def spy(scores):
        seen.append(scores.clone())
        return scores.argmax(dim=-1)

    banned = [[token] for token in greedy_first.unique().tolist()]
    generate(model, input_ids, attention_mask, max_new_tokens=1, bad_words_ids=banned, strategy=spy)
    assert torch.isinf(seen[0].gather(1, greedy_first[:, None])).all()
