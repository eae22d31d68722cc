"""The `nopipe` command: every task from the shell, with the options of the Python API.

    nopipe generate "The capital of France is"
    nopipe classify "I love this product!" "This is awful." --json
    nopipe ner --file news.txt --aggregation-strategy simple
    nopipe qa --question "Where does Sarah live?" --context "My name is Sarah and I live in London."
    nopipe summarize --file article.txt --max-length 60 --min-length 20
    nopipe translate "How are you?" --task translation_en_to_fr --model Helsinki-NLP/opus-mt-en-fr

Texts come from the arguments, else from --file (one per line; JSONL for qa), else from stdin.
Output is readable text, or JSON with --json. `generate` streams each prompt's text as it is
written, unless it cannot (--json, beam search, several sequences, or several prompts run in
batches with --batch-size > 1): then it prints each answer whole. --seed seeds once per run.

Errors are one line naming the fix: exit code 2 for a bad command line or input, 1 for anything
that fails while running; --debug shows the traceback.
"""

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import tasks
from decoding.streaming import can_stream as settings_can_stream
from tasks.settings import DECODING_SETTINGS

USAGE_ERROR, RUNTIME_ERROR = 2, 1


class UsageError(ValueError):
    """A command line that cannot work as given."""


def error_line(message: str, code: int) -> int:
    """Print `message` as nopipe's one-line error on stderr; return the exit code to go with it."""
    print(f"nopipe: error: {message}", file=sys.stderr)
    return code


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line the way nopipe reports every error: one line, exit code 2."""

    def error(self, message: str):
        sys.exit(error_line(f"{message} (see `{self.prog} --help`)", USAGE_ERROR))


# --- options --------------------------------------------------------------------------------------

def top_k_value(text: str):
    """--top-k takes a number, or "all" for every label (the API's top_k=None)."""
    return None if text.lower() in ("all", "none") else int(text)


@dataclass(frozen=True)
class Option:
    """One command-line flag that maps onto a keyword of the runner call under the same name."""

    flag: str
    kwargs: dict = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.kwargs.get("dest") or self.flag.lstrip("-").replace("-", "_")


def options(*specs: tuple) -> list[Option]:
    return [Option(flag, kwargs) for flag, kwargs in specs]


TRUNCATION = ("--truncation", dict(action="store_true", help="cut a text longer than the model reads (with a warning) "
                                                           "instead of stopping with an error"))

GENERATION_OPTIONS = options(
    ("--max-new-tokens", dict(type=int)), ("--max-length", dict(type=int)), ("--min-length", dict(type=int)),
    ("--num-beams", dict(type=int)), ("--do-sample", dict(action=argparse.BooleanOptionalAction)),
    ("--temperature", dict(type=float)), ("--top-k", dict(type=int)), ("--top-p", dict(type=float)),
    ("--repetition-penalty", dict(type=float)), ("--no-repeat-ngram-size", dict(type=int)),
    ("--length-penalty", dict(type=float)), ("--num-return-sequences", dict(type=int)),
)

TASK_OPTIONS = {
    "classify": options(
        ("--top-k", dict(type=top_k_value, help="labels per text; 'all' for every label")),
        ("--function-to-apply", dict(choices=["softmax", "sigmoid", "none"])), TRUNCATION,
    ),
    "ner": options(
        ("--aggregation-strategy", dict(choices=["none", "simple", "first", "average", "max"], default="simple",
                                        help="default here: simple (entities); the Python API's default is none")),
        ("--ignore-labels", dict(nargs="*")),
        ("--stride", dict(type=int)),
    ),
    "qa": options(
        ("--top-k", dict(type=int)), ("--doc-stride", dict(type=int)), ("--max-answer-len", dict(type=int)),
        ("--max-seq-len", dict(type=int)), ("--max-question-len", dict(type=int)),
        ("--handle-impossible-answer", dict(action="store_true")),
        ("--align-to-words", dict(action=argparse.BooleanOptionalAction)),
    ),
    "text2text": options(TRUNCATION) + GENERATION_OPTIONS,
    "summarize": options(TRUNCATION) + GENERATION_OPTIONS,
    "translate": options(TRUNCATION) + GENERATION_OPTIONS,
    "generate": GENERATION_OPTIONS + options(
        ("--stop", dict(dest="stop_strings", action="append", help="stop when this text appears (repeatable)")),
        ("--return-full-text", dict(action=argparse.BooleanOptionalAction)),
    ),
}

GENERATION_COMMANDS = ("text2text", "summarize", "translate", "generate")

PIPELINE_TASK = {
    "classify": "text-classification", "ner": "token-classification", "qa": "question-answering",
    "text2text": "text2text-generation", "summarize": "summarization", "translate": "translation",
    "generate": "text-generation",
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="nopipe", description="Hugging Face tasks by hand: tokenize, "
                            "forward, postprocess, with nopipe's own decoding loop.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, task_options in TASK_OPTIONS.items():
        sub = commands.add_parser(command, help=f"{PIPELINE_TASK[command]} (pipeline task name)")
        add_common_options(sub, command)
        for option in task_options:
            # An option the user does not give stays out of the call, so the API's own default applies
            # (top_k=None means "every label" there, not "unset").
            sub.add_argument(option.flag, **{"dest": option.dest, "default": argparse.SUPPRESS, **option.kwargs})
    # Listed for `nopipe --help` only: main() hands everything after `bench` to benchmarks.run.
    commands.add_parser("bench", help="speed against transformers and CTranslate2 (python -m benchmarks.run; "
                                      "nopipe bench --help lists its options; --debug shows a traceback)")
    return parser


def add_common_options(sub: argparse.ArgumentParser, command: str) -> None:
    if command == "qa":
        sub.add_argument("--question", action="append", help="repeatable; or JSONL lines via --file/stdin")
        sub.add_argument("--context")
    else:
        sub.add_argument("texts", nargs="*", metavar="TEXT", help="inputs (else --file, else stdin)")
    sub.add_argument("--file", help="one text per line" + (" (JSONL: question, context)" if command == "qa" else ""))
    sub.add_argument("--model", help="local folder, .gguf file or hub id (default: the pipeline's default)")
    sub.add_argument("--revision")
    if command == "translate":
        sub.add_argument("--task", dest="translation_task", metavar="translation_xx_to_yy",
                         help="the language pair, e.g. translation_en_to_fr (T5 prefixes, M2M100 languages)")
        sub.add_argument("--src-lang", help="source language code of a many-language model (M2M100: en)")
        sub.add_argument("--tgt-lang", help="target language code of a many-language model (M2M100: fr)")
    sub.add_argument("--device", help="cpu, cuda, cuda:0, mps (default: best available)")
    sub.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16", "int8"])
    sub.add_argument("--batch-size", type=int, default=None)
    if command in GENERATION_COMMANDS:
        sub.add_argument("--seed", type=int, help="seed for sampling (same semantics as transformers.set_seed)")
    sub.add_argument("--json", action="store_true", help="print JSON (one object per input)")
    sub.add_argument("--debug", action="store_true", help="show the full traceback on errors")


# --- inputs ---------------------------------------------------------------------------------------

def read_lines(args) -> tuple[list[str], bool]:
    """(lines, from_file): --file wins, then stdin when it is not a terminal."""
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as handle:
                return [line.rstrip("\n") for line in handle if line.strip()], True
        except OSError as error:
            raise UsageError(f"cannot read --file {args.file!r}: {error.strerror}") from error
    if not sys.stdin.isatty():
        return [line.rstrip("\n") for line in sys.stdin if line.strip()], False
    return [], False


def read_texts(args) -> tuple[list[str], bool]:
    if args.texts:
        return args.texts, False
    texts, from_file = read_lines(args)
    if not texts:
        raise UsageError(f"no input: give text as an argument, with --file PATH, or on stdin "
                         f"(e.g. nopipe {args.command} \"some text\")")
    return texts, from_file


def read_qa_pairs(args) -> tuple[list[dict], bool]:
    if args.question:
        if not args.context:
            raise UsageError("--question needs --context (or give JSONL lines with question and context via --file)")
        return [{"question": question, "context": args.context} for question in args.question], False
    lines, from_file = read_lines(args)
    if not lines:
        raise UsageError("no input: give --question and --context, or JSONL lines "
                         '{"question": ..., "context": ...} with --file PATH or on stdin')
    pairs = []
    for number, line in enumerate(lines, 1):
        try:
            pair = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"line {number} is not JSON ({error.msg}); each line must be "
                             '{"question": ..., "context": ...}') from error
        if not isinstance(pair, dict) or not {"question", "context"} <= set(pair):
            raise UsageError(f'line {number} must be an object with "question" and "context"')
        pairs.append({"question": pair["question"], "context": pair["context"]})
    return pairs, from_file


# --- running --------------------------------------------------------------------------------------

def read_inputs(args) -> tuple[list, bool]:
    """(inputs, from_file): QA pairs for `qa`, texts for the other commands."""
    return read_qa_pairs(args) if args.command == "qa" else read_texts(args)


def call_options(args) -> dict:
    """The task's own options the user set, under the API's names."""
    chosen = {option.dest: getattr(args, option.dest) for option in TASK_OPTIONS[args.command]
              if hasattr(args, option.dest)}
    if args.batch_size is not None:
        chosen["batch_size"] = args.batch_size
    return chosen


def load_runner(args):
    load_options = {"device": args.device, "dtype": args.dtype}
    if args.revision:
        load_options["revision"] = args.revision
    task = PIPELINE_TASK[args.command]
    if args.command == "translate":
        task = args.translation_task or task
        load_options.update({name: getattr(args, name) for name in ("src_lang", "tgt_lang") if getattr(args, name)})
    return tasks.load(task, model=args.model, **load_options)


def seed_if_asked(args) -> None:
    """Seed once, right before the first generation, as `transformers.set_seed` users do: --seed N
    reproduces a run, and each later input draws new numbers instead of repeating the first's."""
    if getattr(args, "seed", None) is not None:
        from core.seed import set_seed

        set_seed(args.seed)


def one_result_per_input(inputs: list, results) -> list:
    """The pipelines answer a one-item list with a bare result (question answering does); make it a list."""
    return [results] if len(inputs) == 1 and not isinstance(results, list) else results


def inputs_per_chunk(batch_size: int | None) -> int:
    """How many inputs go to the runner in one call: a few batches, so answers print as they come."""
    return (batch_size or 32) * 4


def in_chunks(items: list, size: int, show_progress: bool):
    """Chunks of the input, with a progress bar when the input came from a file."""
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), unit="text", file=sys.stderr, disable=None)
    for start in range(0, len(items), size):
        yield items[start:start + size]
        if bar is not None:
            bar.update(min(size, len(items) - start))
    if bar is not None:
        bar.close()


