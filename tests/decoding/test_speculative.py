"""Prompt-lookup speculative decoding (decoding/speculative.py): plain greedy's tokens, token for token,
on every architecture, batched and not, with stops mid-guess; and guesses that are really kept."""

import pytest
import torch
from test_smollm2 import load_smollm2
from tiny_models import ARCHITECTURES, prompt_batch, tiny_model

from decoding import generate
from decoding.speculative import lookup_draft

PERIOD = 5


def copy_back(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """A processor that makes greedy repeat the token PERIOD positions back: the text becomes periodic,
    so prompt lookup guesses right, and the processor reads the sequence, so it must see the right one
    at every verified position (an encoder-decoder's first tokens, fewer than PERIOD, are left alone)."""
    if input_ids.shape[1] < PERIOD:
        return scores
    boosted = scores.clone()
    boosted[torch.arange(scores.shape[0]), input_ids[:, -PERIOD]] += 1e4
    return boosted


def both(model, input_ids, attention_mask, **settings):
    plain = generate(model, input_ids, attention_mask, **settings)
    guessed = generate(model, input_ids, attention_mask, prompt_lookup_num_tokens=4, **settings)
    return plain, guessed


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_the_tokens_are_plain_greedys_batched_and_with_guesses_kept(name):
    model = tiny_model(name)
    input_ids, attention_mask = prompt_batch(model)
    plain, guessed = both(model, input_ids, attention_mask, max_new_tokens=17, logits_processors=[copy_back])
    assert torch.equal(plain.sequences, guessed.sequences)
    new_tokens = plain.sequences.shape[1] - (1 if model.config.is_encoder_decoder else input_ids.shape[1])
    if new_tokens > 2 * PERIOD:  # BART's end-of-text start token is copied back at step 5 and ends every row there
        assert guessed.speculation.accepted > 0 and guessed.speculation.calls < new_tokens  # calls were saved


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_the_tokens_are_plain_greedys_without_help(name):
    model = tiny_model(name)
    input_ids, attention_mask = prompt_batch(model, lengths=(9,))
    plain, guessed = both(model, input_ids, attention_mask, max_new_tokens=12)
    assert torch.equal(plain.sequences, guessed.sequences)


@pytest.mark.parametrize("new_tokens", [1, 2, 3, 6, 7])
def test_max_new_tokens_reached_in_the_middle_of_a_guess(new_tokens):
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    plain, guessed = both(model, input_ids, attention_mask, max_new_tokens=new_tokens, logits_processors=[copy_back])
    assert torch.equal(plain.sequences, guessed.sequences)


def test_an_end_of_text_inside_a_guess_ends_that_row_there():
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model)
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    input_ids = input_ids.clone()
    input_ids[0, -PERIOD + 1] = eos  # row 0 copies an end-of-text token after a few steps; the others go on
    plain, guessed = both(model, input_ids, attention_mask, max_new_tokens=15, logits_processors=[copy_back])
    assert torch.equal(plain.sequences, guessed.sequences)
    assert (plain.sequences[0, -3:] == model.generation_config.pad_token_id).all() or plain.sequences.shape[1] < 20


def test_stop_strings_end_rows_where_greedy_ends_them():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.paths import FIXTURES

    tokenizer = AutoTokenizer.from_pretrained(FIXTURES / "gpt2")
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / "gpt2").eval()
    batch = tokenizer(["The old lighthouse keeper climbed the stairs"], return_tensors="pt")
    settings = dict(max_new_tokens=20, do_sample=False, logits_processors=[copy_back], tokenizer=tokenizer)
    full = generate(model, batch["input_ids"], batch["attention_mask"], **settings).sequences
    stop = tokenizer.decode(full[0, -8:-6])
    plain, guessed = both(model, batch["input_ids"], batch["attention_mask"], stop_strings=stop, **settings)
    assert torch.equal(plain.sequences, guessed.sequences) and plain.sequences.shape[1] < full.shape[1]


