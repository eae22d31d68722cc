"""The `nopipe` command: every task from the shell, with the options of the Python API.

    nopipe generate "The capital of France is"
    nopipe chat
    nopipe classify "I love this product!" "This is awful." --json
    nopipe ner --file news.txt --aggregation-strategy simple
    nopipe qa --question "Where does Sarah live?" --context "My name is Sarah and I live in London."
    nopipe summarize --file article.txt --max-length 60 --min-length 20 --explain
    nopipe translate "How are you?" --task translation_en_to_fr --model Helsinki-NLP/opus-mt-en-fr

Texts come from the arguments, else from --file (one per line; JSONL for qa), else from stdin.
Output is readable text, or JSON with --json. `generate` streams each prompt's text as it is
written, unless it cannot (--json, --no-stream, beam search, several sequences, or several prompts
run in batches): then it prints each answer whole. A plain prompt to a model with a chat template is
sent as a user message (--raw sends the text as it is). --seed seeds once per run.

Errors and warnings are one line each ("nopipe: error: ...", "nopipe: warning: ..."), naming the
command-line flag to change: exit code 2 for a bad command line or input, 1 for anything that fails
while running; --debug shows the traceback. The tasks and their commands come from tasks/registry.py.
"""

import argparse
import itertools
import os
import re
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field

from tasks.cli_io import Input, UsageError, format_answer, read_qa_pairs, read_texts, shown
from tasks.registry import COMMANDS, TaskSpec

