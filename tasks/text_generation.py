"""Text generation with a decoder-only model (GPT-2, Llama, SmolLM2), as `pipeline("text-generation")` of 4.57.6.

    generator = TextGenerator.from_pretrained("openai-community/gpt2")
    generator("The old lighthouse keeper", max_new_tokens=30, do_sample=False)
    # [{"generated_text": "The old lighthouse keeper ..."}]
    generator([{"role": "user", "content": "Name a river."}], max_new_tokens=20)     # a chat
    # [{"generated_text": [{"role": "user", ...}, {"role": "assistant", "content": "..."}]}]
    for piece in generator("Once upon a time", stream=True):
        print(piece, end="")

    preprocess   prompts (texts or chats)  ->  token ids of each prompt, checked against the context
    forward      a batch of them           ->  per prompt, ids (num_return_sequences, prompt + new tokens)
    postprocess  one prompt's ids          ->  [{"generated_text": ...}] (or "generated_token_ids")

As in the 4.57.6 pipeline:
- Defaults `max_new_tokens=256, do_sample=True, temperature=0.7`, over the model's generation_config
  (a model's own temperature gives way to 0.7, its top_p is used) and under its
  `task_specific_params["text-generation"]` (GPT-2's `do_sample=True, max_length=50`).
- The output text: the whole sequence is decoded, as many characters as the decoded prompt has are
  cut off, and with `return_full_text=True` (the default) the caller's prompt goes back in front, so
  a `prefix` is never shown. Decoding skips special tokens and cleans up tokenization spaces.
- A chat (a list of {"role", "content"} messages) goes through the tokenizer's chat template, with
  the assistant's turn opened, or continued when the last message is the assistant's. The answer is
  the message list with the reply appended (or the last message extended).
- One prompt gives a list with one dict per returned sequence; a list of prompts, a list of such lists.
- `logits_processor=` (a LogitsProcessorList) reaches the decoding loop, as the pipeline passed it to
  `generate()`; `logits_processors=` and `strategy=` are the same hooks under `decoding.generate`'s names.

Deliberate differences from the 4.57.6 pipeline: README, 'Where nopipe differs from 4.57.6'.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM

from core.checks import (
    as_batch,
    check_flags,
    check_has_tokens,
    check_input_length,
    check_optional_flags,
    check_text,
    check_truncation,
    head_of_long_text,
)
from core.runner import answers_streams
from core.windows import max_input_tokens
from decoding import DEFAULT_NEW_TOKENS, DecodingConfig
from decoding import stream as stream_pieces
from decoding.streaming import FinalText, check_can_stream, final_end, released
from decoding.warn import warn_caller
from tasks.generation import GenerationRunner, clean_up_tokenization, decode_text
from tasks.settings import task_params

FULL_TEXT, NEW_TEXT, TENSORS = "full_text", "new_text", "tensors"


# -- inputs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chat:
    """One conversation: messages {"role": ..., "content": ...}, oldest first."""

    messages: list


def as_chat(messages, name: str = "inputs") -> Chat:
    """Messages checked before the chat template sees them (its errors name neither message nor fix)."""
    if not messages:
        raise ValueError(f"{name} is an empty chat; pass at least one {{'role': ..., 'content': ...}} message")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"{name}[{index}] must be a message dict with 'role' and 'content' keys, got {message!r}")
        for key in ("role", "content"):
            if not isinstance(message[key], str):
                raise TypeError(f"{name}[{index}][{key!r}] must be a string, got {message[key]!r}; "
                                f"pass the message's {key} as text")
    return Chat(list(messages))


def check_prefix(prefix) -> str | None:
    """None (the model's own prefix) or the text to put before every prompt."""
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string (text put before every prompt, not shown in the answer) or None, "
                        f"got {prefix!r}")
    return prefix


def as_prompts(inputs) -> tuple[list, bool]:
    """Texts and chats as a list of `str | Chat`, and whether a single prompt was given.

    Like the pipeline: a list whose first item is a dict is one chat; a list of lists is many chats.
    """
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], dict):
        return [as_chat(inputs)], True

    def check_prompt(item, name):
        return as_chat(item, name) if isinstance(item, (list, tuple)) else check_text(item, name)

    return as_batch(inputs, check_prompt)


