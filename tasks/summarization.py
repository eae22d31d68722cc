"""Summarization with an encoder-decoder model (BART, PEGASUS, T5), as `pipeline("summarization")`.

    summarizer = Summarizer.from_pretrained("sshleifer/distilbart-cnn-12-6")
    summarizer(article, max_length=50, min_length=20)
    # [{"summary_text": "..."}]

The checkpoint's `task_specific_params["summarization"]` apply, as in the pipeline: distilbart-cnn
decodes with 4 beams, length_penalty 2.0, no repeated trigram, 56 to 142 tokens; T5 gets the
prefix "summarize: ". A caller's `max_length`/`min_length` win over them. The recipe is in
tasks/seq2seq.py.

Deliberate differences from the 4.57.6 pipeline: README, 'Where nopipe differs from 4.57.6'.
"""

from decoding.warn import warn_caller
from tasks.seq2seq import Seq2SeqRunner, first_offender


class Summarizer(Seq2SeqRunner):
    task = "summarization"
    output_name = "summary"

    def check_lengths(self, input_lengths: list[int], max_length: int) -> None:
        """A summary allowed to be longer than its text is usually a max_length meant for longer texts."""
        offender = first_offender(input_lengths, lambda length: length < max_length)
        if offender:
            shortest = min(input_lengths)
            warn_caller(f"{offender}, less than max_length={max_length}, so its summary may come out longer "
                        f"than the text; pass a smaller max_length (e.g. max_length={max(shortest // 2, 2)})")
