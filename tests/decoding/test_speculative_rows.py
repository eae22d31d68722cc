"""Batched prompt lookup where each row keeps its own guesses (decoding/speculative_rows.py): plain
decoding's tokens, token for token, while rows move on by different counts and leave holes in the cache."""

import copy

import pytest
import torch
from tiny_models import ENCODER_DECODER, prompt_batch, tiny_model

from decoding import generate, speculative_rows

PERIOD = 5


def copying(model, boost: float | tuple[float, ...]):
    """The same model, made to like the token PERIOD positions back in each row's own text (row r by
    boost[r % len(boost)]).

    Unlike a processor, this reads nothing but what the model is fed (tokens and their position ids),
    so the per-row loop may run; the boost is of the size of the model's own logits, so the answer
    still depends on the rest of the model, holes and masks included.
    """
    model = copy.deepcopy(model)  # tiny_model() hands out one shared model per name
    base = type(model)
    boosts = boost if isinstance(boost, tuple) else (boost,)

    class Copying(base):
        def forward(self, input_ids=None, position_ids=None, **kwargs):
            outputs = base.forward(self, input_ids=input_ids, position_ids=position_ids, **kwargs)
            for row in range(input_ids.shape[0]):
                boost_copies(self.history, row, boosts, input_ids[row], position_ids[row].tolist(), outputs.logits[row])
            return outputs

    return copying_model(model, Copying)


def copying_seq2seq(model, boost: float | tuple[float, ...]):
    """copying() for an encoder-decoder model, whose decoder takes no position ids: a row's position is
    the number of cache positions its decoder mask attends to (all of them without a mask)."""
    model = copy.deepcopy(model)
    base = type(model)
    boosts = boost if isinstance(boost, tuple) else (boost,)

    class Copying(base):
        def forward(self, *args, decoder_input_ids=None, decoder_attention_mask=None, cache=None, **kwargs):
            before = cache.get_seq_length() if cache is not None else 0
            outputs = base.forward(self, *args, decoder_input_ids=decoder_input_ids,
                                   decoder_attention_mask=decoder_attention_mask, cache=cache, **kwargs)
            fed = decoder_input_ids.shape[1]
            for row in range(decoder_input_ids.shape[0]):
                start = before if decoder_attention_mask is None else int(decoder_attention_mask[row, :before].sum())
                boost_copies(self.history, row, boosts, decoder_input_ids[row], range(start, start + fed),
                             outputs.logits[row])
            return outputs

    return copying_model(model, Copying)


def copying_its_input(model, boost: float):
    """An encoder-decoder model made to write its input back (the decoder's position p pushed towards the
    input's token p, read from history[row]["article"]): a summary that copies its article."""
    model = copy.deepcopy(model)
    base = type(model)

    class Copying(base):
        def forward(self, *args, decoder_input_ids=None, decoder_attention_mask=None, cache=None, **kwargs):
            before = cache.get_seq_length() if cache is not None else 0
            outputs = base.forward(self, *args, decoder_input_ids=decoder_input_ids,
                                   decoder_attention_mask=decoder_attention_mask, cache=cache, **kwargs)
            for row in range(decoder_input_ids.shape[0]):
                start = before if decoder_attention_mask is None else int(decoder_attention_mask[row, :before].sum())
                article = self.history[row]["article"]
                for index in range(decoder_input_ids.shape[1]):
                    if start + index < len(article):
                        outputs.logits[row, index, article[start + index]] += boost
            return outputs

    return copying_model(model, Copying)


def boost_copies(history: dict, row: int, boosts: tuple, tokens: torch.Tensor, positions, logits: torch.Tensor):
    """Record the row's fed tokens (and the model's logits) at their positions; raise the logit of the
    token PERIOD positions back."""
    seen = history.setdefault(row, {"boost": boosts[row % len(boosts)]})
    for index, (token, position) in enumerate(zip(tokens.tolist(), positions)):
        seen[position] = token
        seen["logits", position] = logits[index].clone()
        copied = seen.get(position + 1 - PERIOD)
        if copied is not None:
            logits[index, copied] += seen["boost"]


def copying_model(model, copying_class):
    model.__class__ = copying_class
    model.history = {}
    COPYING.append(model)
    return model


COPYING = []  # the copying models made by the tests of this module
LEFT = []  # how many rows left the cache, each time some did


