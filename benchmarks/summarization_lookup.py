"""Prompt lookup on a distilbart-cnn-sized summarizer, greedy, against greedy `generate()` (no beams).

    python -m benchmarks.summarization_lookup [--texts 4] [--new-tokens 64] [--repeats 3] [--threads 2]
    python -m benchmarks.summarization_lookup --batch 8 --texts 8  # articles summarized 8 at a time
    python -m benchmarks.summarization_lookup --models fixtures   # the tiny test model (seconds; no numbers)

The model is distilbart-cnn-12-6's architecture with random weights (the benchmarks' own copy,
`benchmarks.models`; the hub cannot be reached here), so its acceptance rate is what this model
happens to copy from its input and its own output, not what a trained summarizer would: read the
speed at that rate, and the cost of a verification (a decoder pass over 1 + N tokens against one
token), which says what any other rate would give. Each system runs in a process of its own per
repetition, the repetitions interleaved (A B C D, B C D A, ...); the texts are summarized one at a
time (or `--batch` at a time), with the model's generation config but `num_beams=1` and a fixed
number of new tokens.

- `nopipe-greedy`, `nopipe-lookup`: `decoding.generate` (the loop the Summarizer runs), plain and
  with `prompt_lookup_num_tokens=10` (guesses from the article and the summary so far);
- `generate-greedy`, `generate-lookup`: transformers' `model.generate()`, the same two settings
  (its prompt lookup searches the summary so far alone, and refuses batches, so batches run
  `generate-greedy` alone);
- `nopipe-lookup-aligned` (batches): prompt lookup in the loop that moves the batch on by the fewest
  guesses any row kept, which a caller's own logits processor selects (it might read the whole
  batch); what every encoder-decoder batch ran before rows kept their own guesses.
"""

import argparse
import json
import statistics
import time

from benchmarks.speculative import LOOKUP, keep_batch_aligned
from benchmarks.worker import last_line_of_module, rotated

SYSTEMS = ("nopipe-greedy", "nopipe-lookup", "generate-greedy", "generate-lookup")
BATCH_SYSTEMS = ("nopipe-greedy", "nopipe-lookup", "nopipe-lookup-aligned", "generate-greedy")


def systems(batch: int) -> tuple[str, ...]:
    return SYSTEMS if batch == 1 else BATCH_SYSTEMS



