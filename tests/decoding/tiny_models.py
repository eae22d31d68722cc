"""Tiny random models of each architecture we decode, batches to feed them, and the reference call.

Weights come from a fixed torch seed and are built once per test session (`functools.cache`), so
tests are fast and repeatable. The initialiser range is raised so the logits are peaked and varied
(with the default 0.02 every distribution is almost flat). Special ids are set in the model's
generation_config the way real checkpoints do: BART with forced BOS/EOS, Marian with
bad_words_ids=[[pad]] and decoder_start = pad, T5 with decoder_start = pad = 0, M2M100 with EOS as
decoder start.
"""

import functools
import warnings

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    M2M100Config,
    M2M100ForConditionalGeneration,
    MarianConfig,
    MarianMTModel,
    T5Config,
    T5ForConditionalGeneration,
)
from transformers.utils import logging

from tests.paths import FIXTURES

VOCAB = 96
DECODER_ONLY = ("gpt2", "llama")
ENCODER_DECODER = ("bart", "marian", "t5", "m2m100")
ARCHITECTURES = DECODER_ONLY + ENCODER_DECODER


def _seq2seq_sizes(**extra) -> dict:
    return dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                init_std=0.3, tie_word_embeddings=False, **extra)


@functools.cache
def tiny_model(name: str):
    """A small random model in eval mode (dropout would draw from the RNG and break sampling parity)."""
    torch.manual_seed(0)
    if name == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                           initializer_range=0.3, bos_token_id=1, eos_token_id=2,
                                           tie_word_embeddings=False))
        generation = GenerationConfig(bos_token_id=1, eos_token_id=2)
    elif name == "llama":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             max_position_embeddings=64, initializer_range=0.3,
                                             bos_token_id=1, eos_token_id=2, pad_token_id=0,
                                             tie_word_embeddings=False))
        generation = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0)
    elif name == "bart":
        model = BartForConditionalGeneration(BartConfig(**_seq2seq_sizes(), pad_token_id=1, bos_token_id=0,
                                                        eos_token_id=2, decoder_start_token_id=2))
        generation = GenerationConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, decoder_start_token_id=2,
                                      forced_bos_token_id=0, forced_eos_token_id=2)
    elif name == "marian":
        model = MarianMTModel(MarianConfig(**_seq2seq_sizes(), pad_token_id=VOCAB - 1, eos_token_id=0,
                                           decoder_start_token_id=VOCAB - 1))
        generation = GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=VOCAB - 1,
                                      decoder_start_token_id=VOCAB - 1, forced_eos_token_id=0,
                                      bad_words_ids=[[VOCAB - 1]])
    elif name == "t5":
        model = T5ForConditionalGeneration(T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                    num_decoder_layers=2, num_heads=2, initializer_factor=3.0,
                                                    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                                                    tie_word_embeddings=False))
        generation = GenerationConfig(eos_token_id=1, pad_token_id=0, decoder_start_token_id=0)
    elif name == "m2m100":
        model = M2M100ForConditionalGeneration(M2M100Config(**_seq2seq_sizes(), pad_token_id=1, bos_token_id=0,
                                                            eos_token_id=2, decoder_start_token_id=2))
        generation = GenerationConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, decoder_start_token_id=2)
    else:
        raise ValueError(f"no tiny model called {name!r}; choose from {ARCHITECTURES}")
    model.generation_config = generation
    return model.eval()


def pad_id(model) -> int:
    generation = model.generation_config
    return generation.pad_token_id if generation.pad_token_id is not None else generation.eos_token_id


def prompt_batch(model, lengths=(7, 4, 6), seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random prompts of different lengths, padded like a tokenizer would: left for decoder-only
    models (generation continues at the right end), right for encoder-decoder ones.

    Token ids avoid the special ids 0-2 and the pad id. Returns (input_ids, attention_mask), both (batch, max_len).
    """
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    pad = pad_id(model)
    input_ids = torch.full((len(lengths), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(lengths), width), dtype=torch.long)
    left = not model.config.is_encoder_decoder
    for row, length in enumerate(lengths):
        tokens = torch.randint(3, VOCAB - 1, (length,), generator=generator)
        if not left:
            tokens[-1] = model.generation_config.eos_token_id  # source sentences end with </s>
        span = slice(width - length, width) if left else slice(0, length)
        input_ids[row, span] = tokens
        attention_mask[row, span] = 1
    return input_ids, attention_mask


def single_prompt(model, length: int = 6, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return prompt_batch(model, (length,), seed)


def reference(model, input_ids, attention_mask=None, **settings):
    """`model.generate()` of transformers, quietly: the reference our loop must match."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.generate(input_ids, attention_mask=attention_mask, **settings)


@functools.cache
def fixture_model(name: str):
    """A committed tiny checkpoint with its real tokenizer: (model, tokenizer)."""
    path = FIXTURES / name
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"fixture model {name} is missing from {FIXTURES} (it is committed with the tests)")
    logging.set_verbosity_error()
    config = AutoConfig.from_pretrained(path)
    head = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = head.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not config.is_encoder_decoder:
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def assert_same_tokens(expected: torch.Tensor, actual: torch.Tensor) -> None:
    assert tuple(actual.shape) == tuple(expected.shape), f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.equal(actual, expected), f"\nexpected {expected.tolist()}\nactual   {actual.tolist()}"


def assert_parity(model, input_ids, attention_mask=None, *, seed: int | None = None, **settings) -> torch.Tensor:
    """`model.generate()` and our `generate()` on the same inputs give the same tokens; returns ours.

    With a seed, each side runs right after `core.seed.set_seed(seed)` (sampling draws the same numbers).
    """
    from core.seed import set_seed
    from decoding import generate

    if seed is not None:
        set_seed(seed)
    expected = reference(model, input_ids, attention_mask, **settings)
    if seed is not None:
        set_seed(seed)
    actual = generate(model, input_ids, attention_mask, **settings).sequences
    assert_same_tokens(expected, actual)
    return actual


def new_tokens(model, sequences: torch.Tensor, prompt_width: int) -> torch.Tensor:
    """The generated part of `generate()` output: after the prompt, or after the decoder start token."""
    return sequences[:, 1:] if model.config.is_encoder_decoder else sequences[:, prompt_width:]


def frequent_token(model, input_ids, attention_mask, steps: int = 8) -> int:
    """The token greedy decoding produces most often (special ids aside).

    Tests use it as EOS so that rows and beams really finish part-way, instead of all running to max_length.
    """
    out = reference(model, input_ids, attention_mask, max_new_tokens=steps, num_beams=1, do_sample=False,
                    min_length=0, forced_eos_token_id=None, forced_bos_token_id=None)
    generated = new_tokens(model, out, input_ids.shape[1]).flatten()
    special = {0, 1, 2, pad_id(model)}
    counts = torch.bincount(generated, minlength=VOCAB)
    for token in counts.argsort(descending=True).tolist():
        if token not in special:
            return token
    raise AssertionError("greedy decoding produced only special tokens")


@functools.cache
def liked_eos(arch: str) -> int:
    """`frequent_token` of the tiny model `arch` on its default `prompt_batch`, computed once per session."""
    model = tiny_model(arch)
    return frequent_token(model, *prompt_batch(model))
