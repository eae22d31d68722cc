"""nopipe's benchmark suite: nopipe against the transformers pipeline, `model.generate()` and CTranslate2.

    python -m benchmarks.models                      # build the real-size models once (~6 min, ~8 GB)
    python -m benchmarks.run                         # every task, real-size models (~40 min on 2 cores)
    python -m benchmarks.run --quick                 # smaller workloads (~10 min)
    python -m benchmarks.run --task text-generation --only gpt2
    python -m benchmarks.text_classification         # one task alone (each task has its script)
    python -m benchmarks.run --models fixtures --out /tmp/bench   # the tiny test models (seconds)
    python -m benchmarks.summarization --profile     # where nopipe's time goes

Layout: `models` builds the models, `workloads` makes the inputs, `peers` holds every system
measured, `measure` times and samples memory, `suite` runs systems on workloads and keeps what it
measured (and the options), `encoders` and `generation` are the two recipes the task scripts use,
`report` writes JSON, markdown and the chart to benchmarks/results/. A benchmark never asserts a time.
CTranslate2 and matplotlib are optional (`pip install -e .[bench]`): without them those peers and
the chart are left out, with a note.
"""
