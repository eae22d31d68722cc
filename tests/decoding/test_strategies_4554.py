"""The strategies transformers 4.56 moved to the hub, against transformers 4.55.4's generate().

tests/goldens/strategies.json holds what 4.55.4 answered (tests/goldens/make_strategy_goldens.py); each
case is replayed through nopipe's strategy function on the same fixture: identical tokens, beam scores
within 1e-5. Every case also checks that its key option changed the answer (the golden differs from
plain greedy or beam search), so a strategy that ignored it would fail.
"""

import json
from functools import cache
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from decoding import generate
from decoding.constrained_beam import check_constrained_options, constrained_beam_search
from decoding.constraints import ConstraintListState, DisjunctiveConstraint, PhrasalConstraint
from decoding.contrastive import check_contrastive_options, contrastive_search
from decoding.diverse_beam import check_diverse_beam_options, diverse_beam_search
from decoding.dola import check_dola_options, dola_generate, premature_layer_candidates
from decoding.moved_searches import moved_search
from decoding.strategy_options import split_strategy_options

HERE = Path(__file__).resolve().parent
GOLDENS = json.loads((HERE.parent / "goldens" / "strategies.json").read_text(encoding="utf-8"))
FIXTURES = HERE.parent / "fixtures" / "models"
ENCODER_DECODER = {"bart-cnn", "t5", "marian-en-fr"}


def cases(strategy: str) -> list[dict]:
    return [spec for spec in GOLDENS["cases"] if spec["strategy"] == strategy]


@cache
def model(fixture: str):
    model_class = AutoModelForSeq2SeqLM if fixture in ENCODER_DECODER else AutoModelForCausalLM
    return model_class.from_pretrained(FIXTURES / fixture).eval()


