"""The device/dtype manager: choose once, at construction, where a model runs and in what precision.

`device=None` picks the best accelerator present (cuda, then mps, then cpu). `dtype="auto"` picks
float32 on CPU (half precision there is slow or unsupported by many kernels) and bfloat16 or float16
on GPUs. `dtype="int8"` is PyTorch's dynamic int8 quantization of the linear layers, a CPU-only
speed-up, packed for the kernels that suit the runner's matrices (`int8_engine`). What was chosen
is reported back in a `Placement`, so a runner can say what it runs on.
"""

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import nn

from core.choices import DTYPE_CHOICES
from decoding.warn import warn_caller

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Placement:
    """Where a model runs: `device` (e.g. "cpu", "cuda:0") and `dtype` (one of DTYPE_CHOICES but "auto")."""

    device: torch.device
    dtype: str

    @property
    def torch_dtype(self) -> torch.dtype:
        """The dtype of activations: int8 models keep float32 activations."""
        return DTYPES.get(self.dtype, torch.float32)


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def resolve_device(device=None) -> torch.device:
    """Turn `None`, a string, an int or a torch.device into a device this machine really has."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if isinstance(device, int) and not isinstance(device, bool):
        device = f"cuda:{device}" if device >= 0 else "cpu"  # the pipeline's device=-1 means CPU
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be None, a string such as 'cpu' or 'cuda:0', or an int; got {device!r}")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device={device!r} is not a device name; use 'cpu', 'cuda', 'cuda:0' or 'mps'") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but this machine has no CUDA GPU; "
                         "pass device='cpu', or device=None to pick automatically")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if resolved.type == "mps" and not _mps_available():
        raise ValueError(f"device={device!r} was asked for, but MPS is not available; pass device='cpu'")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r} is not supported; use 'cpu', 'cuda' or 'mps'")
    return resolved


def resolve_dtype(dtype, device: torch.device) -> str:
    """Pick the precision for `device`, falling back with a warning where the request would be slow or wrong."""
    if isinstance(dtype, torch.dtype):
        names = {v: k for k, v in DTYPES.items()}
        if dtype not in names:
            raise ValueError(f"dtype={dtype} is not supported; use one of {', '.join(DTYPE_CHOICES)}")
        dtype = names[dtype]
    if not isinstance(dtype, str) or dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype={dtype!r} is not supported; use one of {', '.join(DTYPE_CHOICES)}")
    if dtype == "auto":
        if device.type == "cuda":
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        if device.type == "mps":
            return "float16"
        return "float32"
    if dtype == "int8" and device.type != "cpu":
        raise ValueError(f"dtype='int8' (dynamic quantization) runs on the CPU only, but device is {device}; "
                         "pass device='cpu' or dtype='auto'")
    if dtype == "float16" and device.type == "cpu":
        warn_caller("dtype='float16' on the CPU is slow and some CPU kernels do not support it; "
                    "using float32 instead (pass dtype='bfloat16' or 'int8' for a smaller CPU model)")
        return "float32"
    return dtype


def place_model(model: nn.Module, device=None, dtype="auto", many_rows: bool = True) -> tuple[nn.Module, Placement]:
    """Move `model` to the chosen device and precision, in eval mode; return it with the Placement.

    many_rows: whether the model's matrix products have many rows (encoders, beams of a batch) or
    a few (token-by-token decoding); int8 packs its weights for the kernels that suit them.
    """
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    model.eval()
    if resolved_device.type == "cpu":
        reuse_freed_memory()
    if resolved_dtype == "int8":
        engine = int8_engine(many_rows)
        model = fuse_tanh_gelu(quantize_linear_layers(model.to(torch.float32), engine=engine))
        release_weight_file_pages()
        release_freed_heap()
        join_int8_projections(model, engine)  # after the float32 pages went: they do not add up at the peak
        release_freed_heap()
    else:
        model = model.to(device=resolved_device, dtype=DTYPES[resolved_dtype])
        if resolved_device.type == "cpu":
            store_head_by_columns(model)
    return model, Placement(resolved_device, resolved_dtype)


def store_head_by_columns(model: nn.Module) -> None:
    """Keep the LM head's weight (vocab, hidden) in column-major order, (hidden, vocab) in memory.

    The head is the largest product of a decoding step (GPT-2: 38.6M of 124M weights), and a CPU
    multiplies the few rows of a step faster by a row-major (hidden, vocab) matrix than by the
    transposed view of a row-major (vocab, hidden) one: measured here, greedy decoding gains 4% at
    batch 1 and 7-19% at batch 8 (SmolLM2, GPT-2). The values are the same, only their order in
    memory changes; tied input embeddings share the new tensor, so no memory is added (a lookup in it
    reads with a stride: ~10 ms more for a prefill of 4,000 tokens).
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, nn.Linear) or not head.weight.is_contiguous():
        return
    embeddings = model.get_input_embeddings()
    tied = embeddings is not None and embeddings.weight is head.weight
    with torch.no_grad():
        head.weight = nn.Parameter(head.weight.t().contiguous().t(), requires_grad=head.weight.requires_grad)
    if tied:
        embeddings.weight = head.weight
    model._register_state_dict_hook(contiguous_state)