USAGE_ERROR, RUNTIME_ERROR, INTERRUPTED, BROKEN_PIPE = 2, 1, 130, 141
VERSION = "0.1.0"


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


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_number(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def id_list(text: str) -> list[int]:
    """--suppress-tokens 3,5,7 -> [3, 5, 7]."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected token ids separated by commas, e.g. 3,5,7; got {text!r}") from None


def json_value(text: str):
    """A flag whose value is JSON (--sequence-bias '[[[7, 9], -5.0]]', --watermark '{"bias": 2.0}')."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"expected JSON ({error.msg}); got {text!r}") from None


def start_and_factor(text: str) -> tuple[int, float]:
    """--exponential-decay-length-penalty 10,1.5 -> (10, 1.5)."""
    try:
        start, factor = text.split(",")
        return int(start), float(factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START,FACTOR, e.g. 10,1.5; got {text!r}") from None


def dola_layers(text: str) -> str | list[int]:
    """--dola-layers low | high | 0,2,4."""
    return text if text in ("low", "high") else id_list(text)


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
    ("--max-new-tokens", dict(type=int, help="how many tokens to add at most")),
    ("--max-length", dict(type=int, help="the longest output, counted in tokens (prompt included for generate)")),
    ("--min-length", dict(type=int, help="no end-of-text token before this length")),
    ("--num-beams", dict(type=int, help="beam search with this many beams (1: greedy or sampling)")),
    ("--do-sample", dict(action=argparse.BooleanOptionalAction, help="sample (or, with --no-do-sample, decode greedily)")),
    ("--temperature", dict(type=float, help="sampling temperature (> 0; lower is more certain)")),
    ("--top-k", dict(type=int, help="sample among the k most likely tokens (0: all)")),
    ("--top-p", dict(type=float, help="sample among the most likely tokens that make up this probability")),
    ("--repetition-penalty", dict(type=float, help="> 1 makes tokens already written less likely")),
    ("--no-repeat-ngram-size", dict(type=int, help="never repeat an n-gram of this size")),
    ("--length-penalty", dict(type=float, help="beam search: > 0 favours longer outputs")),
    ("--num-return-sequences", dict(type=int, help="answers per input (needs sampling or beams)")),
    ("--min-p", dict(type=float, help="sample among tokens at least this fraction as likely as the best one")),
    ("--typical-p", dict(type=float, help="typical sampling: keep the tokens closest to the entropy, up to this mass")),
    ("--epsilon-cutoff", dict(type=float, help="sampling: drop tokens less likely than this")),
    ("--eta-cutoff", dict(type=float, help="eta sampling: drop tokens below min(eta, sqrt(eta) * exp(-entropy))")),
    ("--top-h", dict(type=float, help="sampling: keep tokens while their entropy stays within this share of the full one")),
    ("--suppress-tokens", dict(type=id_list, metavar="IDS", help="token ids never written, e.g. 3,5,7")),
    ("--begin-suppress-tokens", dict(type=id_list, metavar="IDS", help="token ids not written first")),
    ("--sequence-bias", dict(type=json_value, metavar="JSON", help="bias token sequences, e.g. '[[[7, 9], -5.0]]'")),
    ("--encoder-repetition-penalty", dict(type=float, help="encoder-decoder: > 1 favours the input's tokens")),
    ("--encoder-no-repeat-ngram-size", dict(type=int, help="encoder-decoder: never copy an input n-gram of this size")),
    ("--exponential-decay-length-penalty", dict(type=start_and_factor, metavar="START,FACTOR",
                                                 help="after START new tokens, raise the end-of-text score by FACTOR**n")),
    ("--renormalize-logits", dict(action="store_true", help="log-softmax the scores again after the processors")),
    ("--remove-invalid-values", dict(action="store_true", help="replace NaN and infinite scores")),
    ("--max-time", dict(type=float, metavar="SECONDS", help="stop every row after the step that passes this time")),
    ("--watermark", dict(dest="watermarking_config", type=json_value, metavar="JSON",
                         help="green-list watermark settings, e.g. '{\"bias\": 2.0}'")),
    ("--penalty-alpha", dict(type=float, help="contrastive search (with --top-k > 1 and --no-do-sample)")),
    ("--num-beam-groups", dict(type=int, help="diverse beam search: groups of beams (with --diversity-penalty)")),
    ("--diversity-penalty", dict(type=float, help="diverse beam search: penalty for a token another group chose")),
    ("--dola-layers", dict(type=dola_layers, metavar="low|high|IDS", help="DoLa decoding (decoder-only)")),
    ("--prompt-lookup", dict(dest="prompt_lookup_num_tokens", type=int, metavar="N",
                             help="speculative decoding: guess N tokens from the text so far (greedy: the same "
                                  "output; sampling: the same distribution)")),
    ("--force-words", dict(action="append", metavar="TEXT",
                           help="constrained beam search: the answer must contain this text (repeatable)")),
)
GUIDANCE_OPTIONS = options(  # decoder-only models: the generate and chat commands
    ("--assistant", dict(dest="assistant_model", metavar="PATH|int8",
                         help="speculative decoding with a smaller model of the same vocabulary, or this "
                              "model's int8 copy (greedy: the same output; sampling: the same distribution)")),
    ("--guidance-scale", dict(type=float, help="classifier-free guidance: > 1 moves away from --negative-prompt")),
    ("--negative-prompt", dict(metavar="TEXT", help="the unconditional prompt for --guidance-scale")),
)


def task_options(spec: TaskSpec) -> list[Option]:
    """The flags of a task's command, with choices taken from the modules that check them."""
    if spec.name == "text-classification":
        from core.choices import ACTIVATION_NAMES

        return options(("--top-k", dict(type=top_k_value, help="labels per text; 'all' for every label")),
                       ("--function-to-apply", dict(choices=list(ACTIVATION_NAMES))), TRUNCATION)
    if spec.name == "token-classification":
        from core.choices import AGGREGATION_STRATEGIES

        return options(("--aggregation-strategy", dict(choices=list(AGGREGATION_STRATEGIES), default="simple",
                                                       help="default here: simple (entities); the Python API's is none")),
                       ("--ignore-labels", dict(nargs="*")), ("--stride", dict(type=int)))
    if spec.name == "question-answering":
        return options(("--top-k", dict(type=int)), ("--doc-stride", dict(type=int)),
                       ("--max-answer-len", dict(type=int)), ("--max-seq-len", dict(type=int)),
                       ("--max-question-len", dict(type=int)), ("--handle-impossible-answer", dict(action="store_true")),
                       ("--align-to-words", dict(action=argparse.BooleanOptionalAction)))
    if spec.name == "text-generation":
        return GENERATION_OPTIONS + GUIDANCE_OPTIONS + options(
            ("--stop", dict(dest="stop_strings", action="append", help="stop when this text appears (repeatable)")),
            ("--return-full-text", dict(action=argparse.BooleanOptionalAction, help="print the prompt before its text")),
            TRUNCATION, ("--handle-long-generation", dict(choices=["hole"], help="hole: keep the end of a long prompt")))
    return options(TRUNCATION) + GENERATION_OPTIONS


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="nopipe", description="Hugging Face tasks by hand: tokenize, "
                            "forward, postprocess, with nopipe's own decoding loop.")
    parser.add_argument("--version", action="version", version=f"nopipe {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for spec in COMMANDS.values():
        sub = commands.add_parser(spec.command, help=f"{spec.name} (pipeline task name)")
        add_common_options(sub, spec)
        for option in task_options(spec):
            # An option the user does not give stays out of the call, so the API's own default applies
            # (top_k=None means "every label" there, not "unset").
            sub.add_argument(option.flag, **{"dest": option.dest, "default": argparse.SUPPRESS, **option.kwargs})
    chat = commands.add_parser("chat", help="talk with a chat model (text-generation); a line per message")
    add_common_options(chat, COMMANDS["generate"], chat=True)
    for option in GENERATION_OPTIONS + GUIDANCE_OPTIONS:
        chat.add_argument(option.flag, **{"dest": option.dest, "default": argparse.SUPPRESS, **option.kwargs})
    add_batch_command(commands)
    # Listed for `nopipe --help` only: main() hands everything after `bench` to benchmarks.run.
    commands.add_parser("bench", help="speed against transformers and other runtimes "
                                      "(`nopipe bench --help` lists its options)")
    return parser


def add_batch_command(commands) -> None:
    """`nopipe batch TASK --input F --output F`: tasks/batch.py's run_job on the command line."""
    batch = commands.add_parser("batch", help="run a task over a dataset file (JSONL, CSV, Parquet, text), resumable")
    batch.add_argument("task", help="a pipeline task name: text-classification, ner, question-answering, "
                                    "summarization, translation_en_to_fr, text-generation, ...")
    batch.add_argument("--input", required=True, help=".jsonl, .csv, .parquet, or text with one item per line")
    batch.add_argument("--output", required=True, help=".jsonl or .parquet: the input rows with the answers added")
    batch.add_argument("--model", help="local folder, .gguf file or hub id (default: the pipeline's default)")
    batch.add_argument("--column", default="text", help="the text column (question-answering: question, context)")
    batch.add_argument("--batch-size", type=positive_int, default=32, help="rows per model call")
    batch.add_argument("--shard-rows", type=positive_int, default=1024, help="rows per saved shard (the resume step)")
    batch.add_argument("--on-error", choices=["stop", "skip"], default="stop",
                       help="a bad row stops the job (default), or goes to OUTPUT.errors.jsonl with the reason")
    batch.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    batch.add_argument("--seed", type=int, help="reproducible sampling, also across a resumed run")
    batch.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                       help="a task option (JSON value), e.g. top_k=2 or max_new_tokens=40; repeatable")
    batch.add_argument("--threads", type=positive_int, help="CPU threads for torch (local engine)")
    batch.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: this process (default); ray: a pool of Ray actors, one model each "
                            "(pip install 'nopipe[ray]')")
    batch.add_argument("--address", help="ray: a running cluster's address (default: $RAY_ADDRESS, else Ray on this machine)")
    batch.add_argument("--concurrency", type=positive_int, help="ray: actors, each with its own model (default: CPUs / "
                                                                "--num-cpus-per-actor)")
    batch.add_argument("--num-cpus-per-actor", type=positive_number, help="ray: CPUs reserved for each actor and its "
                                                                          "torch threads (default 1)")
    batch.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def named_options(pairs: list[str]) -> dict:
    """--option top_k=2 --option aggregation_strategy=simple -> {"top_k": 2, "aggregation_strategy": "simple"}."""
    import json

    options = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name.isidentifier():
            raise UsageError(f"--option takes NAME=VALUE, e.g. --option top_k=2; got {pair!r}")
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text  # a plain word: aggregation_strategy=simple
    return options