@pytest.fixture(autouse=True)
def rows_that_leave_take_their_history(monkeypatch):
    """A copying model keys its history by the row's place in the batch; when finished rows leave the
    cache (speculative_rows.leave_finished), the rows that stay move up, and so must their histories."""
    original = speculative_rows.leave_finished

    def leave_finished(state, rows, active, also=()):
        staying = original(state, rows, active, also)
        if staying is not active:
            LEFT.append(len(active) - len(staying))
            for model in COPYING:
                model.history = {new: model.history.get(active.index(row), {}) for new, row in enumerate(staying)}
        return staying

    monkeypatch.setattr(speculative_rows, "leave_finished", leave_finished)
    yield
    COPYING.clear()
    LEFT.clear()


def qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config.pad_token_id = 0
    return model


MODELS = {"gpt2": lambda: tiny_model("gpt2"), "llama": lambda: tiny_model("llama"), "qwen2": qwen2}


def plain_and_guessed(model, input_ids, attention_mask, **settings):
    """Plain decoding, then prompt lookup, each from a fresh copy history."""
    outputs = []
    for extra in ({}, dict(prompt_lookup_num_tokens=6)):
        model.history = {}
        outputs.append(generate(model, input_ids, attention_mask, **settings, **extra))
    return outputs


@pytest.fixture
def gathered(monkeypatch):
    """Counts how often the holes were closed."""
    calls = []
    original = speculative_rows.close_holes
    monkeypatch.setattr(speculative_rows, "close_holes", lambda state: (calls.append(1), original(state)))
    return calls


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rows_keep_their_own_guesses_and_give_plain_greedys_tokens(name, gathered):
    model = copying(MODELS[name](), boost=6.0)
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13, 7, 11))
    plain, guessed = plain_and_guessed(model, input_ids, attention_mask, max_new_tokens=40, do_sample=False)
    assert torch.equal(plain.sequences, guessed.sequences)
    speculation = guessed.speculation
    assert speculation.accepted > 20 and speculation.calls < 30, speculation
    assert gathered  # holes took over a quarter of the cache at least once, and were closed


@pytest.fixture
def walked_per_row(monkeypatch):
    """Counts the calls after which rows kept their own numbers of guesses."""
    calls = []
    original = speculative_rows.keep_positions
    monkeypatch.setattr(speculative_rows, "keep_positions", lambda *a, **k: (calls.append(1), original(*a, **k)))
    return calls


@pytest.mark.parametrize("name", ENCODER_DECODER)
def test_encoder_decoder_rows_keep_their_own_guesses_and_give_plain_greedys_tokens(name, walked_per_row):
    """BART and M2M100 number the decoder's positions from a table (read per row), Marian from a
    sinusoid table, T5 measures distances between cache slots (its holes are closed after each call);
    the fixtures' generation configs bring forced BOS / EOS and bad words, which read the sequences
    (min_new_tokens too: the tiny M2M100 would end its rows after a few tokens)."""
    model = copying_seq2seq(tiny_model(name), boost=6.0)
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13, 7, 11))
    plain, guessed = plain_and_guessed(model, input_ids, attention_mask, max_new_tokens=40, min_new_tokens=25,
                                       do_sample=False)
    assert torch.equal(plain.sequences, guessed.sequences)
    assert walked_per_row and guessed.speculation.accepted > 20 and guessed.speculation.calls < 30, guessed.speculation


def tiny_seq2seq(name: str):
    """The fixture architectures, and two more whose position tables decoding/row_positions.py reads."""
    from tiny_models import _seq2seq_sizes
    from transformers import (
        GenerationConfig,
        MBartConfig,
        MBartForConditionalGeneration,
        PegasusConfig,
        PegasusForConditionalGeneration,
    )

    if name in ENCODER_DECODER:
        return tiny_model(name)
    torch.manual_seed(0)
    if name == "mbart":
        model = MBartForConditionalGeneration(MBartConfig(**_seq2seq_sizes(), pad_token_id=1, eos_token_id=2,
                                                          decoder_start_token_id=2))
        model.generation_config = GenerationConfig(eos_token_id=2, pad_token_id=1, decoder_start_token_id=2)
    else:
        model = PegasusForConditionalGeneration(PegasusConfig(**_seq2seq_sizes(), pad_token_id=0, eos_token_id=1,
                                                              decoder_start_token_id=0))
        model.generation_config = GenerationConfig(eos_token_id=1, pad_token_id=0, decoder_start_token_id=0)
    return model.eval()


