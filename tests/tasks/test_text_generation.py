"""TextGenerator against the transformers 5 `pipeline("text-generation")` on the GPT-2 and Llama fixtures,
plus streaming, stop strings, batching and bad input.

The 4.57.6 pipeline is the main reference (tests/tasks/test_generation_goldens.py); the transformers 5
pipeline is the second one, for everything where the two agree. Every call here sets max_new_tokens:
transformers 5 ignores GPT-2's task_specific_params and would ask the 256-position fixture for 256
new tokens.
"""

from collections.abc import Iterator

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import LogitsProcessorList, SuppressTokensLogitsProcessor, pipeline

import tasks
from core.seed import set_seed
from decoding import generate
from tasks.generation import clean_up_tokenization
from tasks.text_generation import StreamedNewText, TextGenerator, left_pad, return_type
from tests.paths import FIXTURES, corpus_lines

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
PROMPTS = ["The old lighthouse keeper", "She opened the door and went outside", "A small village", "The river"]
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about the river."}]
GREEDY = dict(do_sample=False, max_new_tokens=20)


@pytest.fixture(scope="module")
def generators():
    """Ours, one per fixture, loaded once; llama gets a ChatML template (the fixture ships none)."""
    loaded = {name: TextGenerator.from_pretrained(FIXTURES / name) for name in ("gpt2", "llama")}
    loaded["llama"].tokenizer.chat_template = CHATML
    return loaded


@pytest.fixture(scope="module")
def references():
    """transformers 5 pipelines on the same fixtures (GPT-2 gets its EOS as pad token to batch)."""
    loaded = {}
    for name in ("gpt2", "llama"):
        reference = pipeline("text-generation", model=str(FIXTURES / name), device="cpu")
        if reference.tokenizer.pad_token is None:
            reference.tokenizer.pad_token = reference.tokenizer.eos_token
        loaded[name] = reference
    loaded["llama"].tokenizer.chat_template = CHATML
    return loaded


def same_as_reference(generators, references, fixture, inputs, seed=None, **options):
    """Run both with the same options (and seed); return our answer after asserting equality."""
    if seed is not None:
        set_seed(seed)
    expected = references[fixture](inputs, **options)
    if seed is not None:
        set_seed(seed)
    ours = generators[fixture](inputs, **options)
    assert ours == expected
    return ours


# -- parity with the transformers 5 pipeline -------------------------------------------------------------

FIXTURE_NAMES = ["gpt2", "llama"]


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_greedy_matches_transformers_5_pipeline(generators, references, fixture, prompt):
    full = same_as_reference(generators, references, fixture, prompt, **GREEDY)
    new = same_as_reference(generators, references, fixture, prompt, return_full_text=False, **GREEDY)
    assert full[0]["generated_text"] == prompt + new[0]["generated_text"]


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_token_ids_match_transformers_5_pipeline(generators, references, fixture):
    ours = same_as_reference(generators, references, fixture, PROMPTS[0], return_tensors=True, **GREEDY)
    prompt_ids = generators[fixture].tokenizer(PROMPTS[0])["input_ids"]
    assert ours[0]["generated_token_ids"][:len(prompt_ids)] == prompt_ids


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
@pytest.mark.parametrize("options", [
    dict(top_k=20, temperature=0.9, num_return_sequences=2),
    dict(top_p=0.8, top_k=0),
    dict(min_p=0.05, temperature=1.3),
    dict(repetition_penalty=1.3, no_repeat_ngram_size=2),
], ids=["top-k", "top-p", "min-p", "penalties"])
def test_seeded_sampling_matches_transformers_5_pipeline(generators, references, fixture, options):
    outputs = same_as_reference(generators, references, fixture, "Once upon a time", seed=3, do_sample=True,
                                max_new_tokens=20, **options)
    assert len(outputs) == options.get("num_return_sequences", 1)


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_beam_search_matches_transformers_5_pipeline(generators, references, fixture):
    same_as_reference(generators, references, fixture, "The river", do_sample=False, num_beams=3,
                      num_return_sequences=2, max_new_tokens=12)


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_left_padded_batches_match_transformers_5_pipeline(generators, references, fixture):
    outputs = same_as_reference(generators, references, fixture, PROMPTS, batch_size=3, **GREEDY)
    assert [output[0]["generated_text"][:len(prompt)] for output, prompt in zip(outputs, PROMPTS)] == PROMPTS


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_seeded_sampling_over_a_list_matches_transformers_5_pipeline(generators, references, fixture):
    """The pipeline's DataLoader draws one number before a list; we draw it too."""
    same_as_reference(generators, references, fixture, PROMPTS[:2], seed=5, do_sample=True, max_new_tokens=12)


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
@pytest.mark.parametrize("stop", ["five", ["in", "work"], "ai"])
def test_stop_sequence_matches_transformers_5_pipeline(generators, references, fixture, stop):
    prompt = PROMPTS[0]
    unstopped = generators[fixture](prompt, return_full_text=False, **GREEDY)[0]["generated_text"]
    stopped = same_as_reference(generators, references, fixture, prompt, return_full_text=False, stop_sequence=stop,
                                **GREEDY)[0]["generated_text"]
    # stop_sequence is the transformers 5 name for the `stop_strings` decoding setting
    assert generators[fixture](prompt, return_full_text=False, stop_strings=stop, **GREEDY)[0]["generated_text"] \
        == stopped
    assert unstopped.startswith(stopped)
    stops = [stop] if isinstance(stop, str) else stop
    if any(word in unstopped for word in stops):
        # the text stops with the token in which a stop string ends ("ai" in " rais" keeps the "s")
        assert any(word in stopped for word in stops) and len(stopped) < len(unstopped)


