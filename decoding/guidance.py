"""Classifier-free guidance for decoder-only models (`guidance_scale`), as 4.57.6's
UnbatchedClassifierFreeGuidanceLogitsProcessor.

Each step runs the model a second time on an "unconditional" input that grows by the same tokens:
the negative prompt (`negative_prompt_ids`, `negative_prompt_attention_mask`) when given, else only
the prompt's last token. Both distributions are log-softmaxed and the scores moved away from the
unconditional one: uncond + scale * (cond - uncond), so scale > 1 follows the prompt more closely.

The unconditional forward keeps its own cache and passes no positions (the model counts them from its
cache), exactly as 4.57.6 does; with beams its rows are not reordered with the beams, also as there.
This is the one processor that calls the model, so generate() builds it (`guidance_processor`) and
hands it to `build_processors`, which puts it first.
"""

import torch


def check_negative_rows(negative_ids: torch.Tensor | None, rows: int) -> None:
    """The negative prompt needs one row per generated row (the unconditional input grows by each row's token)."""
    if negative_ids is not None and negative_ids.shape[0] != rows:
        raise ValueError(f"negative_prompt_ids has {negative_ids.shape[0]} rows but the call generates {rows}; give one "
                         "row per generated row (prompts x num_beams or num_return_sequences)")


class UnconditionalGuidance:
    """The guidance processor of one generate() call: (input_ids, scores) -> guided scores.

    Holds the unconditional input, mask and cache between steps (one object per call, so calls do not
    share state).
    """

    def __init__(self, model, scale: float, negative_ids: torch.Tensor | None, negative_mask: torch.Tensor | None):
        self.model = model
        self.scale = scale
        self.ids = negative_ids
        self.mask = negative_mask
        self.cache = None
        self.first = True

    def unconditional_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits of the unconditional input's last position, (rows or 1, vocab) float32; advances one token."""
        if self.first:
            check_negative_rows(self.ids, input_ids.shape[0])
            if self.ids is None:
                self.ids = input_ids[:, -1:]
            if self.mask is None:
                self.mask = torch.ones_like(self.ids, dtype=torch.long)
            ids, self.first = self.ids, False
        else:
            self.mask = torch.cat([self.mask, torch.ones_like(input_ids[:, -1:], dtype=torch.long)], dim=1)
            ids = self.ids = input_ids[:, -1:]
        outputs = self.model(ids, attention_mask=self.mask, use_cache=True, cache=self.cache, return_dict=True)
        self.cache = outputs.cache
        return outputs.logits[:, -1].float()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = torch.nn.functional.log_softmax(scores, dim=-1)
        unconditional = torch.nn.functional.log_softmax(self.unconditional_logits(input_ids), dim=-1)
        return self.scale * (scores - unconditional) + unconditional


def guidance_processor(model, config) -> UnconditionalGuidance | None:
    """The guidance processor `config` asks for (guidance_scale set and not 1), on the model's device, or None."""
    if config.guidance_scale is None or config.guidance_scale == 1:
        return None
    device = model.device
    ids, mask = config.negative_prompt_ids, config.negative_prompt_attention_mask
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    vocab = getattr(embeddings, "num_embeddings", None)
    if ids is not None and vocab is not None and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(f"negative_prompt_ids holds ids outside the model's {vocab} embeddings "
                         f"({int(ids.min())}..{int(ids.max())}); tokenize the negative prompt with the model's tokenizer")
    return UnconditionalGuidance(model, config.guidance_scale, ids.to(device) if ids is not None else None,
                                 mask.to(device) if mask is not None else None)
