"""Each 4.57.6 processor alone gives exactly the scores of the matching transformers class.

transformers 5 still ships these classes (generate() of 4.57.6 built them from the options), so the
reference is transformers' own code, on random scores and ids drawn by hypothesis. Our side is the
processor `build_processors` makes from the settings, i.e. what the loop runs. The token-level
check against 4.57.6's generate() is tests/decoding/test_processor_goldens.py.
"""

import math

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_processors import ROWS, VOCAB, assert_same_scores, random_ids, random_scores
from transformers.generation import logits_process as hf

from decoding.config import DecodingConfig
from decoding.processors import build_processors, run_processors
from decoding.warpers import apply_epsilon_cutoff, apply_eta_cutoff, apply_typical
from decoding.watermark import DEFAULTS

EXAMPLES = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**31 - 1)
lengths = st.integers(1, 12)
probabilities = st.floats(1e-4, 0.99)


def ours(input_ids, scores, *, prompt_length=1, max_length=50, encoder_input_ids=None, **config):
    """The scores after the one processor these settings switch on."""
    processors = build_processors(DecodingConfig(**config), prompt_length=prompt_length, max_length=max_length,
                                  min_length=0, vocab_size=scores.shape[-1], device="cpu",
                                  encoder_input_ids=encoder_input_ids)
    assert len(processors) == 1, "the settings should switch on exactly one processor"
    return run_processors(processors, input_ids, scores.clone())


@EXAMPLES
@given(seed=seeds, mass=probabilities)
def test_typical_p(seed, mass):
    scores = random_scores(seed)
    expected = hf.TypicalLogitsWarper(mass)(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, do_sample=True, top_k=0, typical_p=mass))


@EXAMPLES
@given(seed=seeds, epsilon=probabilities)
def test_epsilon_cutoff(seed, epsilon):
    scores = random_scores(seed)
    expected = hf.EpsilonLogitsWarper(epsilon)(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, do_sample=True, top_k=0, epsilon_cutoff=epsilon))


@EXAMPLES
@given(seed=seeds, eta=probabilities)
def test_eta_cutoff(seed, eta):
    scores = random_scores(seed)
    expected = hf.EtaLogitsWarper(eta)(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, do_sample=True, top_k=0, eta_cutoff=eta))


@EXAMPLES
@given(seed=seeds, keep=st.integers(1, 6), cut=probabilities)
def test_new_warpers_keep_min_tokens_to_keep(seed, keep, cut):
    """Beam sampling keeps 1 + number of EOS ids; the pure functions take it as min_tokens_to_keep."""
    scores = random_scores(seed)
    assert_same_scores(hf.TypicalLogitsWarper(cut, min_tokens_to_keep=keep)(None, scores.clone()),
                       apply_typical(scores, cut, keep))
    assert_same_scores(hf.EpsilonLogitsWarper(cut, min_tokens_to_keep=keep)(None, scores.clone()),
                       apply_epsilon_cutoff(scores, cut, keep))
    assert_same_scores(hf.EtaLogitsWarper(cut, min_tokens_to_keep=keep)(None, scores.clone()),
                       apply_eta_cutoff(scores, cut, keep))


token_lists = st.lists(st.integers(0, VOCAB - 1), min_size=0, max_size=8)


@EXAMPLES
@given(seed=seeds, length=lengths, tokens=token_lists)
def test_suppress_tokens(seed, length, tokens):
    scores, input_ids = random_scores(seed), random_ids(seed, length)
    expected = hf.SuppressTokensLogitsProcessor(tokens)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, suppress_tokens=tokens))


@EXAMPLES
@given(seed=seeds, prompt_length=st.integers(1, 5), new=st.integers(0, 3), tokens=token_lists,
       forced_bos=st.sampled_from([None, 7]))
def test_begin_suppress_tokens(seed, prompt_length, new, tokens, forced_bos):
    """Only the first generated position: the prompt's end, or one later after a forced BOS (decoder start + BOS)."""
    scores, input_ids = random_scores(seed), random_ids(seed, prompt_length + new)
    begin_index = prompt_length + (1 if prompt_length == 1 and forced_bos is not None else 0)
    expected = hf.SuppressTokensAtBeginLogitsProcessor(tokens, begin_index)(input_ids, scores.clone())
    processors = build_processors(DecodingConfig(begin_suppress_tokens=tokens, forced_bos_token_id=forced_bos),
                                  prompt_length=prompt_length, max_length=50, min_length=0, vocab_size=VOCAB,
                                  device="cpu")
    actual = run_processors(processors[-1:], input_ids, scores.clone())  # the forced BOS comes first
    assert_same_scores(expected, actual)


sequence_biases = st.dictionaries(st.lists(st.integers(0, 5), min_size=1, max_size=3).map(tuple),
                                  st.floats(-10, 10, allow_subnormal=False), min_size=1, max_size=6)


@EXAMPLES
@given(seed=seeds, length=lengths, bias=sequence_biases)
def test_sequence_bias(seed, length, bias):
    scores, input_ids = random_scores(seed), random_ids(seed, length)
    as_list = [[list(ids), value] for ids, value in bias.items()]
    expected = hf.SequenceBiasLogitsProcessor(as_list)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, sequence_bias=bias))
    assert_same_scores(expected, ours(input_ids, scores, sequence_bias=as_list))