@pytest.mark.parametrize("guesses", [dict(prompt_lookup_num_tokens=4), dict(assistant_model="self")])
def test_a_stream_with_guesses_shows_plain_greedys_text(guesses):
    from tiny_models import fixture_model

    from decoding import stream

    model, tokenizer = fixture_model("gpt2")
    if guesses.get("assistant_model") == "self":
        guesses = dict(assistant_model=model, num_assistant_tokens=3)
    input_ids = tokenizer("The hotel in Paris was clean and quiet.", return_tensors="pt")["input_ids"]
    settings = dict(max_new_tokens=24, do_sample=False, logits_processors=[copy_back])
    pieces = list(stream(model, tokenizer, input_ids, **settings, **guesses))
    sequences = generate(model, input_ids, **settings).sequences
    assert len(pieces) > 1 and "".join(pieces) == tokenizer.decode(sequences[0, input_ids.shape[1]:],
                                                                   skip_special_tokens=True)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_sampling_with_guesses_draws_plain_samplings_tokens_under_one_seed(name):
    """One prompt: each verified position draws one multinomial, in plain sampling's order; the guesses
    only decide how many positions one model call scores."""
    model = tiny_model(name)
    input_ids, attention_mask = prompt_batch(model, lengths=(9,))
    settings = dict(max_new_tokens=20, do_sample=True, top_k=5, logits_processors=[copy_back])
    runs = []
    for guesses in ({}, dict(prompt_lookup_num_tokens=4)):
        torch.manual_seed(7)
        runs.append(generate(model, input_ids, attention_mask, **settings, **guesses))
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    if runs[0].sequences.shape[1] - input_ids.shape[1] > 2 * PERIOD:  # BART ends at its copied start token
        assert runs[1].speculation.accepted > 0


def test_lookup_proposes_what_followed_the_last_ngram():
    assert lookup_draft([1, 2, 3, 4, 5, 1, 2], num_tokens=2) == [3, 4]
    assert lookup_draft([1, 2, 3, 4, 5, 9, 2], num_tokens=3) == [3, 4, 5]  # the 1-gram (2) when the 2-gram fails
    assert lookup_draft([1, 2, 3], num_tokens=4) == []
    assert lookup_draft([7, 8, 7], num_tokens=4) == [8, 7]  # never past the end of the text
    article = [4, 1, 2, 6, 7, 8, 9]
    assert lookup_draft([1, 2, 3, 4, 5, 1, 2], num_tokens=2, article=article) == [3, 4]  # the text's own first
    assert lookup_draft([5, 6, 7], num_tokens=2, article=article) == [8, 9]  # the article's 2-gram
    assert lookup_draft([5, 8, 3, 8], num_tokens=2, article=article) == [3, 8]  # the text's 1-gram before it
    assert lookup_draft([5, 9], num_tokens=2, article=article) == []  # nothing follows the article's last token


@pytest.mark.parametrize(("settings", "match"), [
    (dict(prompt_lookup_num_tokens=0), "prompt_lookup_num_tokens must be an int from 1"),
    (dict(prompt_lookup_num_tokens=2.5), "prompt_lookup_num_tokens must be an int"),
    (dict(prompt_lookup_num_tokens=True), "prompt_lookup_num_tokens must be an int"),
    (dict(prompt_lookup_num_tokens=4, num_beams=2), "not beam search"),
    (dict(prompt_lookup_num_tokens=4, penalty_alpha=0.6, top_k=4), "contrastive search"),
    (dict(prompt_lookup_num_tokens=4, strategy=lambda scores: scores.argmax(-1)), "strategy="),
])
def test_bad_settings_are_named(settings, match):
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(ValueError, match=match):
        generate(model, input_ids, attention_mask, max_new_tokens=3, **settings)


def test_runners_take_the_keyword():
    import tasks
    from tests.paths import FIXTURES

    generator = tasks.load("text-generation", model=str(FIXTURES / "gpt2"))
    prompt = "The old lighthouse keeper"
    assert generator(prompt, max_new_tokens=10, do_sample=False, prompt_lookup_num_tokens=5) == \
        generator(prompt, max_new_tokens=10, do_sample=False)


