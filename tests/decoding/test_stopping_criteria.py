"""stopping_criteria=: transformers-style criteria end rows of the greedy and sampling loops (and of the
speculative ones), in generate(), stream() and the runners; a bad criterion is named."""

import pytest
import torch
from tiny_models import fixture_model, prompt_batch, tiny_model
from transformers import StoppingCriteria, StoppingCriteriaList

from decoding import generate, stream


class StopAfter(StoppingCriteria):
    """A criterion on transformers' interface: row r ends once its length reaches limits[r]."""

    def __init__(self, limits: list[int]):
        self.limits = torch.tensor(limits)

    def __call__(self, input_ids, scores, **kwargs):
        assert scores is None  # as 4.57.6's loops pass it when scores are not kept
        return input_ids.shape[1] >= self.limits[:input_ids.shape[0]]


def test_each_row_ends_where_its_criterion_says_and_is_padded():
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model)
    start = input_ids.shape[1]
    plain = generate(model, input_ids, attention_mask, max_new_tokens=12)
    assert plain.sequences[0, start + 2] == 2 and plain.sequences.shape[1] == start + 12  # row 0 ends by itself
    stopped = generate(model, input_ids, attention_mask, max_new_tokens=12,
                       stopping_criteria=StoppingCriteriaList([StopAfter([start + 9, start + 3, start + 6])]))
    assert stopped.sequences.shape[1] == start + 6
    pad = model.generation_config.pad_token_id
    for row, new in enumerate((3, 3, 6)):
        assert torch.equal(stopped.sequences[row, :start + new], plain.sequences[row, :start + new])
        assert (stopped.sequences[row, start + new:] == pad).all()


def test_a_plain_function_returning_one_bool_ends_every_row():
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    out = generate(model, input_ids, attention_mask, max_new_tokens=12,
                   stopping_criteria=[lambda ids, scores: ids.shape[1] >= input_ids.shape[1] + 4])
    assert out.sequences.shape[1] == input_ids.shape[1] + 4


@pytest.mark.parametrize("guesses", [dict(prompt_lookup_num_tokens=3), dict(prompt_lookup_num_tokens=3, do_sample=False,
                                                                            logits_processors=[lambda i, s: s])])
def test_speculative_loops_stop_at_the_same_token(guesses):
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 5, 12))
    start = input_ids.shape[1]
    criteria = [StopAfter([start + 4, start + 11, start + 7])]
    plain = generate(model, input_ids, attention_mask, max_new_tokens=14, stopping_criteria=criteria)
    guessed = generate(model, input_ids, attention_mask, max_new_tokens=14, stopping_criteria=criteria, **guesses)
    assert torch.equal(plain.sequences, guessed.sequences)


def test_stream_and_runner_take_it():
    import tasks
    from tests.paths import FIXTURES

    model, tokenizer = fixture_model("gpt2")
    input_ids = tokenizer("The hotel in Paris was", return_tensors="pt")["input_ids"]
    criteria = [StopAfter([input_ids.shape[1] + 3])]
    out = generate(model, input_ids, max_new_tokens=10, stopping_criteria=criteria)
    text = tokenizer.decode(out.sequences[0, input_ids.shape[1]:], skip_special_tokens=True)
    assert "".join(stream(model, tokenizer, input_ids, max_new_tokens=10, stopping_criteria=criteria)) == text
    generator = tasks.load("text-generation", model=str(FIXTURES / "gpt2"))
    answer = generator("The hotel in Paris was", max_new_tokens=10, do_sample=False, return_full_text=False,
                       stopping_criteria=criteria)
    assert answer[0]["generated_text"] == text


@pytest.mark.parametrize(("criteria", "settings", "error", "match"), [
    (lambda ids, scores: True, {}, TypeError, "pass it in a list"),
    (["stop"], {}, TypeError, "must be a callable"),
    ([lambda ids, scores: torch.ones(7, dtype=torch.bool)], {}, TypeError, r"shape \(rows,\) = \(3,\), got \(7,\)"),
    ([lambda ids, scores: 1], {}, TypeError, "must return a bool"),
    ([lambda ids, scores: False], dict(num_beams=2), ValueError, "cannot be used with num_beams=2"),
    ([lambda ids, scores: False], dict(penalty_alpha=0.6, top_k=4), ValueError, "contrastive search"),
])
def test_bad_criteria_are_named(criteria, settings, error, match):
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(error, match=match):
        generate(model, input_ids, attention_mask, max_new_tokens=3, stopping_criteria=criteria, **settings)