def inputs(spec: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The golden's own prompt ids and mask, so tokenizer versions cannot make a difference."""
    expected = spec["expected"]
    return torch.tensor(expected["input_ids"]), torch.tensor(expected["attention_mask"])


def plain_generate(spec: dict, drop: tuple[str, ...]) -> list[list[int]]:
    """nopipe's greedy or beam output for the case without its strategy's options."""
    options = {name: value for name, value in spec["options"].items() if name not in drop}
    input_ids, attention_mask = inputs(spec)
    return generate(model(spec["fixture"]), input_ids, attention_mask, **options).sequences.tolist()


@pytest.mark.parametrize("spec", cases("contrastive"), ids=lambda spec: spec["id"])
def test_contrastive_search_matches_4554(spec):
    options = dict(spec["options"])
    input_ids, attention_mask = inputs(spec)
    sequences = contrastive_search(model(spec["fixture"]), input_ids, attention_mask, **options)
    assert sequences.tolist() == spec["expected"]["sequences"]


@pytest.mark.parametrize("spec", cases("contrastive"), ids=lambda spec: spec["id"])
def test_contrastive_golden_is_not_greedy(spec):
    assert plain_generate(spec, ("penalty_alpha", "top_k")) != spec["expected"]["sequences"]


@pytest.mark.parametrize("options, named", [
    (dict(penalty_alpha=0.6, top_k=1), "top_k"),
    (dict(penalty_alpha=0.6, top_k=None), "top_k"),
    (dict(penalty_alpha=1.5, top_k=4), "penalty_alpha"),
    (dict(penalty_alpha="0.6", top_k=4), "penalty_alpha"),
    (dict(penalty_alpha=0.6, top_k=4, do_sample=True), "do_sample"),
    (dict(penalty_alpha=0.6, top_k=4, num_beams=2), "num_beams"),
    (dict(penalty_alpha=0.6, top_k=4, num_return_sequences=2), "num_return_sequences"),
])
def test_contrastive_options_are_checked(options, named):
    penalty_alpha, top_k = options.pop("penalty_alpha"), options.pop("top_k")
    with pytest.raises(ValueError, match=named):
        check_contrastive_options(penalty_alpha, top_k, **options)


@pytest.mark.parametrize("spec", cases("diverse_beam"), ids=lambda spec: spec["id"])
def test_diverse_beam_search_matches_4554(spec):
    options = dict(spec["options"])
    input_ids, attention_mask = inputs(spec)
    sequences, scores = diverse_beam_search(model(spec["fixture"]), input_ids, attention_mask, **options)
    assert sequences.tolist() == spec["expected"]["sequences"]
    torch.testing.assert_close(scores, torch.tensor(spec["expected"]["sequences_scores"]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("spec", cases("diverse_beam"), ids=lambda spec: spec["id"])
def test_diverse_golden_is_not_plain_beam_search(spec):
    assert plain_generate(spec, ("num_beam_groups", "diversity_penalty")) != spec["expected"]["sequences"]


@pytest.mark.parametrize("options, named", [
    (dict(num_beam_groups=3, diversity_penalty=1.0, num_beams=4), "divisible"),
    (dict(num_beam_groups=2, diversity_penalty=0.0, num_beams=4), "diversity_penalty > 0"),
    (dict(num_beam_groups=1, diversity_penalty=1.0, num_beams=4), "num_beam_groups > 1"),
    (dict(num_beam_groups=2, diversity_penalty=1.0, num_beams=1), "num_beams"),
    (dict(num_beam_groups=2, diversity_penalty=1.0, num_beams=4, do_sample=True), "do_sample"),
    (dict(num_beam_groups=2.0, diversity_penalty=1.0, num_beams=4), "num_beam_groups"),
    (dict(num_beam_groups=2, diversity_penalty=-1.0, num_beams=4), "diversity_penalty"),
])
def test_diverse_beam_options_are_checked(options, named):
    groups, penalty = options.pop("num_beam_groups"), options.pop("diversity_penalty")
    with pytest.raises(ValueError, match=named):
        check_diverse_beam_options(groups, penalty, **options)


@pytest.mark.parametrize("spec", cases("dola"), ids=lambda spec: spec["id"])
def test_dola_matches_4554(spec):
    options = dict(spec["options"])
    input_ids, attention_mask = inputs(spec)
    if spec.get("seed") is not None:
        torch.manual_seed(spec["seed"])  # what transformers.set_seed does for torch's CPU draws
    sequences = dola_generate(model(spec["fixture"]), input_ids, attention_mask, **options)
    assert sequences.tolist() == spec["expected"]["sequences"]


@pytest.mark.parametrize("spec", cases("dola"), ids=lambda spec: spec["id"])
def test_dola_golden_is_not_greedy(spec):
    if spec.get("seed") is not None:
        torch.manual_seed(spec["seed"])
    assert plain_generate(spec, ("dola_layers",)) != spec["expected"]["sequences"]


def test_dola_warns_below_the_recommended_repetition_penalty():
    input_ids = torch.tensor([[289, 302, 480]])
    with pytest.warns(UserWarning, match="repetition_penalty"):
        dola_generate(model("gpt2"), input_ids, dola_layers="low", max_new_tokens=2)


@pytest.mark.parametrize("dola_layers, layers, tied, expected", [
    ("low", 32, True, list(range(2, 16, 2))),
    ("high", 32, True, list(range(16, 32, 2))),
    ("low", 48, False, list(range(0, 20, 2))),
    ("high", 48, False, list(range(28, 48, 2))),
    ("low", 2, True, [1]),
    ([0, 5, 31], 32, True, [0, 5, 31]),
])
def test_premature_layer_candidates(dola_layers, layers, tied, expected):
    assert premature_layer_candidates(dola_layers, layers, tied) == expected


@pytest.mark.parametrize("dola_layers, options, named", [
    ("middle", dict(is_encoder_decoder=False), "dola_layers must be"),
    ([], dict(is_encoder_decoder=False), "dola_layers must be"),
    ("low", dict(is_encoder_decoder=True), "decoder-only"),
    ("low", dict(is_encoder_decoder=False, num_beams=4), "num_beams"),
    ([0, 7], dict(is_encoder_decoder=False, num_layers=4), r"\[7\]"),
    ("high", dict(is_encoder_decoder=False, has_output_embeddings=False), "LM head"),
])
def test_dola_options_are_checked(dola_layers, options, named):
    with pytest.raises(ValueError, match=named):
        check_dola_options(dola_layers, **options)


def test_dola_refuses_an_encoder_decoder_model():
    with pytest.raises(ValueError, match="decoder-only"):
        dola_generate(model("t5"), torch.tensor([[3, 4, 1]]), dola_layers="low", max_new_tokens=2)


def constrained_options(spec: dict) -> dict:
    """The case's options with the token ids the golden script made of its words."""
    options = {name: value for name, value in spec["options"].items() if name != "force_words"}
    if "force_words_ids" in spec["expected"]:
        options["force_words_ids"] = spec["expected"]["force_words_ids"]
    return options


@pytest.mark.parametrize("spec", cases("constrained"), ids=lambda spec: spec["id"])
def test_constrained_beam_search_matches_4554(spec):
    input_ids, attention_mask = inputs(spec)
    sequences, scores = constrained_beam_search(model(spec["fixture"]), input_ids, attention_mask,
                                                **constrained_options(spec))
    assert sequences.tolist() == spec["expected"]["sequences"]
    torch.testing.assert_close(scores, torch.tensor(spec["expected"]["sequences_scores"]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("spec", cases("constrained"), ids=lambda spec: spec["id"])
def test_constrained_golden_is_not_plain_beam_search(spec):
    options = {name: value for name, value in spec["options"].items() if name not in ("force_words", "force_words_ids")}
    input_ids, attention_mask = inputs(spec)
    plain = generate(model(spec["fixture"]), input_ids, attention_mask, **options).sequences.tolist()
    assert plain != spec["expected"]["sequences"]


def test_constraints_given_as_objects_equal_force_words_ids():
    spec = next(spec for spec in cases("constrained") if spec["id"] == "constrained-marian-early")
    options = constrained_options(spec)
    options.pop("force_words_ids")
    input_ids, attention_mask = inputs(spec)
    sequences, _ = constrained_beam_search(model(spec["fixture"]), input_ids, attention_mask, **options,
                                           constraints=[PhrasalConstraint([60, 61]), DisjunctiveConstraint([[70], [71, 72]])])
    assert sequences.tolist() == spec["expected"]["sequences"]


def test_constraint_state_tracks_phrases_and_alternatives():
    state = ConstraintListState([PhrasalConstraint([5, 6]), DisjunctiveConstraint([[7], [8, 9]])])
    state.reset([1, 5, 6, 8])
    assert not state.completed and state.advance() == [9]
    state.add(9)
    assert state.completed


@pytest.mark.parametrize("force_words_ids, options, named", [
    ([[5]], dict(num_beams=4, do_sample=True), "do_sample"),
    ([[5]], dict(num_beams=1), "num_beams"),
    ([[5]], dict(num_beams=4, num_beam_groups=2), "num_beam_groups"),
    ([], dict(num_beams=4), "force_words_ids must be"),
    ([[5, -1]], dict(num_beams=4), "force_words_ids must be"),
    ([["a"]], dict(num_beams=4), "force_words_ids must be"),
    ([[[5], [5, 6]]], dict(num_beams=4), "start of another"),
])
def test_constrained_options_are_checked(force_words_ids, options, named):
    with pytest.raises(ValueError, match=named):
        check_constrained_options(force_words_ids, None, **options)


@pytest.mark.parametrize("settings, name, left", [
    (dict(penalty_alpha=0.6, top_k=4, max_new_tokens=5), "contrastive", dict(max_new_tokens=5)),
    (dict(penalty_alpha=0.0, top_k=4), None, dict(top_k=4)),
    (dict(num_beams=4, num_beam_groups=2, diversity_penalty=1.0), "diverse_beam", dict(num_beams=4)),
    (dict(num_beams=4, num_beam_groups=1, diversity_penalty=0.0), None, dict(num_beams=4)),
    (dict(dola_layers="low", repetition_penalty=1.2), "dola", dict(repetition_penalty=1.2)),
    (dict(num_beams=4, force_words_ids=[[5]]), "constrained", dict(num_beams=4)),
    (dict(num_beams=4, constraints=[PhrasalConstraint([5])]), "constrained", dict(num_beams=4)),
    (dict(max_new_tokens=5), None, dict(max_new_tokens=5)),
])
def test_strategy_is_chosen_from_the_keywords_as_in_4554(settings, name, left):
    choice, rest = split_strategy_options(settings)
    assert choice.name == name
    assert rest == left


@pytest.mark.parametrize("settings, named", [
    (dict(penalty_alpha=0.6, top_k=4, dola_layers="low"), "dola_layers"),
    (dict(penalty_alpha=0.6), "top_k"),  # with top_k=None from the model
    (dict(num_beams=4, force_words_ids=[[5]], diversity_penalty=1.0), "diversity_penalty"),
    (dict(num_beams=4, num_beam_groups=2, diversity_penalty=1.0, dola_layers="high"), "dola_layers"),
    (dict(penalty_alpha=0.6, top_k=4, num_beams=3), "num_beams"),
])
def test_strategy_keywords_that_would_be_ignored_are_refused(settings, named):
    with pytest.raises(ValueError, match=named):
        split_strategy_options(settings, defaults=dict(top_k=None) if "top_k" not in settings else None)


@pytest.mark.parametrize("strategy", ["contrastive", "dola", "diverse_beam", "constrained"])
def test_each_strategy_runs_as_a_search_passed_to_generate(strategy):
    """search=moved_search(choice) with the other settings gives the golden, as the keywords do."""
    spec = cases(strategy)[0]
    options = generate_options(spec)
    choice, rest = split_strategy_options(options)
    assert choice.name == strategy
    input_ids, attention_mask = inputs(spec)
    out = generate(model(spec["fixture"]), input_ids, attention_mask, search=moved_search(choice), **rest)
    assert out.sequences.tolist() == spec["expected"]["sequences"]
    if "sequences_scores" in spec["expected"]:
        assert torch.allclose(out.sequences_scores, torch.tensor(spec["expected"]["sequences_scores"]), atol=1e-5)


# -- selected by generate()'s own keywords, as in 4.55.4 ------------------------------------------------

def generate_options(spec: dict) -> dict:
    """The case's generate() keywords: `force_words` (texts) became the golden's force_words_ids."""
    options = {name: value for name, value in spec["options"].items() if name != "force_words"}
    if "force_words_ids" in spec["expected"]:
        options["force_words_ids"] = spec["expected"]["force_words_ids"]
    return options


@pytest.mark.parametrize("spec", GOLDENS["cases"], ids=lambda spec: spec["id"])
def test_generate_selects_the_strategy_from_its_keywords(spec):
    input_ids, attention_mask = inputs(spec)
    if spec["options"].get("do_sample"):
        torch.manual_seed(spec.get("seed", 0))
    out = generate(model(spec["fixture"]), input_ids, attention_mask, **generate_options(spec))
    if spec["options"].get("do_sample"):
        return  # the seeded case is replayed with its seed by the DoLa test above; here it only has to run
    assert out.sequences.tolist() == spec["expected"]["sequences"]
    if "sequences_scores" in spec["expected"]:
        torch.testing.assert_close(out.sequences_scores, torch.tensor(spec["expected"]["sequences_scores"]),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case_id", ["contrastive-gpt2", "diverse-t5", "constrained-llama"])
def test_runners_take_the_strategy_keywords(case_id):
    """A task runner passes the keywords through its settings resolver to the same strategy."""
    import tasks

    spec = next(spec for spec in GOLDENS["cases"] if spec["id"] == case_id)
    task = "text2text-generation" if spec["fixture"] in ENCODER_DECODER else "text-generation"
    runner = tasks.load(task, model=str(FIXTURES / spec["fixture"]))
    # do_sample=False: a deterministic strategy on a model whose generation_config samples is refused, not ignored
    answers = runner(spec["prompts"][0], **generate_options(spec), do_sample=False)
    expected = [runner.tokenizer.decode(ids, skip_special_tokens=True) for ids in spec["expected"]["sequences"]]
    key = "generated_text"
    assert [answer[key] for answer in answers] == [text if task == "text-generation" else text.strip()
                                                   for text in expected][:len(answers)]


@pytest.mark.parametrize("hook", [dict(trace=True), dict(output_scores=True), dict(strategy=lambda scores: scores.argmax(-1))])
def test_a_hook_the_moved_strategies_lack_is_refused(hook):
    spec = cases("contrastive")[0]
    input_ids, attention_mask = inputs(spec)
    with pytest.raises(ValueError, match="cannot be used with contrastive search"):
        generate(model(spec["fixture"]), input_ids, attention_mask, **generate_options(spec), **hook)


def test_the_moved_strategies_do_not_stream():
    from decoding import stream

    spec = cases("contrastive")[0]
    input_ids, attention_mask = inputs(spec)
    with pytest.raises(ValueError, match="contrastive search .* runs its own"):
        list(stream(model(spec["fixture"]), AutoTokenizer.from_pretrained(FIXTURES / spec["fixture"]), input_ids,
                    attention_mask, **generate_options(spec)))


@pytest.mark.parametrize("force_words_ids", [[[10**9]], [[[5], [10**9, 2]]]], ids=["phrase", "disjunctive"])
def test_a_forced_id_past_the_vocabulary_is_named(force_words_ids):
    spec = cases("constrained")[0]
    input_ids, attention_mask = inputs(spec)
    with pytest.raises(ValueError, match="token id 1000000000, past the model's vocabulary"):
        generate(model(spec["fixture"]), input_ids, attention_mask, num_beams=3, max_new_tokens=4,
                 force_words_ids=force_words_ids)


def test_a_moved_strategy_passed_as_a_search_refuses_the_hooks_it_does_not_feed():
    from decoding import DiverseBeamSearch

    spec = cases("diverse_beam")[0]
    input_ids, attention_mask = inputs(spec)
    with pytest.raises(ValueError, match="trace= cannot be used with diverse beam search"):
        generate(model(spec["fixture"]), input_ids, attention_mask, num_beams=4, max_new_tokens=3, trace=True,
                 search=DiverseBeamSearch(num_beam_groups=2, diversity_penalty=1.0))