@EXAMPLES
@given(seed=seeds, length=lengths, penalty=st.sampled_from([0.5, 1.3, 2.0]))
def test_encoder_repetition_penalty(seed, length, penalty):
    scores, encoder_ids = random_scores(seed), random_ids(seed, length, high=VOCAB)
    expected = hf.EncoderRepetitionPenaltyLogitsProcessor(penalty, encoder_ids)(None, scores.clone())
    assert_same_scores(expected, ours(encoder_ids, scores, encoder_repetition_penalty=penalty,
                                      encoder_input_ids=encoder_ids))


def test_encoder_repetition_penalty_gives_each_row_its_own_prompt():
    """With 2 rows per prompt every row is penalised with its prompt's ids (4.57.6 changed only the first rows)."""
    scores, encoder_ids = random_scores(3), random_ids(3, 6, high=VOCAB)[:2]
    per_row = encoder_ids.repeat_interleave(2, dim=0)
    expected = hf.EncoderRepetitionPenaltyLogitsProcessor(1.7, per_row)(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, encoder_repetition_penalty=1.7, encoder_input_ids=encoder_ids))


@EXAMPLES
@given(seed=seeds, length=lengths, encoder_length=st.integers(1, 12), size=st.integers(1, 4),
       prompts=st.sampled_from([1, 2, 4]))
def test_encoder_no_repeat_ngram(seed, length, encoder_length, size, prompts):
    """`prompts` inputs, ROWS // prompts rows (beams) each, ids from a small range so n-grams recur."""
    scores, input_ids = random_scores(seed), random_ids(seed, length, high=3)
    encoder_ids = random_ids(seed + 7, encoder_length, high=3)[:prompts]
    expected = hf.EncoderNoRepeatNGramLogitsProcessor(size, encoder_ids)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, encoder_no_repeat_ngram_size=size,
                                      encoder_input_ids=encoder_ids))


@EXAMPLES
@given(seed=seeds, length=lengths, size=st.integers(1, 3), encoder_size=st.integers(1, 3))
def test_encoder_no_repeat_ngram_joins_the_bans_before_it(seed, length, size, encoder_size):
    """It only forbids tokens, so it and no_repeat_ngram_size, which runs just before it, write their bans
    into one copy of the scores (`ours` checks that the two settings make one processor)."""
    scores, input_ids = random_scores(seed), random_ids(seed, length, high=3)
    encoder_ids = random_ids(seed + 7, 8, high=3)[:2]
    expected = hf.NoRepeatNGramLogitsProcessor(size)(input_ids, scores.clone())
    expected = hf.EncoderNoRepeatNGramLogitsProcessor(encoder_size, encoder_ids)(input_ids, expected)
    assert_same_scores(expected, ours(input_ids, scores, no_repeat_ngram_size=size,
                                      encoder_no_repeat_ngram_size=encoder_size, encoder_input_ids=encoder_ids))


@EXAMPLES
@given(seed=seeds, length=st.integers(1, 14), start=st.integers(0, 6), factor=st.floats(0.5, 2.0),
       prompt_length=st.integers(1, 4), eos=st.sampled_from([2, [2, 9]]))
def test_exponential_decay_length_penalty(seed, length, start, factor, prompt_length, eos):
    scores, input_ids = random_scores(seed), random_ids(seed, length)
    expected = hf.ExponentialDecayLengthPenalty((start, factor), eos, prompt_length)(input_ids, scores.clone())
    assert_same_scores(expected, ours(input_ids, scores, prompt_length=prompt_length, eos_token_id=eos,
                                      exponential_decay_length_penalty=(start, factor)))


def test_exponential_decay_does_not_overflow():
    """factor ** 5000 overflows a Python float (4.57.6: OverflowError); the multiplier is capped instead."""
    scores, input_ids = random_scores(1), random_ids(1, 5001)
    actual = ours(input_ids, scores, eos_token_id=2, exponential_decay_length_penalty=(0, 2.0))
    assert torch.isfinite(actual[:, 2]).all() and (actual[:, 2] >= scores[:, 2]).all()


@EXAMPLES
@given(seed=seeds)
def test_remove_invalid_values(seed):
    scores = random_scores(seed)
    scores[0, 3], scores[1, 4], scores[2, :3] = math.nan, math.inf, math.nan
    expected = hf.InfNanRemoveLogitsProcessor()(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, remove_invalid_values=True))


@EXAMPLES
@given(seed=seeds)
def test_renormalize_logits(seed):
    scores = random_scores(seed)
    expected = hf.LogitNormalization()(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, renormalize_logits=True))


