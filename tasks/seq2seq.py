"""The recipe shared by text2text generation, summarization and translation: an encoder reads the text,
the decoder writes a new one.

    preprocess   texts            ->  token ids of `prefix + text`, one dict per text (length-checked)
    forward      a batch of them  ->  per text, output ids (num_return_sequences, len) from `decoding.generate`
    postprocess  one text's ids   ->  [{"<name>_text": ...}] (or "<name>_token_ids")

The three tasks differ only in data: the `task_specific_params` key they read ("summarization",
"translation_en_to_fr", ...), the prefix that comes with it, and the output key. Translation adds
language tokens (M2M100, NLLB, mBART) on top; see tasks/translation.py. Settings, batching and the
model call are every generation task's (tasks/generation.py).

As in the 4.57.6 pipelines: the model's `config.prefix` is prepended (distilbart-cnn's is " "), the
task's `task_specific_params` override the model's generation_config, `num_beams=4` is the default
even where the model's generation_config sets another (m2m100's 5), and the text is decoded with
`skip_special_tokens=True` and, unless asked, without cleaning up tokenization spaces. The pipelines'
length warnings (a summary allowed to be longer than its text, an input near a translation's
max_length) are Python warnings here, from each task's `check_lengths`.
"""

from dataclasses import dataclass, field

import torch
from transformers import AutoModelForSeq2SeqLM

from core.checks import (
    as_batch,
    check_flags,
    check_has_tokens,
    check_input_length,
    check_optional_flags,
    check_truncation,
    head_of_long_text,
)
from core.runner import answers_streams
from core.windows import max_input_tokens
from decoding import DEFAULT_NEW_TOKENS, DecodingConfig
from decoding.warn import warn_caller
from tasks.generation import GenerationRunner, decode_text
from tasks.settings import task_params


@dataclass(frozen=True)
class TaskRecipe:
    """What one seq2seq call adds to the plain model: text before the input, and decoding settings.

    src_lang/tgt_lang are set for tokenizers that mark languages with tokens (M2M100, NLLB, mBART).
    """

    name: str
    prefix: str = ""
    settings: dict = field(default_factory=dict)
    src_lang: str | None = None
    tgt_lang: str | None = None


def task_recipe(model, task: str) -> TaskRecipe:
    """The recipe the pipeline built for `task`: `config.prefix`, replaced by the task's own prefix if any."""
    settings, prefix = task_params(model, task)
    if prefix is None:
        prefix = getattr(model.config, "prefix", None) or ""
    return TaskRecipe(task, prefix, settings)


def first_offender(input_lengths: list[int], wrong) -> str | None:
    """"inputs[3] is 40 tokens long" for the first length where `wrong(length)`, with how many more; else None."""
    offenders = [index for index, length in enumerate(input_lengths) if wrong(length)]
    if not offenders:
        return None
    more = f" (and {len(offenders) - 1} more)" if len(offenders) > 1 else ""
    return f"inputs[{offenders[0]}] is {input_lengths[offenders[0]]} tokens long{more}"


def effective_max_length(config: DecodingConfig) -> int:
    """Where an encoder-decoder call stops: decoder start token + new tokens, as `decoding.generate` resolves it."""
    if config.max_new_tokens is not None:
        return 1 + config.max_new_tokens
    if config.max_length is not None:
        return config.max_length
    return 1 + DEFAULT_NEW_TOKENS


