"""The targets nopipe is held to (the README's Speed section lists them), in one place: the recipes
record each comparison with its target from here, and `table` says per target whether the results
meet it, and if not, where not.

A ratio is nopipe / peer on throughput (higher is better), except memory: nopipe int8's memory over
nopipe float32's (lower is better). Each system's figure is the median of its interleaved repetitions,
each system in a process of its own (benchmarks/worker.py).
"""

from dataclasses import dataclass

# ---- the numbers the recipes use ----------------------------------------------------------------
DECODER_CT2_INT8 = {1: 1.3, 8: 1.5}  # text generation, nopipe int8 / CTranslate2 int8, by batch size
SEQ2SEQ_CT2_INT8 = 1.0  # beam 4, nopipe int8 / CTranslate2 int8
FLOAT32_GENERATE = 1.2  # nopipe float32 / generate(), every decoding task
ENCODER_ORT_INT8 = 1.2  # nopipe int8 / ONNX Runtime int8
ENCODER_ORT_FLOAT32 = 1.0  # nopipe float32 / ONNX Runtime float32
ENCODER_INT8_AGREEMENT = 0.99  # top-1 answers of nopipe int8 against float32
INT8_MEMORY = 0.5  # nopipe int8's memory / float32's (at most)
PIPELINE_FLOAT32 = 2.0  # encoders, x the pipeline at its best batch size (an earlier round's target, still held)
PIPELINE_INT8 = 3.0
PIPELINE_BFLOAT16 = 3.0  # encoders, nopipe dtype="bfloat16" (AMX where the CPU has it) x the pipeline (float32)
BFLOAT16_AGREEMENT = 0.99  # top-1 answers of nopipe bfloat16 against float32


def ct2_int8_target(task: str, batch: int) -> float:
    """nopipe int8 / CTranslate2 int8: 1.3x at batch 1 and 1.5x batched for text generation, even for seq2seq."""
    if task != "text-generation":
        return SEQ2SEQ_CT2_INT8
    return DECODER_CT2_INT8[1] if batch == 1 else DECODER_CT2_INT8[8]


@dataclass(frozen=True)
class Target:
    """One line of the targets table: which comparison rows it covers, and what they must reach."""

    what: str
    kind: str  # the comparison kind: "speed ratio", "agreement", "memory ratio"
    ours: str
    peer: str
    value: float
    tasks: tuple = ()  # the tasks it covers (empty: every task)
    batch: int | None = None  # text generation only: cases of this batch size

    def covers(self, row: dict) -> bool:
        if (row["kind"], row["ours"]) != (self.kind, self.ours) or row.get("target") != self.value:
            return False
        if not same_peer(row["peer"], self.peer):
            return False
        if self.tasks and row["task"] not in self.tasks:
            return False
        return self.batch is None or row["case"].startswith(f"batch {self.batch},")


SEQ2SEQ = ("summarization", "translation", "text2text-generation")
ENCODERS = ("text-classification", "token-classification", "question-answering")
TARGETS = [
    Target("GPT-2, SmolLM2 int8 decoding, batch 1: >= 1.3x CTranslate2 int8", "speed ratio", "nopipe int8",
           "CTranslate2 int8", DECODER_CT2_INT8[1], ("text-generation",), batch=1),
    Target("GPT-2, SmolLM2 int8 decoding, batch 8: >= 1.5x CTranslate2 int8", "speed ratio", "nopipe int8",
           "CTranslate2 int8", DECODER_CT2_INT8[8], ("text-generation",), batch=8),
    Target("seq2seq beam 4 int8: >= 1.0x CTranslate2 int8", "speed ratio", "nopipe int8", "CTranslate2 int8",
           SEQ2SEQ_CT2_INT8, SEQ2SEQ),
    Target("float32 decoding: >= 1.2x generate()", "speed ratio", "nopipe float32", "generate() float32",
           FLOAT32_GENERATE),
    Target("encoders int8: >= 1.2x ONNX Runtime int8", "speed ratio", "nopipe int8", "ONNX Runtime int8",
           ENCODER_ORT_INT8, ENCODERS),
    Target("encoders int8: >= 99% top-1 agreement with float32", "agreement", "nopipe int8", "nopipe float32",
           ENCODER_INT8_AGREEMENT, ENCODERS),
    Target("encoders float32: >= 1.0x ONNX Runtime float32", "speed ratio", "nopipe float32", "ONNX Runtime float32",
           ENCODER_ORT_FLOAT32, ENCODERS),
    Target("encoders bfloat16 (AMX): >= 3x the pipeline", "speed ratio", "nopipe bfloat16", "pipeline float32",
           PIPELINE_BFLOAT16, ENCODERS),
    Target("encoders bfloat16: >= 99% top-1 agreement with float32", "agreement", "nopipe bfloat16",
           "nopipe float32", BFLOAT16_AGREEMENT, ENCODERS),
    Target("peak memory: int8 <= 0.5x float32", "memory ratio", "nopipe int8", "nopipe float32", INT8_MEMORY),
]


def same_peer(peer: str, named: str) -> bool:
    """The row's peer is the target's: "pipeline float32" covers "pipeline (batch 16) float32" and
    "pipeline (default batch) float32" (the pipeline at its best batch size, or at its default when
    the run made no sweep)."""
    if peer == named:
        return True
    system, _, dtype = named.rpartition(" ")
    return peer.startswith(system + " (") and peer.endswith(") " + dtype)


def verdict(target: Target, comparisons: list[dict]) -> tuple[str, str]:
    """("met" / "not met" / "not measured", why): every covered row must meet it; the misses are named."""
    rows = [row for row in comparisons if target.covers(row)]
    measured = [row for row in rows if row["value"] is not None]
    if not measured:
        reasons = sorted({row.get("why", "") for row in rows} - {""})
        return "not measured", "; ".join(reasons) or "no run covered it"
    misses = [row for row in measured if not row["met"]]
    shown = ", ".join(f"{row['model']} {row['case']}: {_shown(row)}" for row in (misses or measured))
    return ("not met", f"missed on {shown}") if misses else ("met", shown)


def _shown(row: dict) -> str:
    return f"{100 * row['value']:.1f}%" if row["kind"] == "agreement" else f"{row['value']:.2f}x"


def table(comparisons: list[dict]) -> list[str]:
    """The markdown lines of the targets table for these comparison rows."""
    lines = ["| target | met? | measured |", "|---|---|---|"]
    for target in TARGETS:
        state, why = verdict(target, comparisons)
        lines.append(f"| {target.what} | {'**' + state + '**' if state == 'not met' else state} | {why} |")
    return lines