def format_answer(args, item, result) -> str:
    """One input's answer as the line(s) to print: JSON with --json, else the command's readable form."""
    if args.json:
        return json.dumps({"input": item, "output": result}, ensure_ascii=False)
    return FORMATTERS[args.command](item, result)


def write_answers(runner, inputs: list, chosen: dict, args, out, show_progress: bool) -> None:
    """Answer the inputs a chunk at a time, printing each chunk's answers as soon as it is done."""
    for part in in_chunks(inputs, inputs_per_chunk(chosen.get("batch_size")), show_progress):
        results = one_result_per_input(part, runner(part, **chosen))
        for item, result in zip(part, results):
            out.write(format_answer(args, item, result) + "\n")


def run_task(args, out) -> None:
    """Every command but `generate`: answers in the order of the inputs."""
    inputs, from_file = read_inputs(args)  # before the (maybe slow) load, so "no input" comes at once
    runner = load_runner(args)
    seed_if_asked(args)
    write_answers(runner, inputs, call_options(args), args, out, show_progress=from_file)


def decoding_settings(chosen: dict) -> dict:
    """The decoding settings among a generate call's options (not return_full_text or batch_size)."""
    return {name: value for name, value in chosen.items() if name in DECODING_SETTINGS}


def can_stream(runner, chosen: dict) -> bool:
    """Whether the call can be shown token by token, with the model's own settings counted. Checks
    every setting, so a bad one fails here, before anything is printed."""
    return settings_can_stream(runner.decoding_config(**decoding_settings(chosen)))