def load(threads: int, mode: str):
    """The benchmark's distilbart-cnn (built once, cached) or its test fixture, and its tokenizer."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from benchmarks.models import model_folder

    torch.set_num_threads(threads)
    folder = model_folder("distilbart-cnn", mode)
    return AutoModelForSeq2SeqLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def articles(tokenizer, count: int) -> list[str]:
    """News-length inputs (350-500 tokens, or what a smaller model reads) cut from the fixture corpus, the
    same on every run."""
    from benchmarks.workloads import mixed_texts

    longest = min(500, tokenizer.model_max_length)
    return mixed_texts(tokenizer, count, min(350, longest // 2), longest, seed=3)


def measure(system: str, texts: int, new_tokens: int, threads: int, mode: str = "real", batch: int = 1) -> dict:
    """Tokens/s of one system over the texts, `batch` at a time (model loaded before the clock starts)."""
    import torch

    from decoding import generate

    model, tokenizer = load(threads, mode)
    settings = dict(num_beams=1, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    if "lookup" in system:
        settings["prompt_lookup_num_tokens"] = LOOKUP
    processors = [keep_batch_aligned] if system == "nopipe-lookup-aligned" else []
    outputs, proposed, kept, seconds = [], 0, 0, 0.0
    documents = [" " + text for text in articles(tokenizer, texts)]  # distilbart-cnn's config.prefix is " "
    with torch.inference_mode():
        for first in range(0, len(documents), batch):
            encoded = tokenizer(documents[first:first + batch], return_tensors="pt", padding=True)
            started = time.perf_counter()
            if system.startswith("generate"):
                sequences = model.generate(**encoded, **settings)
            else:
                result = generate(model, encoded["input_ids"], encoded["attention_mask"], logits_processors=processors,
                                  **settings)
                sequences = result.sequences
                if result.speculation is not None:
                    proposed, kept = proposed + result.speculation.proposed, kept + result.speculation.accepted
            seconds += time.perf_counter() - started
            outputs.extend(row[1:] for row in sequences.tolist())  # after the decoder start token
    rate = (kept / proposed if proposed else 0.0) if "lookup" in system and system.startswith("nopipe") else None
    return {"tokens_per_s": sum(map(len, outputs)) / seconds, "acceptance": rate, "tokens": outputs}


def verification_cost(threads: int, mode: str = "real", guesses: int = LOOKUP, repeats: int = 20) -> float:
    """Seconds of a decoder pass over 1 + `guesses` tokens, divided by a pass over 1 token (batch 1, an
    article of ~400 tokens, 32 tokens already decoded): with acceptance a, a step keeps about 1 + a * N
    tokens for this cost."""
    import torch

    from decoding.cache import new_cache

    model, tokenizer = load(threads, mode)
    encoded = tokenizer(" " + articles(tokenizer, 1)[0], return_tensors="pt")
    with torch.inference_mode():
        encoder_output = model.get_encoder()(**encoded)
        start = torch.full((1, 32), model.config.decoder_start_token_id)

        def seconds(tokens: int) -> float:
            cache = new_cache(model, 32 + guesses + 1)
            model(encoder_outputs=encoder_output, attention_mask=encoded["attention_mask"],
                  decoder_input_ids=start, cache=cache, use_cache=True)
            step = torch.full((1, tokens), 5)
            times = []
            for _ in range(repeats):
                cache.crop(32)
                began = time.perf_counter()
                model(encoder_outputs=encoder_output, attention_mask=encoded["attention_mask"],
                      decoder_input_ids=step, cache=cache, use_cache=True)
                times.append(time.perf_counter() - began)
            return statistics.median(times)

        return seconds(1 + guesses) / seconds(1)


def run_in_own_process(*arguments: str) -> dict:
    return json.loads(last_line_of_module("benchmarks.summarization_lookup", *arguments))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.summarization_lookup",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1, help="articles summarized together (default 1)")
    parser.add_argument("--models", choices=("real", "fixtures"), default="real",
                        help="real: the real-size model (default); fixtures: the tiny test model")
    parser.add_argument("--worker", choices=SYSTEMS + BATCH_SYSTEMS + ("verification-cost",), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch must be 1 or more, got {args.batch}")
    common = ["--texts", str(args.texts), "--new-tokens", str(args.new_tokens), "--threads", str(args.threads),
              "--models", args.models, "--batch", str(args.batch)]
    if args.worker == "verification-cost":
        print(json.dumps(verification_cost(args.threads, args.models)))
        return
    if args.worker:
        print(json.dumps(measure(args.worker, args.texts, args.new_tokens, args.threads, args.models, args.batch)))
        return
    runs = {system: [] for system in systems(args.batch)}
    for repeat in range(args.repeats):
        for system in rotated(systems(args.batch), repeat):
            runs[system].append(run_in_own_process("--worker", system, *common))
    report(runs, run_in_own_process("--worker", "verification-cost", *common), args)


def report(runs: dict, cost: float, args) -> None:
    """Median tokens/s (min-max) per system, the ratios, acceptance, whether the tokens agree."""
    speed = {system: statistics.median(run["tokens_per_s"] for run in results) for system, results in runs.items()}
    weights = "random weights" if args.models == "real" else "the test fixture"
    together = "one at a time" if args.batch == 1 else f"{args.batch} at a time"
    print(f"distilbart-cnn ({weights}), {args.texts} articles of 350-500 tokens {together}, greedy, "
          f"{args.new_tokens} new tokens: tokens/s, median of {args.repeats} runs (min-max)")
    for system, results in runs.items():
        values = [run["tokens_per_s"] for run in results]
        rate = results[0]["acceptance"]
        extra = f", {rate:.0%} of guesses kept" if rate is not None else ""
        print(f"  {system:21s} {speed[system]:7.1f} ({min(values):.1f}-{max(values):.1f}){extra}")
    greedy = runs["generate-greedy"][0]["tokens"]
    for system in (name for name in runs if name != "generate-greedy"):
        same = runs[system][0]["tokens"] == greedy
        print(f"  {system} / generate-greedy {speed[system] / speed['generate-greedy']:.2f}x "
              f"(generate-greedy's tokens: {same})")
    print(f"  a decoder pass over 1 + {LOOKUP} tokens costs {cost:.2f}x a pass over 1 token")


if __name__ == "__main__":
    main()
