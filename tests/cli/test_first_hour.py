"""What a newcomer from the pipelines meets on the command line: chat models, --explain, messages in
flags, file line numbers, pipes, --version. Each runs the command as a user would (main(), or the
installed script in a subprocess where the terminal or the pipe matters)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tasks
from tasks.cli import main
from tasks.registry import COMMANDS
from tests.paths import FIXTURES

GPT2 = str(FIXTURES / "gpt2")
QA = str(FIXTURES / "distilbert-squad")
SST2 = str(FIXTURES / "distilbert-sst2")
CONTEXT = "My name is Sarah Jones and I live in London. I work at the Royal Museum."
SCRIPT = Path(sys.executable).with_name("nopipe")
GREEDY = ["--max-new-tokens", "6", "--no-do-sample"]
CHATML_TEMPLATE = (  # SmolLM2's kind of chat template
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> str:
    """The llama fixture with a ChatML template, as SmolLM2-Instruct has."""
    folder = tmp_path_factory.mktemp("chat") / "llama-chat"
    shutil.copytree(FIXTURES / "llama", folder)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "chat_template": CHATML_TEMPLATE}))
    return str(folder)


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def script(args: list[str], stdin: str = "", shell_pipe: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if shell_pipe:
        command = f"set -o pipefail; {SCRIPT} {' '.join(map(repr, args))} | {shell_pipe}"
        return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120)
    return subprocess.run([str(SCRIPT), *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert re.fullmatch(r"nopipe \d+\.\d+\.\d+\n", capsys.readouterr().out)


def test_a_plain_prompt_to_a_chat_model_is_a_user_message(capsys, chat_model):
    prompt = "Tell me about the old lighthouse"
    code, out, err = run(["generate", prompt, "--model", chat_model, *GREEDY], capsys)
    generator = tasks.load("text-generation", model=chat_model)
    reply = generator([{"role": "user", "content": prompt}], max_new_tokens=6, do_sample=False,
                      return_full_text=False)[0]["generated_text"]
    raw = generator(prompt, max_new_tokens=6, do_sample=False)[0]["generated_text"]
    assert code == 0, err
    assert out == reply + "\n"
    assert reply != raw
    code, out, _ = run(["generate", prompt, "--model", chat_model, "--raw", *GREEDY], capsys)
    assert code == 0 and out == raw + "\n"


def test_chat_keeps_the_conversation(chat_model):
    lines = ["Tell me about the old lighthouse", "And the keeper?"]
    done = script(["chat", "--model", chat_model, *GREEDY], stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    generator = tasks.load("text-generation", model=chat_model)
    messages, replies = [], []
    for line in lines:
        messages.append({"role": "user", "content": line})
        reply = generator(list(messages), max_new_tokens=6, do_sample=False, return_full_text=False)[0]["generated_text"]
        messages.append({"role": "assistant", "content": reply})
        replies.append(reply)
    assert done.stdout == "".join(reply + "\n" for reply in replies)
    assert done.stderr.count("tokens/s") == 2


def test_explain_says_who_chose_each_setting(capsys):
    code, _, err = run(["generate", "hi", "--model", GPT2, "--max-new-tokens", "3", "--explain"], capsys)
    assert code == 0
    assert re.search(r"^max_new_tokens\s+= 3 \(caller\)$", err, re.M)
    assert re.search(r"^temperature\s+= 0\.7 \(pipeline default\)$", err, re.M)
    code, _, err = run(["summarize", "The old lighthouse keeper lived by the sea.", "--model",
                        str(FIXTURES / "bart-cnn"), "--max-length", "12", "--min-length", "3", "--explain"], capsys)
    assert re.search(r"^num_beams\s+= 4 \(task_specific_params\)$", err, re.M)


def test_the_speed_line_counts_generated_tokens(capsys):
    code, out, err = run(["generate", "The old lighthouse keeper", "--model", GPT2, *GREEDY], capsys)
    ids = tasks.load("text-generation", model=GPT2)("The old lighthouse keeper", max_new_tokens=6, do_sample=False,
                                                     return_tensors=True)[0]["generated_token_ids"]
    prompt_ids = tasks.load("text-generation", model=GPT2).preprocess(["The old lighthouse keeper"])[0]
    assert code == 0
    assert f"[{len(ids) - len(prompt_ids)} tokens in" in err


@pytest.mark.parametrize("as_json", [False, True])
def test_qa_top_k_with_one_question_prints_every_answer(capsys, as_json):
    argv = ["qa", "--question", "Where does Sarah live?", "--context", CONTEXT, "--model", QA, "--top-k", "3"]
    code, out, _ = run(argv + (["--json"] if as_json else []), capsys)
    assert code == 0
    if as_json:
        assert len(json.loads(out)["output"]) == 3
    else:
        assert len([line for line in out.splitlines() if line.startswith("A: ")]) == 3


def test_an_error_in_a_file_names_its_line_and_what_was_printed(capsys, tmp_path):
    lines = ["fine text"] * 3 + ["", "word " * 400, "fine again"]
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run(["classify", "--file", str(path), "--model", SST2, "--batch-size", "1"], capsys)
    assert code == 2
    assert f"line 5 of {path}" in err and "--truncation" in err and "inputs[" not in err


def test_a_subcommand_usage_error_points_at_its_own_help(capsys):
    with pytest.raises(SystemExit):
        main(["qa", "--question", "Who?", "--context", CONTEXT, "--no-such-flag"])
    assert "nopipe qa --help" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("fine text\n" * 2000)
    done = script(["classify", "--file", str(path), "--model", SST2], shell_pipe="head -1")
    assert done.stdout.count("\n") == 1
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr


def test_warnings_are_one_line_and_threads_are_taken():
    done = script(["classify", "word " * 400, "--model", SST2, "--truncation", "--threads", "1"])
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("nopipe: warning: inputs[0] is ")


@pytest.mark.parametrize("after", [0.3, 1.5])
def test_ctrl_c_while_starting_ends_quietly(after):
    """Ctrl-C while torch and transformers are still being imported (or the model loads) is a quiet
    exit 130, as other command-line tools do, not a traceback through importlib."""
    import signal
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([str(SCRIPT), "generate", "Hello", "--model", GPT2, *GREEDY], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert process.returncode in (130, -signal.SIGINT), (process.returncode, err)


@pytest.mark.parametrize("command", [[], ["chat"], *([name] for name in COMMANDS)])
def test_help_does_not_import_torch(command):
    """--help is read at the first minute: it answers at once, without loading torch or transformers."""
    code = ("import sys\nfrom tasks.cli import main\ntry:\n    main([*sys.argv[1:], '--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(name for name in ('torch', 'transformers', 'numpy') if name in sys.modules)\n"
            "print('heavy:', heavy)")
    result = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("heavy: []"), result.stdout[-300:]
