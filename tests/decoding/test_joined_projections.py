"""decoding/joined_projections.py with core/device.py's stacking: an int8 Llama's q/k/v and gate/up, an
int8 encoder's query/key/value, and a seq2seq model's self-attention q/k/v and T5's gated feed-forward,
as one product each give the unjoined model's numbers bit for bit, in
the lean forward and in the model's own, which computes each joined product once, also from several
threads at a time (seq2seq beams on oneDNN: the same tokens, scores within float32 rounding)."""

import copy
import threading

import pytest
import torch
from test_lean_passes import STEPS, both_forwards, positions_of
from tiny_models import prompt_batch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

import core.device
from core.device import join_int8_projections, place_model, quantize_linear_layers, stacked_int8_linear
from decoding import llama_step
from decoding.cache import new_cache
from decoding.generation import generate
from decoding.joined_projections import JoinedProjections, ProjectionPart
from tests.paths import FIXTURES

ENGINES = [engine for engine in ("x86", "onednn") if engine in torch.backends.quantized.supported_engines]


def int8_model(head, name: str, engine: str, joined: bool):
    """The fixture `name` loaded with `head`, quantized for `engine`, its projections joined or not."""
    model = quantize_linear_layers(head.from_pretrained(FIXTURES / name).eval(), engine=engine)
    if joined:
        join_int8_projections(model, engine)
    return model


def int8_llama(engine: str, joined: bool):
    return int8_model(AutoModelForCausalLM, "llama", engine, joined)


def joined_products(model) -> list[JoinedProjections]:
    return [module for module in model.modules() if isinstance(module, JoinedProjections)]


# The pairs place_model makes: 8-bit activations where the CPU has VNNI (onednn only with AMX, which has
# VNNI), torch's 7-bit Linear on x86's kernels elsewhere. (onednn with the 7-bit Linear, which no CPU
# gets, differs by float rounding, 1.2e-7.)
KINDS = [(engine, True) for engine in ENGINES] + [("x86", False)]


@pytest.mark.parametrize(("engine", "vnni"), KINDS, ids=[f"{engine}-{'8' if vnni else '7'}-bit" for engine, vnni in KINDS])
def test_joined_int8_model_gives_the_unjoined_models_logits_exactly(engine, vnni, monkeypatch):
    monkeypatch.setattr(core.device, "cpu_has_vnni", lambda: vnni)  # which int8 Linear quantizing picks
    separate, joined = int8_llama(engine, joined=False), int8_llama(engine, joined=True)
    assert len(joined_products(joined)) == 2 * joined.config.num_hidden_layers
    input_ids, attention_mask = prompt_batch(joined, lengths=(7, 4, 6))
    reference, _ = both_forwards(separate, input_ids, attention_mask, STEPS)
    own, lean = both_forwards(joined, input_ids, attention_mask, STEPS)
    for theirs, mine_own, mine_lean in zip(reference, own, lean):
        assert torch.equal(mine_own, theirs)  # transformers' forward through the parts
        assert torch.equal(mine_lean, theirs)  # padding positions included: they share the batch's scale


def count_calls(modules) -> tuple[list[int], list]:
    """([calls], hook handles): the calls of `modules`, counted by forward hooks (removed by the caller)."""
    calls = [0]
    handles = [module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1)) for module in modules]
    return calls, handles


def count_products(model) -> tuple[list[int], list]:
    return count_calls([joined.product for joined in joined_products(model)])