@pytest.mark.parametrize("name", ENCODER_DECODER + ("mbart", "pegasus"))
def test_encoder_decoder_rows_see_at_each_position_the_logits_plain_decoding_sees(name, monkeypatch):
    """Equal tokens say little where a tiny model repeats one token (Marian, T5 here): every position
    a row kept must have had plain decoding's logits there, before the copying boost (a wrong position
    number or a hole left in T5's cache changes them). A row that finished is fed filler tokens from
    where its last call began (nobody reads them), so positions whose last token fed differs are skipped."""
    monkeypatch.setattr(speculative_rows, "leave_finished", lambda state, rows, active, also=(): active)  # stay in place
    model = copying_seq2seq(tiny_seq2seq(name), boost=(6.0, 2.0))
    assert speculative_rows.row_positions.layout(model) is not None
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13, 7, 11))
    histories = []
    for extra in ({}, dict(prompt_lookup_num_tokens=6)):
        model.history = {}
        generate(model, input_ids, attention_mask, max_new_tokens=30, min_new_tokens=25, do_sample=False, **extra)
        histories.append(model.history)
    plain, guessed = histories
    for row in range(input_ids.shape[0]):
        compared = [position for position in range(25) if guessed[row][position] == plain[row][position]]
        assert len(compared) >= 20, (row, compared)
        for position in compared:
            expected = plain[row]["logits", position]
            torch.testing.assert_close(guessed[row]["logits", position], expected, rtol=0,
                                       atol=1e-5 * float(expected.abs().max()), msg=f"row {row}, position {position}")


def test_an_encoder_decoder_model_whose_positions_nopipe_cannot_number_keeps_the_aligned_loop():
    from types import SimpleNamespace

    unknown = SimpleNamespace(config=SimpleNamespace(model_type="unknown"),
                              get_decoder=lambda: SimpleNamespace(embed_positions=torch.nn.Embedding(4, 2)))
    assert speculative_rows.row_positions.layout(unknown) is None
    assert speculative_rows.row_positions.layout(tiny_model("t5")) == speculative_rows.row_positions.RELATIVE
    assert speculative_rows.row_positions.layout(tiny_model("bart")) == speculative_rows.row_positions.ABSOLUTE


def test_row_positions_reach_only_the_calls_of_their_own_thread():
    """A per-row call and plain calls share one model from two threads: the position hook reads a
    context variable, so the plain calls give their sequential tokens."""
    import threading

    model = copy.deepcopy(tiny_model("bart"))
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13, 7))
    settings = dict(max_new_tokens=24, min_new_tokens=20, do_sample=False)
    expected = generate(model, input_ids, attention_mask, **settings).sequences
    results = {"plain": [], "guessed": []}

    def run(kind: str, extra: dict):
        for _ in range(6):
            results[kind].append(generate(model, input_ids, attention_mask, **settings, **extra).sequences)

    threads = [threading.Thread(target=run, args=("plain", {})),
               threading.Thread(target=run, args=("guessed", dict(prompt_lookup_num_tokens=4)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results["plain"]) == len(results["guessed"]) == 6
    for sequences in results["plain"] + results["guessed"]:
        assert torch.equal(sequences, expected)


@pytest.mark.parametrize("rows", [1, 4])
def test_prompt_lookup_in_an_encoder_decoder_model_searches_its_input(rows):
    """A summary copies its article: the guesses come from the input as well as from the text so far
    (transformers searches the decoder's text alone, where a copy of the input is not found)."""
    model = copying_its_input(tiny_model("bart"), boost=8.0)
    input_ids, attention_mask = prompt_batch(model, lengths=(17, 14, 16, 15)[:rows])
    outputs = []
    for extra in ({}, dict(prompt_lookup_num_tokens=6)):
        model.history = {row: {"article": ids[real.bool()].tolist()}
                         for row, (ids, real) in enumerate(zip(input_ids, attention_mask))}
        outputs.append(generate(model, input_ids, attention_mask, max_new_tokens=13, min_new_tokens=13,
                                do_sample=False, **extra))
    plain, guessed = outputs
    assert torch.equal(plain.sequences, guessed.sequences)
    assert guessed.speculation.accepted >= 6 * rows and guessed.speculation.calls <= 8, guessed.speculation  # plain: 12


def test_what_prompt_lookup_searches_besides_a_row_s_text():
    from decoding.speculative import articles

    input_ids, attention_mask = torch.tensor([[5, 6, 7], [8, 9, 1]]), torch.tensor([[1, 1, 1], [1, 1, 0]])
    bart, marian = tiny_model("bart"), copy.deepcopy(tiny_model("marian"))
    assert articles(bart, input_ids, attention_mask, rows=4) == [[5, 6, 7], [5, 6, 7], [8, 9], [8, 9]]
    assert articles(tiny_model("llama"), input_ids, attention_mask, rows=2) == [[], []]  # its text holds the prompt
    marian.config.share_encoder_decoder_embeddings = False  # a source vocabulary of its own
    assert articles(marian, input_ids, attention_mask, rows=2) == [[], []]


# -- an assistant's guesses, each row keeping its own -----------------------------------------------------------


@pytest.mark.parametrize("name", ["gpt2", "llama", "bart", "t5"])
def test_an_assistant_s_rows_keep_their_own_guesses_and_give_plain_greedys_tokens(name, walked_per_row):
    """The assistant copies well in some rows and badly in others (its own boost per row), so rows keep
    different numbers of guesses; its cache keeps holes where they refused, as the target's does."""
    make = copying if name in MODELS else copying_seq2seq
    model = make(tiny_model(name), boost=6.0)
    assistant = make(tiny_model(name), boost=(6.0, 0.0, 3.0))
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13, 7, 11))
    outputs = []
    for extra in ({}, dict(assistant_model=assistant, num_assistant_tokens=5, assistant_confidence_threshold=0)):
        model.history, assistant.history = {}, {}
        outputs.append(generate(model, input_ids, attention_mask, max_new_tokens=40, min_new_tokens=30,
                                do_sample=False, **extra))
    plain, assisted = outputs
    assert torch.equal(plain.sequences, assisted.sequences)
    assert walked_per_row and assisted.speculation.accepted > 40, assisted.speculation
    assert bool(LEFT) == (name != "t5")  # rows left both caches (the tiny T5 writes every row to the end)


