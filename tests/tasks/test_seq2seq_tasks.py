"""Text2TextGenerator, Summarizer and Translator: bad input, lengths, task parameters, languages and batching.

Their outputs are compared with the 4.57.6 pipelines in test_generation_goldens.py; here are the
behaviours around them, including where nopipe deliberately differs (a caller's max_length is honoured).
"""

import warnings

import pytest
import torch
from transformers import LogitsProcessorList, SuppressTokensLogitsProcessor

import tasks
from decoding import generate
from tasks.generation import clean_up_tokenization
from tasks.summarization import Summarizer
from tasks.text2text import Text2TextGenerator
from tasks.translation import Translator, parse_task
from tests.paths import FIXTURES, corpus_lines
from tests.tasks.test_text_generation import second_best, suppress_token  # a logits processor and a strategy

LINES = [line for line in corpus_lines() if line.strip()]
TEXTS = [LINES[20], "The river runs to the sea.", " ".join(LINES[10:13])]
LONG_TEXT = " ".join(LINES[:12])  # > 256 tokens for every fixture tokenizer

# The fixtures' tiny vocabularies make every text long in tokens, so short max_lengths trip the
# length warnings; the two tests about those warnings catch them with pytest.warns.
pytestmark = pytest.mark.filterwarnings("ignore:inputs.*(may be cut short|may come out longer)")


@pytest.fixture(scope="module")
def runners():
    """Every seq2seq runner the tests use, each loaded once."""
    def load(task, fixture, **options):
        return tasks.load(task, model=str(FIXTURES / fixture), **options)

    def load_with_the_fallback_warning(task, fixture):
        with pytest.warns(UserWarning, match="no language pair given"):
            return load(task, fixture)

    return {
        "summarize-bart": load("summarization", "bart-cnn"),
        "summarize-t5": load("summarization", "t5"),
        "text2text-t5": load("text2text-generation", "t5"),
        "translate-marian": load("translation_en_to_fr", "marian-en-fr"),
        "translate-t5": load_with_the_fallback_warning("translation", "t5"),
        "translate-m2m100": load("translation", "m2m100"),
        "translate-m2m100-en-fr": load("translation_en_to_fr", "m2m100"),
    }


QUICK = dict(max_length=8, num_beams=1)


# -- bad input -------------------------------------------------------------------------------------------

RUNNER_NAMES = ["summarize-bart", "text2text-t5", "translate-marian", "translate-m2m100-en-fr"]


@pytest.mark.parametrize("name", RUNNER_NAMES)
@pytest.mark.parametrize("bad, error, message", [
    ("", ValueError, "empty string"),
    ("  \n", ValueError, "empty string"),
    (["The river.", ""], ValueError, r"inputs\[1\] contains an empty string"),
    ([], ValueError, "empty"),
    (42, TypeError, "must be a string"),
    (None, TypeError, "must be a string"),
    (["The river.", b"bytes"], TypeError, r"inputs\[1\] must be a string"),
    ({"text": "The river."}, TypeError, "must be a string"),
])
def test_bad_inputs_are_refused_clearly(runners, name, bad, error, message):
    with pytest.raises(error, match=message):
        runners[name](bad, **QUICK)


@pytest.mark.parametrize("name", RUNNER_NAMES)
@pytest.mark.parametrize("options, message", [
    (dict(max_length=-1), "max_length must be >= 1"),
    (dict(max_new_tokens=-3), "max_new_tokens must be >= 1"),
    (dict(max_new_tokens=0), "max_new_tokens must be >= 1"),
    (dict(max_length=10, min_length=-1), "min_length must be >= 0"),
    (dict(max_length=10, min_new_tokens=-2), "min_new_tokens must be >= 0"),
    (dict(max_length=10, min_length=20), r"min_length \(20\) is larger than max_length \(10\)"),
    (dict(max_length=10, num_beams=0), "num_beams must be >= 1"),
])
def test_bad_lengths_are_refused_clearly(runners, name, options, message):
    with pytest.raises(ValueError, match=message):
        runners[name](TEXTS[1], **options)


def test_unknown_option_suggests_the_right_name(runners):
    with pytest.raises(TypeError, match="did you mean 'num_beams'"):
        runners["summarize-bart"](TEXTS[1], num_beam=2)