def run_batch(args, out) -> None:
    """Load the task's runner once (the Ray engine: once per actor), run the job, say on stderr what was written."""
    import torch

    import tasks
    from tasks.batch import run_job
    from tasks.registry import TASKS, canonical_task

    if args.threads and args.engine == "ray":
        raise UsageError("--threads sets this process' torch threads; with --engine ray, --num-cpus-per-actor sets "
                         "each actor's")
    if args.threads:
        torch.set_num_threads(args.threads)
    options = named_options(args.option)
    name, _ = canonical_task(args.task)
    model = args.model or TASKS[name].default_model.repo_id
    runner = tasks.load(args.task, model=args.model) if args.engine == "local" else None
    summary = run_job(args.task, model, args.input, args.output, column=args.column, batch_size=args.batch_size,
                      on_error=args.on_error, overwrite=args.overwrite, shard_rows=args.shard_rows, seed=args.seed,
                      runner=runner, progress=sys.stderr.isatty(), engine=args.engine, address=args.address,
                      concurrency=args.concurrency, num_cpus_per_actor=args.num_cpus_per_actor, **options)
    resumed = f" ({summary.resumed_shards} shards from an earlier run)" if summary.resumed_shards else ""
    skipped = f"; {summary.skipped} bad rows in {summary.errors}" if summary.skipped else ""
    print(f"nopipe: {summary.rows} rows answered{resumed} -> {summary.output}{skipped}", file=sys.stderr)