class Seq2SeqRunner(GenerationRunner):
    """An encoder-decoder model with its task recipe. Subclasses set `task` and `output_name`."""

    head = AutoModelForSeq2SeqLM
    task = "text2text-generation"  # the key into config.task_specific_params
    output_name = "generated"  # -> "generated_text" / "generated_token_ids"
    pipeline_defaults = {"num_beams": 4}
    encoder_decoder = True

    def __init__(self, model, tokenizer, placement=None, *, batch_size: int = 1, **options):
        super().__init__(model, tokenizer, placement, batch_size=batch_size, **options)
        self.recipe = task_recipe(model, self.task)

    # -- settings ----------------------------------------------------------------------------------

    def task_settings(self, recipe: TaskRecipe | None = None) -> dict:
        """The `task_specific_params` of the recipe (a translation pair has its own)."""
        return (recipe or self.default_recipe()).settings

    def adjust_settings(self, config: DecodingConfig, recipe: TaskRecipe | None = None) -> DecodingConfig:
        """A minimum from the checkpoint above the caller's maximum is lowered to it, with a warning.

        e.g. distilbart-cnn's min_length=56 with summarizer(text, max_length=50): the minimum cannot be
        met and generation runs to max_length, exactly what the pipeline did after a warning.
        """
        max_length = effective_max_length(config)
        if config.min_length <= max_length or self.chosen_by_the_user(config, "min_length", "min_new_tokens"):
            return config
        warn_caller(f"min_length={config.min_length} from the model's configuration is above "
                    f"max_length={max_length}; the output will have {max_length} tokens. "
                    "Pass min_length= to choose a minimum.")
        return config.with_settings(self.model, f"{config.sources['min_length']}, lowered to max_length",
                                    min_length=max_length)

    # -- preprocess --------------------------------------------------------------------------------

    def encode(self, text: str, recipe: TaskRecipe, **tokenizer_kwargs) -> dict:
        """Token ids of one text with the recipe's prefix (the tokenizer adds the model's special tokens)."""
        return self.tokenizer(recipe.prefix + text, **tokenizer_kwargs)

    def default_recipe(self) -> TaskRecipe:
        """The recipe of a call that names none (Translator may still lack a language pair)."""
        return self.recipe

    def preprocess(self, texts: list[str], recipe: TaskRecipe | None = None, truncation=False) -> list[dict]:
        """One {"input_ids", "attention_mask"} (lists of ints) per text.

        A text longer than the model reads is an error naming it, unless `truncation` is set
        (True or a tokenizer truncation strategy): then it is cut to the limit, with a warning.
        """
        recipe = recipe or self.default_recipe()
        truncation = check_truncation(truncation)
        limit = max_input_tokens(self.tokenizer, self.model.config)
        features = []
        for index, text in enumerate(texts):
            text, cut = head_of_long_text(text, limit, self.count_tokens) if truncation else (text, False)
            if not cut:
                check_has_tokens(self.tokenizer, text, f"inputs[{index}]")
            encoded = self.encode(text, recipe, verbose=False)  # we report the length ourselves
            if check_input_length(index, len(encoded["input_ids"]), limit, truncation, at_least=cut):
                encoded = self.encode(text, recipe, truncation=truncation, max_length=limit)
            features.append({"input_ids": list(encoded["input_ids"]),
                             "attention_mask": list(encoded["attention_mask"])})
        self.check_input_ids([feature["input_ids"] for feature in features])
        return features

    def check_lengths(self, input_lengths: list[int], max_length: int) -> None:
        """Warn when the output length looks wrong for these inputs (the pipelines did); see the subclasses."""

    # -- forward -----------------------------------------------------------------------------------

    def forward(self, features: list[dict], config: DecodingConfig, hooks: dict | None = None) -> list[torch.Tensor]:
        """Generate for a batch of texts: per text, output ids (num_return_sequences, len), on the CPU.

        Rows start with the decoder start token; a row that finished early is padded with the pad
        token, up to where the text's last row finished (as if the text had run alone).
        config: the call's resolved settings (`resolve`); hooks: logits_processors and strategy.
        """
        batch = self.tokenizer.pad(features, padding=True, return_tensors="pt")
        return self.generate_rows(batch["input_ids"], batch["attention_mask"], config, hooks or {})

    # -- postprocess -------------------------------------------------------------------------------

    def postprocess(self, output_ids: torch.Tensor, return_tensors: bool = False,
                    clean_up_tokenization_spaces: bool = False) -> list[dict]:
        """output_ids: (num_return_sequences, len) of one text -> one dict per returned sequence."""
        if return_tensors:
            return [{f"{self.output_name}_token_ids": ids} for ids in output_ids]
        return [{f"{self.output_name}_text": decode_text(self.tokenizer, ids, skip_special_tokens=True,
                                                          clean_up_tokenization_spaces=clean_up_tokenization_spaces)}
                for ids in output_ids]

    @answers_streams
    def __call__(self, inputs, **options):
        """Generate for one text or many; see `run` for the options."""
        return self.run(inputs, self.default_recipe(), **options)

    def run(self, inputs, recipe: TaskRecipe, *, truncation=False, return_tensors=None, return_text=None,
            clean_up_tokenization_spaces: bool = False, batch_size: int | None = None, **options):
        """The whole recipe. The result has the pipeline's shape:

        - one text: a list with one dict per returned sequence;
        - a list of texts: one dict per text, or, with num_return_sequences > 1, a list of dicts per text.

        return_tensors=True returns the token ids (a 1-D tensor per sequence) instead of the text;
        return_text is accepted for compatibility and, as in the pipeline, changes nothing.
        options: any decoding setting (max_length, min_length, num_beams, do_sample, ...), and the
        hooks of `decoding.generate`: logits_processors (or transformers' logits_processor) and strategy.
        """
        texts, single = as_batch(inputs)
        check_optional_flags(return_tensors=return_tensors, return_text=return_text)
        check_flags(clean_up_tokenization_spaces=clean_up_tokenization_spaces)
        truncation = check_truncation(truncation)
        config, hooks = self.resolve(options, recipe=recipe)
        features = self.preprocess(texts, recipe, truncation=truncation)
        lengths = [len(feature["input_ids"]) for feature in features]
        if config.max_new_tokens is None:  # the warnings are about max_length; max_new_tokens is meant as given
            self.check_lengths(lengths, effective_max_length(config))
        outputs = self.run_batches(features, lengths, single, batch_size,
                                   lambda batch: self.forward(batch, config, hooks))
        results = [self.postprocess(ids, bool(return_tensors), clean_up_tokenization_spaces) for ids in outputs]
        if single:
            return results[0]
        if all(len(result) == 1 for result in results):
            return [result[0] for result in results]
        return results