@pytest.mark.slow
def test_smollm2_copying_a_text_keeps_most_guesses_and_greedys_tokens():
    """Real weights on an input-grounded prompt: the model repeats a given sentence."""
    model, tokenizer = load_smollm2()
    text = "The committee approved the new budget for the city's public libraries on Tuesday evening."
    chat = tokenizer.apply_chat_template([{"role": "user", "content": f"Repeat this sentence exactly: {text}"}],
                                         add_generation_prompt=True, tokenize=False)
    batch = tokenizer([chat], return_tensors="pt", add_special_tokens=False)
    plain, guessed = both(model, batch["input_ids"], batch["attention_mask"], max_new_tokens=24, do_sample=False)
    assert torch.equal(plain.sequences, guessed.sequences)
    assert guessed.speculation.rate > 0.5 and guessed.speculation.calls < 16, guessed.speculation


# -- an assistant model as the source of guesses ---------------------------------------------------------

@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_an_assistants_guesses_give_plain_greedys_tokens(name):
    import copy

    model = tiny_model(name)
    input_ids, attention_mask = prompt_batch(model)
    assistant = copy.deepcopy(model)  # the same weights: its guesses are mostly right
    with torch.no_grad():
        for parameter in assistant.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.002)  # ... but not always
    for processors in ([], [copy_back]):
        plain = generate(model, input_ids, attention_mask, max_new_tokens=15, logits_processors=processors)
        assisted = generate(model, input_ids, attention_mask, max_new_tokens=15, logits_processors=processors,
                            assistant_model=assistant, num_assistant_tokens=4)
        assert torch.equal(plain.sequences, assisted.sequences)
        assert assisted.speculation.accepted > 0


@pytest.mark.parametrize(("settings", "match"), [
    (dict(assistant_model="small"), "assistant_model must be a transformers causal LM"),
    (dict(assistant_model=tiny_model("llama"), prompt_lookup_num_tokens=3), "pass one of them"),
    (dict(assistant_model=tiny_model("gpt2"), num_beams=2), "not beam search"),
    (dict(assistant_model=tiny_model("t5")), "an assistant must be of the same kind"),
])
def test_a_bad_assistant_is_named(settings, match):
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises((TypeError, ValueError), match=match):
        generate(model, input_ids, attention_mask, max_new_tokens=3, **settings)


def test_an_assistant_with_another_vocabulary_is_refused():
    from transformers import AutoModelForCausalLM

    from tests.paths import FIXTURES

    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    other = AutoModelForCausalLM.from_pretrained(FIXTURES / "gpt2")
    with pytest.raises(ValueError, match="must share the model's vocabulary"):
        generate(model, input_ids, attention_mask, max_new_tokens=3, assistant_model=other)


def test_runners_take_int8_a_folder_or_a_runner_as_the_assistant():
    import tasks
    from tests.paths import FIXTURES

    generator = tasks.load("text-generation", model=str(FIXTURES / "gpt2"))
    prompt = "The old lighthouse keeper"
    expected = generator(prompt, max_new_tokens=10, do_sample=False)
    for assistant in ("int8", str(FIXTURES / "gpt2"), generator):
        assert generator(prompt, max_new_tokens=10, do_sample=False, assistant_model=assistant) == expected
    assert "int8" in generator._assistants  # made once, kept for the next call


def perturbed(model, scale: float):
    """A copy of the model whose weights moved a little: an assistant that is often, not always, right."""
    import copy

    assistant = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in assistant.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return assistant


