"""The inputs: English text cut from the fixture corpus to lengths measured in tokens.

Lengths are drawn uniformly in [min_tokens, max_tokens] from a seeded generator, so every run and
every system sees the same texts. Each text is a run of consecutive corpus words (read as a loop),
which reads like prose rather than a bag of words.
"""

import random
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "corpus.txt"


def corpus_words() -> list[str]:
    return CORPUS.read_text(encoding="utf-8").split()


def texts_of_lengths(tokenizer, lengths: list[int], seed: int = 0) -> list[str]:
    """One text per entry of `lengths`, each about that many tokens long (special tokens included)."""
    words = corpus_words()
    # Tokens per word, as the word appears inside a sentence (after a space, which BPE vocabularies mark).
    cost = {word: max(1, len(tokenizer(" " + word, add_special_tokens=False)["input_ids"])) for word in set(words)}
    specials = len(tokenizer("a")["input_ids"]) - len(tokenizer("a", add_special_tokens=False)["input_ids"])
    generator = random.Random(seed)
    texts = []
    for length in lengths:
        position, chosen, tokens = generator.randrange(len(words)), [], specials
        while tokens < length or not chosen:
            word = words[position % len(words)]
            chosen.append(word)
            tokens += cost[word]
            position += 1
        texts.append(" ".join(chosen))
    return texts


def mixed_lengths(count: int, min_tokens: int, max_tokens: int, seed: int = 0) -> list[int]:
    generator = random.Random(seed)
    return [generator.randint(min_tokens, max_tokens) for _ in range(count)]


def mixed_texts(tokenizer, count: int, min_tokens: int, max_tokens: int, seed: int = 0) -> list[str]:
    return texts_of_lengths(tokenizer, mixed_lengths(count, min_tokens, max_tokens, seed), seed)


def questions_and_contexts(tokenizer, count: int, min_tokens: int, max_tokens: int) -> list[dict]:
    """SQuAD-like pairs: a short question (6 to 12 tokens) and a context of mixed length."""
    generator = random.Random(1)
    questions = texts_of_lengths(tokenizer, [generator.randint(6, 12) for _ in range(count)], seed=1)
    contexts = mixed_texts(tokenizer, count, min_tokens, max_tokens)
    return [{"question": question.rstrip(".") + "?", "context": context}
            for question, context in zip(questions, contexts)]


def prompt_ids(tokenizer, count: int, length: int) -> list[list[int]]:
    """`count` prompts of exactly `length` token ids, cut from the corpus at different places,
    so a batch needs no padding and every system (text or ids) gets the same prompt."""
    ids = tokenizer(" ".join(corpus_words()), add_special_tokens=False)["input_ids"]
    while len(ids) < length * (count + 1):
        ids = ids + ids
    stride = (len(ids) - length) // max(count, 1)
    return [ids[index * stride:index * stride + length] for index in range(count)]


def token_lengths(tokenizer, texts: list[str]) -> dict:
    """min / mean / max token counts, for the report."""
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    return dict(min=min(lengths), mean=round(sum(lengths) / len(lengths), 1), max=max(lengths))
