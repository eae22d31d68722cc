"""The README's commands are the ones CI and users run."""

import contextlib
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = "bash .ci/setup && HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q"
MAIN_COMMAND = 'bash .ci/setup && .venv/bin/nopipe generate "The capital of France is"'


def indented_commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("    ") and line.strip()]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in indented_commands(readme)
    assert [line for line in ci_run.splitlines() if line.startswith("bash ")] == [TEST_COMMAND]


def test_readme_shows_the_offline_main_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert MAIN_COMMAND in indented_commands(readme)


def extending_example(readme: str) -> tuple[str, list[str]]:
    """The README's "add your own strategy" code block, and the output it shows below it."""
    start = readme.index("```python", readme.index("This block runs as it is")) + len("```python")
    end = readme.index("```", start)
    shown = readme[end:readme.index("## How we know it is right")]
    return readme[start:end], [line[4:] for line in shown.splitlines() if line.startswith("    ")]


def test_the_extending_example_runs_and_prints_what_the_readme_shows(monkeypatch):
    code, shown = extending_example((ROOT / "README.md").read_text(encoding="utf-8"))
    monkeypatch.chdir(ROOT)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    steps = shown[:shown.index("...")]
    assert lines[:len(steps)] == steps
    assert lines[-1] == shown[-1]
    assert not any(char.isdigit() for char in lines[-1])  # the no_digits processor reached the runner
