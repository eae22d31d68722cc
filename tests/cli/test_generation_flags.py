"""Every generation flag reaches the runner: the command's answer equals the API call with the keyword
it maps to, and differs from the answer without it (so a flag that was dropped would fail)."""

import json

import pytest

import tasks
from core.seed import set_seed
from tasks.cli import main
from tests.paths import FIXTURES

GPT2 = str(FIXTURES / "gpt2")
BART = str(FIXTURES / "bart-cnn")
PROMPT = "The old lighthouse keeper"
BASE = ["--max-new-tokens", "10", "--json"]

CASES = [  # (flags, API keywords); sampling cases run with --seed 0
    (["--no-do-sample", "--suppress-tokens", "{greedy0},{greedy1}"], dict(do_sample=False, suppress_tokens="{ids}")),
    (["--no-do-sample", "--begin-suppress-tokens", "{greedy0}"], dict(do_sample=False, begin_suppress_tokens="{first}")),
    (["--no-do-sample", "--sequence-bias", '[[[{greedy0}], -100.0]]'], dict(do_sample=False, sequence_bias="{bias}")),
    (["--no-do-sample", "--exponential-decay-length-penalty", "1,30.0"],
     dict(do_sample=False, exponential_decay_length_penalty=(1, 30.0))),
    (["--no-do-sample", "--penalty-alpha", "0.6", "--top-k", "4"], dict(do_sample=False, penalty_alpha=0.6, top_k=4)),
    (["--no-do-sample", "--num-beams", "4", "--num-return-sequences", "4", "--num-beam-groups", "2",
      "--diversity-penalty", "2.0"],
     dict(do_sample=False, num_beams=4, num_return_sequences=4, num_beam_groups=2, diversity_penalty=2.0)),
    (["--no-do-sample", "--dola-layers", "low", "--repetition-penalty", "1.2"],
     dict(do_sample=False, dola_layers="low", repetition_penalty=1.2)),
    (["--no-do-sample", "--num-beams", "3", "--force-words", " sea"],
     dict(do_sample=False, num_beams=3, force_words_ids="{sea}")),
    (["--no-do-sample", "--guidance-scale", "3.0", "--negative-prompt", "Paris"], dict(do_sample=False, guidance_scale=3.0)),
    (["--do-sample", "--seed", "0", "--typical-p", "0.3"], dict(do_sample=True, typical_p=0.3)),
    (["--do-sample", "--seed", "0", "--epsilon-cutoff", "0.05"], dict(do_sample=True, epsilon_cutoff=0.05)),
    (["--do-sample", "--seed", "0", "--eta-cutoff", "0.05"], dict(do_sample=True, eta_cutoff=0.05)),
    (["--do-sample", "--seed", "0", "--top-h", "0.3"], dict(do_sample=True, top_h=0.3)),
    (["--do-sample", "--seed", "0", "--min-p", "0.3"], dict(do_sample=True, min_p=0.3)),
    (["--do-sample", "--seed", "0", "--watermark", '{"bias": 8.0}'], dict(do_sample=True, watermarking_config={"bias": 8.0})),
]


@pytest.fixture(scope="module")
def generator():
    return tasks.load("text-generation", model=GPT2)


def filled(generator, value):
    """The placeholders of CASES made from the fixture's own greedy answer and tokenizer."""
    tokenizer = generator.tokenizer
    greedy = generator(PROMPT, max_new_tokens=2, do_sample=False, return_tensors=True)[0]["generated_token_ids"][-2:]
    names = {"greedy0": greedy[0], "greedy1": greedy[1]}
    if isinstance(value, str):
        if value == "{ids}":
            return [greedy[0], greedy[1]]
        if value == "{first}":
            return [greedy[0]]
        if value == "{bias}":
            return [[[greedy[0]], -100.0]]
        if value == "{sea}":
            return [tokenizer(" sea", add_special_tokens=False)["input_ids"]]
        return value.format(**names) if "{greedy" in value else value
    return value


def answer(capsys, argv) -> list:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.splitlines()[0])["output"]


@pytest.mark.parametrize(("flags", "keywords"), CASES, ids=[flags[3] if flags[1] == "--seed" else flags[1] for flags, _ in CASES])
def test_each_generation_flag_reaches_the_runner(capsys, generator, flags, keywords):
    flags = [filled(generator, flag) for flag in flags]
    keywords = {name: filled(generator, value) for name, value in keywords.items()}
    if "guidance_scale" in keywords:
        encoded = generator.tokenizer("Paris", return_tensors="pt")
        keywords.update(negative_prompt_ids=encoded["input_ids"], negative_prompt_attention_mask=encoded["attention_mask"])
    ours = answer(capsys, ["generate", PROMPT, "--model", GPT2, *BASE, *flags])
    set_seed(0)
    expected = generator(PROMPT, max_new_tokens=10, **keywords)
    assert ours == expected
    plain = {name: value for name, value in keywords.items() if name in ("do_sample", "num_beams", "num_return_sequences")}
    set_seed(0)
    assert generator(PROMPT, max_new_tokens=10, **plain) != expected, "the flag changed nothing: the test could not fail"


@pytest.mark.parametrize(("flags", "keywords"), [
    (["--encoder-repetition-penalty", "3.0"], dict(encoder_repetition_penalty=3.0)),
    (["--encoder-no-repeat-ngram-size", "1"], dict(encoder_no_repeat_ngram_size=1)),
])
def test_encoder_flags_reach_the_summarizer(capsys, flags, keywords):
    text = "The old lighthouse keeper climbed the stairs every night to light the lamp for the ships at sea."
    ours = answer(capsys, ["summarize", text, "--model", BART, "--max-length", "16", "--min-length", "2", "--num-beams", "1",
                           "--json", *flags])
    summarizer = tasks.load("summarization", model=BART)
    expected = summarizer(text, max_length=16, min_length=2, num_beams=1, **keywords)
    assert [ours] == expected
    assert summarizer(text, max_length=16, min_length=2, num_beams=1) != expected


def test_a_bad_flag_value_is_one_line_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", PROMPT, "--model", GPT2, "--suppress-tokens", "a,b"])
    assert exit_info.value.code == 2
    assert "--suppress-tokens" in capsys.readouterr().err
    assert main(["generate", PROMPT, "--model", GPT2, "--penalty-alpha", "0.6", "--top-k", "1", "--no-do-sample"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nopipe: error:") and "--top-k" in err and "Traceback" not in err


def test_prompt_lookup_gives_the_greedy_answer(capsys):
    flags = ["--no-do-sample", "--max-new-tokens", "12", "--json"]
    plain = answer(capsys, ["generate", PROMPT, "--model", GPT2, *flags])
    assert answer(capsys, ["generate", PROMPT, "--model", GPT2, *flags, "--prompt-lookup", "4"]) == plain
    assert main(["generate", PROMPT, "--model", GPT2, *flags, "--prompt-lookup", "0"]) == 2
    assert "--prompt-lookup" in capsys.readouterr().err


def test_max_time_zero_stops_after_one_step(capsys):
    out = answer(capsys, ["generate", PROMPT, "--model", GPT2, "--no-do-sample", "--max-time", "0",
                          "--max-new-tokens", "10", "--json", "--no-return-full-text"])
    ids = tasks.load("text-generation", model=GPT2).tokenizer(out[0]["generated_text"], add_special_tokens=False)["input_ids"]
    assert len(ids) <= 1
