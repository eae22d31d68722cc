"""nopipe's benchmark suite: nopipe against the transformers pipeline, `model.generate()`, CTranslate2,
ONNX Runtime (encoders) and llama.cpp (SmolLM2, when installed), each in a worker process of its own.

    python -m benchmarks.models                      # build the real-size models once (~8 GB on disk)
    nopipe bench                                     # every task, real-size models -> benchmarks/results/
    nopipe bench --quick                             # each task's first model, small workloads (scratch folder)
    nopipe bench --task text-generation --only gpt2  # part of it (scratch folder)
    python -m benchmarks.text_classification         # one task alone (each task has its script)
    python -m benchmarks.machine                     # this machine's GEMM peaks and memory bandwidth
    nopipe bench --models fixtures --in-process      # the tiny test models, one process (seconds; no numbers)
    python -m benchmarks.summarization --profile     # where nopipe's time goes

Layout: `models` builds the models, `workloads` makes the inputs, `peers` and `onnx_peer` hold the
systems measured, `measure` times and samples memory, `worker` runs each system in its own process
with interleaved repetitions, `options` the sizes and the command line, `suite` the Bench that queues systems and keeps
what they measured, `machine` probes the limits and `work` counts each case's FLOPs or bytes against
them, `targets` holds the targets and their table, `encoders` and `generation` are the two recipes
the task scripts use, `report` writes JSON, markdown and the chart. A benchmark never asserts a time.
CTranslate2, ONNX Runtime and matplotlib are optional (`pip install -e .[bench]`): without them those
peers and the chart are left out, with a note.
"""