def logits_and_product_calls(separate, joined, inputs: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(the separate model's logits, the joined one's, how many joined products its forward called)."""
    calls, handles = count_products(joined)
    try:
        with torch.inference_mode():
            return separate(**inputs).logits, joined(**inputs).logits, calls[0]
    finally:
        for handle in handles:
            handle.remove()


def test_the_models_own_forward_computes_each_joined_product_once():
    model = int8_llama(ENGINES[0], joined=True)
    input_ids, attention_mask = prompt_batch(model)
    calls, handles = count_products(model)
    try:
        with torch.inference_mode():
            model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for handle in handles:
            handle.remove()
    assert calls[0] == len(joined_products(model))
    assert all(joined.pending is None for joined in joined_products(model))  # the last part let go of the outputs


def test_the_lean_forward_uses_the_joined_products():
    model = int8_llama(ENGINES[0], joined=True)
    input_ids, attention_mask = prompt_batch(model)
    parts = [module for module in model.modules() if isinstance(module, ProjectionPart)]
    (products, product_handles), (part_calls, part_handles) = count_products(model), count_calls(parts)
    try:
        with torch.inference_mode():
            llama_step.forward(model, input_ids, new_cache(model, 16), positions_of(attention_mask), attention_mask,
                               last_only=True)
    finally:
        for handle in product_handles + part_handles:
            handle.remove()
    assert products[0] == len(joined_products(model)) and part_calls[0] == 0  # the products, not the parts


def test_a_part_called_on_another_tensor_computes_its_own_output():
    """The memo serves only the input it was made from (a caller may call q_proj(x), then k_proj(y))."""
    model, separate = int8_llama(ENGINES[0], joined=True), int8_llama(ENGINES[0], joined=False)
    joined_attention, attention = model.model.layers[0].self_attn, separate.model.layers[0].self_attn
    first, second = torch.randn(2, 3, model.config.hidden_size).unbind()
    with torch.inference_mode():
        joined_attention.q_proj(first)
        assert torch.equal(joined_attention.k_proj(second), attention.k_proj(second))
        assert torch.equal(joined_attention.v_proj(first), attention.v_proj(first))


def test_parts_give_right_outputs_when_threads_share_the_model():
    """Each thread's parts reuse only a product made from their own input (one memo per joined module)."""
    model = int8_llama(ENGINES[0], joined=True)
    inputs = [prompt_batch(model, seed=seed) for seed in range(4)]
    with torch.inference_mode():
        expected = [model(input_ids=ids, attention_mask=mask).logits for ids, mask in inputs]
    wrong, errors = [], []

    def run(index: int):
        try:
            ids, mask = inputs[index]
            for _ in range(15):
                with torch.inference_mode():
                    if not torch.equal(model(input_ids=ids, attention_mask=mask).logits, expected[index]):
                        wrong.append(index)
        except Exception as error:  # noqa: BLE001 - reported below, a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and not wrong


def test_stacked_int8_linear_equals_its_parts_with_biases():
    torch.manual_seed(0)
    parts = [nn.Linear(16, size) for size in (8, 4, 12)]
    quantized = [quantize_linear_layers(nn.Sequential(part))[0] for part in parts]
    stacked = stacked_int8_linear(quantized, ENGINES[0])
    states = torch.randn(3, 16)
    assert torch.equal(stacked(states), torch.cat([part(states) for part in quantized], dim=-1))


def test_only_int8_per_channel_linears_with_the_same_bias_layout_are_stacked():
    with_bias = quantize_linear_layers(nn.Sequential(nn.Linear(16, 8)))[0]
    without = quantize_linear_layers(nn.Sequential(nn.Linear(16, 8, bias=False)))[0]
    assert stacked_int8_linear([with_bias, without], ENGINES[0]) is None
    assert stacked_int8_linear([nn.Linear(16, 8), nn.Linear(16, 8)], ENGINES[0]) is None
    other_size = quantize_linear_layers(nn.Sequential(nn.Linear(12, 8)))[0]
    assert stacked_int8_linear([with_bias, other_size], ENGINES[0]) is None


def test_int8_linears_of_two_kinds_are_not_stacked(monkeypatch):
    """8-bit and 7-bit activations quantize the same input differently: one product cannot stand for both."""
    kinds = []
    for vnni in (True, False):
        monkeypatch.setattr(core.device, "cpu_has_vnni", lambda vnni=vnni: vnni)
        kinds.append(quantize_linear_layers(nn.Sequential(nn.Linear(16, 8)))[0])
    assert type(kinds[0]) is not type(kinds[1])
    assert stacked_int8_linear(kinds, ENGINES[0]) is None


def test_place_model_joins_int8_llama_encoders_and_seq2seq_models_only():
    llama = place_model(AutoModelForCausalLM.from_pretrained(FIXTURES / "llama"), dtype="int8")[0]
    assert isinstance(llama.model.layers[0].self_attn.q_proj, ProjectionPart)
    assert llama_step.applies(llama)
    encoder = place_model(AutoModelForSequenceClassification.from_pretrained(FIXTURES / "distilbert-sst2"), dtype="int8")[0]
    assert len(joined_products(encoder)) == encoder.config.n_layers
    t5 = place_model(AutoModelForSeq2SeqLM.from_pretrained(FIXTURES / "t5"), dtype="int8")[0]
    assert isinstance(t5.decoder.block[0].layer[0].SelfAttention.q, ProjectionPart)
    assert isinstance(t5.decoder.block[0].layer[2].DenseReluDense.wi_0, ProjectionPart)
    assert not isinstance(t5.decoder.block[0].layer[1].EncDecAttention.k, ProjectionPart)  # reads the encoder's states
    eager = AutoModelForCausalLM.from_pretrained(FIXTURES / "llama", attn_implementation="eager")
    assert not joined_products(place_model(eager, dtype="int8")[0])  # the lean pass does not run it: not measured
    gpt2 = place_model(AutoModelForCausalLM.from_pretrained(FIXTURES / "gpt2"), dtype="int8")[0]
    assert not joined_products(gpt2)
    float32 = place_model(AutoModelForCausalLM.from_pretrained(FIXTURES / "llama"), dtype="float32")[0]
    assert not joined_products(float32)


# Encoders whose self-attention modules call query, key and value on one tensor (BERT, RoBERTa, DistilBERT).
ENCODERS = [("distilbert-sst2", AutoModelForSequenceClassification), ("bert-ner", AutoModelForTokenClassification),
            ("roberta-emotion", AutoModelForSequenceClassification)]


@pytest.mark.parametrize(("name", "head"), ENCODERS, ids=[name for name, _ in ENCODERS])
@pytest.mark.parametrize("engine", ENGINES)
def test_joined_int8_encoder_gives_the_unjoined_encoders_logits_exactly(name, head, engine):
    separate, joined = int8_model(head, name, engine, joined=False), int8_model(head, name, engine, joined=True)
    assert len(joined_products(joined)) == joined.config.num_hidden_layers  # one per layer's self-attention
    torch.manual_seed(0)
    inputs = dict(input_ids=torch.randint(5, joined.config.vocab_size, (3, 9)),
                  attention_mask=torch.tensor([[1] * 9, [1] * 6 + [0] * 3, [1] * 2 + [0] * 7]))
    expected, got, calls = logits_and_product_calls(separate, joined, inputs)
    assert torch.equal(got, expected)
    assert calls == len(joined_products(joined))  # each product once: the parts after the first reuse it


def test_a_joined_model_copies_with_its_parts_pointing_at_the_copy():
    model = int8_llama(ENGINES[0], joined=True)
    twin = copy.deepcopy(model)
    attention = twin.model.layers[0].self_attn
    assert attention.q_proj.joined is attention.qkv_proj
    input_ids, attention_mask = prompt_batch(model)
    with torch.inference_mode():
        assert torch.equal(twin(input_ids=input_ids, attention_mask=attention_mask).logits,
                           model(input_ids=input_ids, attention_mask=attention_mask).logits)


# Seq2seq models: each self-attention (encoder and decoder) joins its q/k/v; T5's gated feed-forward its
# wi_0/wi_1. The cross-attention is left alone: its keys and values read the encoder's states.
SEQ2SEQ = {"bart-cnn": 1, "marian-en-fr": 1, "m2m100": 1, "t5": 2}  # fixture -> joined groups per layer


def int8_seq2seq(name: str, engine: str, joined: bool):
    return int8_model(AutoModelForSeq2SeqLM, name, engine, joined)


def encoder_decoder_inputs(model) -> dict:
    torch.manual_seed(0)
    start = model.config.decoder_start_token_id
    return dict(input_ids=torch.randint(5, model.config.vocab_size, (3, 9)),
                attention_mask=torch.tensor([[1] * 9, [1] * 6 + [0] * 3, [1] * 2 + [0] * 7]),
                decoder_input_ids=torch.cat([torch.full((3, 1), start), torch.randint(5, model.config.vocab_size, (3, 4))], 1))


@pytest.mark.parametrize("name", SEQ2SEQ)
@pytest.mark.parametrize("engine", ENGINES)
def test_joined_int8_seq2seq_model_gives_the_unjoined_models_logits_exactly(name, engine):
    separate, joined = int8_seq2seq(name, engine, joined=False), int8_seq2seq(name, engine, joined=True)
    layers = joined.config.encoder_layers + joined.config.decoder_layers if hasattr(joined.config, "encoder_layers") \
        else joined.config.num_layers + joined.config.num_decoder_layers
    assert len(joined_products(joined)) == SEQ2SEQ[name] * layers
    expected, got, calls = logits_and_product_calls(separate, joined, encoder_decoder_inputs(joined))
    assert torch.equal(got, expected)
    assert calls == len(joined_products(joined))  # each product once: the parts after the first reuse it


@pytest.mark.parametrize("name", ["bart-cnn", "m2m100", "t5"])
@pytest.mark.parametrize("engine", ENGINES)
def test_joined_int8_seq2seq_model_decodes_the_unjoined_models_beams(name, engine):
    """Through the cache: the decoder's self-attention reads one new position a step. With torch's x86
    kernels to the bit; oneDNN picks its kernel by the matrix's shape, and at some of these fixtures'
    small shapes rounds the wider joined product one float32 step apart (m2m100: 1.2e-7 in a beam's
    score), so there the tokens are the same and the scores within float32 rounding."""
    separate, joined = int8_seq2seq(name, engine, joined=False), int8_seq2seq(name, engine, joined=True)
    inputs = encoder_decoder_inputs(joined)
    settings = dict(num_beams=3, num_return_sequences=2, max_new_tokens=8, min_new_tokens=8, length_penalty=1.0)
    expected = generate(separate, inputs["input_ids"], inputs["attention_mask"], **settings)
    got = generate(joined, inputs["input_ids"], inputs["attention_mask"], **settings)
    assert torch.equal(got.sequences, expected.sequences)
    if engine == "x86":
        assert torch.equal(got.sequences_scores, expected.sequences_scores)
    else:
        torch.testing.assert_close(got.sequences_scores, expected.sequences_scores, rtol=0, atol=1e-6)
