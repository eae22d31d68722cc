"""`generate(..., trace=True)` records, per step, the top candidates before and after the processors
and the chosen token. The chosen tokens are the emitted ones, and the candidates are those of the
raw logits and processed scores that `generate(output_logits=True, output_scores=True)` returns.
"""

import pytest
import torch
from tiny_models import prompt_batch, reference, tiny_model

from core.seed import set_seed
from decoding import format_trace, generate


def top(scores: torch.Tensor, k: int) -> list[tuple[list[int], list[float]]]:
    """Per row: the k most probable token ids and their probabilities."""
    probs, ids = torch.softmax(scores, dim=-1).topk(k, dim=-1)
    return list(zip(ids.tolist(), probs.tolist()))


def ids_and_probs(candidates) -> tuple[list[int], list[float]]:
    return [c.token_id for c in candidates], [c.prob for c in candidates]


@pytest.mark.parametrize("arch", ["gpt2", "t5"])
@pytest.mark.parametrize("settings", [
    dict(max_new_tokens=8, repetition_penalty=2.0, no_repeat_ngram_size=2),
    dict(max_new_tokens=8, do_sample=True, temperature=0.7, top_k=3, seed=5),
], ids=["greedy_with_penalties", "sampling_top_k"])
def test_trace_records_the_candidates_of_generate_and_the_emitted_tokens(arch, settings):
    model = tiny_model(arch)
    input_ids, attention_mask = prompt_batch(model)
    settings = dict(settings, min_new_tokens=8)
    seed = settings.pop("seed", None)
    if seed is not None:
        set_seed(seed)
    expected = reference(model, input_ids, attention_mask, return_dict_in_generate=True, output_logits=True,
                         output_scores=True, **settings)
    if seed is not None:
        set_seed(seed)
    out = generate(model, input_ids, attention_mask, trace=4, **settings)
    start = 1 if model.config.is_encoder_decoder else input_ids.shape[1]

    assert len(out.trace) == out.sequences.shape[1] - start == len(expected.logits)
    for step, (record, raw, processed) in enumerate(zip(out.trace, expected.logits, expected.scores)):
        assert [row.chosen for row in record.rows] == out.sequences[:, start + step].tolist()
        for row, want_before, want_after in zip(record.rows, top(raw, 4), top(processed, 4)):
            for candidates, (want_ids, want_probs) in ((row.before, want_before), (row.after, want_after)):
                got_ids, got_probs = ids_and_probs(candidates)
                assert got_ids == want_ids
                assert got_probs == pytest.approx(want_probs, rel=1e-5, abs=1e-7)
            assert row.chosen in [c.token_id for c in row.after if c.prob > 0], "chosen among the allowed tokens"


def test_trace_shows_a_processor_changing_the_winner():
    """With a strong repetition penalty, some step's favourite before the processors is not the token chosen."""
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    out = generate(model, input_ids, attention_mask, max_new_tokens=10, repetition_penalty=5.0, trace=True)
    overruled = [row for step in out.trace for row in step.rows if row.before[0].token_id != row.chosen]
    assert overruled
    assert all(row.after[0].token_id == row.chosen for step in out.trace for row in step.rows)  # greedy


def test_beam_search_trace_names_each_new_beams_parent():
    model = tiny_model("bart")
    input_ids, attention_mask = prompt_batch(model)
    out = generate(model, input_ids, attention_mask, num_beams=3, max_new_tokens=6, trace=True)
    assert len(out.trace) >= 1
    for step in out.trace:
        assert len(step.rows) == input_ids.shape[0] * 3
        assert all(0 <= row.parent < 3 for row in step.rows)
    assert generate(model, input_ids, attention_mask, num_beams=3, max_new_tokens=6).trace is None


def test_format_trace_is_readable():
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    steps = generate(model, input_ids, attention_mask, max_new_tokens=3, trace=2).trace
    text = format_trace(steps, row=1)
    assert text.count("step ") == 3 and text.count("before:") == 3 and text.count("after:") == 3
    assert f"chose {steps[0].rows[1].chosen}" in text


def test_trace_rejects_a_bad_value():
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(ValueError, match="trace must be True/False or a positive number"):
        generate(model, input_ids, attention_mask, max_new_tokens=2, trace=-1)