@pytest.mark.parametrize("loop", ["per row", "aligned"])
def test_sampling_with_an_assistant_draws_from_the_models_distribution(loop):
    """3,000 rows of one prompt: each verified position keeps the assistant's draw with probability
    min(1, p/q) or draws from max(p - q, 0); the first three tokens follow the model's probabilities,
    in the loop where each row keeps its own guesses and in the aligned one (a caller's processor)."""
    from test_speculative_rows import CHI_SQUARE_26_DF_P001, exact_probabilities

    model = tiny_model("llama")
    assistant = perturbed(model, 0.05)  # its top 3 overlap the model's: guesses are kept and replaced
    prompt = torch.tensor([[11, 23, 35, 47, 59, 11, 23]])
    settings = dict(do_sample=True, top_k=3, temperature=1.5)
    expected = exact_probabilities(model, prompt, settings, tokens=3)
    assert len(expected) == 27
    rows = 3000
    torch.manual_seed(0)
    processors = [lambda ids, s: s] if loop == "aligned" else []
    out = generate(model, prompt.repeat(rows, 1), max_new_tokens=3, assistant_model=assistant,
                   num_assistant_tokens=2, logits_processors=processors, **settings)
    if loop == "per row":  # (the aligned loop counts what every row kept)
        assert rows // 6 < out.speculation.accepted < rows * 5 // 6, out.speculation
    drawn = [tuple(row) for row in out.sequences[:, -3:].tolist()]
    chi_square = sum((drawn.count(outcome) - rows * p) ** 2 / (rows * p) for outcome, p in expected.items())
    assert chi_square < CHI_SQUARE_26_DF_P001, chi_square


def test_sampling_with_an_assistant_keeps_guesses_and_repeats_under_a_seed():
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model, lengths=(9,))
    settings = dict(max_new_tokens=20, do_sample=True, top_k=5, assistant_model=perturbed(model, 0.002),
                    num_assistant_tokens=4)
    runs = []
    for _ in range(2):
        torch.manual_seed(11)
        runs.append(generate(model, input_ids, attention_mask, **settings))
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    assert runs[0].speculation.accepted > 5, runs[0].speculation


@pytest.mark.parametrize("name", ["t5", "bart", "marian"])
def test_an_encoder_decoder_assistant_gives_plain_greedys_tokens(name):
    model = tiny_model(name)
    input_ids, attention_mask = prompt_batch(model)
    assistant = perturbed(model, 0.002)
    plain = generate(model, input_ids, attention_mask, max_new_tokens=15)
    assisted = generate(model, input_ids, attention_mask, max_new_tokens=15, assistant_model=assistant,
                        num_assistant_tokens=4)
    assert torch.equal(plain.sequences, assisted.sequences)
    assert assisted.speculation.accepted > 0


def test_samples_per_input_each_get_the_assistants_guesses():
    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model)
    settings = dict(max_new_tokens=10, do_sample=True, top_k=5, num_return_sequences=2,
                    assistant_model=perturbed(model, 0.002), num_assistant_tokens=3)
    runs = []
    for _ in range(2):
        torch.manual_seed(2)
        runs.append(generate(model, input_ids, attention_mask, **settings))
    assert runs[0].sequences.shape[0] == 6 and torch.equal(runs[0].sequences, runs[1].sequences)
    assert runs[0].speculation.accepted > 0


def test_a_seq2seq_runner_takes_its_int8_copy_as_the_assistant():
    import tasks
    from tests.paths import FIXTURES

    translator = tasks.load("translation_en_to_fr", model=str(FIXTURES / "marian-en-fr"))
    text = "The old lighthouse keeper climbed the stairs"
    assert translator(text, max_new_tokens=12, num_beams=1, assistant_model="int8") == \
        translator(text, max_new_tokens=12, num_beams=1)


def test_the_assistant_stops_guessing_at_a_guess_it_is_unsure_of():
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    settings = dict(max_new_tokens=20, assistant_model=perturbed(model, 0.002), num_assistant_tokens=6)
    plain = generate(model, input_ids, attention_mask, max_new_tokens=20)
    bold = generate(model, input_ids, attention_mask, assistant_confidence_threshold=0.0, **settings)
    careful = generate(model, input_ids, attention_mask, assistant_confidence_threshold=1.0, **settings)
    assert torch.equal(bold.sequences, plain.sequences) and torch.equal(careful.sequences, plain.sequences)
    # a threshold of 1 stops after every first guess (no guess is certain); 0 never stops early
    guessing_calls = careful.speculation.calls
    assert careful.speculation.proposed <= guessing_calls * input_ids.shape[0]
    assert bold.speculation.proposed > careful.speculation.proposed