@pytest.mark.parametrize("name", ["gpt2", "llama", "bart", "t5"])
def test_an_assistant_that_is_the_model_itself_has_every_guess_kept(name, monkeypatch):
    """Its cache, holes and positions right, the assistant predicts each row exactly as the model does;
    processors that read each row's text (min_new_tokens, the repetition penalty) guide it the same way.
    A guess is refused only past the row's end."""
    refused = []
    walk = speculative_rows.walk_row

    def walk_row(rows, row, choices, guess):
        kept = walk(rows, row, choices, guess)
        if kept < len(guess) and not rows.finished[row]:
            refused.append((row, kept, guess))
        return kept

    monkeypatch.setattr(speculative_rows, "walk_row", walk_row)
    make = copying if name in MODELS else copying_seq2seq
    model = make(tiny_model(name), boost=(6.0, 2.0))
    assistant = make(tiny_model(name), boost=(6.0, 2.0))
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13, 7, 11))
    model.history, assistant.history = {}, {}
    out = generate(model, input_ids, attention_mask, max_new_tokens=30, min_new_tokens=20, repetition_penalty=1.3,
                   do_sample=False, assistant_model=assistant, num_assistant_tokens=5, assistant_confidence_threshold=0)
    assert out.speculation.proposed > 50 and not refused, (out.speculation, refused)


def test_the_assistant_reads_what_each_row_gained_and_gives_its_logits_after_the_newest_token():
    """assistant_rows.AssistantGuesses.catch_up: rows gain different numbers of tokens (short rows are
    filled, the fill becomes holes); each row's logits are the model's after its own text."""
    from decoding.assistant_rows import AssistantGuesses
    from decoding.stopping import StopCriteria

    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13))
    source = AssistantGuesses(model, input_ids, attention_mask, input_ids, max_length=40, processors=[],
                              row_processors=None, num_tokens=3, confidence=0)
    rows = speculative_rows.Rows(input_ids, StopCriteria(40, [2]), 40, pad_token_id=0)
    for gained in ([[30], [31, 32], [33]], [[34, 35, 36], [37], [38, 39]]):
        for row, tokens in enumerate(gained):
            for token in tokens:
                rows.append(row, token)
        logits = source.catch_up(rows, active=[0, 1, 2])
        for row in range(3):
            text = torch.tensor([rows.texts[row]])
            mask = torch.cat([attention_mask[row:row + 1], torch.ones((1, text.shape[1] - input_ids.shape[1]),
                                                                        dtype=torch.long)], dim=1)
            expected = model(input_ids=text, attention_mask=mask).logits[0, -1]
            torch.testing.assert_close(logits[row], expected, atol=1e-4, rtol=1e-4)


