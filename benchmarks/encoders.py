"""The encoder tasks' benchmark (classification, NER, question answering): one recipe for the three.

Workloads: N texts of mixed length timed as one list (items/s), and single requests one by one
(p50/p95 latency). Systems: nopipe float32, int8 and bfloat16 (AMX matrix units where the CPU has
them) at its default batch_size (32, length-sorted),
and where transformers 5 still has the pipeline, the pipeline at its default batch size (1, as
users run it) and at the best batch size of a sweep (the float32 and int8 targets are against
that one). Answers are compared too: nopipe float32 against the pipeline (the same labels), int8
and bfloat16 against float32 (the target is >= 99% of the top-1 labels; QA's agreement is reported only).
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from benchmarks.models import MODELS
from benchmarks.onnx_peer import ort_system
from benchmarks.peers import hf_pipeline, nopipe_task
from benchmarks.suite import Bench, Case
from benchmarks.targets import (
    BFLOAT16_AGREEMENT,
    ENCODER_INT8_AGREEMENT,
    ENCODER_ORT_FLOAT32,
    ENCODER_ORT_INT8,
    INT8_MEMORY,
    PIPELINE_BFLOAT16,
    PIPELINE_FLOAT32,
    PIPELINE_INT8,
)
from benchmarks.work import flops_work, model_shape
from benchmarks.workloads import mixed_texts, token_lengths

PIPELINE_AGREEMENT_TARGET = 1.0  # float32 labels against the pipeline's: the same answers


def mixed_length_texts(tokenizer, count: int, sizes) -> list[str]:
    return mixed_texts(tokenizer, count, sizes.min_tokens, sizes.max_tokens)


@dataclass(frozen=True)
class EncoderTask:
    """What differs between the encoder tasks; `run(bench, model, folder)` benchmarks one model."""

    task: str  # the pipeline's task name, also the report's
    models: list[str]
    module: str  # tasks.<module>.<class_name>
    class_name: str
    answer: Callable  # one output -> what must agree (a label, {position: label}, a span)
    make_inputs: Callable = mixed_length_texts  # (tokenizer, count, sizes) -> texts, or {"question", "context"}s
    int8_agreement_target: float | None = ENCODER_INT8_AGREEMENT

    def run(self, bench: Bench, model: str, folder) -> None:
        run_encoder_task(bench, self, model, folder)


def has_pipeline(task: str) -> bool:
    """Whether transformers still has a pipeline for `task` (v5 dropped question-answering)."""
    from transformers.pipelines import SUPPORTED_TASKS

    return task in SUPPORTED_TASKS


def run_nopipe(runner, case: Case):
    return len(case.inputs), runner(case.inputs, **case.settings)


def run_pipeline(pipe, case: Case, options: dict):
    return len(case.inputs), pipe(case.inputs, **options, **case.settings)


def input_lengths(tokenizer, inputs: list) -> list[int]:
    """Tokens each input makes (a question and its context together), cut at the model's limit as the tasks do."""
    limit = min(tokenizer.model_max_length, 512)
    texts = [(item["question"], item["context"]) if isinstance(item, dict) else (item,) for item in inputs]
    return [min(limit, len(tokenizer(*pair)["input_ids"])) for pair in texts]