def stream_answer(runner, prompt: str, chosen: dict, out) -> None:
    """Print one prompt's continuation as it is produced, then the speed on stderr."""
    started = time.perf_counter()
    pieces = runner(prompt, stream=True, **decoding_settings(chosen))
    # A setting checked only when generation starts (min_length above max_length) fails on the first
    # piece: take it before the prompt is printed, so a failed run leaves stdout empty.
    first = next(pieces, "")
    if chosen.get("return_full_text", True):
        out.write(prompt)
    generated = ""
    for text in itertools.chain([first], pieces):
        generated += text
        out.write(text)
        out.flush()
    seconds = time.perf_counter() - started
    count = len(runner.tokenizer(generated, add_special_tokens=False)["input_ids"])
    out.write("\n")
    print(f"[{count} tokens in {seconds:.2f} s: {count / max(seconds, 1e-9):.1f} tokens/s]", file=sys.stderr)


def run_generate(args, out) -> None:
    """Stream each prompt's continuation, one prompt after the other; print whole answers instead
    for --json, for settings that cannot stream (beam search, several sequences), and for several
    prompts with --batch-size > 1 (a batch finishes together, so there is nothing to stream)."""
    prompts, from_file = read_texts(args)
    runner = load_runner(args)
    chosen = call_options(args)
    batched = len(prompts) > 1 and chosen.get("batch_size", 1) > 1
    streaming = not args.json and not batched and can_stream(runner, chosen)
    seed_if_asked(args)
    if not streaming:
        write_answers(runner, prompts, chosen, args, out, show_progress=from_file)
        return
    for prompt in prompts:
        stream_answer(runner, prompt, chosen, out)