def test_an_assistant_s_guesses_follow_processors_that_read_each_row_s_text(walked_per_row):
    model = copying(tiny_model("llama"), boost=6.0)
    assistant = copying(tiny_model("llama"), boost=(6.0, 1.0))
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13, 7))
    outputs = []
    settings = dict(max_new_tokens=30, do_sample=False, no_repeat_ngram_size=4, repetition_penalty=1.2)
    for extra in ({}, dict(assistant_model=assistant, num_assistant_tokens=4)):
        model.history, assistant.history = {}, {}
        outputs.append(generate(model, input_ids, attention_mask, **settings, **extra))
    assert torch.equal(outputs[0].sequences, outputs[1].sequences)
    assert walked_per_row and outputs[1].speculation.accepted > 10, outputs[1].speculation


def test_an_unsure_row_stops_every_row_s_guessing(monkeypatch):
    """assistant_confidence_threshold: after a guess the assistant gives little probability in one row,
    no row guesses further in that call (a batch needs as many calls as its least sure row, so the sure
    rows' further guesses would cost assistant steps for little: measured in benchmarks.speculative).
    Every call may write num_assistant_tokens guesses here, so that only the threshold cuts them short
    (the width chooser would narrow them too, for the refusing row: tested below)."""
    from decoding import assistant_rows
    from decoding.speculative import GuessWidth

    monkeypatch.setattr(GuessWidth, "best", lambda self, lengths: max(lengths.values(), default=0))
    lengths = []
    propose = assistant_rows.AssistantGuesses.propose

    def recorded(self, rows, active):
        guesses = propose(self, rows, active)
        lengths.append(sorted({len(guess) for guess in guesses.values()}))
        return guesses

    monkeypatch.setattr(assistant_rows.AssistantGuesses, "propose", recorded)
    model = copying(tiny_model("llama"), boost=8.0)
    assistant = copying(tiny_model("llama"), boost=(8.0, 8.0, -8.0))  # row 2: pushed away from the copy
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13))
    model.history = {}
    plain = generate(model, input_ids, attention_mask, max_new_tokens=30, do_sample=False)
    proposed = {}
    for threshold in (0.9, 0.0):
        lengths.clear()
        model.history, assistant.history = {}, {}
        out = generate(model, input_ids, attention_mask, max_new_tokens=30, do_sample=False, assistant_model=assistant,
                       num_assistant_tokens=6, assistant_confidence_threshold=threshold)
        assert torch.equal(plain.sequences, out.sequences)
        # the rows of a call guessed as many each (but a row at its last token, which has no room for one)
        assert all(len(set(seen) - {0}) <= 1 for seen in lengths), lengths
        proposed[threshold] = out.speculation.proposed / out.speculation.calls
    assert proposed[0.9] < 0.75 * proposed[0.0], proposed  # the unsure row cut the calls' guesses short


def test_a_sampling_assistant_s_rows_keep_their_own_guesses_and_a_seed_repeats_the_draws(walked_per_row):
    model = copying(tiny_model("llama"), boost=6.0)
    assistant = copying(tiny_model("llama"), boost=(6.0, 1.0))
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13))
    settings = dict(max_new_tokens=20, do_sample=True, top_k=4, repetition_penalty=1.2, assistant_model=assistant,
                    num_assistant_tokens=3)
    runs = []
    for _ in range(2):
        model.history, assistant.history = {}, {}
        torch.manual_seed(4)
        runs.append(generate(model, input_ids, attention_mask, **settings))
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    assert walked_per_row and runs[0].speculation.accepted > 10, runs[0].speculation


def test_a_t5_whose_decoder_has_fewer_layers_than_its_encoder():
    """T5's cache makes a layer per encoder layer, so the decoder's spare ones are never filled (ByT5: 12
    encoder layers, 4 decoder ones); closing holes must pass them by."""
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=96, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                num_decoder_layers=1, num_heads=2, initializer_factor=3.0,
                                                pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)).eval()
    model.generation_config = GenerationConfig(eos_token_id=1, pad_token_id=0, decoder_start_token_id=0)
    model = copying_seq2seq(model, boost=(6.0, 2.0))
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13))
    plain, guessed = plain_and_guessed(model, input_ids, attention_mask, max_new_tokens=20, do_sample=False)
    assert torch.equal(plain.sequences, guessed.sequences)
    assert guessed.speculation.accepted > 10, guessed.speculation


def perturbed_copy(model, scale: float = 0.2):
    """The same model with its weights moved a little: an assistant that is often, not always, right."""
    assistant = copy.deepcopy(model)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in assistant.parameters():
            parameter.add_(torch.randn_like(parameter) * scale * parameter.std())
    return assistant