@pytest.mark.parametrize("option, value", [("assistant_confidence_threshold", -0.1),
                                           ("assistant_confidence_threshold", 1.5),
                                           ("assistant_confidence_threshold", "high"),
                                           ("assistant_confidence_threshold", True),
                                           ("num_assistant_tokens", 0),
                                           ("num_assistant_tokens", 2.5)])
def test_bad_assistant_settings_are_named(option, value):
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model)
    with pytest.raises(ValueError, match=option):
        generate(model, input_ids, attention_mask, max_new_tokens=3, assistant_model=model, **{option: value})


# -- how many guesses an assistant writes per call ---------------------------------------------------------

def test_the_width_grows_while_guesses_are_kept_and_shrinks_to_the_least_when_refused():
    from decoding.speculative import GuessWidth

    width = GuessWidth(1, least=1)
    for _ in range(6):
        width.learn({0: 8}, {0: 8})
    assert width.best({0: 8}) == 8 and width.best({0: 3}) == 3  # never more than a row can guess
    for _ in range(15):  # (the evidence of older calls fades by DECAY a call)
        width.learn({0: 8}, {0: 0})
    assert width.best({0: 8}) == 1
    width.guess = 0.5  # a guess that rarely pays costs more than it brings ...
    assert width.best({0: 8}) == 1
    width.least = 0  # ... so, where a call may feed none (prompt lookup), it feeds none
    assert width.best({0: 8}) == 0


def test_a_row_that_stopped_guessing_is_tried_again_later():
    """Prompt lookup: a row whose guesses were refused call after call is fed none (no width pays) ...
    but not for ever: its text may start copying later."""
    from decoding.speculative import GuessWidth

    width = GuessWidth(2)
    for _ in range(15):
        width.learn({0: 4, 1: 4}, {0: 0, 1: 0})
    found = {0: [1, 2, 3, 4], 1: []}
    cuts = [width.cut(found)[0] for _ in range(12)]
    assert cuts[0] == [] and any(cuts), cuts
    assert width.chance(1) < 0.1  # a row without a guess keeps its evidence


def test_the_clock_prices_a_call_a_position_and_a_guess_in_seconds():
    from decoding.speculative import EXTRA_POSITION_COST, GuessWidth

    width = GuessWidth(1, least=1)
    width.clock(guess_seconds=1.0, guesses=4, call_seconds=2.0 * (1 + EXTRA_POSITION_COST * 4), width=4)
    assert width.guess == pytest.approx(0.25)  # one width seen: a position at EXTRA_POSITION_COST of a call
    assert (width.call, width.position) == pytest.approx((2.0, 2.0 * EXTRA_POSITION_COST))
    width.clock(guess_seconds=2.0, guesses=4, call_seconds=3.0, width=10)  # two widths: the line through them
    assert width.guess == pytest.approx(0.8 * 0.25 + 0.2 * 0.5)
    slope = (3.0 - 2.0 * (1 + EXTRA_POSITION_COST * 4)) / 6
    assert (width.call, width.position) == pytest.approx((3.0 - 10 * slope, slope))
    for _ in range(5):
        width.learn({0: 8}, {0: 7})  # a guess is kept ~7 times in 8
    cheap = width.best({0: 8})
    width.guess = 3 * width.call  # a guess costing three calls of the model: one guess at most
    assert cheap > 2 and width.best({0: 8}) == 1


def test_a_call_the_clock_timed_at_no_seconds_leaves_the_prices_as_they_were():
    """A clock too coarse to see a call must not price calls at nothing (every width's cost would be 0)."""
    from decoding.speculative import GuessWidth

    width = GuessWidth(1, least=1)
    width.clock(guess_seconds=0.0, guesses=3, call_seconds=0.0, width=3)
    assert (width.call, width.position, width.guess) == (GuessWidth(1).call, GuessWidth(1).position, 0.0)
    width.clock(guess_seconds=1.0, guesses=4, call_seconds=2.0, width=4)
    width.clock(guess_seconds=0.0, guesses=4, call_seconds=0.0, width=8)
    assert width.call > 0 and width.guess == pytest.approx(0.25) and width.best({0: 8}) >= 1