def test_renormalize_is_last_and_guidance_first():
    """4.57.6's order: guidance before everything, renormalization after the warpers and the caller's processors."""
    calls = []
    config = DecodingConfig(do_sample=True, top_k=0, typical_p=0.9, renormalize_logits=True, sequence_bias={(3,): 1.0})
    processors = build_processors(config, prompt_length=1, max_length=50, min_length=0, vocab_size=VOCAB, device="cpu",
                                  guidance=lambda ids, s: calls.append("guidance") or s,
                                  user_processors=[lambda ids, s: calls.append("user") or s])
    scores = run_processors(processors, random_ids(0, 3), random_scores(0))
    assert calls == ["guidance", "user"]
    assert torch.allclose(scores.logsumexp(-1), torch.zeros(ROWS), atol=1e-5)


watermarks = st.fixed_dictionaries({}, optional={
    "greenlist_ratio": st.sampled_from([0.1, 0.25, 0.5]), "bias": st.sampled_from([1.0, 2.5]),
    "hashing_key": st.integers(1, 2**31), "seeding_scheme": st.sampled_from(["lefthash", "selfhash"]),
    "context_width": st.integers(1, 3)})


@settings(max_examples=10, deadline=None)
@given(seed=seeds, length=lengths, watermark=watermarks)
def test_watermark(seed, length, watermark):
    """The green lists of transformers' WatermarkLogitsProcessor, on a vocabulary larger than selfhash's 40 tries."""
    scores, input_ids = random_scores(seed, vocab=60), random_ids(seed, length, high=60)
    try:
        expected = hf.WatermarkLogitsProcessor(60, "cpu", **watermark)(input_ids, scores.clone())
    except IndexError:
        # transformers' selfhash fails when none of the 40 best tokens is green (an empty float index); ours
        # adds nothing to that row: test_watermark_selfhash_without_green_tokens
        assume(False)
    assert_same_scores(expected, ours(input_ids, scores, watermarking_config=watermark))


def test_watermark_selfhash_without_green_tokens():
    """With a tiny green share no candidate may be green: the row is left as it is (transformers: IndexError)."""
    from decoding.watermark import GreenLists, apply_watermark, watermark_settings

    lists = GreenLists(watermark_settings({"seeding_scheme": "selfhash", "greenlist_ratio": 0.02}), 60, "cpu")
    scores, input_ids = random_scores(0, vocab=60), random_ids(0, 3, high=60)
    marked = apply_watermark(scores, input_ids, lists)
    unchanged = [row for row in range(ROWS) if len(lists.selfhash_green(input_ids[row], scores[row])) == 0]
    assert unchanged, "the example should have a row without green candidates"
    assert all(torch.equal(marked[row], scores[row]) for row in unchanged)


@settings(max_examples=10, deadline=None)
@given(seed=seeds, length=st.integers(5, 20), watermark=watermarks, bos=st.booleans())
def test_watermark_detector(seed, length, watermark, bos):
    """The z-scores of transformers' WatermarkDetector, on random texts and on watermarked ones."""
    from transformers import GPT2Config
    from transformers.generation import WatermarkDetector

    from decoding.watermark import watermark_z_scores

    input_ids = random_ids(seed, length, high=VOCAB)
    input_ids[:, 0] = 1 if bos else 3  # all texts start with BOS (dropped), or none does
    detector = WatermarkDetector(GPT2Config(vocab_size=VOCAB, bos_token_id=1), "cpu", {**DEFAULTS, **watermark})
    expected = detector(input_ids, return_dict=True)
    actual = watermark_z_scores(input_ids, watermark, VOCAB, bos_token_id=1)
    assert actual.num_tokens_scored == expected.num_tokens_scored.tolist()
    assert actual.num_green_tokens == expected.num_green_tokens.tolist()
    assert torch.allclose(torch.tensor(actual.z_score, dtype=torch.float64), torch.tensor(expected.z_score), atol=1e-12)


@EXAMPLES
@given(seed=seeds, top_h=st.floats(0.01, 1.0), vocab=st.sampled_from([VOCAB, 150]))
def test_top_h(seed, top_h, vocab):
    """transformers 5's top-h (not in 4.57.6), on vocabularies below and above its 100 candidates."""
    scores = random_scores(seed, vocab=vocab)
    expected = hf.TopHLogitsWarper(top_h)(None, scores.clone())
    assert_same_scores(expected, ours(None, scores, do_sample=True, top_k=0, top_h=top_h))


def allow_by_last_token(prompt: int, row_ids: torch.Tensor) -> list[int]:
    """A constraint that depends on the prompt and the row: a window of ids after the last one."""
    start = (int(row_ids[-1]) * 7 + prompt * 3) % (VOCAB - 5)
    return list(range(start, start + 1 + prompt % 4))


@EXAMPLES
@given(seed=seeds, length=lengths, per_prompt=st.sampled_from([1, 2, 4]))
def test_prefix_allowed_tokens_fn(seed, length, per_prompt):
    """transformers 5's PrefixConstrainedLogitsProcessor, with rows_per_prompt as its num_beams; -inf rows are forced."""
    from decoding.prefix_constraint import apply_prefix_constraint

    scores, input_ids = random_scores(seed), random_ids(seed, length, high=VOCAB)
    expected = hf.PrefixConstrainedLogitsProcessor(allow_by_last_token, per_prompt)(input_ids, scores.clone())
    assert_same_scores(expected, apply_prefix_constraint(scores, input_ids, allow_by_last_token, per_prompt))