def test_stop_string_in_a_greedy_text_cuts_it_right_after(generators):
    full = generators["gpt2"](PROMPTS[0], return_full_text=False, **GREEDY)[0]["generated_text"]
    assert "five" in full  # the fixture's greedy text: "m in fiveve seccentent work."
    stopped = generators["gpt2"](PROMPTS[0], return_full_text=False, stop_strings="five", **GREEDY)
    assert stopped[0]["generated_text"].endswith("five") and full.startswith(stopped[0]["generated_text"])


@pytest.mark.parametrize("options", [dict(), dict(return_full_text=False)], ids=["full", "new-text"])
def test_chat_matches_transformers_5_pipeline(generators, references, options):
    outputs = same_as_reference(generators, references, "llama", CHAT, max_new_tokens=15, do_sample=False, **options)
    if not options:
        assert outputs[0]["generated_text"][:2] == CHAT and outputs[0]["generated_text"][2]["role"] == "assistant"
    chats = same_as_reference(generators, references, "llama", [CHAT, CHAT[1:]], max_new_tokens=8, do_sample=False)
    assert len(chats) == 2 and all(len(chat) == 1 for chat in chats)


# -- batching ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
@pytest.mark.parametrize("options", [
    dict(do_sample=False, max_new_tokens=20),
    dict(do_sample=False, max_new_tokens=20, return_tensors=True),
    dict(do_sample=False, num_beams=3, num_return_sequences=2, max_new_tokens=12, return_tensors=True),
    dict(do_sample=False, max_new_tokens=20, stop_strings=["the", "."], return_tensors=True),
], ids=["text", "token-ids", "beams", "stop-strings"])
def test_left_padded_batch_equals_one_prompt_at_a_time(generators, fixture, options):
    generator = generators[fixture]
    alone = [generator(prompt, **options) for prompt in PROMPTS]
    assert generator(PROMPTS, batch_size=4, **options) == alone
    assert generator(PROMPTS, batch_size=1, **options) == alone


def test_list_input_returns_one_list_per_prompt(generators):
    outputs = generators["gpt2"](PROMPTS[:2], max_new_tokens=5, do_sample=False)
    assert isinstance(outputs, list) and len(outputs) == 2
    assert all(isinstance(output, list) and len(output) == 1 for output in outputs)


def test_left_pad_puts_padding_before_the_prompt():
    input_ids, attention_mask, padding = left_pad([[5, 6, 7], [8]], pad_token_id=0)
    assert input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert padding == [0, 2]


# -- streaming -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
@pytest.mark.parametrize("prompt", PROMPTS[:3] + ["She said , I 'm"])
@pytest.mark.parametrize("clean_up", [True, False])
def test_streamed_pieces_join_to_the_new_text(generators, fixture, prompt, clean_up):
    generator = generators[fixture]
    options = dict(max_new_tokens=25, do_sample=False, clean_up_tokenization_spaces=clean_up)
    pieces = generator(prompt, stream=True, **options)
    assert isinstance(pieces, Iterator)
    pieces = list(pieces)
    expected = generator(prompt, return_full_text=False, **options)[0]["generated_text"]
    assert "".join(pieces) == expected
    assert len(pieces) > 1 and all(pieces)