def add_common_options(sub: argparse.ArgumentParser, spec: TaskSpec, chat: bool = False) -> None:
    if spec.reads == "question-context":
        sub.add_argument("--question", action="append", help="repeatable; or JSONL lines via --file/stdin")
        sub.add_argument("--context")
    elif not chat:
        sub.add_argument("texts", nargs="*", metavar="TEXT", help="inputs (else --file, else stdin)")
    if not chat:
        sub.add_argument("--file", help="one text per line" + (" (JSONL: question, context)"
                                                                if spec.reads == "question-context" else ""))
    sub.add_argument("--model", help="local folder, .gguf file or hub id (default: the pipeline's default)")
    sub.add_argument("--revision")
    if spec.name == "translation":
        sub.add_argument("--task", dest="translation_task", metavar="translation_xx_to_yy",
                         help="the language pair, e.g. translation_en_to_fr (T5 prefixes, M2M100 languages)")
        sub.add_argument("--src-lang", help="source language code of a many-language model (M2M100: en)")
        sub.add_argument("--tgt-lang", help="target language code of a many-language model (M2M100: fr)")
    from core.choices import DTYPE_CHOICES

    sub.add_argument("--allow-other-head", action="store_true",
                     help="load a checkpoint trained for another task (its weights must fit this task's head)")
    sub.add_argument("--device", help="cpu, cuda, cuda:0, mps (default: best available)")
    sub.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES)
    sub.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: all cores; set 1 or 2 "
                                                          "when other programs use the CPU)")
    if not chat:
        sub.add_argument("--batch-size", type=positive_int, default=None)
        sub.add_argument("--json", action="store_true", help="print JSON (one object per input)")
    if spec.generates:
        sub.add_argument("--seed", type=int, help="seed for sampling (same semantics as transformers.set_seed)")
        sub.add_argument("--explain", action="store_true", help="print which source chose each decoding setting")
    if spec.name == "text-generation":
        sub.add_argument("--raw", action="store_true", help="send the prompt as plain text even when the model "
                                                            "has a chat template")
        if not chat:
            sub.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                             help="print the text as it is written (default)")
    sub.add_argument("--debug", action="store_true", help="show the full traceback on errors")


