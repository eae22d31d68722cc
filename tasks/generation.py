"""What every generation task shares: construction, the settings of a call, the model call, and reading its output.

`GenerationRunner` is the base of `TextGenerator` (decoder-only) and `Seq2SeqRunner` (summarization,
translation, text2text). A subclass says which model family it takes, which `task_specific_params`
apply, and how its inputs become token ids; the rest is here:

    resolve      options of a call -> (DecodingConfig, hooks), once per call (tasks/settings.py)
    generate_rows  a padded batch -> decoding.generate -> one (num_return_sequences, len) tensor per input
    run_batches  inputs one at a time in order (as the pipeline), or length-sorted batches

Prompts run one at a time in the caller's order by default, as in the pipeline (so seeded sampling
draws the same numbers), or in length-sorted batches; a batch's rows are cut back to the length the
prompt would have had alone. Text is decoded with the 4.57.6 clean-up of tokenization spaces, which
transformers 5 no longer applies to BPE tokenizers (GPT-2, BART) even when asked.
"""

import os
from collections.abc import Callable, Sequence

import torch

from core.batching import check_batch_size, run_in_sorted_batches
from core.runner import TaskRunner
from decoding import DecodingConfig, StopCriteria, generate
from tasks.settings import CHOSEN_BY_THE_USER, check_options, merge_hooks, resolve_settings, split_hooks, task_params