def left_pad(prompts: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Prompts of different lengths as one batch, padded on the left so that every prompt ends where
    generation starts: (input_ids, attention_mask), both (batch, longest), and the pad count of each."""
    longest = max(len(ids) for ids in prompts)
    padding = [longest - len(ids) for ids in prompts]
    input_ids = torch.tensor([[pad_token_id] * pad + ids for pad, ids in zip(padding, prompts)], dtype=torch.long)
    attention_mask = torch.tensor([[0] * pad + [1] * len(ids) for pad, ids in zip(padding, prompts)], dtype=torch.long)
    return input_ids, attention_mask, padding


def new_tokens_wanted(config: DecodingConfig, prompt_length: int) -> int:
    """How many tokens a call will add: max_new_tokens, else what max_length leaves after the prompt."""
    if config.max_new_tokens is not None:
        return config.max_new_tokens
    if config.max_length is not None:
        if config.max_length < prompt_length:
            raise ValueError(f"max_length={config.max_length} is shorter than the {prompt_length}-token prompt; "
                             "pass max_new_tokens to say how many tokens to add")
        return config.max_length - prompt_length
    return DEFAULT_NEW_TOKENS


def prompt_room(config: DecodingConfig, limit: int | None) -> int | None:
    """How long a truncated prompt may stay so that the new tokens still fit in the model's `limit`."""
    if limit is None:
        return None
    if config.max_new_tokens is None and config.max_length is not None:
        return min(limit, config.max_length) - 1  # max_length counts the prompt: leave one new token at least
    new_tokens = DEFAULT_NEW_TOKENS if config.max_new_tokens is None else config.max_new_tokens
    if new_tokens >= limit:
        raise ValueError(f"max_new_tokens={new_tokens} new tokens do not fit in the model's {limit} positions, "
                         f"even with a prompt of one token; pass max_new_tokens={limit - 1} or less")
    return limit - new_tokens


def keep_end_for_new_tokens(prompt_ids: list[int], new_tokens: int, limit: int) -> list[int]:
    """handle_long_generation="hole": drop the start of the prompt so prompt + new tokens fit in `limit`."""
    if len(prompt_ids) + new_tokens <= limit:
        return prompt_ids
    keep = limit - new_tokens
    if keep <= 0:
        raise ValueError(f"{new_tokens} new tokens do not fit in the model's {limit} positions, even with no prompt; "
                         "lower max_new_tokens")
    return prompt_ids[-keep:]


# -- outputs ---------------------------------------------------------------------------------------


def return_type(return_full_text=None, return_tensors=None, return_text=None) -> str:
    """What the answer holds, from the pipeline's three overlapping flags (at most one may be given)."""
    check_optional_flags(return_full_text=return_full_text, return_tensors=return_tensors, return_text=return_text)
    given = [name for name, value in (("return_full_text", return_full_text), ("return_tensors", return_tensors),
                                      ("return_text", return_text)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"{' and '.join(given)} are mutually exclusive; pass only one of them")
    if return_tensors:
        return TENSORS
    if return_full_text is False:
        return NEW_TEXT
    return FULL_TEXT


def full_answer(prompt, new_text: str, continue_final_message: bool | None = None):
    """The pipeline's full answer: the prompt text followed by the new text, or for a chat the
    messages with the reply as a new assistant message (or appended to a prefilled last one)."""
    if isinstance(prompt, str):
        return prompt + new_text
    messages = list(prompt.messages)
    if continue_final_message is None:
        continue_final_message = messages[-1]["role"] == "assistant"
    if continue_final_message:
        last = messages[-1]
        return messages[:-1] + [{"role": last["role"], "content": last["content"] + new_text}]
    return messages + [{"role": "assistant", "content": new_text}]


# -- streaming -------------------------------------------------------------------------------------


class StreamedNewText(FinalText):
    """The new text of a streamed call, released piece by piece, equal in the end to what the same
    call without `stream` returns with `return_full_text=False`.

    That text is `cleaned(prompt + new)[len(cleaned(prompt)):]`, the pipeline's character cut; with
    clean-up on, only the text before `decoding.streaming.final_end` is released until generation ends.
    """

    def __init__(self, prompt_text: str, clean_up_tokenization_spaces: bool):
        self.clean_up = clean_up_tokenization_spaces
        self.text = prompt_text
        self.shown = len(self.cleaned(prompt_text))  # the prompt's part is never shown

    def cleaned(self, text: str) -> str:
        return clean_up_tokenization(text) if self.clean_up else text

    def push(self, piece: str) -> str:
        """Add raw decoded text; return what became final (maybe "")."""
        self.text += piece
        end = final_end(self.text, clean_up=True) if self.clean_up else len(self.text)
        return self.release(self.cleaned(self.text[:end]))

    def finish(self) -> str:
        return self.release(self.cleaned(self.text))


# -- the task --------------------------------------------------------------------------------------


class TextGenerator(GenerationRunner):
    """A decoder-only language model that continues prompts and chats."""

    head = AutoModelForCausalLM
    task = "text-generation"  # the key into config.task_specific_params
    many_rows = False  # decoding feeds one token per prompt: int8 kernels for few rows
    pipeline_defaults = {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}
    encoder_decoder = False

    def __init__(self, model, tokenizer, placement=None, *, batch_size: int = 1, prefix: str | None = None,
                 **options):
        """options: decoding settings and hooks (logits_processors, strategy) used by every call (a call's
        own override them).

        prefix: text put before every prompt (not chats) and cut from the answer; by default the
        model's `task_specific_params` or `config.prefix`, as in the pipeline.
        batch_size=1 by default, as the pipeline: each prompt is generated alone, in order.
        """
        super().__init__(model, tokenizer, placement, batch_size=batch_size, **options)
        _, task_prefix = task_params(model, self.task)
        if check_prefix(prefix) is None:
            prefix = task_prefix if task_prefix is not None else getattr(model.config, "prefix", None) or ""
        self.prefix = prefix

    # -- settings ----------------------------------------------------------------------------------

    def adjust_settings(self, config: DecodingConfig, prefix_length: int = 0) -> DecodingConfig:
        """A prefix of `prefix_length` tokens put before the prompt costs no new tokens: a total length
        (max_length, a caller's min_length) grows by it, as in the pipeline."""
        grown = {}
        if prefix_length and config.max_new_tokens is None and config.max_length is not None:
            grown["max_length"] = config.max_length + prefix_length
        if prefix_length and config.sources.get("min_length") in ("caller", "construction") \
                and config.min_new_tokens is None:
            grown["min_length"] = config.min_length + prefix_length
        return config.with_settings(self.model, "grown by the prefix", **grown) if grown else config

    def prefix_length(self, prompts: list, prefix: str, add_special_tokens: bool | None) -> int:
        """Tokens of `prefix` before the text prompts (chats take no prefix)."""
        if not prefix or not any(isinstance(prompt, str) for prompt in prompts):
            return 0
        return len(self.tokenizer(prefix, add_special_tokens=bool(add_special_tokens))["input_ids"])

    # -- preprocess --------------------------------------------------------------------------------

    def encode(self, prompt, prefix: str = "", add_special_tokens: bool | None = None,
               continue_final_message: bool | None = None, **tokenizer_kwargs) -> list[int]:
        """Token ids of one prompt: `prefix + text`, or a chat rendered by the tokenizer's chat template."""
        if isinstance(prompt, Chat):
            return self.encode_chat(prompt, continue_final_message, **tokenizer_kwargs)
        if add_special_tokens is not None:
            tokenizer_kwargs["add_special_tokens"] = add_special_tokens
        return list(self.tokenizer(prefix + prompt, **tokenizer_kwargs)["input_ids"])

    def encode_chat(self, chat: Chat, continue_final_message: bool | None = None, **tokenizer_kwargs) -> list[int]:
        """A chat through the tokenizer's chat template, the assistant's turn opened (or continued)."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{type(self.tokenizer).__name__} has no chat template, so it cannot read a chat; "
                             "pass a text prompt, or set tokenizer.chat_template")
        if continue_final_message is None:
            continue_final_message = chat.messages[-1]["role"] == "assistant"  # a prefilled answer
        encoded = self.tokenizer.apply_chat_template(
            chat.messages, add_generation_prompt=not continue_final_message,
            continue_final_message=continue_final_message, return_dict=True,
            truncation=tokenizer_kwargs.pop("truncation", False), max_length=tokenizer_kwargs.pop("max_length", None),
            tokenizer_kwargs=tokenizer_kwargs)
        return list(encoded["input_ids"])

    def preprocess(self, prompts: list, *, prefix: str | None = None, add_special_tokens: bool | None = None,
                   continue_final_message: bool | None = None, truncation=False,
                   handle_long_generation: str | None = None, config: DecodingConfig | None = None) -> list[list[int]]:
        """Token ids of each prompt (a str or a Chat).

        A prompt longer than the model reads is an error naming it, unless truncation=True (its start
        is kept, with a warning) or handle_long_generation="hole" (its end is kept, leaving room for
        the new tokens of `config`, as the pipeline did).
        """
        if handle_long_generation not in (None, "hole"):
            raise ValueError(f"handle_long_generation must be None or 'hole', got {handle_long_generation!r}")
        truncation = check_truncation(truncation)
        prefix = self.prefix if check_prefix(prefix) is None else prefix
        limit = max_input_tokens(self.tokenizer, self.model.config)
        config = config or self.decoding_config()
        room = prompt_room(config, limit) if truncation else limit  # a cut prompt leaves room for the new tokens
        options = dict(prefix=prefix, add_special_tokens=add_special_tokens, continue_final_message=continue_final_message)
        encoded = []
        for index, prompt in enumerate(prompts):
            cut = False
            if isinstance(prompt, str):
                prompt, cut = head_of_long_text(prompt, room, self.count_tokens) if truncation else (prompt, False)
                if not cut:
                    check_has_tokens(self.tokenizer, prompt, f"inputs[{index}]")
            ids = self.encode(prompt, **options, verbose=False)  # we report the length ourselves
            if handle_long_generation == "hole":
                ids = keep_end_for_new_tokens(ids, new_tokens_wanted(config, len(ids)), limit)
            elif check_input_length(index, len(ids), room, truncation, at_least=cut,
                                    also="pass handle_long_generation='hole' to keep its end"):
                ids = self.encode(prompt, **options, truncation=truncation, max_length=room)
            encoded.append(ids)
        self.check_input_ids(encoded)
        return encoded

    # -- forward -----------------------------------------------------------------------------------

    def pad_token_id(self, config: DecodingConfig) -> int:
        """What fills the left padding (masked, so any id works): the tokenizer's pad, else the EOS."""
        if self.tokenizer.pad_token_id is not None:
            return self.tokenizer.pad_token_id
        padding = config.effective_pad_token_id
        return padding if padding is not None else 0

    def forward(self, prompts: list[list[int]], config: DecodingConfig, hooks: dict | None = None) -> list[torch.Tensor]:
        """Generate for a batch of prompts: per prompt, ids (num_return_sequences, prompt + new), on the CPU.

        A row that finished early is padded with the pad token up to where the prompt's last row
        finished, as if the prompt had run alone. config: the call's resolved settings (`resolve`);
        hooks: logits_processors and strategy for `decoding.generate`.
        """
        input_ids, attention_mask, padding = left_pad(prompts, self.pad_token_id(config))
        fitted = self.fit_to_context(config, input_ids.shape[1])
        outputs = self.generate_rows(input_ids, attention_mask, fitted, hooks or {}, left_padding=padding)
        if fitted is not config and any(rows.shape[-1] == len(prompt) + fitted.max_new_tokens
                                        for prompt, rows in zip(prompts, outputs)):
            warn_caller(f"generation stopped at the model's context of {input_ids.shape[1] + fitted.max_new_tokens} "
                        f"positions, before the {new_tokens_wanted(config, input_ids.shape[1])} new tokens asked for; "
                        "pass a shorter prompt or fewer max_new_tokens")
        return outputs

    def fit_to_context(self, config: DecodingConfig, prompt_length: int) -> DecodingConfig:
        """The settings with the new tokens capped where prompt + new tokens would pass the model's context.

        One rule for every model: GPT-2's position table would fail past it, and rotary models (Llama)
        would run on positions they were never trained on. The 4.57.6 pipeline's default of 256 new
        tokens often asks for more than a small model's context; generation then stops there, with a
        warning if it really gets there (`forward`).
        """
        limit = max_input_tokens(self.tokenizer, self.model.config)
        if limit is None or prompt_length >= limit or prompt_length + new_tokens_wanted(config, prompt_length) <= limit:
            return config  # no limit, fits, or a prompt that fills the context (which decoding refuses)
        return config.with_settings(self.model, "capped at the model's context", max_new_tokens=limit - prompt_length)

    # -- postprocess -------------------------------------------------------------------------------

    def postprocess(self, prompt, prompt_ids: list[int], sequences: torch.Tensor, *, output: str = FULL_TEXT,
                    clean_up_tokenization_spaces: bool = True, skip_special_tokens: bool = True,
                    continue_final_message: bool | None = None) -> list[dict]:
        """sequences: (num_return_sequences, len) of one prompt, prompt ids included -> one dict per sequence.

        The new text is the decoded sequence without as many characters as the decoded prompt has
        (the pipeline's cut, which also drops the prefix).
        """
        if output == TENSORS:
            return [{"generated_token_ids": row.tolist()} for row in sequences]
        decode = dict(skip_special_tokens=skip_special_tokens,
                      clean_up_tokenization_spaces=clean_up_tokenization_spaces)
        prompt_chars = len(decode_text(self.tokenizer, prompt_ids, **decode))
        records = []
        for row in sequences:
            new_text = decode_text(self.tokenizer, row, **decode)[prompt_chars:]
            records.append({"generated_text": full_answer(prompt, new_text, continue_final_message)
                            if output == FULL_TEXT else new_text})
        return records

    # -- the whole recipe --------------------------------------------------------------------------

    @answers_streams
    def __call__(self, inputs, *, return_full_text: bool | None = None, return_tensors: bool | None = None,
                 return_text: bool | None = None, clean_up_tokenization_spaces: bool = True,
                 skip_special_tokens: bool = True, prefix: str | None = None, handle_long_generation: str | None = None,
                 stop_sequence: str | list | None = None, truncation=False, add_special_tokens: bool | None = None,
                 continue_final_message: bool | None = None, batch_size: int | None = None, stream: bool = False,
                 **options):
        """Continue one prompt or many (texts or chats).

        options: any decoding setting (max_new_tokens, max_length, do_sample, temperature, top_k,
        top_p, min_p, num_beams, num_return_sequences, repetition_penalty, no_repeat_ngram_size,
        bad_words_ids, stop_strings, ...), and the hooks of `decoding.generate`: logits_processors (or
        transformers' logits_processor) and strategy. stream=True returns an iterator over the new text instead.
        """
        prompts, single = as_prompts(inputs)
        output = return_type(return_full_text, return_tensors, return_text)
        check_flags(clean_up_tokenization_spaces=clean_up_tokenization_spaces,
                    skip_special_tokens=skip_special_tokens, stream=stream)
        check_optional_flags(add_special_tokens=add_special_tokens, continue_final_message=continue_final_message)
        truncation = check_truncation(truncation)
        if stop_sequence is not None:
            options["stop_strings"] = stop_sequence
        prefix = self.prefix if check_prefix(prefix) is None else prefix
        config, hooks = self.resolve(options, prefix_length=self.prefix_length(prompts, prefix, add_special_tokens))
        prompt_ids = self.preprocess(prompts, prefix=prefix, add_special_tokens=add_special_tokens,
                                     continue_final_message=continue_final_message, truncation=truncation,
                                     handle_long_generation=handle_long_generation, config=config)
        if stream:
            if not single:
                raise ValueError("stream=True shows one answer as it is written: pass a single prompt")
            return self.stream_text(prompt_ids[0], config, clean_up_tokenization_spaces, skip_special_tokens, hooks)
        outputs = self.run_batches(prompt_ids, [len(ids) for ids in prompt_ids], single, batch_size,
                                   lambda batch: self.forward(batch, config, hooks))
        results = [self.postprocess(prompt, ids, sequences, output=output, skip_special_tokens=skip_special_tokens,
                                    clean_up_tokenization_spaces=clean_up_tokenization_spaces,
                                    continue_final_message=continue_final_message)
                   for prompt, ids, sequences in zip(prompts, prompt_ids, outputs)]
        return results[0] if single else results

    def stream_text(self, prompt_ids: list[int], config: DecodingConfig, clean_up_tokenization_spaces: bool = True,
                    skip_special_tokens: bool = True, hooks: dict | None = None) -> Iterator[str]:
        """The new text of one prompt, in pieces as the tokens arrive (no piece splits a word).

        The pieces join to the `return_full_text=False` answer of the same call without streaming.
        hooks: logits_processors, strategy and stopping_criteria for `decoding.stream`.
        """
        check_can_stream(config)
        input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        # Raw pieces: StreamedNewText applies the pipeline's clean-up itself, to the whole text.
        pieces = stream_pieces(self.model, self.tokenizer, input_ids, torch.ones_like(input_ids),
                               skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False,
                               config=config, **(hooks or {}))
        prompt_text = self.tokenizer.decode(prompt_ids, skip_special_tokens=skip_special_tokens,
                                            clean_up_tokenization_spaces=False)
        return released(StreamedNewText(prompt_text, clean_up_tokenization_spaces), pieces)
