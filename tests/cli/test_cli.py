"""The `nopipe` command on the fixture models: every subcommand, its output, and its error paths.

Most tests call `tasks.cli.main(argv)` in this process (fast: no interpreter start-up); one runs the
installed `nopipe` script to check the entry point itself. The outputs are checked against the Python
API on the same model and input, so a test fails if the command drops or mangles an option.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tasks
from core.seed import set_seed
from tasks.cli import inputs_per_chunk, main
from tasks.text_generation import TextGenerator
from tests.paths import FIXTURES, corpus_lines

SST2 = str(FIXTURES / "distilbert-sst2")
NER = str(FIXTURES / "bert-ner")
QA = str(FIXTURES / "distilbert-squad")
T5 = str(FIXTURES / "t5")
BART = str(FIXTURES / "bart-cnn")
MARIAN = str(FIXTURES / "marian-en-fr")
M2M100 = str(FIXTURES / "m2m100")
GPT2 = str(FIXTURES / "gpt2")

TEXTS = [line for line in corpus_lines() if line.strip()][:3]
CONTEXT = "My name is Sarah Jones and I live in London. I work at the Royal Museum."


def run(argv, capsys, stdin: str | None = None, monkeypatch=None):
    """(exit code, stdout, stderr) of `nopipe argv`."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_lines(out: str) -> list[dict]:
    """--json prints one object per input: its result as in `runner(list_of_inputs)[i]`."""
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def lines_file(tmp_path, lines: list[str]) -> str:
    """A --file with one input per line."""
    path = tmp_path / "inputs.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def record_generation_batches(monkeypatch) -> list[int]:
    """The size of each batch TextGenerator.forward runs from now on (streaming runs none)."""
    sizes, forward = [], TextGenerator.forward

    def recording_forward(self, prompts, *args, **kwargs):
        sizes.append(len(prompts))
        return forward(self, prompts, *args, **kwargs)


    monkeypatch.setattr(TextGenerator, "forward", recording_forward)
    return sizes


# --- each subcommand gives what the Python API gives ----------------------------------------------

def test_classify_json_matches_api(capsys):
    code, out, _ = run(["classify", *TEXTS, "--model", SST2, "--json", "--top-k", "all"], capsys)
    assert code == 0
    expected = tasks.load("text-classification", model=SST2)(TEXTS, top_k=None)
    lines = json_lines(out)
    assert [line["input"] for line in lines] == TEXTS
    for line, result in zip(lines, expected, strict=True):
        assert [item["label"] for item in line["output"]] == [item["label"] for item in result]
        assert [item["score"] for item in line["output"]] == pytest.approx([item["score"] for item in result], abs=1e-6)


def test_classify_readable_output_names_label_and_text(capsys):
    code, out, _ = run(["classify", TEXTS[0], "--model", SST2], capsys)
    expected = tasks.load("text-classification", model=SST2)(TEXTS[0])[0]
    assert code == 0
    assert out.startswith(f"{expected['label']} ({expected['score']:.4f})\t{TEXTS[0]}")


def test_classify_reads_a_file_one_text_per_line(capsys, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")
    code, out, _ = run(["classify", "--file", str(path), "--model", SST2, "--json", "--batch-size", "2"], capsys)
    assert code == 0
    assert [line["input"] for line in json_lines(out)] == TEXTS  # the blank line is not an input


def test_classify_reads_stdin(capsys, monkeypatch):
    code, out, _ = run(["classify", "--model", SST2, "--json"], capsys, stdin="\n".join(TEXTS), monkeypatch=monkeypatch)
    assert code == 0
    assert len(json_lines(out)) == len(TEXTS)


def test_ner_options_reach_the_runner(capsys):
    text = "George Washington went to Washington and met Angela Merkel in Berlin."
    code, out, _ = run(["ner", text, "--model", NER, "--aggregation-strategy", "first", "--json"], capsys)
    assert code == 0
    expected = tasks.load("ner", model=NER)(text, aggregation_strategy="first")
    got = json_lines(out)[0]["output"]
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in got] == \
        [(e["entity_group"], e["word"], e["start"], e["end"]) for e in expected]