def test_streamed_sampling_and_chat_join_to_the_new_text(generators):
    generator = generators["llama"]
    set_seed(4)
    pieces = list(generator("Once upon a time", stream=True, do_sample=True, max_new_tokens=30))
    set_seed(4)
    expected = generator("Once upon a time", return_full_text=False, do_sample=True, max_new_tokens=30)
    assert "".join(pieces) == expected[0]["generated_text"]
    chat_pieces = list(generator(CHAT, stream=True, do_sample=False, max_new_tokens=15))
    answer = generator(CHAT, do_sample=False, max_new_tokens=15)[0]["generated_text"][-1]["content"]
    assert "".join(chat_pieces) == answer


def test_stream_takes_one_prompt_and_one_sequence(generators):
    generator = generators["gpt2"]
    with pytest.raises(ValueError, match="single prompt"):
        generator(PROMPTS[:2], stream=True, max_new_tokens=5)
    with pytest.raises(ValueError, match="num_beams=3"):
        generator(PROMPTS[0], stream=True, num_beams=3, max_new_tokens=5)
    with pytest.raises(ValueError, match="num_return_sequences=2"):
        generator(PROMPTS[0], stream=True, do_sample=True, num_return_sequences=2, max_new_tokens=5)


TEXT = st.lists(st.sampled_from([" ", "'", ".", ",", "s", "n't", "re", "a", "!", "\n"]), max_size=12).map("".join)


@given(prompt=TEXT, pieces=st.lists(TEXT, max_size=8), clean_up=st.booleans())
def test_streamed_new_text_is_the_pipelines_cut_of_the_whole(prompt, pieces, clean_up):
    """Whatever the pieces, their release joins to cleaned(prompt + new)[len(cleaned(prompt)):], and
    nothing released is taken back later."""
    clean = clean_up_tokenization if clean_up else (lambda text: text)
    text = StreamedNewText(prompt, clean_up)
    released = ""
    for piece in pieces:
        released += text.push(piece)
        whole = clean(prompt + "".join(pieces))[len(clean(prompt)):]
        assert whole.startswith(released)
    released += text.finish()
    assert released == clean(prompt + "".join(pieces))[len(clean(prompt)):]


@pytest.mark.parametrize("pieces", [["a  ' s"], ["x n", " ' t"], ["a  ' v", "e"], ["it ' s", " done ."]])
def test_streamed_new_text_keeps_back_what_a_later_piece_can_clean_up(pieces):
    # " n" + " ' t" becomes "n't" only once " ' " is cleaned; "a  ' s" loses both spaces of " ' "
    text, released = StreamedNewText("", clean_up_tokenization_spaces=True), ""
    for piece in pieces:
        released += text.push(piece)
    assert released + text.finish() == clean_up_tokenization("".join(pieces))


# -- defaults and options ---------------------------------------------------------------------------------


def test_pipeline_defaults_sit_below_task_params_and_the_callers_max_length(generators):
    # GPT-2's task_specific_params: do_sample=True, max_length=50; that max_length beats the default 256 new tokens
    gpt2 = generators["gpt2"].decoding_config()
    assert gpt2.do_sample is True and gpt2.temperature == 0.7 and gpt2.max_length == 50
    assert gpt2.sources["max_length"] == "task_specific_params" and "max_new_tokens" not in gpt2.sources
    llama = generators["llama"].decoding_config()
    assert llama.max_new_tokens == 256 and llama.do_sample is True and llama.temperature == 0.7
    assert llama.sources["max_new_tokens"] == "pipeline default"
    # unlike 4.57.6, a caller's max_length is not overridden by the default max_new_tokens=256
    assert "max_new_tokens" not in generators["llama"].decoding_config(max_length=30).sources
    greedy = generators["llama"].decoding_config(do_sample=False)
    assert greedy.sources.get("temperature") != "pipeline default"