def test_a_call_that_kept_every_guess_is_not_followed_by_a_narrower_one_while_guessing_pays():
    from decoding.speculative import GuessWidth

    width = GuessWidth(1, least=1, prior=(0.97, 0.2))
    width.call, width.position, width.guess = 1.0, 0.1, 0.6  # the most tokens per cost at about 12 guesses
    width.learn({0: 19}, {0: 19})
    assert width.best({0: 20}) >= 19
    width.learn({0: 19}, {0: 18})
    assert width.best({0: 20}) < 19  # a guess refused: priced again
    width.learn({0: 19}, {0: 19})
    width.guess = 3.0  # now no width beats a call without guesses: the floor goes
    assert width.best({0: 20}) == 1


class ModelClock:
    """A clock that moves only while a model runs: each call of a model adds the seconds given for it.
    A call is seen at the model's input embeddings, which its own forward and a lean pass both call."""

    def __init__(self, seconds: dict):
        self.now = 0.0
        self.hooks = [model.get_input_embeddings().register_forward_hook(lambda *_, cost=cost: self.advance(cost))
                      for model, cost in seconds.items()]

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def perf_counter(self) -> float:
        return self.now

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


def clocked(monkeypatch, seconds: dict) -> ModelClock:
    """The speculative loops read `clock` instead of the machine's clock."""
    from decoding import assistant_rows, speculative, speculative_rows

    clock = ModelClock(seconds)
    for module in (speculative, speculative_rows, assistant_rows):
        monkeypatch.setattr(module, "time", clock)
    return clock


@pytest.mark.parametrize("lengths", [(9,), (9, 4, 13)])  # one row, and a batch whose rows keep their own guesses
def test_greedy_writes_fewer_guesses_when_the_assistants_step_costs_more(monkeypatch, lengths):
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model, lengths=lengths)
    assistant = perturbed(model, 0.002)
    plain = generate(model, input_ids, attention_mask, max_new_tokens=30)
    per_call = {}
    for assistant_seconds in (0.01, 3.0):  # a model call takes 1 s
        clock = clocked(monkeypatch, {model: 1.0, assistant: assistant_seconds})
        out = generate(model, input_ids, attention_mask, max_new_tokens=30, assistant_model=assistant,
                       num_assistant_tokens=8, assistant_confidence_threshold=0)
        clock.remove()
        assert torch.equal(out.sequences, plain.sequences)
        assert clock.now > 0  # the clock was read
        per_call[assistant_seconds] = out.speculation.proposed / out.speculation.calls / len(lengths)
        if assistant_seconds == 3.0:  # once priced (after the first call), one guess a call
            assert out.speculation.proposed <= len(lengths) * (8 + out.speculation.calls - 1), out.speculation
    assert per_call[0.01] > 3 > 2 > per_call[3.0], per_call


@pytest.mark.parametrize("lengths", [(9,), (9, 4, 13)])
def test_sampling_with_an_assistant_draws_the_same_under_a_seed_whatever_the_clock(monkeypatch, lengths):
    """Sampling does not price guesses on the clock: a seeded run draws the same numbers on any machine."""
    model = tiny_model("gpt2")
    input_ids, attention_mask = prompt_batch(model, lengths=lengths)
    assistant = perturbed(model, 0.002)
    runs = []
    for assistant_seconds in (0.01, 3.0):
        clock = clocked(monkeypatch, {model: 1.0, assistant: assistant_seconds})
        torch.manual_seed(3)
        runs.append(generate(model, input_ids, attention_mask, max_new_tokens=30, do_sample=True, top_k=5,
                             assistant_model=assistant, num_assistant_tokens=8, assistant_confidence_threshold=0))
        clock.remove()
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    assert runs[0].speculation.accepted > 5, runs[0].speculation
