"""Projections that read the same input, computed as one matrix product (Llama's q/k/v, and gate/up;
an encoder's query, key and value; a seq2seq model's self-attention q/k/v, and T5's wi_0/wi_1).

Why: at batch 1 a dynamic-int8 product costs ~20 us before its arithmetic (the input is measured and
quantized, the kernel dispatched), so a Llama decoding step, seven products a layer, is mostly that
overhead. Stacking the weights of the projections that read the same input (query, key and value;
gate and up) makes one product of each group: three fewer products a layer. SmolLM2-135M int8 at
batch 1: 18.9 -> 17.2 ms a step. Exact: the stacked weights keep their scale per output channel
and the input gets one scale either way (one per tensor), so each slice of the joined product equals
the projection it replaces, bit for bit, with torch's x86 kernels (what token-by-token decoding uses).
oneDNN's (models with many rows a product, on AMX) pick a kernel by the matrix's shape: at the
measured models' shapes (opus-mt, distilbart, m2m100-418m, flan-t5 at 1 to 130 rows; the 768- and
1024-wide encoders at 1 to 8,192) the slices are equal too, but at some small shapes (the test
fixtures' 32- to 128-wide layers) the wider product rounds one float32 step apart (~1e-7).

An encoder's batch of texts has many rows, where the gain is smaller but still there: the input is
measured and quantized once instead of three times (distilbert, bert-large: 6% a call; seq2seq
beam search, 64 rows a step: 1.5-4%).

core/device.py joins them when it quantizes a model the lean forward runs (decoding/llama_step.py),
which calls the joined product, and when it quantizes an encoder or a seq2seq model. transformers' own
forward (contrastive search, DoLa, a caller's `model(...)`, every encoder and seq2seq model) still
calls q_proj, k_proj and v_proj one by one: each becomes a `ProjectionPart`, and the first part's call
computes the joined product for the parts after it, which read the same input tensor, so that forward
does no more work than before either.
"""

from collections.abc import Sequence

import torch
from torch import nn


class JoinedProjections(nn.Module):
    """One product standing for several projections of the same input; forward returns their outputs."""

    def __init__(self, product: nn.Module, sizes: Sequence[int]):
        super().__init__()
        self.product = product
        self.sizes = list(sizes)
        self.pending = None  # (input, outputs) for the parts still to come; see output_for

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.product(states).split(self.sizes, dim=-1)

    def output_for(self, states: torch.Tensor, index: int) -> torch.Tensor:
        """The output of projection `index` on `states`, reusing the product of the call just before
        when it read this very tensor; the last part lets go of it.

        It assumes what transformers' forward does: the parts are called in order, on one tensor that
        nobody changes in place between the calls. Safe from threads: `pending` is read once and
        replaced whole, and a part only reuses outputs made from its own input object; when threads
        interleave their calls on one layer, a part recomputes the product (right, only slower).
        """
        pending = self.pending
        if pending is None or pending[0] is not states:
            pending = (states, self(states))
        self.pending = None if index == len(self.sizes) - 1 else pending
        return pending[1][index]


class ProjectionPart(nn.Module):
    """Stands in for one projection of a JoinedProjections in the model's own forward."""

    def __init__(self, joined: JoinedProjections, index: int, in_features: int):
        super().__init__()
        self.__dict__["joined"] = joined  # not a submodule: its weights belong to the joined module once
        self.index = index
        self.in_features = in_features
        self.out_features = joined.sizes[index]

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.joined.output_for(states, self.index)

    def extra_repr(self) -> str:
        return f"part {self.index} of a joined product, in_features={self.in_features}, out_features={self.out_features}"


def join_projections(module: nn.Module, names: Sequence[str], joined_name: str, product: nn.Module) -> None:
    """Put `product` (the projections `names` of `module` stacked in this order) in their place:
    `module.<joined_name>` computes them all, each name becomes a ProjectionPart of it."""
    projections = [getattr(module, name) for name in names]
    joined = JoinedProjections(product, [projection.out_features for projection in projections])
    setattr(module, joined_name, joined)
    for index, (name, projection) in enumerate(zip(names, projections)):
        setattr(module, name, ProjectionPart(joined, index, projection.in_features))


def joined_or_separate(module: nn.Module, joined_name: str, names: Sequence[str], states: torch.Tensor,
                       project) -> Sequence[torch.Tensor]:
    """The projections `names` of `states`: one product when `module` has them joined, else `project`
    (a function of a projection and the states) on each."""
    joined = getattr(module, joined_name, None)
    if isinstance(joined, JoinedProjections):
        return joined(states)
    return [project(getattr(module, name), states) for name in names]
