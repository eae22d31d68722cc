"""Text-to-text generation with an encoder-decoder model (T5, FLAN-T5), as `pipeline("text2text-generation")`.

    runner = Text2TextGenerator.from_pretrained("google/flan-t5-small")
    runner("question: Where is the lighthouse? context: ...", max_length=30)
    # [{"generated_text": "..."}]

The recipe (preprocess -> forward -> postprocess) is the one every seq2seq task shares; it lives
in tasks/seq2seq.py. This task adds nothing to it: no prefix beyond the model's `config.prefix`,
`task_specific_params["text2text-generation"]` if the checkpoint has them, the key "generated_text".
"""

from tasks.seq2seq import Seq2SeqRunner


class Text2TextGenerator(Seq2SeqRunner):
    task = "text2text-generation"
    output_name = "generated"