def contiguous_state(module, state_dict, prefix, local_metadata):
    """A state dict of contiguous tensors, as `save_pretrained` and safetensors need, for a model whose head
    is stored by columns; tensors that share storage still share it (tied weights stay tied)."""
    copies = {}
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and not value.is_contiguous():
            state_dict[name] = copies.setdefault(value.data_ptr(), value.contiguous())
    return state_dict


MADV_PAGEOUT = 21


def release_weight_file_pages() -> int:
    """Drop this process's resident pages of read-only safetensors mappings; the bytes released.

    Why: from_pretrained maps the float32 file and quantizing reads every page of it; the mapping
    outlives the float32 weights (transformers keeps it open), so an int8 model's RSS was its int8
    weights plus the whole float32 file (distilbert: +165 MB, more than the float32 model's own RSS).
    MADV_PAGEOUT (Linux 5.4+) asks the kernel to reclaim the mapping's pages now: clean file pages
    are dropped and a tensor still reading them (an embedding) faults them back in from the file;
    a page written since mapping (copy-on-write) is never lost, only swapped or kept. Unlike
    MADV_DONTNEED it cannot discard a change, so it is safe on transformers' private writable
    mapping. Elsewhere (other systems, older kernels) it does nothing.
    """
    import ctypes

    maps = Path("/proc/self/maps")
    libc = c_library()
    if not maps.is_file() or libc is None or not hasattr(libc, "madvise"):
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for line in maps.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[-1].endswith(".safetensors"):
            start, end = (int(address, 16) for address in fields[0].split("-"))
            if libc.madvise(start, end - start, MADV_PAGEOUT) == 0:
                released += end - start
    return released


def release_freed_heap() -> None:
    """Give the float32 copies freed by quantizing back to the OS.

    Why: glibc keeps freed blocks for reuse, so after quantizing GPT-2 (its Conv1D weights are copied
    transposed, then quantized, then freed) the process stayed at the load's peak: 1.3 GB resident
    for a model whose int8 weights and float32 embedding take 170 MB. Linux/glibc only; elsewhere a no-op.
    """
    import gc

    gc.collect()
    libc = c_library()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


@cache
def c_library():
    """The C library (ctypes), whose memory calls (madvise, malloc_trim, mallopt) nopipe makes; None if absent."""
    import ctypes
    import ctypes.util

    try:  # where find_library cannot tell (no ldconfig), the process's own symbols hold the C library
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None


def fuse_tanh_gelu(model: nn.Module) -> nn.Module:
    """Replace transformers' NewGELUActivation (GPT-2, T5 v1.1/flan-t5: the tanh approximation written as
    seven tensor operations) by GELUTanh, the same formula in one fused torch kernel.

    Why: in an int8 decoding step the activation is a cost of its own (GPT-2, 8 rows: 50 us against 23
    per layer); the two differ by rounding only (2.4e-7 at most on unit-scale inputs), so only int8
    models, which are not exact anyway, get it: float32 keeps transformers' own operations.
    """
    from transformers.activations import GELUTanh, NewGELUActivation

    for name, child in list(model.named_children()):
        if isinstance(child, NewGELUActivation):
            setattr(model, name, GELUTanh())
        else:
            fuse_tanh_gelu(child)
    return model


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
REUSE_BYTES = 1 << 30


