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


# -- a search: a plug-in that owns the loop ------------------------------------------------------------------

class TwoStepLookahead:
    """Of the two most likely next tokens, take the one whose own best continuation makes the pair the
    most likely: a look one step further than greedy, written as a search (batch 1) on the model-step
    functions. Each candidate is fed with `decode_ahead`, scored, and taken back with `rewind`."""

    def __call__(self, model, call):
        from decoding.model_step import decode_ahead, decode_step, rewind
        from decoding.processors import run_processors
        from decoding.search import Found

        sequences, logits, state = call.sequences, call.logits, call.state
        cached = sequences.shape[1]  # positions in the cache: the prompt (or the decoder start token)
        while True:
            log_probs = run_processors(call.processors, sequences, logits).log_softmax(-1)[0]
            best, best_total = None, -float("inf")
            for token in log_probs.topk(2).indices:
                following = decode_ahead(model, token.view(1, 1), state)[0, -1].log_softmax(-1)
                rewind(state, cached)
                total = log_probs[token] + following.max()
                if total > best_total:
                    best, best_total = token.view(1), total
            sequences = torch.cat([sequences, best[:, None]], dim=-1)
            if bool(call.stop(sequences).all()):
                return Found(sequences)
            logits = decode_step(model, best, state)
            cached += 1


def lookahead_without_cache(model, input_ids, steps: int) -> torch.Tensor:
    """The same rule with a full forward pass over the whole sequence for every score: no cache to get wrong."""
    sequences = input_ids

    def next_log_probs(tokens):
        if model.config.is_encoder_decoder:
            return model(input_ids=input_ids, decoder_input_ids=tokens).logits[0, -1].float().log_softmax(-1)
        return model(input_ids=tokens).logits[0, -1].float().log_softmax(-1)

    if model.config.is_encoder_decoder:
        sequences = torch.tensor([[model.generation_config.decoder_start_token_id]])
    for _ in range(steps):
        log_probs = next_log_probs(sequences)
        candidates = log_probs.topk(2).indices
        totals = [log_probs[token] + next_log_probs(torch.cat([sequences, token.view(1, 1)], dim=-1)).max()
                  for token in candidates]
        best = candidates[int(torch.stack(totals).argmax())]
        sequences = torch.cat([sequences, best.view(1, 1)], dim=-1)
    return sequences


@pytest.mark.parametrize("arch", ["gpt2", "llama", "t5"])
def test_a_search_written_in_a_test_drives_the_model_through_the_model_step_functions(arch):
    model = tiny_model(arch)
    input_ids, _ = prompt_batch(model, lengths=(6,))
    with torch.inference_mode():
        ours = generate(model, input_ids, max_new_tokens=8, search=TwoStepLookahead(), eos_token_id=[],
                        forced_eos_token_id=None, forced_bos_token_id=None, bad_words_ids=None, min_length=0).sequences
        expected = lookahead_without_cache(model, input_ids, steps=8)
    assert torch.equal(ours, expected)
    greedy = generate(model, input_ids, max_new_tokens=8, do_sample=False, eos_token_id=[], forced_eos_token_id=None,
                      forced_bos_token_id=None, bad_words_ids=None, min_length=0).sequences
    assert ours.shape == greedy.shape


def test_the_built_in_loops_are_searches_too():
    from decoding.search import BeamSearch, PromptLookup, TokenLoop

    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    for search, settings in ((TokenLoop(), {}), (BeamSearch(), dict(num_beams=3)), (PromptLookup(3), {})):
        by_default = generate(model, input_ids, attention_mask, max_new_tokens=6, do_sample=False, **settings)
        passed = generate(model, input_ids, attention_mask, max_new_tokens=6, do_sample=False, search=search,
                          **settings)
        assert torch.equal(by_default.sequences, passed.sequences)


@pytest.mark.parametrize(("options", "match"), [
    (dict(search="beam"), "search must be a callable"),
    (dict(search=TwoStepLookahead(), strategy=lambda scores: scores.argmax(-1)), "drop strategy="),
    (dict(search=TwoStepLookahead(), prompt_lookup_num_tokens=3), "drop prompt_lookup_num_tokens"),
    (dict(search=TwoStepLookahead(), assistant_model=tiny_model("gpt2")), "drop assistant_model"),
    (dict(search=lambda model, call: call.sequences), "must return decoding.search.Found"),
])
def test_a_bad_search_is_named(options, match):
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises((TypeError, ValueError), match=match):
        generate(model, input_ids, attention_mask, max_new_tokens=3, **options)
