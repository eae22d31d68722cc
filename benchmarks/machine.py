"""This machine's limits, measured in a few seconds, so that every benchmark number has a ceiling beside it.

A ratio against a peer says who is ahead, not how much is left: two slow systems can be even. So the
suite measures what the hardware gives torch here, with the same threads:

- fp32 GEMM peak: the best GFLOP/s of torch.matmul on 2048 x 2048 float32 matrices (what every
  encoder layer is made of; MKL/oneDNN at its best shape);
- int8 GEMM peak: the best GOP/s of the dynamic-int8 Linear that nopipe's int8 runs on
  (torch.ao quantized dynamic Linear, fbgemm), on the same shape, activations quantized per call;
- memory bandwidth: the best GB/s of copying a 256 MB tensor (read + write counted), which bounds
  batch-1 decoding: every new token reads every weight once.

Encoder rows then show FLOPs of the forward pass / time as a share of the GEMM peak, batch-1
decoding rows bytes of weights per token / time per token as a share of the bandwidth.

    python -m benchmarks.machine            # prints the three numbers (~5 s)
"""

import time

import torch

SIZE = 2048
COPY_BYTES = 256 * 2**20


def best_seconds(call, repeats: int) -> float:
    """The fastest of `repeats` calls after one warm-up: a peak, not a typical time."""
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def fp32_gemm_gflops(size: int = SIZE, repeats: int = 6) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / best_seconds(lambda: torch.matmul(a, b), repeats) / 1e9


def int8_gemm_gops(size: int = SIZE, repeats: int = 12) -> float:
    """The dynamic-int8 Linear's throughput, counted like a GEMM (2 ops per multiply-add)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks its eager quantization as deprecated; nopipe's int8 runs on it
        linear = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(size, size, bias=False)),
                                                        {torch.nn.Linear}, dtype=torch.qint8)
    x = torch.randn(size, size)
    with torch.inference_mode():
        return 2 * size**3 / best_seconds(lambda: linear(x), repeats) / 1e9


def bandwidth_gbs(size_bytes: int = COPY_BYTES, repeats: int = 5) -> float:
    source = torch.ones(size_bytes // 4)
    target = torch.empty_like(source)
    return 2 * size_bytes / best_seconds(lambda: target.copy_(source), repeats) / 1e9


def probe(threads: int) -> dict:
    """The three limits on `threads` torch threads (and how long measuring them took)."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    limits = dict(threads=threads, fp32_gflops=round(fp32_gemm_gflops(), 1), int8_gops=round(int8_gemm_gops(), 1),
                  bandwidth_gbs=round(bandwidth_gbs(), 1))
    limits["probe_seconds"] = round(time.perf_counter() - start, 1)
    return limits


def probe_in_worker(threads: int) -> dict:
    """`probe` in a fresh process, so the parent of the workers never starts torch's thread pool."""
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(probe, threads).result(timeout=120)


def higher(first: dict, second: dict) -> dict:
    """Each limit at the higher of two probes: other work on the machine only ever lowers a peak."""
    return {key: max(first[key], second[key]) if key in ("fp32_gflops", "int8_gops", "bandwidth_gbs") else second[key]
            for key in second}


def describe(limits: dict) -> str:
    return (f"fp32 GEMM {limits['fp32_gflops']} GFLOP/s, int8 GEMM {limits['int8_gops']} GOP/s, memory "
            f"{limits['bandwidth_gbs']} GB/s on {limits['threads']} threads (probe: {limits['probe_seconds']} s)")


def fraction_of_peak(flops: float, seconds: float, peak_gflops: float) -> float:
    """The share of the GEMM peak a run reached: its useful FLOPs per second over the peak."""
    return flops / seconds / 1e9 / peak_gflops


if __name__ == "__main__":
    import sys

    print(describe(probe(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())))