def test_qa_question_and_context(capsys):
    argv = ["qa", "--question", "Where does Sarah live?", "--context", CONTEXT, "--model", QA, "--json"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    expected = tasks.load("question-answering", model=QA)(question="Where does Sarah live?", context=CONTEXT)
    got = json_lines(out)[0]["output"]
    assert (got["answer"], got["start"], got["end"]) == (expected["answer"], expected["start"], expected["end"])
    assert CONTEXT[got["start"]:got["end"]] == got["answer"]


def test_qa_jsonl_file_and_top_k(capsys, tmp_path):
    path = tmp_path / "pairs.jsonl"
    questions = ["Where does Sarah live?", "Where does Sarah work?"]
    path.write_text("".join(json.dumps({"question": q, "context": CONTEXT}) + "\n" for q in questions))
    code, out, _ = run(["qa", "--file", str(path), "--model", QA, "--top-k", "2", "--json"], capsys)
    assert code == 0
    lines = json_lines(out)
    assert [line["input"]["question"] for line in lines] == questions
    assert all(isinstance(line["output"], list) and len(line["output"]) == 2 for line in lines)


def test_text2text_matches_api(capsys):
    text = "summarize: " + TEXTS[0]
    code, out, _ = run(["text2text", text, "--model", T5, "--max-length", "12", "--json"], capsys)
    assert code == 0
    expected = tasks.load("text2text-generation", model=T5)([text], max_length=12)[0]
    assert json_lines(out)[0]["output"] == expected


def test_summarize_readable_output_is_the_summary(capsys):
    code, out, _ = run(["summarize", TEXTS[0], "--model", BART, "--max-length", "15", "--min-length", "5"], capsys)
    assert code == 0
    expected = tasks.load("summarization", model=BART)(TEXTS[0], max_length=15, min_length=5)
    assert out == expected[0]["summary_text"] + "\n"


def test_translate_marian(capsys):
    code, out, _ = run(["translate", TEXTS[1], "--model", MARIAN, "--max-length", "16", "--json"], capsys)
    assert code == 0
    expected = tasks.load("translation", model=MARIAN)([TEXTS[1]], max_length=16)[0]
    assert json_lines(out)[0]["output"] == expected


def test_translate_m2m100_languages_from_flags_and_task(capsys):
    by_flags = run(["translate", TEXTS[1], "--model", M2M100, "--src-lang", "en", "--tgt-lang", "de",
                    "--max-length", "12", "--json"], capsys)
    by_task = run(["translate", TEXTS[1], "--model", M2M100, "--task", "translation_en_to_de",
                   "--max-length", "12", "--json"], capsys)
    expected = tasks.load("translation", model=M2M100, src_lang="en", tgt_lang="de")([TEXTS[1]], max_length=12)[0]
    assert by_flags[0] == by_task[0] == 0
    assert json_lines(by_flags[1])[0]["output"] == json_lines(by_task[1])[0]["output"] == expected


def test_generate_streams_the_greedy_text_and_reports_speed(capsys):
    prompt = "The old lighthouse keeper"
    code, out, err = run(["generate", prompt, "--model", GPT2, "--max-new-tokens", "12", "--no-do-sample"], capsys)
    assert code == 0
    expected = tasks.load("text-generation", model=GPT2)(prompt, max_new_tokens=12, do_sample=False)
    assert out == expected[0]["generated_text"] + "\n"
    assert "tokens/s" in err


def test_generate_seed_reproduces_a_sample(capsys):
    argv = ["generate", "Once upon a time", "--model", GPT2, "--max-new-tokens", "10", "--do-sample",
            "--top-k", "20", "--seed", "3", "--json"]
    first, second = run(argv, capsys), run(argv, capsys)
    generator = tasks.load("text-generation", model=GPT2)
    set_seed(3)
    expected = generator("Once upon a time", max_new_tokens=10, do_sample=True, top_k=20)
    assert first[0] == 0 and first[1] == second[1]
    assert json_lines(first[1])[0]["output"] == expected
    streamed = run(argv[:-1], capsys)  # the same run without --json prints the same sample
    assert streamed[1] == expected[0]["generated_text"] + "\n"


def test_generate_without_full_text_prints_only_the_continuation(capsys):
    prompt = "The old lighthouse keeper"
    code, out, _ = run(["generate", prompt, "--model", GPT2, "--max-new-tokens", "8", "--no-return-full-text",
                        "--no-do-sample"], capsys)
    expected = tasks.load("text-generation", model=GPT2)(prompt, max_new_tokens=8, do_sample=False,
                                                         return_full_text=False)
    assert code == 0
    assert out == expected[0]["generated_text"] + "\n"


def test_generate_stop_string_ends_the_text(capsys):
    prompt = "The old lighthouse keeper"
    generator = tasks.load("text-generation", model=GPT2)
    full = generator(prompt, max_new_tokens=12, do_sample=False, return_full_text=False)[0]["generated_text"]
    stop = full.split()[1]  # the second word of the greedy continuation
    code, out, _ = run(["generate", prompt, "--model", GPT2, "--max-new-tokens", "12", "--no-do-sample",
                        "--no-return-full-text", "--stop", stop], capsys)
    assert code == 0
    assert out == generator(prompt, max_new_tokens=12, do_sample=False, return_full_text=False,
                            stop_strings=[stop])[0]["generated_text"] + "\n"
    assert out.rstrip("\n").endswith(stop) and len(out) < len(full) + 1


def test_generate_beam_search_prints_the_answer_instead_of_streaming(capsys):
    code, out, err = run(["generate", "hi", "--model", GPT2, "--num-beams", "2", "--max-new-tokens", "6",
                          "--no-do-sample"], capsys)
    expected = tasks.load("text-generation", model=GPT2)("hi", num_beams=2, max_new_tokens=6, do_sample=False)
    assert code == 0, err
    assert out == expected[0]["generated_text"] + "\n"


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["readable", "json"])
def test_generate_batch_size_runs_several_prompts_in_batches(capsys, monkeypatch, tmp_path, output):
    prompts = ["The old lighthouse keeper", "Once upon a time", "hi"]
    batches = record_generation_batches(monkeypatch)
    code, out, err = run(["generate", "--file", lines_file(tmp_path, prompts), "--model", GPT2, "--batch-size", "2",
                          "--max-new-tokens", "6", "--no-do-sample", *output], capsys)
    assert code == 0, err
    assert sorted(batches) == [1, 2]  # batched, not streamed one prompt at a time
    expected = tasks.load("text-generation", model=GPT2)(prompts, max_new_tokens=6, do_sample=False, batch_size=2)
    if output:
        assert [line["output"] for line in json_lines(out)] == expected
    else:  # each answer under its prompt, so a multi-line answer can be told from the next
        assert out == "".join(f">>> {prompt}\n" + result[0]["generated_text"] + "\n"
                              for prompt, result in zip(prompts, expected))
        assert "tokens/s" not in err


