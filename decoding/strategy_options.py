"""Which of the strategies transformers 4.56 moved to the hub a `generate()` call asks for, from its keywords.

`split_strategy_options(settings)` takes the strategy keywords out of a call's settings (the rest are
DecodingConfig fields) and names the strategy the way 4.55.4's `GenerationConfig.get_generation_mode`
did: constraints first, then contrastive search (penalty_alpha > 0 and top_k > 1, greedy, one beam),
then diverse beam search (num_beams > 1 with groups or a diversity penalty), then DoLa. Where 4.55.4
warned and ignored a strategy keyword, nopipe refuses it (an option is never silently ignored).
decoding/moved_searches.py holds the search each one runs as.
"""

from dataclasses import dataclass, field

from decoding.contrastive import check_contrastive_options

STRATEGY_KEYWORDS = ("penalty_alpha", "dola_layers", "num_beam_groups", "diversity_penalty", "force_words_ids",
                     "constraints")


@dataclass
class StrategyChoice:
    """name: "contrastive", "dola", "diverse_beam", "constrained" or None (plain greedy/sampling/beam search);
    options: the strategy keywords its function takes."""

    name: str | None
    options: dict = field(default_factory=dict)


def split_strategy_options(settings: dict, *, defaults: dict | None = None) -> tuple[StrategyChoice, dict]:
    """(the strategy, the remaining settings). settings: a call's keywords; defaults: the resolved values of
    num_beams, do_sample and top_k (from the model's generation_config) when the call does not set them."""
    settings = dict(settings)
    picked = {name: settings.pop(name) for name in STRATEGY_KEYWORDS if name in settings}
    picked = {name: value for name, value in picked.items() if value is not None}
    resolved = {"num_beams": 1, "do_sample": False, "top_k": 50, **(defaults or {}), **settings}
    num_beams, do_sample, top_k = resolved["num_beams"], resolved["do_sample"], resolved["top_k"]
    penalty_alpha = picked.get("penalty_alpha")
    if "force_words_ids" in picked or "constraints" in picked:
        choice = StrategyChoice("constrained", {k: picked[k] for k in ("force_words_ids", "constraints", "num_beam_groups")
                                                if k in picked})
        refuse_others(picked, choice, ("penalty_alpha", "dola_layers", "diversity_penalty"))
        return choice, settings
    if penalty_alpha is not None and penalty_alpha != 0:
        check_contrastive_options(penalty_alpha, top_k, do_sample=do_sample, num_beams=num_beams,
                                  num_return_sequences=resolved.get("num_return_sequences", 1))
        choice = StrategyChoice("contrastive", {"penalty_alpha": penalty_alpha, "top_k": settings.pop("top_k", top_k)})
        refuse_others(picked, choice, ("dola_layers", "num_beam_groups", "diversity_penalty"))
        return choice, settings
    if picked.get("num_beam_groups", 1) != 1 or picked.get("diversity_penalty", 0.0) != 0.0:
        choice = StrategyChoice("diverse_beam", {"num_beam_groups": picked.get("num_beam_groups", 1),
                                                 "diversity_penalty": picked.get("diversity_penalty", 0.0)})
        refuse_others(picked, choice, ("dola_layers",))
        return choice, settings
    if "dola_layers" in picked:
        return StrategyChoice("dola", {"dola_layers": picked["dola_layers"]}), settings
    return StrategyChoice(None), settings


def is_active(name: str, value) -> bool:
    """Whether a strategy keyword asks for something (num_beam_groups=1 or diversity_penalty=0 do not)."""
    off = {"num_beam_groups": 1, "diversity_penalty": 0.0, "penalty_alpha": 0.0}
    return value is not None and (name not in off or value != off[name])


def refuse_others(picked: dict, choice: StrategyChoice, others: tuple[str, ...]) -> None:
    """A second strategy's keyword in the same call would be ignored (4.55.4 ignored it); refuse it instead."""
    for name in others:
        if is_active(name, picked.get(name)):
            raise ValueError(f"{name} cannot be combined with the {choice.name.replace('_', ' ')} options "
                             f"({', '.join(choice.options)}); drop one of them")