class GenerationRunner(TaskRunner):
    """A model that writes text, with the decoding settings of its task. Subclasses set `task`,
    `pipeline_defaults` and `encoder_decoder`, and write preprocess/forward/postprocess."""

    task = "text2text-generation"  # the key into config.task_specific_params
    pipeline_defaults: dict = {}
    encoder_decoder = True  # which model family the task takes

    def __init__(self, model, tokenizer, placement=None, *, batch_size: int = 1, **options):
        """options: decoding settings and hooks (logits_processors, strategy) used by every call (a call's
        own override them).

        batch_size=1 by default, as the pipeline: each input is generated alone, in order, so nothing
        depends on which inputs share a batch. Larger batches are faster.
        """
        super().__init__(model, tokenizer, placement)
        self.check_model_family(model)
        self.batch_size = check_batch_size(batch_size)
        self._assistants = {}  # "int8" or a folder -> the loaded assistant model, made once per runner
        self.settings, self.hooks = split_hooks(check_options(self.with_assistant_model(options)))

    def check_model_family(self, model) -> None:
        """Refuse a decoder-only model for a seq2seq task and the reverse, naming the runner to use."""
        if bool(model.config.is_encoder_decoder) == self.encoder_decoder:
            return
        if self.encoder_decoder:
            raise ValueError(f"{type(self).__name__} needs an encoder-decoder model (T5, BART, Marian, M2M100...), "
                             f"got {type(model).__name__}; for a decoder-only model use TextGenerator")
        raise ValueError(f"{type(self).__name__} needs a decoder-only model (GPT-2, Llama, SmolLM2...), got "
                         f"{type(model).__name__}; for an encoder-decoder model use Text2TextGenerator")

    # -- settings ----------------------------------------------------------------------------------

    def task_settings(self, **context) -> dict:
        """The decoding settings of the task's `task_specific_params` (a subclass may pick another key)."""
        return task_params(self.model, self.task)[0]

    def adjust_settings(self, config: DecodingConfig, **context) -> DecodingConfig:
        """A subclass's last word on the resolved settings (e.g. lengths that grow with a prefix)."""
        return config

    def resolve(self, options: dict, **context) -> tuple[DecodingConfig, dict]:
        """(settings, hooks) of one call: its options over the constructed ones, layered as in tasks/settings.py."""
        settings, call_hooks = split_hooks(check_options(self.with_assistant_model(options)))
        config = resolve_settings(self.model, self.tokenizer, call=settings, constructed=self.settings,
                                  task_settings=self.task_settings(**context), defaults=self.pipeline_defaults)
        return self.adjust_settings(config, **context), merge_hooks(self.hooks, call_hooks)

    def with_assistant_model(self, options: dict) -> dict:
        """assistant_model as decoding takes it, a model: "int8" is this model's int8 copy, a folder is loaded
        by this runner's class, a runner gives its model (each made once per runner and kept)."""
        value = options.get("assistant_model")
        if value is None or isinstance(value, torch.nn.Module):
            return options
        if hasattr(value, "model") and isinstance(value.model, torch.nn.Module):
            return {**options, "assistant_model": value.model}
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"assistant_model must be a model, a runner, a folder or 'int8', got {type(value).__name__}")
        key = str(value)
        if key not in self._assistants:
            self._assistants[key] = self.int8_copy() if key == "int8" else type(self).from_pretrained(key).model
        return {**options, "assistant_model": self._assistants[key]}

    def int8_copy(self):
        """This model with its linear layers in dynamic int8, as its own assistant (the float32 model stays)."""
        import copy

        from core.device import place_model

        if str(self.placement.device).split(":")[0] != "cpu":
            raise ValueError("assistant_model='int8' is a CPU int8 copy; on a GPU pass a smaller model instead")
        return place_model(copy.deepcopy(self.model).float(), device="cpu", dtype="int8", many_rows=False)[0]

    def decoding_config(self, **options) -> DecodingConfig:
        """The settings a call with these options would decode with; `.sources` says who chose each."""
        return self.resolve(options)[0]

    def explain(self, **options) -> str:
        """Why each setting of such a call has its value: "num_beams = 4 (pipeline default)", one per line."""
        return self.decoding_config(**options).explain()

    @staticmethod
    def chosen_by_the_user(config: DecodingConfig, *names: str) -> bool:
        """Whether the caller (now or at construction) set one of `names`."""
        return any(config.sources.get(name) in CHOSEN_BY_THE_USER for name in names)

    # -- running -----------------------------------------------------------------------------------

    def generate_rows(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, config: DecodingConfig,
                      hooks: dict, left_padding: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Generate for a padded batch (batch, len): one (num_return_sequences, len) tensor per input, on the CPU,
        each cut to where its own rows stopped (as if it had run alone) and without its left padding."""
        batch = self.to_device({"input_ids": input_ids, "attention_mask": attention_mask})
        output = generate(self.model, batch["input_ids"], batch["attention_mask"], tokenizer=self.tokenizer,
                          config=config, **hooks)
        sequences = output.sequences.cpu()
        sequences = sequences.reshape(input_ids.shape[0], -1, sequences.shape[-1])
        start_length = 1 if self.encoder_decoder else input_ids.shape[1]
        return split_batch_output(sequences, start_length, config, self.tokenizer, left_padding)

    def run_batches(self, items: list, lengths: list[int], single: bool, batch_size: int | None,
                    run_batch: Callable[[list], list]) -> list:
        """One result per item, in order; see `run_generation_batches`."""
        batch_size = self.batch_size if batch_size is None else check_batch_size(batch_size)
        if not single:
            draw_like_the_pipeline_dataloader()
        return run_generation_batches(items, lengths, batch_size, run_batch)


# -- running and reading the output --------------------------------------------------------------


def run_generation_batches(items: Sequence, lengths: Sequence[int], batch_size: int,
                           run_batch: Callable[[list], list]) -> list:
    """One result per item, in order. batch_size=1 runs the items in the caller's order, like the
    pipeline, so a seeded sampling call draws the same random numbers; larger batches are length-sorted."""
    if batch_size == 1:
        return [run_batch([item])[0] for item in items]
    return run_in_sorted_batches(items, lengths, batch_size, run_batch)


def draw_like_the_pipeline_dataloader() -> None:
    """Consume the one random number a pipeline draws before it runs a *list* of inputs.

    The pipelines iterate over a list with a torch DataLoader, and creating its iterator draws an
    int64 seed from the global generator (torch/utils/data/dataloader.py, `_BaseDataLoaderIter`).
    A single input skips the DataLoader. Drawing the same number keeps seeded sampling over a list
    identical to the pipeline's; it changes nothing else.
    """
    torch.empty((), dtype=torch.int64).random_()


def finished_lengths(sequences: torch.Tensor, start_length: int, stop: StopCriteria) -> torch.Tensor:
    """Where each row stopped: sequences (rows, len) -> (rows,) lengths, counted like `sequences`.

    A row stops at its first EOS id or stop string after `start_length` (the prompt, or the decoder
    start token), else at the end. What follows in the row is padding.
    """
    rows, length = sequences.shape
    ends = torch.full((rows,), length, dtype=torch.long)
    done = torch.zeros(rows, dtype=torch.bool)
    for end in range(start_length + 1, length):
        now = stop(sequences[:, :end]).cpu() & ~done
        ends[now] = end
        done |= now
        if bool(done.all()):
            break
    return ends


def split_batch_output(sequences: torch.Tensor, start_length: int, config: DecodingConfig, tokenizer,
                       left_padding: Sequence[int] | None = None) -> list[torch.Tensor]:
    """A batch's output, one (num_return_sequences, len) tensor per prompt, as if it had run alone.

    sequences: (batch, num_return_sequences, len). In a batch every row runs to the longest one;
    alone, a prompt stops when its own rows have stopped, so the extra padding is cut off here.
    left_padding: pad tokens in front of each prompt (decoder-only batches), removed too.
    """
    batch, per_prompt, length = sequences.shape
    left_padding = left_padding or [0] * batch
    if batch == 1:
        return [sequences[0, :, left_padding[0]:]]
    stop = StopCriteria(length, config.eos_ids, config.stop_strings, tokenizer)
    ends = finished_lengths(sequences.reshape(batch * per_prompt, length), start_length, stop)
    ends = ends.reshape(batch, per_prompt).max(dim=1).values
    return [sequences[index, :, left_padding[index]:int(ends[index])] for index in range(batch)]


def clean_up_tokenization(text: str) -> str:
    """The 4.57.6 `clean_up_tokenization`: no space before punctuation and English contractions."""
    return (text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
            .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
            .replace(" 've", "'ve").replace(" 're", "'re"))


def decode_text(tokenizer, token_ids, *, skip_special_tokens: bool = True,
                clean_up_tokenization_spaces: bool = False) -> str:
    """Token ids -> text as the 4.57.6 pipelines decoded it (the clean-up applied by us, for every tokenizer)."""
    text = tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)
    return clean_up_tokenization(text) if clean_up_tokenization_spaces else text
