"""Where the committed test fixtures live."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "models"
CORPUS = TESTS / "fixtures" / "corpus.txt"
GOLDENS = TESTS / "goldens"


def corpus_lines(language: str = "en") -> list[str]:
    name = "corpus.txt" if language == "en" else f"corpus.{language}.txt"
    return (TESTS / "fixtures" / name).read_text(encoding="utf-8").splitlines()