def test_the_pipelines_sampling_defaults_beat_the_models_generation_config(generators):
    # As in 4.57.6: temperature=0.7 (the pipeline's, not transformers' global 1.0) wins over a model's
    # temperature, while a model's top_p (the pipeline keeps the global 1.0) is used by the loop.
    llama = generators["llama"]
    saved = llama.model.generation_config.temperature, llama.model.generation_config.top_p
    llama.model.generation_config.temperature, llama.model.generation_config.top_p = 0.3, 0.9
    try:
        settings = llama.decoding_config()
        assert settings.temperature == 0.7 and settings.sources["temperature"] == "pipeline default"
        assert settings.top_p == 0.9 and settings.sources["top_p"] == "generation_config"
        assert llama.decoding_config(temperature=0.3).temperature == 0.3
    finally:
        llama.model.generation_config.temperature, llama.model.generation_config.top_p = saved


def test_callers_max_length_counts_prompt_and_new_tokens(generators):
    ids = generators["llama"](PROMPTS[0], max_length=20, min_length=20, do_sample=False, return_tensors=True)[0]
    assert len(ids["generated_token_ids"]) == 20  # the prompt is 14 of them


def test_prefix_is_fed_to_the_model_but_not_shown(generators):
    generator = generators["gpt2"]
    with_prefix = generator("the river", prefix="Once upon a time. ", do_sample=False, max_new_tokens=10)
    assert with_prefix[0]["generated_text"].startswith("the river")
    assert with_prefix != generator("the river", do_sample=False, max_new_tokens=10)


def test_return_flags_choose_the_answer():
    assert return_type() == "full_text" and return_type(return_text=True) == "full_text"
    assert return_type(return_full_text=False) == "new_text" and return_type(return_tensors=True) == "tensors"
    assert return_type(return_tensors=False) == "full_text"
    with pytest.raises(ValueError, match="mutually exclusive"):
        return_type(return_full_text=True, return_tensors=True)


def test_tasks_load_gives_a_text_generator():
    assert tasks.runner_class("text-generation") is TextGenerator
    generator = tasks.load("text-generation", model=str(FIXTURES / "gpt2"), max_new_tokens=4, do_sample=False)
    assert isinstance(generator, TextGenerator)
    assert generator("The river")[0]["generated_text"].startswith("The river")


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, error, message", [
    ("", ValueError, "empty string"),
    ("   ", ValueError, "empty string"),
    (["The river", ""], ValueError, r"inputs\[1\]"),
    ([], ValueError, "empty"),
    (42, TypeError, "string"),
    (None, TypeError, "string"),
    (["The river", 7], TypeError, r"inputs\[1\] must be a string"),
    ([{"role": "user"}], ValueError, "'role' and 'content'"),
    ([[{"role": "user", "content": "hi"}], []], ValueError, "empty chat"),
    ([{"role": "user", "content": None}], TypeError, r"inputs\[0\]\['content'\] must be a string, got None"),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": 5}], TypeError,
     r"inputs\[1\]\['content'\] must be a string, got 5"),
    ([CHAT, [{"role": None, "content": "hi"}]], TypeError, r"inputs\[1\]\[0\]\['role'\] must be a string, got None"),
    (b"The river", TypeError, r"inputs must be a string or a list of strings, got bytes; decode it first"),
])
def test_bad_prompts_are_refused_clearly(generators, bad, error, message):
    with pytest.raises(error, match=message):
        generators["llama"](bad, max_new_tokens=3)


@pytest.mark.parametrize("options, error, message", [
    (dict(max_new_tokens=-5), ValueError, "max_new_tokens must be >= 1"),
    (dict(max_length=-1), ValueError, "max_length must be >= 1"),
    (dict(max_new_tokens=5, min_length=-2), ValueError, "min_length must be >= 0"),
    (dict(max_length=10, min_length=15), ValueError, r"min_length \(15\) is larger than max_length \(10\)"),
    (dict(do_sample=True, temperature=0.0, max_new_tokens=3), ValueError, "temperature must be > 0"),
    (dict(max_new_tokens=3, max_lenght=10), TypeError, "did you mean 'max_length'"),
    (dict(max_new_tokens=3, handle_long_generation="middle"), ValueError, "handle_long_generation"),
    (dict(max_new_tokens=3, return_full_text=False, return_tensors=True), ValueError, "mutually exclusive"),
])
def test_bad_options_are_refused_clearly(generators, options, error, message):
    with pytest.raises(error, match=message):
        generators["gpt2"]("The river", **options)