# --- messages in the command's own words -------------------------------------------------------------

def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{"max_length": "--max-length", ...}: every keyword the command line sets, with its flag."""
    flags = {}
    for sub in subparsers_of(parser).values():
        for action in sub._actions:
            if action.option_strings and action.dest not in flags:
                flags[action.dest] = action.option_strings[0]
    flags.update(src_lang="--src-lang", tgt_lang="--tgt-lang", truncation="--truncation",
                 allow_other_head="--allow-other-head")
    return flags


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return action.choices


def in_flags(message: str, flags: dict[str, str]) -> str:
    """A runner's message with its Python advice turned into flags: "pass truncation=True" -> "pass
    --truncation", "max_length=43" -> "--max-length 43", "max_length must be" -> "--max-length must be"."""
    def flag_with_value(match):
        flag, value = flags[match.group(1)], match.group(2).strip("'\"")
        return flag if value == "True" else f"{flag} {value}"

    names = "|".join(sorted(map(re.escape, flags), key=len, reverse=True))
    message = re.sub(rf"(?<![\w.-])({names})=('[^']*'|\"[^\"]*\"|[\w.+-]+)", flag_with_value, message)
    return re.sub(rf"(?<![\w.'-])({names})(?=\s+(?:must|is|and|or|contradicts|=)\b|\s*\()",
                  lambda match: flags[match.group(1)], message)


def warning_as_one_line(message, category, filename, lineno, line=None) -> str:
    """Warnings of the command are one "nopipe: warning: ..." line, not a file name and a code line."""
    return f"nopipe: warning: {message}\n"


# --- running --------------------------------------------------------------------------------------

def read_inputs(args, spec: TaskSpec) -> tuple[list[Input], str | None]:
    """(inputs, source): QA pairs for `qa`, texts for the other commands."""
    return read_qa_pairs(args) if spec.reads == "question-context" else read_texts(args)


def call_options(args, spec: TaskSpec, runner) -> dict:
    """The task's own options the user set, under the API's names."""
    chosen = {option.dest: getattr(args, option.dest) for option in task_options(spec) if hasattr(args, option.dest)}
    if getattr(args, "batch_size", None) is not None:
        chosen["batch_size"] = args.batch_size
    return as_token_ids(runner, chosen)


def as_token_ids(runner, chosen: dict) -> dict:
    """--force-words and --negative-prompt take text; the API takes token ids of the runner's tokenizer."""
    chosen = dict(chosen)
    if "force_words" in chosen:
        chosen["force_words_ids"] = [runner.tokenizer(text, add_special_tokens=False)["input_ids"]
                                     for text in chosen.pop("force_words")]
    if "negative_prompt" in chosen:
        encoded = runner.tokenizer(chosen.pop("negative_prompt"), return_tensors="pt")
        chosen["negative_prompt_ids"] = encoded["input_ids"]
        chosen["negative_prompt_attention_mask"] = encoded["attention_mask"]
    return chosen


def load_runner(args, spec: TaskSpec):
    """The command's runner: its model, or the task's default (said on stderr when it is the offline one)."""
    import torch

    import tasks
    from core.defaults import default_model

    if args.threads:
        torch.set_num_threads(args.threads)
    load_options = {"device": args.device, "dtype": args.dtype, "allow_other_head": args.allow_other_head}
    if args.revision:
        load_options["revision"] = args.revision
    task = spec.name
    if spec.name == "translation":
        task = args.translation_task or task
        load_options.update({name: getattr(args, name) for name in ("src_lang", "tgt_lang") if getattr(args, name)})
    model = args.model
    if model is None:
        source = default_model(spec.name, spec.default_model)
        model = source.pop("model")
        load_options = {**source, **load_options}
        if model != spec.default_model.repo_id:
            print(f"nopipe: the hub cannot be reached; answering with {model} (the offline default)", file=sys.stderr)
    return tasks.load(task, model=model, **load_options)


