"""Eager against `torch.compile`: the shipped denoiser per forward, and whole refinement calls, in one run.

The compiled denoiser is built once per input shape (the pipeline passes the timestep as a tensor), so a
refinement call of any length compiles at most once; the table gives the first call (with compilation) and the
steady-state speed, each as a ratio against eager in the same run.

Usage: python benchmarks/bench_compile.py [--device cpu] [--dtype float32] [--mode default] [--cycles 10]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# A fresh inductor cache, so that the first compiled call includes the whole compilation, as for a new user.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bench_compile_"))

import torch  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

from scorehoi_diffusers import ScoreHOIPipeline  # noqa: E402
from scorehoi_diffusers.params import X0_DIM  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_denoiser import _ms_per_call  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "golden"))
from golden_cases import PIPELINE, _example  # noqa: E402


def _seconds(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float16", "bfloat16", "float32", "float64"])
    parser.add_argument("--mode", default="default", help="torch.compile mode")
    parser.add_argument("--cycles", type=int, default=10, help="refinement cycles of the whole-call timing")
    args = parser.parse_args()

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    pipe = ScoreHOIPipeline.from_pretrained(PIPELINE, dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    example = _example()
    print(f"device {device}, dtype {dtype}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}, compile mode {args.mode!r}")

    # Whole calls first, so that the first compiled call meets a cold cache; then single forwards.
    eager = pipe.denoiser
    rows = []
    counters.clear()
    eager_call = _seconds(lambda: pipe(**example, num_cycles=args.cycles), device)
    pipe.denoiser = torch.compile(eager, mode=args.mode)
    first_call = _seconds(lambda: pipe(**example, num_cycles=args.cycles), device)
    compiled_call = min(_seconds(lambda: pipe(**example, num_cycles=args.cycles), device) for _ in range(3))
    eager_call = min([eager_call] + [_seconds(lambda: _eager_call(pipe, eager, example, args.cycles), device)
                                     for _ in range(2)])
    rows.append((f"pipeline call, {args.cycles} cycles, batch 1", eager_call * 1e3, compiled_call * 1e3, first_call))
    pipe.denoiser = eager
    graphs = counters["stats"]["unique_graphs"]

    for batch in (1, 8):
        # A fresh compile per batch size: a second shape would recompile with dynamic shapes, a slower graph.
        torch._dynamo.reset()
        compiled = torch.compile(eager, mode=args.mode)
        generator = torch.Generator().manual_seed(0)
        sample = torch.randn(batch, X0_DIM, generator=generator).to(device, dtype)
        tokens = torch.randn(batch, 64, eager.config.image_feature_dim, generator=generator).to(device, dtype)
        with torch.no_grad():
            condition = eager.encode_condition(image_tokens=tokens)
            timestep = torch.tensor(25, device=device)
            # Eager is timed before and after the compiled model, so that a change of machine load during the run
            # does not favour either; the best of each is kept.
            eager_ms = _ms_per_call(lambda: eager(sample, timestep, condition=condition), device)
            first = _seconds(lambda: compiled(sample, timestep, condition=condition), device)
            compiled_ms = _ms_per_call(lambda: compiled(sample, timestep, condition=condition), device)
            eager_ms = min(eager_ms, _ms_per_call(lambda: eager(sample, timestep, condition=condition), device))
        rows.append((f"denoiser forward, batch {batch}", eager_ms, compiled_ms, first))

    print("\n| what | eager (ms) | compiled (ms) | compiled / eager | first compiled call (s) |")
    print("|---|---|---|---|---|")
    for name, eager_ms, compiled_ms, first in rows:
        print(f"| {name} | {eager_ms:.3f} | {compiled_ms:.3f} | {compiled_ms / eager_ms:.2f} | {first:.1f} |")
    print(f"\ngraphs compiled over the pipeline calls: {graphs}")


def _eager_call(pipe, eager, example, cycles):
    compiled, pipe.denoiser = pipe.denoiser, eager
    try:
        return pipe(**example, num_cycles=cycles)
    finally:
        pipe.denoiser = compiled


if __name__ == "__main__":
    main()
