"""Prompt-lookup speculative decoding on SmolLM2-135M-Instruct (real weights), against plain greedy and
transformers' own prompt lookup.

    python -m benchmarks.speculative [--new-tokens 96] [--repeats 3] [--threads 2]
    python -m benchmarks.speculative --part int8-draft-batch   # the int8 self-draft at batch 8 alone

The prompts are input-grounded, the work prompt lookup is for: the model is given a short text and
asked to repeat it, to rewrite it for a newsletter, or to list its facts, so its answer copies runs
of the prompt (the texts are written for this benchmark, not picked for a high acceptance). Systems,
each in a fresh process per run, the runs interleaved (A B C, B C A, ...):

Workloads: `repeat`, `rewrite`, `facts` (each alone, batch 1 and 8) and `mixed` (the three, row
after row, batch 8): acceptance depends on how much of the answer is a copy, and a batch waits for
its slowest row.

- `nopipe-lookup`: decoding.generate(..., prompt_lookup_num_tokens=10), batch 1 and batch 8;
- `nopipe-greedy`: decoding.generate(...) greedy, batch 1 and batch 8;
- `generate-lookup`: transformers' model.generate(prompt_lookup_num_tokens=10), batch 1 only (it refuses batches);
- `nopipe-int8-draft`: decoding.generate(..., assistant_model=<the int8 copy of the model>), batch 1
  (and batch 8 with `--part int8-draft-batch`, where each row keeps its own guesses);
- `nopipe-int8-draft-aligned` (batch 8): the same in the loop that moves the batch on by the fewest
  guesses any row kept, which a caller's own logits processor selects (`keep_batch_aligned`).
Every system decodes greedily with the same max_new_tokens; tokens/s counts new tokens, prefill included,
of a call made after an untimed warm-up call of 8 tokens (the first call of a process pays one-time costs:
measured here, int8 self-draft ran 29 tokens/s in a cold call and 37 in a warm one, plain greedy 28-29 both).
"""

import argparse
import json
import statistics
import time

from benchmarks.worker import last_line_of_module, rotated

TEXT = ("The city council met on Tuesday evening and approved a budget of 4.2 million euros for the public "
        "libraries. The money will pay for longer opening hours on weekends, a new reading room for children "
        "in the north district, and the repair of the old library's roof, which has leaked since the storm "
        "in March. The council also asked the libraries to report every six months on how many people use "
        "the new rooms.")
WORKLOADS = {"repeat": [f"Repeat this text exactly:\n\n{TEXT}"],
             "rewrite": [f"Rewrite this text for a newsletter, keeping every fact:\n\n{TEXT}"],
             "facts": [f"List the facts in this text, one per line:\n\n{TEXT}"]}
WORKLOADS["mixed"] = [task for tasks in WORKLOADS.values() for task in tasks]  # the three, row after row
SYSTEMS = ("nopipe-lookup", "nopipe-greedy", "generate-lookup", "nopipe-int8-draft")
DRAFT_BATCH_SYSTEMS = ("nopipe-greedy", "nopipe-int8-draft", "nopipe-int8-draft-aligned")
PARTS = {  # batch, systems, workloads
    "all": ((1, SYSTEMS, ("repeat", "rewrite", "facts")), (8, SYSTEMS[:2], ("repeat", "rewrite", "facts", "mixed"))),
    "int8-draft-batch": ((8, DRAFT_BATCH_SYSTEMS, ("repeat", "rewrite", "facts", "mixed")),),
}


def keep_batch_aligned(input_ids, scores):
    """A caller's logits processor that changes nothing; being the caller's, it may read the whole batch,
    so decoding.generate keeps the batch's rows aligned (moving on by the fewest guesses any row kept)."""
    return scores
LOOKUP = 10
WARM_UP_TOKENS = 8  # an untimed call before the timed one, as every benchmark of the suite makes


def prompts(tokenizer, batch: int, workload: str = "repeat"):
    tasks = WORKLOADS[workload]
    chats = [tokenizer.apply_chat_template([{"role": "user", "content": tasks[index % len(tasks)]}],
                                           add_generation_prompt=True, tokenize=False) for index in range(batch)]
    tokenizer.padding_side = "left"
    return tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)


