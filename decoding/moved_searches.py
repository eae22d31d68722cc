"""The strategies transformers 4.56 moved to the hub, as searches (decoding/search.py) a caller can pass
as `generate(..., search=...)` and that generate() picks from 4.x's keywords (strategy_options.py).

Diverse and constrained beam search start where every search starts, after nopipe's prefill:
`search(model, call)` with the prepared call. Contrastive search and DoLa read hidden states of the
prompt (contrastive: the last layer's at every position; DoLa: every layer's at the last one), which
the plain prefill does not keep, so they run their own prefill: they say so with `own_prefill = True`
and receive the prompt instead (search.Prompt).

None of them feeds a trace, scores or a stream; generate() refuses those hooks by name with them.
"""

from decoding.constrained_beam import check_constrained_options, constrained_beam_loop
from decoding.contrastive import contrastive_search
from decoding.diverse_beam import check_diverse_beam_options, group_beam_loop
from decoding.dola import dola_generate
from decoding.search import Found, MovedStrategy, Prompt


class ContrastiveSearch(MovedStrategy):
    """Contrastive search (penalty_alpha, top_k): the top-k candidate least like the text so far wins."""

    name, own_prefill = "contrastive", True

    def __init__(self, penalty_alpha: float, top_k: int):
        self.penalty_alpha, self.top_k = penalty_alpha, top_k

    def __call__(self, model, prompt: Prompt) -> Found:
        return Found(contrastive_search(model, prompt.input_ids, prompt.attention_mask, penalty_alpha=self.penalty_alpha,
                                        top_k=self.top_k, config=prompt.config, tokenizer=prompt.tokenizer,
                                        logits_processors=prompt.logits_processors))


class DoLa(MovedStrategy):
    """DoLa (dola_layers): the final layer's scores contrasted with an earlier layer's."""

    name, own_prefill = "dola", True

    def __init__(self, dola_layers):
        self.dola_layers = dola_layers

    def __call__(self, model, prompt: Prompt) -> Found:
        return Found(dola_generate(model, prompt.input_ids, prompt.attention_mask, dola_layers=self.dola_layers,
                                   config=prompt.config, tokenizer=prompt.tokenizer,
                                   logits_processors=prompt.logits_processors))


class DiverseBeamSearch(MovedStrategy):
    """Diverse beam search (num_beam_groups, diversity_penalty): beam groups pushed apart by a Hamming penalty."""

    name = "diverse_beam"

    def __init__(self, num_beam_groups: int, diversity_penalty: float):
        self.num_beam_groups, self.diversity_penalty = num_beam_groups, diversity_penalty

    def __call__(self, model, call) -> Found:
        config = call.config
        check_diverse_beam_options(self.num_beam_groups, self.diversity_penalty, num_beams=config.num_beams,
                                   do_sample=config.do_sample)
        return Found(*group_beam_loop(model, call, num_beam_groups=self.num_beam_groups,
                                      diversity_penalty=self.diversity_penalty))


class ConstrainedBeamSearch(MovedStrategy):
    """Constrained beam search (force_words_ids / constraints): beams that must contain given phrases."""

    name = "constrained"

    def __init__(self, force_words_ids=None, constraints=None, num_beam_groups: int = 1):
        self.force_words_ids, self.constraints, self.num_beam_groups = force_words_ids, constraints, num_beam_groups

    def __call__(self, model, call) -> Found:
        config = call.config
        found = check_constrained_options(self.force_words_ids, self.constraints, num_beams=config.num_beams,
                                          do_sample=config.do_sample, num_beam_groups=self.num_beam_groups,
                                          vocab_size=call.logits.shape[-1])
        return Found(*constrained_beam_loop(model, call, found))


SEARCHES = {search.name: search for search in (ContrastiveSearch, DoLa, DiverseBeamSearch, ConstrainedBeamSearch)}


def moved_search(choice) -> MovedStrategy:
    """The search for a strategy chosen from 4.x keywords (strategy_options.StrategyChoice)."""
    return SEARCHES[choice.name](**choice.options)
