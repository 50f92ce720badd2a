"""Eager against `torch.compile`: the shipped denoiser per forward, and whole refinement calls, in one run.

The compiled denoiser is built once per input shape (the pipeline passes the timestep as a tensor), so a
refinement call of any length compiles at most once; the table gives the first call (with compilation) and the
steady-state speed, each as a ratio against eager in the same run.

With ``--latency``: ``pipeline(image=...)`` latency on the astronaut photo (``bench_cli.py``'s settings: batch 1
at N = 2 and 10, batch 8 at N = 10 and 2, median of ``--repeats``) eager, then with the guidance loss compiled
(``pipe.compile_guidance()``) and the denoiser compiled, in the same run, with the compilation time of the
first batch-1 and batch-8 calls, against issue 21's targets.

Usage: python benchmarks/bench_compile.py [--device cpu] [--dtype float32] [--mode default] [--cycles 10]
       python benchmarks/bench_compile.py --latency [--repeats 3] [--threads 1] [--bf16-contact-estimator]
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
    parser.add_argument("--latency", action="store_true", help="pipeline(image=...) latency, eager and compiled")
    parser.add_argument("--repeats", type=int, default=3, help="--latency: calls per setting (median)")
    parser.add_argument("--threads", type=int, default=1, help="--latency: torch CPU threads")
    parser.add_argument("--bf16-contact-estimator", action="store_true",
                        help="--latency: the compiled pipeline also runs its contact estimator in bfloat16 "
                        "(accuracy cost: benchmarks/bf16_contact_estimator.py)")
    args = parser.parse_args()
    if args.latency:
        return compiled_latency(args)

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


def compiled_latency(args) -> None:
    """``pipeline(image=...)`` seconds per image, eager and with the guidance loss and the denoiser compiled."""
    from bench_cli import TARGETS, astronaut_inputs, pipeline_latency

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    eager = pipeline_latency(args.repeats)
    pipe = ScoreHOIPipeline.from_pretrained(PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    pipe.compile_guidance(mode=args.mode)
    pipe.denoiser = torch.compile(pipe.denoiser, mode=args.mode, dynamic=False)
    if args.bf16_contact_estimator:
        pipe.contact_estimator.to(torch.bfloat16)
    # The first call of each batch size compiles its own graphs.
    first = {batch: _seconds(lambda b=batch: pipe(**astronaut_inputs(b), num_cycles=1), torch.device("cpu"))
             for batch in (1, 8)}
    compiled = pipeline_latency(args.repeats, pipe)
    eager_pipe = ScoreHOIPipeline.from_pretrained(PIPELINE)
    eager_pipe.set_progress_bar_config(disable=True)
    outputs = [p(**astronaut_inputs(1), num_cycles=10, generator=torch.Generator().manual_seed(0))
               for p in (eager_pipe, pipe, pipe)]
    difference = max(float((getattr(outputs[1], name) - getattr(outputs[0], name)).abs().max())
                     for name in ("body_vertices", "object_vertices"))
    repeatable = all(torch.equal(getattr(outputs[1], name), getattr(outputs[2], name))
                     for name in ("body_vertices", "object_vertices"))
    print(f"contact estimator in {pipe.contact_estimator.dtype} in the compiled pipeline")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, compile mode {args.mode!r}, load average "
          f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"first compiled call (compilation included): batch 1 {first[1]:.1f} s, batch 8 {first[8]:.1f} s")
    print(f"batch 1, N = 10: compiled meshes differ from eager by at most {difference * 1e3:.4f} mm; "
          f"two compiled calls bit-identical: {repeatable}")
    print("\n| pipeline(image=...), s / image | eager | compiled | compiled / eager | target |")
    print("|---|---|---|---|---|")
    for key, value in eager.items():
        target = TARGETS.get(key)
        verdict = "" if target is None else f"<= {target} ({'met' if compiled[key] <= target else 'missed'})"
        print(f"| {key} | {value:.3f} | {compiled[key]:.3f} | {compiled[key] / value:.2f} | {verdict} |")


def _eager_call(pipe, eager, example, cycles):
    compiled, pipe.denoiser = pipe.denoiser, eager
    try:
        return pipe(**example, num_cycles=cycles)
    finally:
        pipe.denoiser = compiled


if __name__ == "__main__":
    main()
