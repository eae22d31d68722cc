"""The suite's options: how big the workloads are (`Sizes`), what the command line chose (`Options`),
and the parser that `nopipe bench` and every task script share (its prog: "nopipe bench").
"""

import argparse
from dataclasses import dataclass, replace

from benchmarks.models import MODELS, MODES


@dataclass(frozen=True)
class Sizes:
    """How big the workloads are.

    The full-size workload is 512 texts per encoder model. On 2 CPU cores distilbert reads about 600
    tokens/s in float32 (bert-large about 70), and each encoder model runs about six passes over
    its texts (nopipe float32 and int8, the pipeline at its default and at its best batch size, the
    sweep, the single requests): 512 texts of ~150 tokens would take over 20 minutes for distilbert
    alone. `FULL` keeps the full-size length mix (5 to 300 tokens) and batch sizes, with 128 texts
    (fewer for the bigger models, see `BenchModel.workload_share`) and 32 new tokens for the seq2seq
    tasks; in one process, one repetition each, the whole suite took 13 minutes (2026-12-02). Workers
    load every system of a workload anew and run 3 repetitions: the first full run with workers took
    about two hours (2026-12-04 15:52-17:57, README "The latest run"). `--texts 512` gives the 512 texts.
    Fewer texts make nopipe's length-sorted batches (32 texts each) pad more: with 128 texts about a
    quarter of the tokens it reads are padding, with 512 about a sixteenth, and 32 texts are one batch.
    """

    texts: int = 128  # encoder tasks: texts of mixed length (a model's `workload_share` scales it)
    min_tokens: int = 5
    max_tokens: int = 300
    latency_items: int = 16  # single requests timed one by one for p50/p95
    sweep_items: int = 16  # texts on which the pipeline's best batch size is searched
    sweep_batch_sizes: tuple = (1, 4, 8, 16)
    prompt_tokens: int = 32  # text generation
    new_tokens: int = 128
    generation_batches: tuple = (1, 8)
    sampling: bool = True  # also time sampled generation, not only greedy
    seq2seq_batch: int = 16  # summarization / translation / text2text
    seq2seq_new_tokens: int = 32
    beams: int = 4
    pipeline_peers: bool = True  # the text-generation pipeline besides generate()
    repeats: int = 3  # timed repetitions of each case per system, interleaved across systems
    first_model_only: bool = False  # each task's first model only (unless --only names others)
    scale_by_model: bool = True  # encoder texts times the model's workload_share (off with --texts)


FULL = Sizes()
QUICK = Sizes(texts=32, latency_items=8, sweep_items=16, sweep_batch_sizes=(), new_tokens=32,
              sampling=False, seq2seq_batch=8, seq2seq_new_tokens=16, pipeline_peers=False, first_model_only=True,
              repeats=2)
FIXTURES = Sizes(texts=12, max_tokens=60, latency_items=3, sweep_items=6, sweep_batch_sizes=(1, 4),
                 prompt_tokens=8, new_tokens=6, generation_batches=(1, 4), seq2seq_batch=4, seq2seq_new_tokens=4,
                 repeats=2)



@dataclass
class Options:
    mode: str = "real"
    threads: int = 2
    quick: bool = False
    out: str | None = None
    profile: bool = False
    models: tuple = ()  # restrict to these model names
    texts: int | None = None  # encoder texts per model, instead of the sizes' own
    workers: bool = True  # each system in a worker process of its own (False: --in-process)
    repeats: int | None = None  # instead of the sizes' own
    check_alone: tuple = ()  # (system, dtype) pairs re-measured alone after the suite
    partial: bool = False  # --task or --only chose part of the suite
    fixed_sizes: Sizes | None = None  # what a worker gets: the parent's sizes, whatever its own module says

    @property
    def sizes(self) -> Sizes:
        if self.fixed_sizes is not None:
            return self.fixed_sizes
        sizes = FIXTURES if self.mode == "fixtures" else QUICK if self.quick else FULL
        sizes = sizes if self.repeats is None else replace(sizes, repeats=self.repeats)
        return sizes if self.texts is None else replace(sizes, texts=self.texts, scale_by_model=False)


def build_parser(description: str = "", tasks: list[str] = (), prog: str | None = None) -> argparse.ArgumentParser:
    """The command line of `nopipe bench` (prog "nopipe bench") and of each task script."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if len(tasks) > 1:
        parser.add_argument("--task", nargs="+", choices=tasks, default=None, metavar="TASK",
                            help=f"run only these tasks (default: all): {', '.join(tasks)}")
    parser.add_argument("--models", choices=MODES, default="real",
                        help="real: real-size models built offline (default); fixtures: the tiny test models "
                             "and tiny workloads")
    parser.add_argument("--only", nargs="+", default=(), metavar="MODEL", choices=sorted(MODELS),
                        help=f"benchmark only these models: {', '.join(MODELS)}")
    parser.add_argument("--threads", type=int, default=2, help="torch, CTranslate2 and ONNX Runtime threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="each task's first model, smaller workloads, greedy "
                                                             "only, the pipeline at its default batch size only (no "
                                                             "sweep, none for generation), 2 repetitions")
    parser.add_argument("--texts", type=int, metavar="N", help="encoder tasks: N texts for every model "
                                                                "(default 128, fewer for the big models; 512 is the full size)")
    parser.add_argument("--repeats", type=int, metavar="N", help="timed repetitions per system and workload, "
                                                                  "interleaved (default 3; 2 with --quick)")
    parser.add_argument("--in-process", action="store_true", help="run every system in this process, one after "
                                                                  "the other (debugging only: CTranslate2 slows torch after it)")
    parser.add_argument("--check-alone", nargs="+", default=(), metavar="SYSTEM:DTYPE",
                        help="after each workload, measure these systems again alone (e.g. nopipe:int8) and "
                             "report suite / alone")
    parser.add_argument("--out", help="results folder (default: benchmarks/results for a full run; a scratch "
                                      "folder, printed, for --quick, the fixtures and any partial run)")
    parser.add_argument("--profile", action="store_true", help="print the top functions (cProfile) and "
                                                               "operators (torch.profiler) of each nopipe run")
    return parser


def parse_options(argv=None, description: str = "", tasks: list[str] = (),
                  prog: str | None = None) -> tuple[Options, list[str]]:
    """The options, and the tasks to run (`--task` is offered when there is more than one)."""
    parser = build_parser(description, tasks, prog)
    args = parser.parse_args(argv)
    for name in ("threads", "texts", "repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    check_alone = tuple(tuple(item.split(":", 1)) for item in args.check_alone)
    if any(len(pair) != 2 for pair in check_alone):
        parser.error("--check-alone takes SYSTEM:DTYPE, e.g. nopipe:int8 or CTranslate2:int8")
    chosen = getattr(args, "task", None)
    options = Options(mode=args.models, threads=args.threads, quick=args.quick, out=args.out, profile=args.profile,
                      models=tuple(args.only), texts=args.texts, workers=not args.in_process, repeats=args.repeats,
                      check_alone=check_alone, partial=bool(chosen or args.only))
    return options, chosen or list(tasks)