def test_generate_one_prompt_streams_whatever_the_batch_size(capsys, monkeypatch):
    batches = record_generation_batches(monkeypatch)
    code, _, err = run(["generate", "hi", "--model", GPT2, "--batch-size", "4", "--max-new-tokens", "4"], capsys)
    assert code == 0 and batches == []
    assert "tokens/s" in err


def test_generate_seed_is_set_once_for_all_streamed_prompts(capsys, tmp_path):
    prompts = ["The old lighthouse keeper"] * 2
    code, out, _ = run(["generate", "--file", lines_file(tmp_path, prompts), "--model", GPT2, "--max-new-tokens", "6",
                        "--do-sample", "--seed", "5"], capsys)
    generator = tasks.load("text-generation", model=GPT2)
    set_seed(5)
    expected = [generator(prompt, max_new_tokens=6, do_sample=True)[0]["generated_text"] for prompt in prompts]
    assert code == 0
    assert out.splitlines() == [line for prompt, text in zip(prompts, expected) for line in (f">>> {prompt}", text)]
    assert expected[0] != expected[1]  # the second prompt draws new numbers


def test_seed_is_set_once_so_later_chunks_draw_new_numbers(capsys):
    """Each text is one call, as a streamed run makes them, after a single set_seed."""
    texts = [TEXTS[1]] * (inputs_per_chunk(1) + 2)
    options = dict(do_sample=True, num_beams=1, max_new_tokens=6)
    code, out, _ = run(["translate", *texts, "--model", MARIAN, "--do-sample", "--num-beams", "1",
                        "--max-new-tokens", "6", "--batch-size", "1", "--seed", "3", "--json"], capsys)
    translator = tasks.load("translation", model=MARIAN)
    set_seed(3)
    chunk = inputs_per_chunk(1)
    expected = [translator(text, **options)[0] for text in texts]
    got = [line["output"] for line in json_lines(out)]
    assert code == 0
    assert got[chunk:] != got[:len(texts) - chunk]  # the second chunk does not repeat the first's draws
    assert got == expected


