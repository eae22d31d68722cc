"""The README's commands are the ones CI and users run."""

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
