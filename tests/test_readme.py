"""The README's commands are the ones CI and users run, and every Python block in it runs as written.

The Python blocks name hub models, which the tests cannot download. Each block is run offline on the
test fixtures instead: every hub id in it is replaced by the fixture model of the same architecture
and task, as HUB_TO_FIXTURE says. A block that names a hub id missing from the table fails the test
until the table has it, so no block goes unrun.
"""

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from tests.paths import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = "bash .ci/setup && HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q"
MAIN_COMMAND = 'bash .ci/setup && .venv/bin/nopipe generate "The capital of France is"'

# The hub models the README's blocks use -> the fixture (tests/fixtures/models) that stands in for each.
HUB_TO_FIXTURE = {
    "distilbert/distilbert-base-uncased-finetuned-sst-2-english": "distilbert-sst2",
    "nlptown/bert-base-multilingual-uncased-sentiment": "bert-stars",
    "j-hartmann/emotion-english-distilroberta-base": "roberta-emotion",
    "dbmdz/bert-large-cased-finetuned-conll03-english": "bert-ner",
    "distilbert/distilbert-base-cased-distilled-squad": "distilbert-squad",
    "sshleifer/distilbart-cnn-12-6": "bart-cnn",
    "Helsinki-NLP/opus-mt-en-fr": "marian-en-fr",
    "facebook/m2m100_418M": "m2m100",
    "google/flan-t5-base": "t5",
    "google-t5/t5-base": "t5",
    "openai-community/gpt2": "gpt2",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "llama",
}
# A quoted "owner/name" in a block: a hub id, or a path such as "tests/fixtures/models/gpt2".
QUOTED_ID = re.compile(r"""["']([\w.-]+/[\w./-]+)["']""")


def indented_commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("    ") and line.strip()]


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block."""
    return [(text.count("\n", 0, match.start()) + 1, match.group(1))
            for match in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)]


def on_fixtures(code: str) -> str:
    """The block with each hub id replaced by its fixture folder; a hub id the table lacks fails."""
    def fixture(match):
        name = match.group(1)
        if (ROOT / name).exists():
            return match.group(0)
        assert name in HUB_TO_FIXTURE, f"README block names {name!r}: add it to HUB_TO_FIXTURE in tests/test_readme.py"
        return repr(str(FIXTURES / HUB_TO_FIXTURE[name]))

    return QUOTED_ID.sub(fixture, code)


def run_block(code: str, monkeypatch) -> str:
    """Run a README block from the repository's root, offline, in a namespace of its own; return what it printed."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    return printed.getvalue()


def test_ci_runs_exactly_the_readme_test_command():
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in indented_commands(README)
    assert [line for line in ci_run.splitlines() if line.startswith("bash ")] == [TEST_COMMAND]


def test_readme_shows_the_offline_main_command():
    assert MAIN_COMMAND in indented_commands(README)


def readme_command_lines() -> list[str]:
    """The `nopipe ...` command lines the README shows (not `nopipe bench`, whose flags are the benchmarks')."""
    return [line for line in indented_commands(README) if line.startswith("nopipe ") and not line.startswith("nopipe bench")]


def test_every_nopipe_command_of_the_readme_parses():
    from tasks.cli import build_parser, parse

    lines = readme_command_lines()
    assert len(lines) >= 8
    for line in lines:
        args = parse(build_parser(), shlex.split(line)[1:])
        assert args.command == shlex.split(line)[1], line


def test_the_readme_has_python_blocks_and_every_fixture_exists():
    blocks = python_blocks(README)
    assert len(blocks) >= 7, "the README's Python blocks were not found; is the fence still ```python?"
    for fixture in set(HUB_TO_FIXTURE.values()):
        assert (FIXTURES / fixture / "config.json").is_file(), fixture


def test_a_hub_id_missing_from_the_table_fails():
    with pytest.raises(AssertionError, match="HUB_TO_FIXTURE"):
        on_fixtures('TextClassifier.from_pretrained("someone/unknown-model")')
    assert on_fixtures('x("tests/fixtures/models/gpt2")') == 'x("tests/fixtures/models/gpt2")'


@pytest.mark.parametrize("line, code", python_blocks(README), ids=[f"line-{line}" for line, _ in python_blocks(README)])
def test_every_python_block_runs_on_the_fixtures(line, code, monkeypatch):
    run_block(on_fixtures(code), monkeypatch)


def extending_example(readme: str) -> tuple[str, list[str]]:
    """The README's "add your own strategy" code block, and the output it shows below it."""
    start = readme.index("```python", readme.index("This block runs as it is")) + len("```python")
    end = readme.index("```", start)
    shown = readme[end:readme.index("\n#", end)]  # up to the next heading
    return readme[start:end], [line[4:] for line in shown.splitlines() if line.startswith("    ")]


def test_the_extending_example_prints_what_the_readme_shows(monkeypatch):
    code, shown = extending_example(README)
    lines = run_block(code, monkeypatch).splitlines()
    steps = shown[:shown.index("...")]
    assert lines[:len(steps)] == steps
    assert lines[-1] == shown[-1]
    assert not any(char.isdigit() for char in lines[-1])  # the no_digits processor reached the runner


def test_the_settings_example_prints_the_layers_it_shows(monkeypatch):
    """The "why is num_beams 4?" block: its comments are what it prints (the fixture has distilbart-cnn's settings)."""
    code = next(code for _, code in python_blocks(README) if "decoding_config(" in code)
    printed = run_block(on_fixtures(code), monkeypatch).splitlines()
    shown = [line.split("#", 1)[1].strip() for line in code.splitlines() if line.startswith("print(") and "#" in line]
    assert printed[:2] == shown[:2] == ["4 task_specific_params", "60 caller"]
    assert any(line.split() == ["num_beams", "=", "4", "(task_specific_params)"] for line in printed)