def test_chat_needs_a_chat_template(generators):
    with pytest.raises(ValueError, match="no chat template"):
        generators["gpt2"](CHAT, max_new_tokens=3)


LONG_PROMPT = " ".join(corpus_lines()[:12]) + " The old lighthouse keeper"


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
def test_prompt_longer_than_the_model_is_an_error_unless_asked_to_cut(generators, fixture):
    generator = generators[fixture]
    assert len(generator.tokenizer(LONG_PROMPT, verbose=False)["input_ids"]) > 256
    with pytest.raises(ValueError, match="reads at most 256.*truncation=True.*handle_long_generation='hole'"):
        generator(LONG_PROMPT, max_new_tokens=5)
    kept_end = generator(LONG_PROMPT, max_new_tokens=5, do_sample=False, handle_long_generation="hole",
                         return_tensors=True)
    assert len(kept_end[0]["generated_token_ids"]) == 256  # 251 prompt tokens (its end) + 5 new


def test_truncation_keeps_the_start_of_the_prompt_and_room_for_the_new_tokens(generators):
    for name in ("llama", "gpt2"):  # rotary positions and a position table: one rule
        generator = generators[name]
        with pytest.warns(UserWarning, match="truncated to its first 251 tokens"):
            kept_start = generator(LONG_PROMPT, max_new_tokens=5, do_sample=False, truncation=True,
                                   return_tensors=True)
        start = generator.tokenizer(LONG_PROMPT, verbose=False)["input_ids"][:251]
        fed = kept_start[0]["generated_token_ids"]
        assert fed[:251] == start and len(fed) == 256  # 251 tokens of the prompt, then 5 new ones: the context
        from_the_start = generate(generator.model, torch.tensor([start]), max_new_tokens=5, do_sample=False)
        assert fed == from_the_start.sequences[0].tolist()


def test_new_tokens_stop_at_the_context_on_every_model(generators):
    for name in ("llama", "gpt2"):  # one rule: GPT-2's table would fail, Llama would run past its training
        generator = generators[name]
        prompt_ids = generator.tokenizer(LONG_PROMPT)["input_ids"][:250]
        never_ends = [[generator.model.config.eos_token_id or 0]]  # no EOS: the row runs to its limit
        with pytest.warns(UserWarning, match="generation stopped at the model's context of 256 positions, before the "
                                             "20 new tokens asked for"):
            out = generator(generator.tokenizer.decode(prompt_ids), max_new_tokens=20, do_sample=False,
                            bad_words_ids=never_ends, return_tensors=True)
        assert len(out[0]["generated_token_ids"]) == 256


def test_encoder_decoder_model_is_refused():
    t5 = tasks.load("text2text-generation", model=str(FIXTURES / "t5"))
    with pytest.raises(ValueError, match="decoder-only.*Text2TextGenerator"):
        TextGenerator(t5.model, t5.tokenizer)


# -- hooks of decoding.generate, flags --------------------------------------------------------------------


def suppress_token(token_id: int):
    """A logits processor (input_ids, scores) -> scores that never lets `token_id` win."""
    def processor(input_ids, scores):
        return scores.masked_fill(torch.arange(scores.shape[-1]) == token_id, float("-inf"))
    return processor


def second_best(scores):
    """A strategy: the runner-up token of each row."""
    return scores.topk(2, dim=-1).indices[:, 1]


def generate_directly(generator, prompt: str, call: dict, **hooks) -> list[int]:
    """What decoding.generate gives with the runner's own prompt ids and settings for this call."""
    input_ids = torch.tensor(generator.preprocess([prompt]))
    output = generate(generator.model, input_ids, torch.ones_like(input_ids), tokenizer=generator.tokenizer,
                      config=generator.decoding_config(**call), **hooks)
    return output.sequences[0].tolist()


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
@pytest.mark.parametrize("call", [GREEDY, dict(do_sample=False, num_beams=3, max_new_tokens=12)], ids=["greedy", "beams"])
def test_a_logits_processor_changes_the_output_as_in_decoding_generate(generators, fixture, call):
    generator = generators[fixture]
    plain = generator(PROMPTS[0], return_tensors=True, **call)[0]["generated_token_ids"]
    prompt_length = len(generator.preprocess([PROMPTS[0]])[0])
    banned = plain[prompt_length]  # the first new token
    processor = suppress_token(banned)
    ours = generator(PROMPTS[0], return_tensors=True, logits_processors=[processor], **call)[0]["generated_token_ids"]
    assert ours == generate_directly(generator, PROMPTS[0], call, logits_processors=[processor])
    assert banned not in ours[prompt_length:]
    # transformers' spelling, with one of its LogitsProcessor classes, does the same
    theirs = LogitsProcessorList([SuppressTokensLogitsProcessor([banned])])
    assert generator(PROMPTS[0], return_tensors=True, logits_processor=theirs, **call)[0]["generated_token_ids"] == ours


