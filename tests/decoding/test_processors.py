"""Each processor alone gives exactly the scores of the matching transformers LogitsProcessor.

Scores and ids are random (hypothesis draws the seed and the sizes): scores include ties and
-inf entries (as left by an earlier processor), ids come from a small range so that n-grams and
bad-word prefixes really repeat. Our side is the processor `build_processors` makes from the
settings, i.e. exactly what the loop runs.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.generation import logits_process as hf

from decoding.config import DecodingConfig
from decoding.processors import apply_min_p, apply_top_k, apply_top_p, build_processors, run_processors

VOCAB = 40
ROWS = 4
EXAMPLES = settings(max_examples=25, deadline=None)


def random_scores(seed: int, vocab: int = VOCAB) -> torch.Tensor:
    """(ROWS, vocab) float32 scores; some rows have ties (rounded values), some -inf entries."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn((ROWS, vocab), generator=generator) * 3
    scores[::2] = scores[::2].round()  # ties in every other row
    hidden = torch.rand((ROWS, vocab), generator=generator) < 0.15
    hidden[:, 0] = False  # every row keeps at least one finite score
    return scores.masked_fill(hidden, -float("inf"))


def random_ids(seed: int, length: int, high: int = 6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, high, (ROWS, length), generator=generator)


def ours(input_ids, scores, *, prompt_length=1, max_length=50, min_length=0, skip_before=None, **config):
    processors = build_processors(DecodingConfig(**config), prompt_length=prompt_length, max_length=max_length,
                                  min_length=min_length, vocab_size=scores.shape[-1], device="cpu",
                                  skip_before=skip_before)
    assert len(processors) == 1, "the settings should switch on exactly one processor"
    return run_processors(processors, input_ids, scores.clone())


def assert_same_scores(expected: torch.Tensor, actual: torch.Tensor) -> None:
    assert torch.equal(actual, expected), f"\nexpected {expected}\nactual   {actual}"


seeds = st.integers(0, 2**31 - 1)
lengths = st.integers(1, 12)


@EXAMPLES
@given(seed=seeds, length=lengths, penalty=st.sampled_from([0.5, 1.2, 2.0]), padded=st.booleans())
def test_repetition_penalty(seed, length, penalty, padded):
    scores, input_ids = random_scores(seed), random_ids(seed, length, high=VOCAB)
    skip = torch.randint(0, length, (ROWS,), generator=torch.Generator().manual_seed(seed)) if padded else None
    expected = hf.RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=skip)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, repetition_penalty=penalty, skip_before=skip))


@EXAMPLES
@given(seed=seeds, length=lengths, ngram_size=st.integers(1, 4))
def test_no_repeat_ngram(seed, length, ngram_size):
    scores, input_ids = random_scores(seed), random_ids(seed, length, high=3)
    expected = hf.NoRepeatNGramLogitsProcessor(ngram_size)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, no_repeat_ngram_size=ngram_size))


bad_word_lists = st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=3), min_size=1, max_size=5)


@EXAMPLES
@given(seed=seeds, length=lengths, bad_words_ids=bad_word_lists, eos=st.sampled_from([None, 2, [2, 4]]))
def test_bad_words(seed, length, bad_words_ids, eos):
    scores, input_ids = random_scores(seed), random_ids(seed, length)
    eos_ids = [eos] if isinstance(eos, int) else eos
    if eos_ids is not None and all(len(seq) == 1 and seq[0] in eos_ids for seq in bad_words_ids):
        bad_words_ids = bad_words_ids + [[5]]  # transformers drops single EOS entries; keep one real entry
    expected = hf.NoBadWordsLogitsProcessor(bad_words_ids, eos_token_id=eos)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, bad_words_ids=bad_words_ids, eos_token_id=eos))


@EXAMPLES
@given(seed=seeds, length=lengths, min_length=st.integers(1, 14), eos=st.sampled_from([2, [2, 7]]))
def test_min_length(seed, length, min_length, eos):
    scores, input_ids = random_scores(seed), random_ids(seed, length)
    expected = hf.MinLengthLogitsProcessor(min_length, eos)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, min_length=min_length, eos_token_id=eos))


@EXAMPLES
@given(seed=seeds, length=lengths, ngram_size=st.integers(1, 3), bad_words_ids=bad_word_lists,
       min_length=st.integers(1, 14), eos=st.sampled_from([2, [2, 4]]))