@cache
def reuse_freed_memory() -> bool:
    """Keep freed blocks of up to 1 GiB in the process for the next tensors (glibc's malloc thresholds);
    whether it was set. Once per process, process-wide.

    Why: by default glibc serves a block above its mmap threshold (128 KiB, rising to at most 32 MiB as
    blocks are freed) with fresh pages from the kernel, and hands the heap's free top back, so the large
    temporaries of every step (the scores of 16 inputs x 4 beams over a 50k vocabulary are 12.9 MB per
    tensor, several per step) were new pages, faulted in one by one, on every step: measured on
    distilbart-cnn int8, beam 4, 16 inputs, the same run gave 134 to 240 tokens/s from one process to
    the next, and 235-258 with both thresholds at 1 GiB. The cost: memory freed after a peak stays with
    the process (malloc_trim gives it back; nopipe calls it after quantizing). Linux/glibc only.
    """
    libc = c_library()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, REUSE_BYTES)) and bool(libc.mallopt(M_TRIM_THRESHOLD, REUSE_BYTES))


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """Replace GPT-2's Conv1D layers (a transposed Linear) by nn.Linear, so quantization reaches them."""
    from transformers.pytorch_utils import Conv1D

    for name, child in list(model.named_children()):
        if isinstance(child, Conv1D):
            linear = nn.Linear(child.weight.shape[0], child.weight.shape[1])
            linear.weight.data = child.weight.data.t().contiguous()
            linear.bias.data = child.bias.data
            setattr(model, name, linear)
        else:
            conv1d_to_linear(child)
    return model


@cache
def cpu_flags() -> frozenset:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return frozenset()
    for line in cpuinfo.read_text(errors="ignore").splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_has_amx() -> bool:
    """Intel AMX (Sapphire Rapids and later): matrix tiles that oneDNN's int8 kernels use."""
    return "amx_int8" in cpu_flags()


def cpu_has_vnni() -> bool:
    """An int8 dot-product instruction (AVX512-VNNI, AVX-VNNI or AMX) that sums u8 x s8 products in
    32 bits; without one, fbgemm's kernels pair products in 16 bits and 8-bit activations can overflow."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def int8_engine(many_rows: bool) -> str:
    """The quantized engine whose kernels suit the model's matrix products.

    Measured on 2 cores with AMX (a Xeon, torch 2.13): oneDNN's kernels are 1.3-3x
    faster than fbgemm's from ~16 rows up (a 1024 x 50264 LM head at 32 rows: 1.5 ms against 5.0),
    and slightly slower on 1-8 rows. Elsewhere PyTorch's own choice stays.
    """
    if many_rows and cpu_has_amx() and "onednn" in torch.backends.quantized.supported_engines:
        return "onednn"
    return torch.backends.quantized.engine


@contextmanager
def quantized_engine(engine: str):
    """Pack weights for `engine`; a packed weight keeps its kernels afterwards, whatever the global engine."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def quantize_linear_layers(model: nn.Module, engine: str | None = None) -> nn.Module:
    """Dynamic int8 quantization of every linear layer, the LM head included: weights are int8 with a
    scale per output channel, activations are quantized on the fly per batch, so no calibration data
    is needed.

    engine: the quantized engine to pack for (default: PyTorch's current one).
    Per-channel weights and, where the CPU has VNNI, 8-bit activations (FullRangeLinear) instead of
    torch's default (one weight scale per matrix, 7-bit activations): measured on SmolLM2-135M decoding
    one token at a time (256 steps, teacher-forced), int8 picks float32's next token 89.9% of the time
    instead of 79.4%, at the same speed.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig

    model = conv1d_to_linear(model)
    linear = FullRangeLinear if cpu_has_vnni() else torch.ao.nn.quantized.dynamic.Linear
    with warnings.catch_warnings(), quantized_engine(engine or torch.backends.quantized.engine):
        # torch marks the eager quantization API as deprecated in favour of torchao, which is not
        # a dependency of ours; the API still works and is what we measure.
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig},
                                                      dtype=torch.qint8, mapping={nn.Linear: linear}, inplace=True)


class FullRangeLinear(torch.ao.nn.quantized.dynamic.Linear):
    """torch's dynamic int8 Linear with activations quantized to all 8 bits (torch's own uses 7, so that
    CPUs without VNNI cannot overflow their 16-bit pair sums; only chosen where the CPU has VNNI)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False).to(x.dtype)


