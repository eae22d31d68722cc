"""What every task runner shares: construction from a checkpoint, placement, and input checking.

A task subclasses `TaskRunner`, names its `head` (an AutoModelFor* class) and writes its three
stages. Nothing else about loading or devices lives in a task module.
"""

import torch

from core.device import Placement
from core.loading import check_fast_tokenizer, load_model, load_tokenizer
from core.windows import pad_features, run_model


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
        self.model = model
        self.tokenizer = tokenizer
        self.placement = placement

    @classmethod
    def from_pretrained(cls, model, *, device=None, dtype="auto", revision=None, trust_remote_code=False,
                        gguf_file=None, tokenizer=None, **options):
        """Load a checkpoint (local folder, .gguf file or hub id) for this task and place it.

        `tokenizer` may be a tokenizer object or another folder/hub id to take it from.
        """
        source = dict(revision=revision, trust_remote_code=trust_remote_code)
        if tokenizer is None or isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer or model, gguf_file=gguf_file if tokenizer is None else None,
                                       require_fast=cls.needs_fast_tokenizer, why_fast=cls.fast_tokenizer_reason,
                                       **source)
        loaded, placement = load_model(model, cls.head, gguf_file=gguf_file, device=device, dtype=dtype,
                                       many_rows=cls.many_rows, **source)
        return cls(loaded, tokenizer, placement, **options)

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def dtype(self) -> str:
        return self.placement.dtype

    def to_device(self, encoding: dict) -> dict:
        """Move a batch of tensors to the model's device (inputs stay integer, so no dtype cast)."""
        return {key: value.to(self.device) for key, value in encoding.items()}

    def __repr__(self) -> str:
        name = getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
        return f"{type(self).__name__}(model={name!r}, device={str(self.device)!r}, dtype={self.dtype!r})"


class EncoderRunner(TaskRunner):
    """A runner whose model reads whole texts once (classification, NER, QA): one forward pass per
    padded batch, no decoding. A task says which of the model's outputs are its logits (`logits_of`)."""

    def logits_of(self, output) -> torch.Tensor:
        """The task's logits in the model's output (QA stacks its start and end logits)."""
        return output.logits

    def forward(self, features: list[dict]) -> torch.Tensor:
        """Logits of one right-padded batch, float32 on the CPU: `(batch, ...)` as `logits_of` gives them."""
        batch = self.to_device(pad_features(self.tokenizer, features))
        return self.logits_of(run_model(self.model, batch)).float().cpu()