def seed_if_asked(args) -> None:
    """Seed once, right before the first generation, as `transformers.set_seed` users do: --seed N
    reproduces a run, and each later input draws new numbers instead of repeating the first's."""
    if getattr(args, "seed", None) is not None:
        from core.seed import set_seed

        set_seed(args.seed)


def inputs_per_chunk(batch_size: int | None) -> int:
    """How many inputs go to the runner in one call: a few batches, so answers print as they come."""
    return (batch_size or 32) * 4


class Progress:
    """A progress bar on stderr for file input, cleared while answers are printed so that the two
    never share a terminal line."""

    def __init__(self, total: int, show: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="input", file=sys.stderr, disable=None if show else True, leave=False)

    def write(self, out, text: str) -> None:
        with self.bar.external_write_mode(file=sys.stderr):
            out.write(text)
            out.flush()

    def advance(self, count: int) -> None:
        self.bar.update(count)

    def close(self) -> None:
        self.bar.close()


def answer_chunk(runner, spec: TaskSpec, part: list[Input], chosen: dict, source: str | None, printed: int) -> list:
    """The runner's answers to one chunk of inputs, one per input; an error names the input's line."""
    values = [item.value for item in part]
    try:
        if spec.generates and chosen.get("batch_size", 1) == 1:  # as a streamed run draws: one prompt at a time
            return [as_list_item(spec, runner(value, **chosen)) for value in values]
        results = runner(values, **chosen)
    except ValueError as error:
        raise ValueError(locate(str(error), part, source, printed)) from error
    # Question answering answers a one-item list with a bare result (a list with top_k > 1), as the pipeline.
    return [results] if spec.reads == "question-context" and len(part) == 1 else results


def as_list_item(spec: TaskSpec, result: list):
    """A single input's answer in the shape it has in a list's answer: the seq2seq tasks give one dict
    per text there (a list only with several sequences), text generation a list per prompt."""
    return result[0] if spec.name != "text-generation" and len(result) == 1 else result


def locate(message: str, part: list[Input], source: str | None, printed: int) -> str:
    """An error about "inputs[i]" of a chunk, said of the file's own line, with how many answers came before."""
    match = re.search(r"inputs\[(\d+)\]", message)
    if match and source is not None and int(match.group(1)) < len(part):
        line = part[int(match.group(1))].line
        message = message.replace(match.group(0), f"line {line} of {source}", 1)
    if printed:
        message += f" ({printed} answers were printed before it)"
    return message


def write_answers(runner, spec: TaskSpec, inputs: list[Input], chosen: dict, args, out, source: str | None) -> None:
    """Answer the inputs a chunk at a time, printing each chunk's answers as soon as it is done."""
    progress = Progress(len(inputs), show=source is not None)
    printed, several = 0, len(inputs) > 1
    try:
        for start in range(0, len(inputs), inputs_per_chunk(chosen.get("batch_size"))):
            part = inputs[start:start + inputs_per_chunk(chosen.get("batch_size"))]
            results = answer_chunk(runner, spec, part, chosen, source, printed)
            text = "".join(format_answer(spec, item.value, result, args.json, several) + "\n"
                           for item, result in zip(part, results))
            progress.write(out, text)
            printed += len(part)
            progress.advance(len(part))
    finally:
        progress.close()


def run_task(args, spec: TaskSpec, out) -> None:
    """Every command but `generate` and `chat`: answers in the order of the inputs."""
    inputs, source = read_inputs(args, spec)  # before the (maybe slow) load, so "no input" comes at once
    runner = load_runner(args, spec)
    chosen = call_options(args, spec, runner)
    if getattr(args, "explain", False):
        print(runner.explain(**decoding_settings(chosen)), file=sys.stderr)
    seed_if_asked(args)
    write_answers(runner, spec, inputs, chosen, args, out, source)