@pytest.mark.parametrize("source", ["lookup", "assistant"])
@pytest.mark.parametrize("rows", [1, 6])
@pytest.mark.parametrize("name", ["gpt2", "bart", "marian", "m2m100"])
def test_guesses_end_at_max_length_even_where_it_is_the_end_of_the_position_table(name, rows, source):
    """max_length = the tiny models' 64 positions, every row running to it: a guess past it, a short or
    finished row's filler numbered past it, or the model numbering a call from a cache that holds holes,
    would read past the position table (M2M100's grows: it must give the same numbers)."""
    model = tiny_model(name)
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13, 7, 11, 5)[:rows])
    guesses = dict(prompt_lookup_num_tokens=6) if source == "lookup" else dict(
        assistant_model=perturbed_copy(model), num_assistant_tokens=5, assistant_confidence_threshold=0)
    settings = dict(max_length=64, min_length=64, do_sample=False)
    plain = generate(model, input_ids, attention_mask, **settings)
    guessed = generate(model, input_ids, attention_mask, **settings, **guesses)
    assert torch.equal(plain.sequences, guessed.sequences) and plain.sequences.shape[1] == 64
    assert guessed.speculation.accepted > 0, guessed.speculation


def test_samples_of_an_encoder_decoder_input_with_guesses_repeat_under_a_seed():
    """num_return_sequences with prompt lookup: the samples read their own copies of the encoder's output
    (the shared cross-attention kernel reads one position per row), and keep their own guesses."""
    model = tiny_model("bart")
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13))
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        runs.append(generate(model, input_ids, attention_mask, do_sample=True, num_return_sequences=3,
                             max_new_tokens=12, prompt_lookup_num_tokens=3))
    assert runs[0].sequences.shape[0] == 9 and torch.equal(runs[0].sequences, runs[1].sequences)


def test_rows_keep_more_guesses_than_the_aligned_loop():
    """A processor that reads the sequences sends the batch to the aligned loop, which keeps the fewest:
    here rows that copy all the time beside rows that rarely do."""
    model = copying(tiny_model("llama"), boost=(8.0, 0.5))
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13, 7, 11))
    settings = dict(max_new_tokens=40, do_sample=False)
    per_row = plain_and_guessed(model, input_ids, attention_mask, **settings)[1]
    aligned = plain_and_guessed(model, input_ids, attention_mask, logits_processors=[lambda ids, s: s], **settings)[1]
    assert torch.equal(per_row.sequences, aligned.sequences)
    assert per_row.speculation.calls <= aligned.speculation.calls  # the rows that rarely copy set the count
    assert per_row.speculation.accepted > aligned.speculation.accepted + 50


@pytest.mark.parametrize("new_tokens", [1, 2, 5, 9, 23])
def test_max_new_tokens_reached_in_the_middle_of_a_row_s_guess(new_tokens):
    model = copying(tiny_model("gpt2"), boost=8.0)
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13))
    plain, guessed = plain_and_guessed(model, input_ids, attention_mask, max_new_tokens=new_tokens, do_sample=False)
    assert torch.equal(plain.sequences, guessed.sequences)


def test_a_row_that_copies_an_end_of_text_ends_there_and_is_padded():
    model = copying(tiny_model("llama"), boost=50.0)
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13))
    input_ids = input_ids.clone()
    input_ids[0, -PERIOD + 2] = 2  # row 0 copies the end-of-text id after a few tokens; the others go on
    plain, guessed = plain_and_guessed(model, input_ids, attention_mask, max_new_tokens=30, do_sample=False)
    assert torch.equal(plain.sequences, guessed.sequences)
    assert (plain.sequences[0, -10:] == model.generation_config.pad_token_id).all()
    assert LEFT and LEFT[0] == 1  # the finished row left the cache, and the others went on right


def test_stop_strings_end_each_row_where_greedy_ends_it():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.paths import FIXTURES

    tokenizer = AutoTokenizer.from_pretrained(FIXTURES / "gpt2")
    tokenizer.padding_side, tokenizer.pad_token = "left", tokenizer.eos_token
    model = copying(AutoModelForCausalLM.from_pretrained(FIXTURES / "gpt2").eval(), boost=8.0)
    batch = tokenizer(["The old lighthouse keeper climbed the stairs", "Rain fell"], return_tensors="pt",
                      padding=True)
    settings = dict(max_new_tokens=24, do_sample=False, tokenizer=tokenizer)
    model.history = {}
    full = generate(model, batch["input_ids"], batch["attention_mask"], **settings).sequences
    stop = tokenizer.decode(full[0, -6:-4])
    plain, guessed = plain_and_guessed(model, batch["input_ids"], batch["attention_mask"], stop_strings=stop,
                                       **settings)
    assert torch.equal(plain.sequences, guessed.sequences)
    assert guessed.speculation.accepted > 0


