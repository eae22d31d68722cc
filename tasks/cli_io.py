"""What the `nopipe` command reads and prints: inputs from arguments, a file or stdin, answers as text or JSON.

Kept apart from the parser (tasks/cli.py) so that each reader and formatter is a small function a
test can call. Inputs keep the number of the line they came from, so an error names the file's own
line, not an index in some chunk.
"""

import json
import sys
from dataclasses import dataclass


class UsageError(ValueError):
    """A command line or input that cannot work as given."""


@dataclass(frozen=True)
class Input:
    """One input and where it came from: `line` is its line number in the file or stdin (None for arguments)."""

    value: object
    line: int | None = None

    def where(self, source: str) -> str:
        """"line 150 of reviews.txt", or "argument 2"."""
        return f"line {self.line} of {source}" if self.line is not None else "the command line"


def read_lines(args) -> tuple[list[Input], str | None]:
    """(non-blank lines with their line numbers, source name): --file wins, then stdin when it is not a terminal."""
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as handle:
                return numbered(handle), args.file
        except OSError as error:
            raise UsageError(f"cannot read --file {args.file!r}: {error.strerror}") from error
        except UnicodeDecodeError as error:
            raise UsageError(f"--file {args.file!r} is not UTF-8 text ({error.reason} at byte {error.start})") from error
    if not sys.stdin.isatty():
        return numbered(sys.stdin), "stdin"
    return [], None


def numbered(lines) -> list[Input]:
    """Each non-blank line with its 1-based number in the file."""
    return [Input(line.rstrip("\n"), number) for number, line in enumerate(lines, 1) if line.strip()]


def read_texts(args) -> tuple[list[Input], str | None]:
    """Texts from the arguments, else --file, else stdin; a usage error when there are none."""
    if args.texts:
        return [Input(text) for text in args.texts], None
    texts, source = read_lines(args)
    if not texts:
        raise UsageError(f"no input: give text as an argument, with --file PATH, or on stdin "
                         f"(e.g. nopipe {args.command} \"some text\")")
    return texts, source


def read_qa_pairs(args) -> tuple[list[Input], str | None]:
    """{"question", "context"} pairs from --question/--context, else JSONL lines from --file or stdin."""
    if args.question:
        if not args.context:
            raise UsageError("--question needs --context (or give JSONL lines with question and context via --file)")
        return [Input({"question": question, "context": args.context}) for question in args.question], None
    lines, source = read_lines(args)
    if not lines:
        raise UsageError("no input: give --question and --context, or JSONL lines "
                         '{"question": ..., "context": ...} with --file PATH or on stdin')
    return [Input(qa_pair(line.value, line.line, source), line.line) for line in lines], source


def qa_pair(text: str, number: int, source: str) -> dict:
    """One JSONL line as a question/context pair, or a usage error naming the line."""
    try:
        pair = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"line {number} of {source} is not JSON ({error.msg}); each line must be "
                         '{"question": ..., "context": ...}') from error
    if not isinstance(pair, dict) or not {"question", "context"} <= set(pair):
        raise UsageError(f'line {number} of {source} must be an object with "question" and "context"')
    return {"question": pair["question"], "context": pair["context"]}


# --- output ---------------------------------------------------------------------------------------

SHOWN_CHARACTERS = 200  # an input echoed beside its answer is cut to this many characters


def shown(text: str) -> str:
    """An input as echoed beside its answer: a 50 MB line is not printed back whole."""
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}... [{len(text)} characters]"


def format_labels(text, result) -> str:
    labels = result if isinstance(result, list) else [result]
    answer = ", ".join(f"{item['label']} ({item['score']:.4f})" for item in labels)
    return f"{answer}\t{shown(text) if isinstance(text, str) else json.dumps(text, ensure_ascii=False)}"


def format_entities(text: str, entities: list) -> str:
    lines = [shown(text)]
    for entity in entities:
        label = entity.get("entity_group", entity.get("entity"))
        lines.append(f"  {label:<8} {entity['word']!r:<30} [{entity['start']}:{entity['end']}]  {entity['score']:.4f}")
    if not entities:
        lines.append("  (no entities)")
    return "\n".join(lines)


def format_answers(pair: dict, result) -> str:
    answers = result if isinstance(result, list) else [result]
    lines = [f"Q: {shown(pair['question'])}"]
    lines += [f"A: {item['answer']!r}  (score {item['score']:.4f}, chars {item['start']}-{item['end']})"
              for item in answers]
    return "\n".join(lines)


def format_generated(key: str, text: str, result, several_inputs: bool) -> str:
    """The generated text(s) of one input. With several inputs, each answer starts with a `>>> input`
    line, so a multi-line answer can be told from the next input's."""
    items = result if isinstance(result, list) else [result]
    answers = "\n".join(item[key] for item in items)
    return f">>> {shown(text) if isinstance(text, str) else shown(text[-1]['content'])}\n{answers}" \
        if several_inputs else answers


TASK_FORMATTERS = {"text-classification": format_labels, "token-classification": format_entities,
                   "question-answering": format_answers}


def format_answer(spec, item, result, as_json: bool, several_inputs: bool) -> str:
    """One input's answer as the line(s) to print: JSON with --json, else the task's readable form."""
    if as_json:
        return json.dumps({"input": item, "output": result}, ensure_ascii=False)
    if spec.generates:
        return format_generated(spec.output_key, item, result, several_inputs)
    return TASK_FORMATTERS[spec.name](item, result)