def decoding_settings(chosen: dict) -> dict:
    """The decoding settings among a call's options (not return_full_text, truncation or batch_size)."""
    from tasks.settings import DECODING_SETTINGS

    return {name: value for name, value in chosen.items() if name in DECODING_SETTINGS}


def as_chat_prompt(runner, prompt: str, raw: bool):
    """A plain prompt to a model with a chat template goes in as a user message (--raw: as it is)."""
    if raw or not getattr(runner.tokenizer, "chat_template", None):
        return prompt
    return [{"role": "user", "content": prompt}]


class StepCounter:
    """A logits processor that changes nothing and counts the steps: the number of tokens generated."""

    def __init__(self):
        self.steps = 0

    def __call__(self, input_ids, scores):
        self.steps += 1
        return scores


def stream_answer(runner, prompt, chosen: dict, out, echo_prompt: bool) -> str:
    """Print one prompt's continuation as it is produced, then the speed on stderr; return the text."""
    counter = StepCounter()
    started = time.perf_counter()
    options = {key: value for key, value in chosen.items() if key not in ("batch_size", "return_full_text")}
    pieces = runner(prompt, stream=True, logits_processors=[counter], **options)
    # A setting checked only when generation starts (min_length above max_length) fails on the first
    # piece: take it before the prompt is printed, so a failed run leaves stdout empty.
    first = next(pieces, "")
    if echo_prompt:
        out.write(prompt)
    generated = ""
    for text in itertools.chain([first], pieces):
        generated += text
        out.write(text)
        out.flush()
    seconds = time.perf_counter() - started
    out.write("\n")
    print(f"[{counter.steps} tokens in {seconds:.2f} s: {counter.steps / max(seconds, 1e-9):.1f} tokens/s]",
          file=sys.stderr)
    return generated


def generation_plan(runner, prompts: list[Input], chosen: dict, args) -> tuple[bool, dict]:
    """(stream?, options): several greedy prompts from a file run in batches of 8 by default (the same
    answers, faster); an answer streams unless --json, --no-stream, batches or settings that cannot."""
    from decoding.streaming import can_stream

    config = runner.decoding_config(**decoding_settings(chosen))  # checks every setting before printing
    if len(prompts) > 1 and "batch_size" not in chosen and not config.do_sample and config.num_beams == 1:
        chosen = {**chosen, "batch_size": 8}
    batched = len(prompts) > 1 and chosen.get("batch_size", 1) > 1
    return (args.stream and not args.json and not batched and can_stream(config)), chosen


def run_generate(args, spec: TaskSpec, out) -> None:
    """Stream each prompt's continuation, one prompt after the other; print whole answers when it cannot."""
    prompts, source = read_texts(args)
    runner = load_runner(args, spec)
    prompts = [Input(as_chat_prompt(runner, item.value, args.raw), item.line) for item in prompts]
    chosen = call_options(args, spec, runner)
    if args.explain:
        print(runner.explain(**decoding_settings(chosen)), file=sys.stderr)
    streaming, chosen = generation_plan(runner, prompts, chosen, args)
    seed_if_asked(args)
    if not streaming:
        write_answers(runner, spec, prompts, chosen, args, out, source)
        return
    for item in prompts:
        if len(prompts) > 1:
            out.write(f">>> {shown(item.value if isinstance(item.value, str) else item.value[-1]['content'])}\n")
        echo = chosen.get("return_full_text", True) and isinstance(item.value, str)
        stream_answer(runner, item.value, chosen, out, echo_prompt=echo)


def run_chat(args, spec: TaskSpec, out) -> None:
    """An interactive conversation: each line read is a user message, each answer is streamed and kept."""
    runner = load_runner(args, spec)
    if not getattr(runner.tokenizer, "chat_template", None):
        raise UsageError(f"{args.model or 'this model'} has no chat template, so it cannot chat; "
                         "use `nopipe generate` for plain text")
    chosen = decoding_settings(call_options(args, spec, runner))
    if args.explain:
        print(runner.explain(**chosen), file=sys.stderr)
    seed_if_asked(args)
    messages, interactive = [], sys.stdin.isatty()
    while True:
        if interactive:
            out.write("> ")
            out.flush()
        line = sys.stdin.readline()
        if not line or line.strip() in ("exit", "quit", "/bye"):
            return
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line.strip()})
        reply = stream_answer(runner, list(messages), chosen, out, echo_prompt=False)
        messages.append({"role": "assistant", "content": reply})