def test_a_strategy_replaces_greedy_as_in_decoding_generate(generators):
    generator = generators["gpt2"]
    ours = generator(PROMPTS[0], return_tensors=True, strategy=second_best, **GREEDY)[0]["generated_token_ids"]
    assert ours == generate_directly(generator, PROMPTS[0], GREEDY, strategy=second_best)
    assert ours != generator(PROMPTS[0], return_tensors=True, **GREEDY)[0]["generated_token_ids"]


def test_hooks_reach_streaming_and_batches(generators):
    generator = generators["llama"]
    alone = generator(PROMPTS[0], return_full_text=False, strategy=second_best, **GREEDY)[0]["generated_text"]
    assert "".join(generator(PROMPTS[0], stream=True, strategy=second_best, **GREEDY)) == alone
    batched = generator(PROMPTS, batch_size=4, strategy=second_best, **GREEDY)
    assert batched == [generator(prompt, strategy=second_best, **GREEDY) for prompt in PROMPTS]


def test_hooks_given_at_construction_apply_to_every_call(generators):
    built = tasks.load("text-generation", model=str(FIXTURES / "gpt2"), strategy=second_best)
    assert built(PROMPTS[0], **GREEDY) == generators["gpt2"](PROMPTS[0], strategy=second_best, **GREEDY)


def test_a_hook_set_to_none_in_a_call_clears_the_constructed_one(generators):
    built = tasks.load("text-generation", model=str(FIXTURES / "gpt2"), strategy=second_best)
    plain = generators["gpt2"](PROMPTS[0], **GREEDY)
    assert built(PROMPTS[0], strategy=None, **GREEDY) == plain
    assert built(PROMPTS[0], **GREEDY) != plain  # the constructed strategy is back for the next call


@pytest.mark.parametrize("options, error, message", [
    (dict(trace=True), TypeError, r"trace= is not an option.*decoding.generate\(.*trace=True\)"),
    (dict(logits_processors=[second_best], logits_processor=[second_best]), ValueError, "same option; pass only one"),
    (dict(logits_processors=second_best), TypeError, r"logits_processors must be a list.*\[processor\]"),
    (dict(strategy=second_best, num_beams=2), ValueError, "strategy= .* cannot be combined with num_beams=2"),
], ids=repr)
def test_bad_hooks_are_refused_clearly(generators, options, error, message):
    with pytest.raises(error, match=message):
        generators["gpt2"](PROMPTS[0], **GREEDY, **options)


@pytest.mark.parametrize("flag, value, message", [
    ("return_full_text", "no", "return_full_text must be True, False or None, got 'no'"),
    ("return_tensors", "yes", "return_tensors must be True, False or None"),
    ("return_text", 0, "return_text must be True, False or None, got 0"),
    ("stream", "yes", "stream must be True or False, got 'yes'"),
    ("clean_up_tokenization_spaces", "x", "clean_up_tokenization_spaces must be True or False, got 'x'"),
    ("skip_special_tokens", None, "skip_special_tokens must be True or False, got None"),
    ("add_special_tokens", "no", "add_special_tokens must be True, False or None"),
    ("continue_final_message", 1, "continue_final_message must be True, False or None"),
    ("truncation", "yes", "truncation must be True, False or one of 'longest_first'"),
    ("prefix", 5, "prefix must be a string"),
])
def test_flags_must_be_booleans(generators, flag, value, message):
    with pytest.raises(TypeError, match=message):
        generators["gpt2"](PROMPTS[0], **{flag: value}, **GREEDY)


def test_prefix_given_at_construction_must_be_a_string():
    with pytest.raises(TypeError, match="prefix must be a string .* got 5"):
        TextGenerator.from_pretrained(FIXTURES / "gpt2", prefix=5)