def test_the_bans_run_as_one_processor_with_transformers_scores(seed, length, ngram_size, bad_words_ids, min_length,
                                                                eos):
    """no_repeat_ngram_size, bad_words_ids and a minimum length only forbid tokens: nopipe writes their bans
    into one copy of the scores (`ours` checks that the settings make one processor), transformers runs three."""
    scores, input_ids = random_scores(seed), random_ids(seed, length)
    eos_ids = [eos] if isinstance(eos, int) else eos
    if all(len(seq) == 1 and seq[0] in eos_ids for seq in bad_words_ids):
        bad_words_ids = bad_words_ids + [[5]]  # transformers drops single EOS entries; keep one real entry
    expected = hf.NoRepeatNGramLogitsProcessor(ngram_size)(input_ids, scores.clone())
    expected = hf.NoBadWordsLogitsProcessor(bad_words_ids, eos_token_id=eos)(input_ids, expected)
    expected = hf.MinLengthLogitsProcessor(min_length, eos)(input_ids, expected)
    assert_same_scores(expected, ours(input_ids, scores, no_repeat_ngram_size=ngram_size, bad_words_ids=bad_words_ids,
                                      min_length=min_length, eos_token_id=eos))


@EXAMPLES
@given(seed=seeds, prompt_length=st.integers(1, 6), new=st.integers(0, 6), min_new_tokens=st.integers(1, 5),
       eos=st.sampled_from([3, [3, 9]]))
def test_min_new_tokens(seed, prompt_length, new, min_new_tokens, eos):
    scores, input_ids = random_scores(seed), random_ids(seed, prompt_length + new)
    expected = hf.MinNewTokensLengthLogitsProcessor(prompt_length, min_new_tokens, eos)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, prompt_length=prompt_length, min_new_tokens=min_new_tokens,
                                      eos_token_id=eos))


@pytest.mark.parametrize("length", [1, 2, 5])
def test_forced_bos(length):
    scores, input_ids = random_scores(length), random_ids(length, length)
    expected = hf.ForcedBOSTokenLogitsProcessor(7)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, forced_bos_token_id=7))


@pytest.mark.parametrize("eos", [3, [3, 11]])
@pytest.mark.parametrize("length", [4, 8, 9, 10])
def test_forced_eos(length, eos):
    scores, input_ids = random_scores(length), random_ids(length, length)
    expected = hf.ForcedEOSTokenLogitsProcessor(10, eos)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, max_length=10, forced_eos_token_id=eos))


# The warpers, switched on alone: do_sample=True with top_k=0 turns off transformers' top_k=50 default.
@EXAMPLES
@given(seed=seeds, temperature=st.sampled_from([0.3, 0.7, 1.5, 2.0]))
def test_temperature(seed, temperature):
    scores = random_scores(seed)
    expected = hf.TemperatureLogitsWarper(temperature)(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, do_sample=True, top_k=0, temperature=temperature))


@EXAMPLES
@given(seed=seeds, top_k=st.integers(1, VOCAB + 5))
def test_top_k(seed, top_k):
    scores = random_scores(seed)
    expected = hf.TopKLogitsWarper(top_k)(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, do_sample=True, top_k=top_k))


@EXAMPLES
@given(seed=seeds, top_p=st.floats(0.01, 0.99))
def test_top_p(seed, top_p):
    scores = random_scores(seed)
    expected = hf.TopPLogitsWarper(top_p)(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, do_sample=True, top_k=0, top_p=top_p))


@EXAMPLES
@given(seed=seeds, min_p=st.floats(0.0, 1.0))
def test_min_p(seed, min_p):
    scores = random_scores(seed)
    expected = hf.MinPLogitsWarper(min_p)(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, do_sample=True, top_k=0, min_p=min_p))


@EXAMPLES
@given(seed=seeds, keep=st.integers(1, 6), top_k=st.integers(1, 10), top_p=st.floats(0.01, 0.99),
       min_p=st.floats(0.0, 1.0))
def test_warpers_keep_min_tokens_to_keep(seed, keep, top_k, top_p, min_p):
    """Beam sampling keeps 1 + number of EOS ids; the pure functions take it as min_tokens_to_keep."""
    scores = random_scores(seed)
    assert_same_scores(hf.TopKLogitsWarper(top_k, min_tokens_to_keep=keep)(None, scores.clone()),
                       apply_top_k(scores, top_k, keep))
    assert_same_scores(hf.TopPLogitsWarper(top_p, min_tokens_to_keep=keep)(None, scores.clone()),
                       apply_top_p(scores, top_p, keep))
    assert_same_scores(hf.MinPLogitsWarper(min_p, min_tokens_to_keep=keep)(None, scores.clone()),
                       apply_min_p(scores, min_p, keep))


def test_processors_do_not_write_into_their_input():
    """A trace keeps the scores from before the processors, so no processor may modify them in place."""
    scores, input_ids = random_scores(0), random_ids(0, 8)
    config = DecodingConfig(do_sample=True, temperature=0.7, top_k=9, top_p=0.8, min_p=0.05, repetition_penalty=1.3,
                            no_repeat_ngram_size=2, bad_words_ids=[[1], [2, 3]], min_length=20, eos_token_id=4,
                            forced_eos_token_id=4)
    processors = build_processors(config, prompt_length=1, max_length=9, min_length=20, vocab_size=VOCAB,
                                  device="cpu")
    before = scores.clone()
    run_processors(processors, input_ids, scores)
    assert_same_scores(before, scores)