def test_input_longer_than_the_model_is_an_error_unless_truncation_is_asked(runners):
    summarizer = runners["summarize-bart"]
    with pytest.raises(ValueError, match=r"inputs\[0\] is \d+ tokens long but the model reads at most 256.*"
                                         r"truncation=True"):
        summarizer(LONG_TEXT, max_length=10, min_length=2)
    with pytest.warns(UserWarning, match=r"inputs\[0\] is \d+ tokens long; truncated to its first 256 tokens"):
        summary = summarizer(LONG_TEXT, max_length=10, min_length=2, truncation=True)
    assert isinstance(summary[0]["summary_text"], str)


def test_decoder_only_model_is_refused():
    gpt2 = tasks.load("text-generation", model=str(FIXTURES / "gpt2"))
    with pytest.raises(ValueError, match="encoder-decoder.*TextGenerator"):
        Text2TextGenerator(gpt2.model, gpt2.tokenizer)


# -- languages ---------------------------------------------------------------------------------------------


def test_unknown_language_code_lists_the_valid_ones(runners):
    with pytest.raises(ValueError, match="unknown tgt_lang 'xx' for M2M100Tokenizer; valid codes: af, am, .*fr.*zu"):
        runners["translate-m2m100"](TEXTS[1], src_lang="en", tgt_lang="xx", **QUICK)
    with pytest.raises(ValueError, match="unknown src_lang 'english'"):
        tasks.load("translation_english_to_fr", model=str(FIXTURES / "m2m100"))


@pytest.mark.parametrize("task, fixture, message", [
    ("translation_en_to_de", "marian-en-fr", "this model translates en to fr; tgt_lang='de' is not possible"),
    ("translation_de_to_fr", "marian-en-fr", "src_lang='de' is not possible"),
    ("translation_en_to_es", "t5", "no 'translation_en_to_es'.*it knows translation_en_to_de, translation_en_to_fr"),
])
def test_translation_task_that_does_not_match_the_model_is_refused(task, fixture, message):
    with pytest.raises(ValueError, match=message):
        tasks.load(task, model=str(FIXTURES / fixture))


def test_translation_task_name_must_be_well_formed():
    assert parse_task("translation_en_to_fr") == ("en", "fr") and parse_task("translation") == (None, None)
    with pytest.raises(ValueError, match="translation_XX_to_YY"):
        parse_task("translation_en_fr")


def test_language_tokens_models_need_a_pair(runners):
    with pytest.raises(ValueError, match="pass src_lang= and tgt_lang=.*language codes: af"):
        runners["translate-m2m100"](TEXTS[1], **QUICK)
    half_a_pair = Translator.from_pretrained(FIXTURES / "t5", src_lang="en")  # no fallback: a language was named
    with pytest.raises(ValueError, match="choose a pair with task=.*translation_en_to_de"):
        half_a_pair(TEXTS[1], **QUICK)