def run_bench(bench_args: list[str]) -> int:
    """`python -m benchmarks.run` with these arguments (the benchmarks ship with the nopipe package)."""
    try:
        from benchmarks.run import main as bench_main
    except ImportError as error:  # e.g. a partial install; say what is missing, no traceback
        raise RuntimeError(f"the benchmarks cannot be imported ({error}); reinstall nopipe with "
                           "`pip install -e .` from its source checkout") from error
    return bench_main(bench_args)


def run_reporting_errors(run, debug: bool, flags: dict[str, str] | None = None,
                         usage_errors: tuple = (ValueError, TypeError)) -> int:
    """run() turned into an exit code: a failure is one line (its message's first, in the command's
    flags), exit code 2 for `usage_errors` (a bad option or input), 1 for the rest; --debug lets the
    traceback through. A closed output pipe (`| head -1`) ends the run quietly."""
    try:
        return run()
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return BROKEN_PIPE
    except Exception as error:
        if ctrl_c.pressed and not debug:  # e.g. transformers' lazy import turns the interrupt into an ImportError
            return INTERRUPTED
        if debug:
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        message = in_flags(message, flags or {})
        return error_line(message, USAGE_ERROR if isinstance(error, usage_errors) else RUNTIME_ERROR)


RUNS = {"generate": run_generate, "chat": run_chat}


def run_command(args) -> int:
    """One task command (not bench) on sys.stdout; the exit code when it succeeds."""
    if not args.debug:
        from core.hub import quiet_process

        quiet_process()
        warnings.formatwarning = warning_as_one_line
    if args.command == "batch":
        run_batch(args, sys.stdout)
        return 0
    spec = COMMANDS["generate" if args.command == "chat" else args.command]
    RUNS.get(args.command, run_task)(args, spec, sys.stdout)
    return 0


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse, reporting a flag the subcommand does not know against the subcommand's own --help."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        subparsers_of(parser)[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


class CtrlC:
    """Remembers that Ctrl-C was pressed, because a library may catch the KeyboardInterrupt and raise
    something else (transformers' lazy imports raise "Could not import module"): the command still
    ends as an interrupt, quietly, with exit code 130."""

    def __init__(self):
        self.pressed = False

    def __call__(self, signum, frame):
        self.pressed = True
        raise KeyboardInterrupt

    def __enter__(self):
        self.pressed = False
        in_main_thread = threading.current_thread() is threading.main_thread()
        self.previous = signal.signal(signal.SIGINT, self) if in_main_thread else None
        return self

    def __exit__(self, *exc_info):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


ctrl_c = CtrlC()


def main(argv: list[str] | None = None) -> int:
    with ctrl_c:
        try:
            return run_main(sys.argv[1:] if argv is None else list(argv))
        except KeyboardInterrupt:
            return INTERRUPTED


def run_main(argv: list[str]) -> int:
    """The command line's work, between main()'s Ctrl-C handling."""
    if argv[:1] == ["bench"]:
        # Everything after `bench` belongs to benchmarks.run, --help and flags included (argparse's
        # REMAINDER would refuse a first argument that starts with "--"), except our own --debug.
        # The benchmarks check their command line themselves, so whatever they raise is a runtime error.
        bench_args = [arg for arg in argv[1:] if arg != "--debug"]
        return run_reporting_errors(lambda: run_bench(bench_args), debug="--debug" in argv[1:], usage_errors=())
    parser = build_parser()
    args = parse(parser, argv)
    formatwarning = warnings.formatwarning
    try:
        return run_reporting_errors(lambda: run_command(args), debug=args.debug, flags=flags_of(parser))
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