def run_bench(bench_args: list[str]) -> int:
    """`python -m benchmarks.run` with these arguments (the benchmarks ship with the nopipe package)."""
    try:
        from benchmarks.run import main as bench_main
    except ImportError as error:  # e.g. a partial install; say what is missing, no traceback
        raise RuntimeError(f"the benchmarks cannot be imported ({error}); reinstall nopipe with "
                           "`pip install -e .` from its source checkout") from error
    return bench_main(bench_args)


# --- output ---------------------------------------------------------------------------------------

def format_labels(text: str, result) -> str:
    labels = result if isinstance(result, list) else [result]
    shown = ", ".join(f"{item['label']} ({item['score']:.4f})" for item in labels)
    return f"{shown}\t{text}"


def format_entities(text: str, entities: list) -> str:
    lines = [text]
    for entity in entities:
        label = entity.get("entity_group", entity.get("entity"))
        lines.append(f"  {label:<8} {entity['word']!r:<30} [{entity['start']}:{entity['end']}]  {entity['score']:.4f}")
    if not entities:
        lines.append("  (no entities)")
    return "\n".join(lines)


def format_answers(pair: dict, result) -> str:
    answers = result if isinstance(result, list) else [result]
    lines = [f"Q: {pair['question']}"]
    lines += [f"A: {item['answer']!r}  (score {item['score']:.4f}, chars {item['start']}-{item['end']})"
              for item in answers]
    return "\n".join(lines)


def format_generated(key: str) -> Callable:
    def format_result(text: str, result) -> str:
        items = result if isinstance(result, list) else [result]
        return "\n".join(item[key] for item in items)
    return format_result


FORMATTERS = {
    "classify": format_labels, "ner": format_entities, "qa": format_answers,
    "text2text": format_generated("generated_text"), "summarize": format_generated("summary_text"),
    "translate": format_generated("translation_text"), "generate": format_generated("generated_text"),
}


def quiet_transformers() -> None:
    """No "Loading weights" bars or advisory logs between the answers; errors still come through ours."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def run_reporting_errors(run: Callable[[], int], debug: bool, usage_errors: tuple = (ValueError, TypeError)) -> int:
    """run() turned into an exit code: a failure is one line (its message's first), exit code 2 for
    `usage_errors` (a bad option or input), 1 for the rest; --debug lets the traceback through."""
    try:
        return run()
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if debug:
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        return error_line(message, USAGE_ERROR if isinstance(error, usage_errors) else RUNTIME_ERROR)


def run_command(args) -> int:
    """One task command (not bench) on sys.stdout; the exit code when it succeeds."""
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    (run_generate if args.command == "generate" else run_task)(args, sys.stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        # Everything after `bench` belongs to benchmarks.run, --help and flags included (argparse's
        # REMAINDER would refuse a first argument that starts with "--"), except our own --debug.
        # The benchmarks check their command line themselves, so whatever they raise is a runtime error.
        bench_args = [arg for arg in argv[1:] if arg != "--debug"]
        return run_reporting_errors(lambda: run_bench(bench_args), debug="--debug" in argv[1:], usage_errors=())
    args = build_parser().parse_args(argv)
    if not args.debug:
        quiet_transformers()
    return run_reporting_errors(lambda: run_command(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