def test_long_text_needs_truncation(capsys):
    long_text = " ".join(TEXTS * 40)
    code, _, err = run(["classify", long_text, "--model", SST2], capsys)
    assert code == 2
    assert_one_line_error(err, "truncation")
    with pytest.warns(UserWarning):
        code, out, _ = run(["classify", long_text, "--model", SST2, "--truncation", "--json"], capsys)
    assert code == 0
    with pytest.warns(UserWarning):
        expected = tasks.load("text-classification", model=SST2)([long_text], truncation=True)[0]
    got = json_lines(out)[0]["output"]
    assert got["label"] == expected["label"] and got["score"] == pytest.approx(expected["score"], abs=1e-6)


def test_the_installed_script_runs(tmp_path):
    """The `nopipe` entry point of pyproject.toml, as a user types it."""
    script = Path(sys.executable).with_name("nopipe")
    assert script.is_file(), "the nopipe script is missing; install the package with pip install -e ."
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(script), "classify", "I love this product!", "--model", SST2, "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["output"]) == {"label", "score"}  # one text: its best label
    assert "Loading" not in done.stderr  # no progress bars between answers


# --- errors: one line, the fix, the right exit code ------------------------------------------------

def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nopipe: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("command", ["classify", "qa", "text2text", "generate"])
def test_no_input_is_a_usage_error_found_before_loading_the_model(capsys, monkeypatch, tmp_path, command):
    # The model folder does not exist: loading it first would fail with that instead.
    code, out, err = run([command, "--model", str(tmp_path / "nowhere")], capsys, stdin="", monkeypatch=monkeypatch)
    assert code == 2 and out == ""
    assert_one_line_error(err, "no input", "--file")


def test_missing_model_folder_is_a_runtime_error(capsys, tmp_path):
    code, _, err = run(["classify", "hello", "--model", str(tmp_path / "nowhere")], capsys)
    assert code == 1
    assert_one_line_error(err, "nowhere")


def test_wrong_head_names_the_task(capsys):
    code, _, err = run(["qa", "--question", "Who?", "--context", CONTEXT, "--model", GPT2], capsys)
    assert code == 2  # the --model given does not fit the command
    assert_one_line_error(err, "no trained weights for GPT2ForQuestionAnswering", "not fine-tuned for this task",
                          "Use a checkpoint trained for it")


def test_bad_batch_size(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", "hello", "--model", SST2, "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, "--batch-size", "must be >= 1", "nopipe classify --help")


def test_missing_file(capsys, tmp_path):
    code, _, err = run(["classify", "--file", str(tmp_path / "absent.txt"), "--model", SST2], capsys)
    assert code == 2
    assert_one_line_error(err, "--file")


def test_qa_question_without_context(capsys):
    code, _, err = run(["qa", "--question", "Who?", "--model", QA], capsys)
    assert code == 2
    assert_one_line_error(err, "--context")


def test_qa_bad_jsonl_names_the_line(capsys, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"question": "Who?", "context": CONTEXT}) + "\nnot json\n")
    code, _, err = run(["qa", "--file", str(path), "--model", QA], capsys)
    assert code == 2
    assert_one_line_error(err, "line 2")