def test_sampling_warpers_run_per_row_and_a_seed_repeats_the_draws():
    model = copying(tiny_model("llama"), boost=6.0)
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13))
    settings = dict(max_new_tokens=30, do_sample=True, temperature=0.7, top_k=8, prompt_lookup_num_tokens=6)
    runs = []
    for _ in range(2):
        model.history = {}
        torch.manual_seed(3)
        runs.append(generate(model, input_ids, attention_mask, **settings))
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    assert runs[0].speculation.accepted > 10, runs[0].speculation


@pytest.fixture
def processed_per_row(monkeypatch):
    """Counts the positions whose scores were processed on their row's own sequence."""
    calls = []
    original = speculative_rows.ProcessedRow.__getitem__
    monkeypatch.setattr(speculative_rows.ProcessedRow, "__getitem__",
                        lambda self, position: (calls.append(position), original(self, position))[1])
    return calls


SEQUENCE_READERS = {  # processors that read each row's sequence (its tokens, or its length)
    "repetition_penalty": dict(repetition_penalty=1.4),
    "no_repeat_ngram_size": dict(no_repeat_ngram_size=4),
    "min_new_tokens": dict(min_new_tokens=20),
    "encoder_repetition_penalty": dict(encoder_repetition_penalty=1.5),
    "encoder_no_repeat_ngram_size": dict(encoder_no_repeat_ngram_size=3),
    "exponential_decay_length_penalty": dict(exponential_decay_length_penalty=(6, 1.6)),
    "sequence_bias": dict(sequence_bias={(40, 41): -4.0, (57,): 3.0}),
    "forced_eos_token_id": dict(forced_eos_token_id=2),
}


@pytest.mark.parametrize("name", sorted(SEQUENCE_READERS))
def test_processors_that_read_the_sequence_run_per_row_and_give_plain_greedys_tokens(name, processed_per_row):
    model = copying(tiny_model("llama"), boost=6.0)
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13, 7, 11))
    input_ids = input_ids.clone()
    input_ids[1, -PERIOD + 3] = 2  # row 1 copies the end-of-text id early: min_new_tokens holds it back
    plain, guessed = plain_and_guessed(model, input_ids, attention_mask, max_new_tokens=30, do_sample=False,
                                       **SEQUENCE_READERS[name])
    assert torch.equal(plain.sequences, guessed.sequences)
    assert processed_per_row and guessed.speculation.accepted > 10, guessed.speculation


def test_each_row_s_own_processors_give_the_scores_the_batch_s_give_that_row():
    """generation.one_row_processors: per-row state (the left padding the repetition penalty skips, the
    prompt an encoder_* option reads, with two samples per prompt) goes with its row."""
    from contextlib import ExitStack

    from decoding.generation import prepare
    from decoding.processors import run_processors

    model = tiny_model("llama")
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13))
    settings = dict(repetition_penalty=1.5, encoder_repetition_penalty=1.3, encoder_no_repeat_ngram_size=2,
                    no_repeat_ngram_size=2, min_new_tokens=3, do_sample=True, top_k=0, temperature=0.7, num_return_sequences=2,
                    max_new_tokens=5)
    with ExitStack() as scope:
        call = prepare(model, input_ids, attention_mask, tokenizer=None, logits_processors=(), strategy=None,
                       trace=False, settings=settings, scope=scope)
    generator = torch.Generator().manual_seed(0)
    rows = call.sequences.shape[0]
    sequences = torch.cat([call.sequences, torch.randint(3, 90, (rows, 2), generator=generator)], dim=1)
    scores = torch.randn((rows, 96), generator=generator) * 4
    batch = run_processors(call.processors, sequences, scores)
    for row in range(rows):
        own = run_processors(call.row_processors(row), sequences[row:row + 1], scores[row:row + 1])
        assert torch.equal(own, batch[row:row + 1]), row