def run_encoder_task(bench: Bench, spec: EncoderTask, model: str, folder) -> None:
    from transformers import AutoTokenizer

    sizes, task = bench.sizes, spec.task
    tokenizer = AutoTokenizer.from_pretrained(folder)
    share = MODELS[model].workload_share if sizes.scale_by_model else 1.0
    count = max(4, round(sizes.texts * share))
    inputs = spec.make_inputs(tokenizer, count, sizes)
    texts = [item["context"] if isinstance(item, dict) else item for item in inputs]
    bench.note(task, f"{model}: {len(inputs)} inputs, tokens {token_lengths(tokenizer, texts)}")
    warmup = Case("warm-up", inputs[:8])
    shape, lengths = model_shape(folder, MODELS[model].head), input_lengths(tokenizer, inputs)
    throughput = Case(f"{len(inputs)} mixed-length texts", inputs, warmup=warmup, work=flops_work(shape, lengths))
    single = Case(f"single requests ({min(sizes.latency_items, count)})", inputs[:sizes.latency_items],
                  unit="requests/s", single=True, warmup=Case("warm-up", inputs[:2]),
                  work=flops_work(shape, lengths[:sizes.latency_items]))
    for dtype in ("float32", "int8", "bfloat16"):
        bench.measure(task, model, nopipe_task(spec.module, spec.class_name, folder, dtype, run_nopipe),
                      [throughput, single])
    same_answers = partial(agreement, answer=spec.answer)
    bench.agree(task, model, throughput.name, ("nopipe", "int8"), ("nopipe", "float32"), same_answers,
                target=spec.int8_agreement_target)
    bench.agree(task, model, throughput.name, ("nopipe", "bfloat16"), ("nopipe", "float32"), same_answers,
                target=BFLOAT16_AGREEMENT if spec.int8_agreement_target is not None else None)  # QA: reported
    bench.compare_memory(task, model, throughput.name, ("nopipe", "int8"), ("nopipe", "float32"), INT8_MEMORY)
    measure_onnx_runtime(bench, spec, model, folder, [throughput, single], same_answers)
    if not has_pipeline(task):
        bench.note(task, f"{model}: no pipeline peer: transformers 5 has no '{task}' pipeline")
        return
    default, best = measure_pipeline(bench, task, model, folder, inputs, throughput, single)
    bench.agree(task, model, throughput.name, ("nopipe", "float32"), default, same_answers,
                target=PIPELINE_AGREEMENT_TARGET)
    if best != default:
        bench.compare(task, model, throughput.name, ("nopipe", "float32"), default)
    bench.compare(task, model, throughput.name, ("nopipe", "float32"), best, target=PIPELINE_FLOAT32)
    bench.compare(task, model, throughput.name, ("nopipe", "int8"), best, target=PIPELINE_INT8)
    bench.compare(task, model, throughput.name, ("nopipe", "bfloat16"), best, target=PIPELINE_BFLOAT16)
    bench.compare(task, model, single.name, ("nopipe", "float32"), default)


def measure_onnx_runtime(bench: Bench, spec: EncoderTask, model: str, folder, cases: list[Case], same_answers) -> None:
    """ONNX Runtime float32 and int8 (what optimum's ORTModel users get) on the same cases, and the targets
    against it; its int8 answers are compared with nopipe float32's too (reported, no target)."""
    head, threads = MODELS[model].head, bench.options.threads
    for dtype in ("float32", "int8"):
        bench.measure(spec.task, model, ort_system(spec.module, spec.class_name, folder, head, dtype, threads, run_nopipe),
                      cases)
    for case in cases:
        bench.compare(spec.task, model, case.name, ("nopipe", "int8"), ("ONNX Runtime", "int8"),
                      target=None if case.single else ENCODER_ORT_INT8)
        bench.compare(spec.task, model, case.name, ("nopipe", "float32"), ("ONNX Runtime", "float32"),
                      target=None if case.single else ENCODER_ORT_FLOAT32)
    bench.agree(spec.task, model, cases[0].name, ("ONNX Runtime", "int8"), ("nopipe", "float32"), same_answers)


def measure_pipeline(bench: Bench, task: str, model: str, folder, inputs: list, throughput: Case,
                     single: Case) -> tuple[tuple, tuple]:
    """Measure the pipeline at its default batch size, sweep for its best, measure that one too.

    Returns the (system, dtype) keys of the default and the best runs (the same when the best is 1,
    the pipeline's default).
    """
    default = hf_pipeline(task, folder, None, run_pipeline)
    bench.measure(task, model, default, [throughput, single])
    sweep = Case(f"batch-size sweep ({min(bench.sizes.sweep_items, len(inputs))} texts)",
                 inputs[:bench.sizes.sweep_items], warmup=throughput.warmup)
    best = bench.pick_batch_size(task, model, lambda size: hf_pipeline(task, folder, size, run_pipeline), sweep)
    bench.note(task, f"{model}: the pipeline's best batch size on the sweep: {best}")
    best_system = default
    if best is not None and best != 1:
        best_system = hf_pipeline(task, folder, best, run_pipeline)
        bench.measure(task, model, best_system, [throughput])
    return (default.name, default.dtype), (best_system.name, best_system.dtype)


def agreement(ours: list, reference: list, answer: Callable) -> float:
    """The share of inputs whose answer is the same.

    Answers that are dicts ({token position: label}, for NER) are compared position by position,
    over every position either side labelled; a position one side left out counts as "O".
    """
    same = total = 0
    for mine, theirs in zip(ours, reference, strict=True):
        mine, theirs = answer(mine), answer(theirs)
        if isinstance(mine, dict):
            positions = set(mine) | set(theirs)
            same += sum(mine.get(position, "O") == theirs.get(position, "O") for position in positions)
            total += len(positions)
        else:
            same += mine == theirs
            total += 1
    return same / total if total else 1.0