def test_unknown_language_lists_the_codes(capsys):
    code, _, err = run(["translate", "hello", "--model", M2M100, "--src-lang", "en", "--tgt-lang", "xx"], capsys)
    assert code == 2
    assert_one_line_error(err, "'xx'", "fr")


def test_bad_option_value_from_the_api(capsys):
    code, _, err = run(["ner", "Angela Merkel", "--model", NER, "--stride", "-3"], capsys)
    assert code == 2
    assert_one_line_error(err, "stride")


def test_negative_length(capsys):
    code, _, err = run(["summarize", TEXTS[0], "--model", BART, "--max-length", "-1"], capsys)
    assert code == 2
    assert_one_line_error(err, "--max-length must be >= 1")


GENERATE_BAD_SETTINGS = [
    (["--temperature", "0"], "--temperature must be > 0"), (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["--top-k", "-1"], "--top-k must be >= 0"), (["--num-beams", "0"], "--num-beams must be >= 1"),
    (["--max-new-tokens", "-1"], "--max-new-tokens must be >= 1"),
    (["--min-length", "30", "--max-length", "10"], "--min-length (30) is larger than --max-length (10)"),
]


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["streamed", "json"])
@pytest.mark.parametrize("setting, message", GENERATE_BAD_SETTINGS, ids=[bad[0][0] for bad in GENERATE_BAD_SETTINGS])
def test_generate_bad_setting_prints_nothing_but_the_error(capsys, setting, message, output):
    code, out, err = run(["generate", "hi", "--model", GPT2, *setting, *output], capsys)
    assert code == 2 and out == ""
    assert_one_line_error(err, message)


@pytest.mark.parametrize("setting, message", [
    (["--num-beams", "0"], "--num-beams must be >= 1"), (["--do-sample", "--top-p", "1.5"], "--top-p must be in (0, 1]"),
    (["--min-length", "30", "--max-length", "10"], "--min-length (30) is larger than --max-length (10)"),
], ids=["num-beams", "top-p", "min-length"])
def test_text2text_bad_setting_prints_nothing_but_the_error(capsys, setting, message):
    code, out, err = run(["text2text", "summarize: " + TEXTS[0], "--model", T5, *setting], capsys)
    assert code == 2 and out == ""
    assert_one_line_error(err, message)


def test_bad_device_names_the_devices(capsys):
    code, out, err = run(["generate", "hi", "--model", GPT2, "--device", "tpu"], capsys)
    assert code == 2 and out == ""
    assert_one_line_error(err, "--device tpu", "'cpu'", "'cuda'")


def test_bad_dtype_is_one_line_naming_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["text2text", "hello", "--model", T5, "--dtype", "float8"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""
    assert_one_line_error(captured.err, "--dtype", "'float8'", "'bfloat16'", "nopipe text2text --help")


def test_bench_failure_is_one_line(capsys, tmp_path):
    (tmp_path / "taken").write_text("")  # a file where the results folder would go
    argv = ["bench", "--models", "fixtures", "--quick", "--task", "text-classification", "--only", "distilbert-sst2",
            "--out", str(tmp_path / "taken" / "results")]
    code, _, err = run(argv, capsys)
    assert code == 1
    assert_one_line_error(err, "Not a directory", "taken")


def test_bench_debug_shows_the_traceback_and_is_not_passed_on(monkeypatch):
    received = []

    def failing_bench(argv):
        received.append(argv)
        raise OSError("disk full")

    monkeypatch.setattr("benchmarks.run.main", failing_bench)
    with pytest.raises(OSError, match="disk full"):
        main(["bench", "--quick", "--debug"])
    assert received == [["--quick"]]


def test_unknown_flag_is_argparse_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", "hello", "--no-such-flag"])
    assert exit_info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, "--no-such-flag", "--help")


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(OSError):
        main(["classify", "hello", "--model", str(tmp_path / "nowhere"), "--debug"])


def test_default_model_offline_and_uncached_says_how_to_pass_a_folder(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty hub cache
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    code, _, err = run(["summarize", "Some text."], capsys)
    assert code == 1
    assert_one_line_error(err, "sshleifer/distilbart-cnn-12-6", "not available offline", "--model")
