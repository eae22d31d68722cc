"""What every task runner shares: construction from a checkpoint, placement, a tokenizer per thread.

A task subclasses `TaskRunner`, names its `head` (an AutoModelFor* class) and writes its three
stages. `EncoderRunner` adds the one forward pass of the tasks whose model reads whole texts once
(classification, NER, QA); the generation tasks build on `GenerationRunner` (tasks/generation.py).
Nothing else about loading or devices lives in a task module; the checks of inputs are in core/checks.py.
"""

import copy
import functools
import threading
from collections.abc import Iterator

import torch

from core.batching import check_batch_size
from core.checkpoint import check_input_ids, check_token_ids
from core.device import Placement
from core.loading import check_fast_tokenizer, load_model, load_tokenizer
from core.windows import pad_features, run_model, window_length, windows_by_source


class TaskRunner:
    """A model, its tokenizer and where they run. Subclasses add preprocess/forward/postprocess."""

    head = None  # the AutoModelFor* class of the task
    needs_fast_tokenizer = False  # True where the task needs offsets or word ids
    fast_tokenizer_reason = "this task needs character offsets"
    # Whether the task's matrix products have many rows (whole texts, beams of a batch) or a few
    # (one new token per prompt): int8 weights are packed for the kernels that suit them.
    many_rows = True

    def __init__(self, model, tokenizer, placement: Placement | None = None):
        if placement is None:
            parameter = next(model.parameters(), None)
            device = parameter.device if parameter is not None else torch.device("cpu")
            names = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
            placement = Placement(device, names.get(getattr(parameter, "dtype", None), "float32"))
        if self.needs_fast_tokenizer:
            check_fast_tokenizer(tokenizer, self.fast_tokenizer_reason)
        self.embedding_rows = check_token_ids(model, tokenizer)  # ids the model has an embedding for
        self.model = model
        self.tokenizer = tokenizer
        self.placement = placement

    @property
    def tokenizer(self):
        """The tokenizer; each thread but the one that built the runner gets a copy of its own.

        A fast tokenizer keeps its truncation, stride and padding settings in shared state that every
        call rewrites, so two threads tokenizing with different options would mix them up.
        """
        if threading.get_ident() == self._tokenizer_thread:
            return self._tokenizer
        if getattr(self._per_thread, "tokenizer", None) is None:
            self._per_thread.tokenizer = copy.deepcopy(self._tokenizer)
        return self._per_thread.tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer) -> None:
        self._tokenizer, self._tokenizer_thread, self._per_thread = tokenizer, threading.get_ident(), threading.local()

    @classmethod
    def from_pretrained(cls, model, *, device=None, dtype="auto", revision=None, trust_remote_code=False,
                        gguf_file=None, tokenizer=None, allow_other_head: bool = False, verbose: bool = False,
                        **options):
        """Load a checkpoint (local folder, .gguf file or hub id) for this task and place it.

        `tokenizer` may be a tokenizer object or another folder/hub id to take it from. A checkpoint trained
        for another task is refused unless `allow_other_head=True`; `verbose=True` lets transformers'
        loading bars and advice through (README, "Loading a model, and what it refuses"). The pipeline's
        construction keywords are accepted where they map cleanly (`torch_dtype` is `dtype`); the others
        get an error that names the nopipe way.
        """
        dtype = pipeline_keywords(options, dtype)
        source = dict(revision=revision, trust_remote_code=trust_remote_code)
        if tokenizer is None or isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer or model, gguf_file=gguf_file if tokenizer is None else None,
                                       require_fast=cls.needs_fast_tokenizer, why_fast=cls.fast_tokenizer_reason,
                                       verbose=verbose, **source)
        loaded, placement = load_model(model, cls.head, gguf_file=gguf_file, device=device, dtype=dtype,
                                       many_rows=cls.many_rows, allow_other_head=allow_other_head, verbose=verbose,
                                       **source)
        return cls(loaded, tokenizer, placement, **options)

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def dtype(self) -> str:
        return self.placement.dtype

    def check_input_ids(self, ids_per_text, argument: str = "inputs") -> None:
        """Refuse a text that holds a token the model has no embedding for (core/checkpoint.py)."""
        check_input_ids(ids_per_text, self.embedding_rows, self.tokenizer, argument)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` alone (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def to_device(self, encoding: dict) -> dict:
        """Move a batch of tensors to the model's device (inputs stay integer, so no dtype cast)."""
        return {key: value.to(self.device) for key, value in encoding.items()}

    def __repr__(self) -> str:
        name = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        return f"{type(self).__name__}(model={name!r}, device={str(self.device)!r}, dtype={self.dtype!r})"


# The pipeline's construction keywords that nopipe spells otherwise, with the nopipe way.
PIPELINE_ONLY_KEYWORDS = {
    "device_map": "pass device= (e.g. device='cuda:0'); nopipe places the whole model on one device",
    "model_kwargs": "pass its keys to from_pretrained directly (revision=, trust_remote_code=, dtype=...)",
    "use_fast": "nopipe loads the fast tokenizer when the model has one; pass tokenizer= to choose another",
    "framework": "nopipe runs PyTorch only; leave it out",
}


def pipeline_keywords(options: dict, dtype):
    """Take `torch_dtype` (the pipeline's name) as `dtype`; refuse the pipeline keywords nopipe spells otherwise."""
    for name, fix in PIPELINE_ONLY_KEYWORDS.items():
        if name in options:
            raise TypeError(f"{name}= is a pipeline() keyword nopipe does not take: {fix}")
    if "torch_dtype" in options:
        torch_dtype = options.pop("torch_dtype")
        if dtype != "auto" and dtype != torch_dtype:
            raise ValueError(f"torch_dtype={torch_dtype!r} and dtype={dtype!r} disagree; pass only dtype=")
        return torch_dtype
    return dtype


def is_lazy(inputs) -> bool:
    """A generator or other one-pass iterator (a dataset stream): answered as it is read, not as a list."""
    return isinstance(inputs, Iterator)


def answer_lazily(call, inputs: Iterator, chunk_size: int) -> Iterator:
    """Yield the answer of each input of a stream, reading `chunk_size` inputs at a time (the pipeline
    yields results of a generator lazily too), so memory stays bounded whatever the stream's length."""
    while True:
        chunk = [item for _, item in zip(range(chunk_size), inputs)]
        if not chunk:
            return
        yield from call(chunk)


def answers_streams(call):
    """Let a runner's `__call__` take a generator (or any one-pass iterator) of inputs: the answers are
    then yielded as the inputs are read, a few batches at a time, instead of returned as one list."""

    @functools.wraps(call)
    def answer(self, *args, **options):
        inputs = args[0] if args else options.get("inputs", options.get("question"))
        if not is_lazy(inputs):
            return call(self, *args, **options)
        batch_size = options.get("batch_size")
        batch_size = getattr(self, "batch_size", 1) if batch_size is None else check_batch_size(batch_size)
        rest = {key: value for key, value in options.items() if key not in ("inputs", "question")}
        return answer_lazily(lambda part: call(self, part, *args[1:], **rest), inputs, 4 * batch_size)

    return answer


class EncoderRunner(TaskRunner):
    """A runner whose model reads whole texts once (classification, NER, QA): one forward pass per
    padded batch, no decoding. A task says which of the model's outputs are its logits (`logits_of`)."""

    def __init__(self, model, tokenizer, placement: Placement | None = None, *, batch_size: int = 32):
        """batch_size: texts (or windows) per forward pass when a call names none."""
        super().__init__(model, tokenizer, placement)
        self.batch_size = check_batch_size(batch_size)
        self._window_length = None

    def check_window_ids(self, windows, sources: int) -> None:
        """`check_input_ids` for texts read in windows: each text's windows together."""
        self.check_input_ids([[token for index in mine for token in windows[index].features["input_ids"]]
                              for mine in windows_by_source(windows, sources)])

    @property
    def window_length(self) -> int:
        """Tokens the model reads at once, or the default window (said once) when it declares no limit."""
        if self._window_length is None:
            self._window_length = window_length(self.tokenizer, self.model.config)
        return self._window_length

    def logits_of(self, output) -> torch.Tensor:
        """The task's logits in the model's output (QA stacks its start and end logits)."""
        return output.logits

    def forward(self, features: list[dict]) -> torch.Tensor:
        """Logits of one right-padded batch, float32 on the CPU: `(batch, ...)` as `logits_of` gives them."""
        batch = self.to_device(pad_features(self.tokenizer, features))
        return self.logits_of(run_model(self.model, batch)).float().cpu()
