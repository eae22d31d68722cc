"""The green-list watermark of 4.57.6's generate() (`watermarking_config`, Kirchenbauer et al., 2023) and
its detector.

At each step the previous token (or the last `context_width` tokens) seeds a generator that splits
the vocabulary at random: a `greenlist_ratio` share of it is "green" and gets `bias` added to its
scores, so a watermarked text has far more green tokens than chance. The detector redoes the split
for every token of a text and counts: the z-score of the green count says how unlikely it is without
the watermark. The seeding ("lefthash": the previous token; "selfhash": the token itself too, by
rejection over the 40 best tokens) and the generator calls are transformers' own, so the green lists
and the scores are the same as WatermarkLogitsProcessor's and WatermarkDetector's.
"""

import math
from dataclasses import dataclass

import torch

DEFAULTS = dict(greenlist_ratio=0.25, bias=2.0, hashing_key=15485863, seeding_scheme="lefthash", context_width=1)
TABLE_SIZE = 1_000_003  # the random table selfhash seeds from
SELFHASH_CANDIDATES = 40  # the best tokens selfhash tries (the original implementation's number)


def watermark_settings(value) -> dict:
    """The settings of a transformers WatermarkingConfig or a dict of its fields, checked, with defaults filled in."""
    if type(value).__name__ == "SynthIDTextWatermarkingConfig":
        raise ValueError("watermarking_config: the SynthID watermark is not supported; use the green-list one "
                         "(transformers.WatermarkingConfig or a dict such as {'bias': 2.0})")
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        value = value.to_dict()
    if not isinstance(value, dict):
        raise TypeError(f"watermarking_config must be a transformers WatermarkingConfig or a dict of its fields, got {value!r}")
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"watermarking_config has unknown keys {unknown}; the known ones are {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **value}
    if settings["seeding_scheme"] not in ("lefthash", "selfhash"):
        raise ValueError("watermarking_config's seeding_scheme must be 'lefthash' or 'selfhash', "
                         f"got {settings['seeding_scheme']!r}")
    ratio = settings["greenlist_ratio"]
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio < 1:
        raise ValueError(f"watermarking_config's greenlist_ratio must be in (0, 1), got {ratio!r}")
    width = settings["context_width"]
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= 2**24:
        raise ValueError(f"watermarking_config's context_width must be an int >= 1, got {width!r}")
    bias = settings["bias"]
    if not isinstance(bias, (int, float)) or isinstance(bias, bool) or not math.isfinite(bias):
        raise ValueError(f"watermarking_config's bias must be a finite number, got {bias!r}")
    if not isinstance(settings["hashing_key"], int) or isinstance(settings["hashing_key"], bool):
        raise TypeError(f"watermarking_config's hashing_key must be an int, got {settings['hashing_key']!r}")
    return settings


class GreenLists:
    """The green list that follows a given sequence, for one vocabulary and one watermark's settings."""

    def __init__(self, settings: dict, vocab_size: int, device):
        self.settings = settings
        self.vocab_size = vocab_size
        self.size = int(vocab_size * settings["greenlist_ratio"])
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(settings["hashing_key"])
        self.selfhash = settings["seeding_scheme"] == "selfhash"
        self.table = torch.randperm(TABLE_SIZE, generator=self.generator, device=device) if self.selfhash else None

    def seed(self, sequence: torch.Tensor) -> None:
        """Seed the generator from the last `context_width` tokens of `sequence` (1-D), as transformers does."""
        tail = sequence[-self.settings["context_width"]:]
        key = self.settings["hashing_key"]
        if self.selfhash:
            a = self.table[tail % TABLE_SIZE] + 1
            b = self.table[tail[-1] % TABLE_SIZE] + 1
            seed = (key * a * b).min().item()
        else:
            seed = key * tail[-1].item()
        self.generator.manual_seed(seed % (2**64 - 1))

    def after(self, sequence: torch.Tensor) -> torch.Tensor:
        """The green token ids after `sequence` (1-D)."""
        self.seed(sequence)
        return torch.randperm(self.vocab_size, device=sequence.device, generator=self.generator)[:self.size]

    def selfhash_green(self, sequence: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """selfhash: those of the best tokens that are green when they seed their own list."""
        best = scores.sort(dim=-1, descending=True)[1]
        green = [best[i] for i in range(min(SELFHASH_CANDIDATES, len(best)))
                 if best[i] in self.after(torch.cat([sequence, best[i, None]], dim=-1))]
        return torch.tensor(green, device=sequence.device, dtype=torch.long)


def apply_watermark(scores: torch.Tensor, input_ids: torch.Tensor, lists: GreenLists) -> torch.Tensor:
    """Add the bias to each row's green tokens (WatermarkLogitsProcessor); rows shorter than the context: unchanged."""
    if input_ids.shape[-1] < lists.settings["context_width"]:
        return scores
    marked = scores.clone()
    for row, sequence in enumerate(input_ids):
        green = lists.selfhash_green(sequence, scores[row]) if lists.selfhash else lists.after(sequence)
        marked[row, green] = marked[row, green] + lists.settings["bias"]
    return marked


@dataclass(frozen=True)
class WatermarkScores:
    """Per text: tokens scored, green ones among them, and the z-score of that count (> 3 or so: watermarked)."""

    num_tokens_scored: list[int]
    num_green_tokens: list[int]
    z_score: list[float]


def watermark_z_scores(input_ids: torch.Tensor, watermarking_config, vocab_size: int, *,
                       bos_token_id: int | None = None, ignore_repeated_ngrams: bool = False) -> WatermarkScores:
    """How strongly each text of `input_ids` (batch, len) carries the watermark (WatermarkDetector).

    vocab_size: the model's (config.vocab_size). bos_token_id: dropped when the texts start with it
    (an encoder-decoder model's decoder start token), as transformers 5 does; some but not all: an error. ignore_repeated_ngrams
    counts each distinct n-gram once (transformers' detector keys its count by tensor identity, so
    there it never merges repeats).
    """
    settings = watermark_settings(watermarking_config)
    if bos_token_id is not None:
        starts = input_ids[:, 0] == bos_token_id
        if bool(starts.any()) != bool(starts.all()):
            raise ValueError(f"some texts start with bos_token_id={bos_token_id} and some do not; tokenize them the same way")
        if bool(starts.all()):
            input_ids = input_ids[:, 1:]
    lists = GreenLists(settings, vocab_size, input_ids.device)
    n = settings["context_width"] + (0 if lists.selfhash else 1)
    if input_ids.shape[-1] - settings["context_width"] < 1:
        raise ValueError(f"a text must have more than context_width={settings['context_width']} tokens to be scored")
    scored, greens = [], []
    for row in input_ids:
        ngrams = [tuple(row[i:i + n].tolist()) for i in range(len(row) - n + 1)]
        if ignore_repeated_ngrams:
            ngrams = list(dict.fromkeys(ngrams))
        prefixes = [torch.tensor(ngram if lists.selfhash else ngram[:-1], device=input_ids.device) for ngram in ngrams]
        green = [ngram[-1] in lists.after(prefix).tolist() for ngram, prefix in zip(ngrams, prefixes)]
        scored.append(len(ngrams))
        greens.append(sum(green))
    ratio = settings["greenlist_ratio"]
    z = [(g - ratio * t) / math.sqrt(t * ratio * (1 - ratio)) for g, t in zip(greens, scored)]
    return WatermarkScores(scored, greens, z)