# Projections that a module's forward calls in this order on one tensor, each group with the name of
# its joined product. By class name: an encoder's "...SelfAttention" module (BERT, RoBERTa, XLM-R,
# ELECTRA; DistilBERT).
SELF_ATTENTION_PROJECTIONS = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"))
# By the module's name in its parent, in an encoder-decoder model: its self-attention (BART, Marian, M2M100:
# `self_attn`; T5: `SelfAttention`), whose keys and values read the states its queries read (its
# cross-attention's read the encoder's), and T5's gated feed-forward (`wi_0`, `wi_1`).
PROJECTIONS_BY_MODULE_NAME = {"self_attn": (("q_proj", "k_proj", "v_proj"), "qkv_proj"),
                              "SelfAttention": (("q", "k", "v"), "qkv_proj"),
                              "DenseReluDense": (("wi_0", "wi_1"), "wi")}


def join_int8_projections(model: nn.Module, engine: str) -> None:
    """Stack the int8 projections that read one input into one product each: an encoder's query, key
    and value, a seq2seq model's self-attention q/k/v and T5's wi_0/wi_1, and where the lean Llama
    forward runs, each layer's q/k/v and gate/up
    (decoding/joined_projections.py says why: one product instead of several, and the input measured
    and quantized once)."""
    from decoding.joined_projections import join_projections

    for module, names, joined_name in list(projections_that_share_an_input(model)):
        product = stacked_int8_linear([getattr(module, name) for name in names], engine)
        if product is not None:
            join_projections(module, names, joined_name, product)


def projections_that_share_an_input(model: nn.Module):
    """(module, projection names, joined name) for each group of projections the model's forward
    (or the lean Llama forward) calls on one tensor, in the order of the names."""
    from decoding import llama_step

    if llama_step.applies(model):
        for layer in model.model.layers:
            yield layer.self_attn, ("q_proj", "k_proj", "v_proj"), "qkv_proj"
            yield layer.mlp, ("gate_proj", "up_proj"), "gate_up_proj"
        return
    seq2seq = getattr(model.config, "is_encoder_decoder", False)
    for qualified_name, module in model.named_modules():
        for names, joined_name in projection_groups(qualified_name, module, seq2seq):
            if all(hasattr(module, name) for name in names):
                yield module, names, joined_name


def projection_groups(qualified_name: str, module: nn.Module, seq2seq: bool) -> list[tuple[tuple[str, ...], str]]:
    """The (projection names, joined name) groups `module` may hold, known by its class name or, in a
    seq2seq model, by its name in its parent (the last part of `qualified_name`). Decoder-only models
    other than the lean pass's Llama keep their separate products: `self_attn` there is not measured."""
    groups = [(names, "qkv_proj") for names in SELF_ATTENTION_PROJECTIONS] \
        if type(module).__name__.endswith("SelfAttention") else []
    by_name = PROJECTIONS_BY_MODULE_NAME.get(qualified_name.rpartition(".")[2]) if seq2seq else None
    return groups + ([by_name] if by_name else [])


def stacked_int8_linear(linears: list[nn.Module], engine: str) -> nn.Module | None:
    """One dynamic-int8 linear whose output is the outputs of `linears` (int8 linears of one input size)
    side by side, packed for `engine`; None when they cannot be stacked exactly (not all int8 linears of
    one class, which sets how activations are quantized, and one input size; a scale for a whole matrix
    rather than per output channel; a bias on some only)."""
    if not all(isinstance(linear, torch.ao.nn.quantized.dynamic.Linear) for linear in linears):
        return None
    if len({(type(linear), linear.in_features) for linear in linears}) != 1:
        return None
    weights, biases = zip(*(linear._packed_params._weight_bias() for linear in linears))
    per_channel = (torch.per_channel_affine, torch.per_channel_symmetric)
    if any(weight.qscheme() not in per_channel or weight.q_per_channel_axis() != 0 for weight in weights):
        return None
    if len({bias is None for bias in biases}) > 1:
        return None
    weight = torch._make_per_channel_quantized_tensor(
        torch.cat([weight.int_repr() for weight in weights]),
        torch.cat([weight.q_per_channel_scales() for weight in weights]),
        torch.cat([weight.q_per_channel_zero_points() for weight in weights]), 0)
    bias = None if biases[0] is None else torch.cat(biases)
    stacked = type(linears[0])(weight.shape[1], weight.shape[0], dtype=torch.qint8)
    with quantized_engine(engine):
        stacked.set_weight_bias(weight, bias)
    return stacked