def test_translation_without_a_pair_falls_back_to_the_first_task_pair_like_4_57_6():
    """4.57.6's pipeline("translation", model=t5) took the first translation_* key of task_specific_params."""
    with pytest.warns(UserWarning, match=r"translating en to de \(translation_en_to_de, the first pair.*"
                                         r"task='translation_XX_to_YY' or src_lang=/tgt_lang=") as caught:
        fallback = tasks.load("translation", model=str(FIXTURES / "t5"))
    assert caught[0].filename == __file__  # the caller's line, not ours
    chosen = tasks.load("translation_en_to_de", model=str(FIXTURES / "t5"))
    assert fallback.recipe.prefix == "translate English to German: "
    assert fallback(TEXTS[1], max_length=12) == chosen(TEXTS[1], max_length=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a model with a single pair (Marian) has nothing to fall back from
        tasks.load("translation", model=str(FIXTURES / "marian-en-fr"))


def test_m2m100_languages_per_call_equal_a_runner_built_for_them(runners):
    per_call = runners["translate-m2m100-en-fr"](TEXTS[:2], tgt_lang="de", max_length=12)
    built = tasks.load("translation_en_to_de", model=str(FIXTURES / "m2m100"))(TEXTS[:2], max_length=12)
    assert per_call == built
    # the forced first token is the target language (this fixture's tokenizer decodes it as text)
    assert all(output["translation_text"].startswith("__de__") for output in per_call)
    generic = runners["translate-m2m100"](TEXTS[:2], src_lang="en", tgt_lang="de", max_length=12)
    assert generic == per_call
    # the call's languages are the call's: the runner still translates into French afterwards
    assert runners["translate-m2m100-en-fr"](TEXTS[1], max_length=12)[0]["translation_text"].startswith("__fr__")


def test_m2m100_source_language_token_starts_the_input(runners):
    translator = runners["translate-m2m100"]
    recipe = translator.translation_recipe("de", "fr")
    ids = translator.preprocess([TEXTS[1]], recipe)[0]["input_ids"]
    assert ids[0] == translator.tokenizer.get_lang_id("de") and ids[-1] == translator.tokenizer.eos_token_id
    assert recipe.settings["forced_bos_token_id"] == translator.tokenizer.get_lang_id("fr")


def test_t5_translation_pair_per_call_uses_the_task_prefix(runners):
    translator = runners["translate-t5"]
    per_call = translator(TEXTS[1], src_lang="en", tgt_lang="fr", max_length=12)
    assert per_call == tasks.load("translation_en_to_fr", model=str(FIXTURES / "t5"))(TEXTS[1], max_length=12)
    recipe = translator.translation_recipe("en", "de")
    assert recipe.prefix == "translate English to German: "
    assert translator.preprocess([TEXTS[1]], recipe)[0]["input_ids"] == \
        translator.tokenizer("translate English to German: " + TEXTS[1])["input_ids"]


def test_languages_that_contradict_the_task_are_refused():
    with pytest.raises(ValueError, match="tgt_lang='de' contradicts task='translation_en_to_fr'"):
        Translator.from_pretrained(FIXTURES / "m2m100", task="translation_en_to_fr", tgt_lang="de")


# -- lengths and task parameters ---------------------------------------------------------------------------


def test_summarization_honours_the_callers_max_and_min_length(runners):
    """4.57.6 let its default max_new_tokens=256 override these; we do not (spec, "Decisions")."""
    summarizer = runners["summarize-bart"]
    for max_length, min_length in ((20, 10), (35, 30)):
        ids = summarizer(TEXTS[2], max_length=max_length, min_length=min_length, return_tensors=True)
        length = len(ids[0]["summary_token_ids"])  # counts the decoder start token, as max_length does
        assert min_length < length <= max_length


def test_summarizer_applies_task_specific_params_text2text_does_not(runners):
    summarize, text2text = runners["summarize-t5"], runners["text2text-t5"]
    settings = summarize.decoding_config()
    assert {key: getattr(settings, key) for key in ("num_beams", "length_penalty", "no_repeat_ngram_size", "min_length",
                                           "max_length", "early_stopping")} == \
        dict(num_beams=4, length_penalty=2.0, no_repeat_ngram_size=3, min_length=30, max_length=200,
             early_stopping=True)
    assert summarize.recipe.prefix == "summarize: "
    assert summarize.preprocess([TEXTS[1]])[0]["input_ids"] == \
        summarize.tokenizer("summarize: " + TEXTS[1])["input_ids"]
    plain = text2text.decoding_config()
    assert text2text.recipe.prefix == "" and not {"min_length", "length_penalty"} & plain.set_by_caller
    # the 4.57.6 pipeline default for every seq2seq task
    assert plain.num_beams == 4 and plain.sources["num_beams"] == "pipeline default"
    # the caller beats the task parameters
    assert summarize.decoding_config(num_beams=2, max_length=40).num_beams == 2


def test_distilbart_cnn_summarization_params_apply(runners):
    settings = runners["summarize-bart"].decoding_config()
    assert settings.num_beams == 4 and settings.min_length == 56 and settings.max_length == 142
    assert settings.no_repeat_ngram_size == 3 and settings.length_penalty == 2.0
    assert settings.sources["num_beams"] == "task_specific_params"


def test_the_pipelines_num_beams_beats_the_models_generation_config(runners):
    # The m2m100 fixture's generation_config says num_beams=5, as facebook/m2m100_418M's does; the
    # 4.57.6 pipeline takes a model value only where its own default is transformers' global one, so 4.
    m2m100 = runners["translate-m2m100-en-fr"]
    assert m2m100.model.generation_config.num_beams == 5
    assert m2m100.decoding_config().num_beams == 4
    assert m2m100.decoding_config().sources["num_beams"] == "pipeline default"
    assert m2m100.decoding_config(num_beams=5).num_beams == 5  # the caller still wins
    assert runners["summarize-bart"].decoding_config().num_beams == 4  # task_specific_params


def test_checkpoint_min_length_above_callers_max_length_is_lowered_with_a_warning(runners):
    with pytest.warns(UserWarning, match="min_length=56 from the model's configuration is above max_length=30"):
        ids = runners["summarize-bart"](TEXTS[2], max_length=30, return_tensors=True)
    assert len(ids[0]["summary_token_ids"]) == 30


def test_summary_allowed_to_be_longer_than_its_text_warns(runners):
    with pytest.warns(UserWarning, match=r"inputs\[1\] is \d+ tokens long, less than max_length=40, so its summary"):
        runners["summarize-bart"]([TEXTS[2], TEXTS[1]], max_length=40, min_length=2, num_beams=1)


def test_translation_of_an_input_near_max_length_warns(runners):
    with pytest.warns(UserWarning, match=r"inputs\[1\] is 35 tokens long \(and 1 more\), close to or above "
                                         r"max_length=20, so its translation may be cut short"):
        runners["translate-marian"]([TEXTS[1], TEXTS[0], TEXTS[2]], max_length=20, num_beams=1)


def test_max_new_tokens_counts_new_tokens_only(runners):
    ids = runners["translate-marian"](TEXTS[2], max_new_tokens=6, num_beams=1, return_tensors=True)
    assert len(ids[0]["translation_token_ids"]) == 1 + 6  # decoder start token + 6 new


# -- output -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["summarize-bart", "text2text-t5", "translate-marian", "translate-m2m100-en-fr"])
@pytest.mark.parametrize("return_tensors", [False, True])
def test_batches_equal_one_text_at_a_time(runners, name, return_tensors):
    runner = runners[name]
    options = dict(num_beams=1, max_length=16, min_length=2, return_tensors=return_tensors)
    alone = [runner(text, **options)[0] for text in TEXTS]
    batched = runner(TEXTS, batch_size=3, **options)
    if return_tensors:
        key = next(iter(alone[0]))
        assert [output[key].tolist() for output in batched] == [output[key].tolist() for output in alone]
    else:
        assert batched == alone


def test_a_list_gives_one_answer_per_text_or_a_list_per_text(runners):
    runner = runners["text2text-t5"]
    one_each = runner(TEXTS[:2], max_length=8)
    assert len(one_each) == 2 and all(isinstance(answer, dict) for answer in one_each)
    several = runner(TEXTS[:2], max_length=8, num_beams=3, num_return_sequences=2)
    assert len(several) == 2 and all(len(answers) == 2 for answers in several)


def test_clean_up_tokenization_spaces_is_the_4_57_6_clean_up(runners):
    runner = runners["text2text-t5"]
    raw = runner(TEXTS[0], max_length=16)[0]["generated_text"]
    assert runner(TEXTS[0], max_length=16, clean_up_tokenization_spaces=True)[0]["generated_text"] == \
        clean_up_tokenization(raw)
    assert clean_up_tokenization("Hi , I 'm here .") == "Hi, I'm here."


def test_goldens_runner_classes_are_the_task_classes(runners):
    assert isinstance(runners["summarize-bart"], Summarizer)
    assert isinstance(runners["text2text-t5"], Text2TextGenerator)
    assert isinstance(runners["translate-m2m100"], Translator)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain call on a fitting text warns about nothing
        runners["translate-marian"](TEXTS[1], max_length=16)  # 13 tokens in, up to 16 out


# -- hooks of decoding.generate, flags ----------------------------------------------------------------------


def generate_directly(runner, text: str, call: dict, **hooks) -> list[int]:
    """What decoding.generate gives with the runner's own inputs and settings for this call."""
    features = runner.preprocess([text])[0]
    config = runner.decoding_config(**call)
    output = generate(runner.model, torch.tensor([features["input_ids"]]), torch.tensor([features["attention_mask"]]),
                      tokenizer=runner.tokenizer, config=config, **hooks)
    return output.sequences[0].tolist()


@pytest.mark.parametrize("name", ["translate-marian", "summarize-bart"])
@pytest.mark.parametrize("call", [dict(num_beams=1, max_length=12, min_length=2), dict(max_length=12, min_length=2)],
                         ids=["greedy", "beams"])
def test_a_logits_processor_changes_the_output_as_in_decoding_generate(runners, name, call):
    runner = runners[name]
    key = f"{runner.output_name}_token_ids"
    plain = runner(TEXTS[1], return_tensors=True, **call)[0][key].tolist()
    banned = next(token for token in plain if token not in runner.tokenizer.all_special_ids)
    processor = suppress_token(banned)
    ours = runner(TEXTS[1], return_tensors=True, logits_processors=[processor], **call)[0][key].tolist()
    assert ours == generate_directly(runner, TEXTS[1], call, logits_processors=[processor])
    assert banned not in ours
    # transformers' spelling, with one of its LogitsProcessor classes, does the same
    theirs = LogitsProcessorList([SuppressTokensLogitsProcessor([banned])])
    assert runner(TEXTS[1], return_tensors=True, logits_processor=theirs, **call)[0][key].tolist() == ours


def test_a_strategy_replaces_greedy_as_in_decoding_generate(runners):
    runner, call = runners["translate-marian"], dict(num_beams=1, max_length=12)
    ours = runner(TEXTS[1], return_tensors=True, strategy=second_best, **call)[0]["translation_token_ids"].tolist()
    assert ours == generate_directly(runner, TEXTS[1], call, strategy=second_best)
    assert ours != runner(TEXTS[1], return_tensors=True, **call)[0]["translation_token_ids"].tolist()


def test_hooks_given_at_construction_apply_to_every_call(runners):
    built = tasks.load("translation_en_to_fr", model=str(FIXTURES / "marian-en-fr"), strategy=second_best)
    assert built(TEXTS[1], num_beams=1, max_length=12) == \
        runners["translate-marian"](TEXTS[1], num_beams=1, max_length=12, strategy=second_best)


@pytest.mark.parametrize("options, error, message", [
    (dict(trace=True), TypeError, r"trace= is not an option.*decoding.generate\(.*trace=True\)"),
    (dict(logits_processors=[second_best], logits_processor=[second_best]), ValueError, "same option; pass only one"),
    (dict(logits_processors=second_best), TypeError, r"logits_processors must be a list.*\[processor\]"),
    (dict(logits_processors=[3]), TypeError, "each logits processor must be a callable"),
    (dict(strategy="greedy"), TypeError, "strategy must be a callable"),
], ids=repr)
def test_bad_hooks_are_refused_clearly(runners, options, error, message):
    with pytest.raises(error, match=message):
        runners["translate-marian"](TEXTS[1], num_beams=1, max_length=8, **options)


@pytest.mark.parametrize("name", RUNNER_NAMES)
@pytest.mark.parametrize("flag, value, message", [
    ("return_tensors", "yes", "return_tensors must be True, False or None, got 'yes'"),
    ("return_text", 1, "return_text must be True, False or None, got 1"),
    ("clean_up_tokenization_spaces", "x", "clean_up_tokenization_spaces must be True or False, got 'x'"),
    ("truncation", "yes", "truncation must be True, False or one of 'longest_first'"),
])
def test_flags_must_be_booleans(runners, name, flag, value, message):
    with pytest.raises(TypeError, match=message):
        runners[name](TEXTS[1], **{flag: value}, **QUICK)


def test_truncation_takes_a_tokenizer_strategy_too(runners):
    summarizer, options = runners["summarize-bart"], dict(max_length=10, min_length=2, return_tensors=True)
    with pytest.warns(UserWarning, match="truncated"):
        by_name = summarizer(LONG_TEXT, truncation="longest_first", **options)
    with pytest.warns(UserWarning, match="truncated"):
        assert by_name[0]["summary_token_ids"].tolist() == \
            summarizer(LONG_TEXT, truncation=True, **options)[0]["summary_token_ids"].tolist()
    with pytest.raises(ValueError, match="reads at most 256"):
        summarizer(LONG_TEXT, truncation="do_not_truncate", **options)
    with pytest.raises(TypeError, match="truncation must be True, False or one of 'longest_first', 'only_first'"):
        summarizer(LONG_TEXT, truncation="only_second", **options)  # a strategy for pairs: one text has none