def measure(system: str, batch: int, new_tokens: int, threads: int, workload: str) -> dict:
    """Tokens/s of one system on one batch, in this process (model loaded before the clock starts)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.defaults import smollm2_folder
    from decoding import generate

    torch.set_num_threads(threads)
    folder = smollm2_folder()
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    encoded = prompts(tokenizer, batch, workload)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    settings = dict(do_sample=False)
    if system == "nopipe-int8-draft-aligned":
        settings["logits_processors"] = [keep_batch_aligned]
    if system.startswith("nopipe-int8-draft"):
        import copy

        from core.device import place_model

        settings["assistant_model"] = place_model(copy.deepcopy(model), dtype="int8", many_rows=False)[0]
    def decode(count: int):
        """(sequences, acceptance rate or None) of one call of the system making `count` new tokens."""
        with torch.inference_mode():
            if system == "generate-lookup":
                return model.generate(ids, attention_mask=mask, prompt_lookup_num_tokens=LOOKUP,
                                      max_new_tokens=count, **settings), None
            lookup = dict(prompt_lookup_num_tokens=LOOKUP) if system == "nopipe-lookup" else {}
            result = generate(model, ids, mask, max_new_tokens=count, **settings, **lookup)
            return result.sequences, (result.speculation.rate if result.speculation else None)

    decode(WARM_UP_TOKENS)  # first-call costs (kernel selection, int8 packing warm-up) stay out of the clock
    started = time.perf_counter()
    sequences, rate = decode(new_tokens)
    seconds = time.perf_counter() - started
    pad = tokenizer.pad_token_id
    new = sequences[:, ids.shape[1]:]
    count = int((new != pad).sum()) if pad is not None else new.numel()
    return {"tokens_per_s": count / seconds, "acceptance": rate, "tokens": new.tolist()}


def run_in_own_process(system: str, batch: int, new_tokens: int, threads: int, workload: str) -> dict:
    return json.loads(last_line_of_module("benchmarks.speculative", "--worker", system, "--batch", str(batch),
                                          "--new-tokens", str(new_tokens), "--threads", str(threads),
                                          "--workload", workload))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speculative", description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--part", choices=PARTS, default="all",
                        help="all (default): every row of the README's table; int8-draft-batch: the int8 self-draft "
                             "at batch 8, each row keeping its own guesses and aligned")
    parser.add_argument("--worker", choices=SYSTEMS + DRAFT_BATCH_SYSTEMS[2:], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=WORKLOADS, default="repeat",
                        help="with --worker: the prompts (each workload's prompts are the same text, asked for "
                             "something else); the full run measures all of them")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.batch, args.new_tokens, args.threads, args.workload)))
        return
    for batch, systems, workloads in PARTS[args.part]:
        for workload in workloads:
            runs = {system: [] for system in systems}
            for repeat in range(args.repeats):
                for system in rotated(systems, repeat):
                    runs[system].append(run_in_own_process(system, batch, args.new_tokens, args.threads, workload))
            report(f"batch {batch}, {workload}", runs)


def report(title: str, runs: dict) -> None:
    """Median tokens/s (min-max), the ratios, acceptance, and whether the tokens were greedy's."""
    speed = {system: statistics.median(run["tokens_per_s"] for run in results) for system, results in runs.items()}
    print(f"{title}: tokens/s, median of {len(next(iter(runs.values())))} runs (min-max)", flush=True)
    for system, results in runs.items():
        values = [run["tokens_per_s"] for run in results]
        rate = results[0]["acceptance"]
        extra = f", {rate:.0%} of guesses kept" if rate is not None else ""
        print(f"  {system:25s} {speed[system]:7.1f} ({min(values):.1f}-{max(values):.1f}){extra}")
    greedy = runs["nopipe-greedy"][0]["tokens"]
    for system in (name for name in runs if name not in ("nopipe-greedy", "generate-lookup")):
        same = runs[system][0]["tokens"] == greedy
        print(f"  {system} / nopipe-greedy {speed[system] / speed['nopipe-greedy']:.2f}x (same tokens: {same})")
    if "generate-lookup" in speed:
        print(f"  nopipe-lookup / generate-lookup {speed['nopipe-lookup'] / speed['generate-lookup']:.2f}x")


if __name__ == "__main__":
    main()