def test_a_processor_told_the_batch_index_keeps_the_batch_aligned(processed_per_row):
    """prefix_allowed_tokens_fn is called with each row's batch index, which a row alone would not have."""
    model = copying(tiny_model("llama"), boost=6.0)
    input_ids, attention_mask = prompt_batch(model, lengths=(9, 4, 13))
    allowed = lambda batch_id, ids: list(range(3 + batch_id, 96))  # noqa: E731 (a different set per row)
    plain, guessed = plain_and_guessed(model, input_ids, attention_mask, max_new_tokens=20, do_sample=False,
                                       prefix_allowed_tokens_fn=allowed)
    assert torch.equal(plain.sequences, guessed.sequences)
    assert not processed_per_row and guessed.speculation.accepted > 0


def test_the_conditions_for_per_row_guesses():
    from decoding.cache import new_cache
    from decoding.model_step import ModelState
    from decoding.stopping import StopCriteria

    model = tiny_model("gpt2")
    state = ModelState(new_cache(model, 32), False)
    state.cache.layers = [speculative_rows.PreallocatedLayer(32)]
    stop = StopCriteria(32, [2])
    assert speculative_rows.rows_can_keep_their_own(model, state, [], stop, 0, None, rows=3)
    assert not speculative_rows.rows_can_keep_their_own(model, state, [], stop, 0, None, rows=1)
    assert not speculative_rows.rows_can_keep_their_own(model, state, [lambda ids, s: s], stop, 0, None, rows=3)
    assert speculative_rows.rows_can_keep_their_own(model, state, [lambda ids, s: s], stop, 0, None, rows=3,
                                                    row_processors=lambda row: [])
    assert not speculative_rows.rows_can_keep_their_own(model, state, [], StopCriteria(32, []), 0, None, rows=3)
    assert not speculative_rows.rows_can_keep_their_own(model, state, [], stop, None, None, rows=3)
    assert not speculative_rows.rows_can_keep_their_own(model, state, [], stop, 0, object(), rows=3)


# -- sampling: the accept/reject rule keeps the model's distribution ------------------------------------------

CHI_SQUARE_26_DF_P001 = 54.05  # the chi-square value a fair 27-outcome draw exceeds once in a thousand


def exact_probabilities(model, prompt: torch.Tensor, settings: dict, tokens: int) -> dict[tuple[int, ...], float]:
    """P(the first `tokens` new tokens) from the model's processed scores, step by step with the plain loop."""
    if tokens == 0:
        return {(): 1.0}
    model.history = {}
    scores = generate(model, prompt, max_new_tokens=1, output_scores=True, **settings).scores[0][0]
    first = torch.softmax(scores, dim=-1)
    outcomes = {}
    for token in torch.nonzero(first).flatten().tolist():
        longer = torch.cat([prompt, torch.tensor([[token]])], dim=1)
        for rest, p in exact_probabilities(model, longer, settings, tokens - 1).items():
            outcomes[(token, *rest)] = float(first[token]) * p
    return outcomes


@pytest.mark.parametrize("loop", ["per row", "per row, processed per row", "aligned"])
def test_speculative_sampling_draws_from_the_models_distribution(loop):
    """3,000 rows of one periodic prompt in one call: the third token comes from a position fed with a
    guess in most rows (kept only when the second token drew the guess), and the first three tokens
    follow the model's probabilities (chi-square over the 27 outcomes of top_k=3). The repetition
    penalty reads the sequences: each row's scores are then processed on the row's own."""
    model = copying(tiny_model("llama"), boost=8.0)
    prompt = torch.tensor([[11, 23, 35, 47, 59] * 3])
    settings = dict(do_sample=True, top_k=3, temperature=1.5)
    if loop == "per row, processed per row":
        settings["repetition_penalty"] = 1.2
    expected = exact_probabilities(model, prompt, settings, tokens=3)
    assert len(expected) == 27
    rows = 3000
    processors = [lambda ids, s: s] if loop == "aligned" else []  # the caller's processor: the aligned loop
    model.history = {}
    torch.manual_seed(0)
    out = generate(model, prompt.repeat(rows, 1), max_new_tokens=3, prompt_lookup_num_tokens=4,
                   logits_processors=processors, **settings)
    if loop != "aligned":
        assert out.speculation.accepted > rows // 6, out.speculation  # guesses were really kept
    drawn = [tuple(row) for row in out.sequences[:, -3:].tolist()]
    chi_square = sum((drawn.count(outcome) - rows * p) ** 2 / (rows * p) for outcome, p in expected.items())
    assert set(drawn) <= set(expected)
    assert chi_square < CHI_SQUARE_26_DF_P001, chi_square
