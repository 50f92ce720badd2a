"""What running the learned contact estimator in bfloat16 costs in accuracy and gains in speed.

The contact estimator (a 2-layer transformer over 503 point tokens, run 1 + N times per call) is compute-bound on
a CPU: ``torch.compile`` does not speed it up, while bfloat16 matrix products do on CPUs with AVX512-BF16. The rest
of the pipeline stays in float32. Runs the full method twice over the same synthetic test scenes (and the same
seeded simulated detections), once as shipped and once with ``pipe.contact_estimator.to(torch.bfloat16)``, and
prints the paired differences (bfloat16 minus float32, mean ± standard error) and the estimator's time per batch-8
pass in each dtype and, last, in float32 under ``torch.compile``. A report, never a choice: the shipped pipeline
keeps float32.

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/bf16_contact_estimator.py [--cycles 10]
       [--speed-only]
"""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.cli import DEFAULT_PIPELINE
from scorehoi_diffusers.data.synthetic import synthetic_split
from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate, paired_differences
from scorehoi_diffusers.models.contact_estimator import ScoreHOIContactEstimator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cli import astronaut_inputs  # noqa: E402

METRICS = ("contact_precision", "contact_recall", "cd_human", "cd_object", "penetration_depth", "mpjpe", "pa_mpjpe")


def estimator_ms(pipeline: ScoreHOIPipeline, repeats: int = 20) -> float:
    """Milliseconds of one batch-8 contact-estimator pass on the astronaut photo's initial estimate."""
    captured = {}
    forward = ScoreHOIContactEstimator.forward

    def capture(self, *args, **kwargs):
        captured.setdefault("call", (args, kwargs))
        return forward(self, *args, **kwargs)

    ScoreHOIContactEstimator.forward = capture
    try:
        pipeline(**astronaut_inputs(8), num_cycles=0)
    finally:
        ScoreHOIContactEstimator.forward = forward
    args, kwargs = captured["call"]
    with torch.no_grad():
        pipeline.contact_estimator(*args, **kwargs)
        start = time.perf_counter()
        for _ in range(repeats):
            pipeline.contact_estimator(*args, **kwargs)
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-only", action="store_true", help="only the estimator's times, no evaluation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipeline.set_progress_bar_config(disable=True)
    dataset = synthetic_split("test", args.num_samples, seed=args.seed, image_size=192, body=pipeline.body_model)

    def run() -> dict:
        estimate = RegressorEstimate(pipeline, "simulated", args.seed)
        return evaluate(pipeline, dataset, split=None, mode="full", num_samples=args.num_samples,
                        num_cycles=args.cycles, seed=args.seed, initial_estimate_fn=estimate)

    results, times = {}, {}
    for dtype in (torch.float32, torch.bfloat16):
        pipeline.contact_estimator.to(dtype)
        times[dtype] = estimator_ms(pipeline)
        if not args.speed_only:
            results[dtype] = run()
    pipeline.contact_estimator.to(torch.float32).compile(dynamic=False)  # after the evaluations, which stay eager
    compiled_ms = estimator_ms(pipeline)  # its first call (in estimator_ms's pipeline call) compiles
    single, half_ms = times[torch.float32], times[torch.bfloat16]
    print(f"load average {os.getloadavg()[0]:.2f}; contact estimator, batch-8 pass: float32 {single:.1f} ms, "
          f"bfloat16 {half_ms:.1f} ms ({half_ms / single:.2f}x), float32 compiled {compiled_ms:.1f} ms "
          f"({compiled_ms / single:.2f}x)")
    if args.speed_only:
        return
    print(f"bfloat16 minus float32 contact estimator, full method, N = {args.cycles}, keypoints simulated, "
          f"{args.num_samples} test scenes (mean ± standard error, paired):")
    full, half = results[torch.float32], results[torch.bfloat16]
    differences = paired_differences(half, full)
    for name in METRICS:
        mean, error = differences[name]["mean"], differences[name]["standard_error"]
        print(f"  {name:18s} {mean:+.4f} ± {error:.4f}  (float32 {full[name]:.3f})")
    print(f"  contact_f          float32 {full['contact_f']:.3f}, bfloat16 {half['contact_f']:.3f}")


if __name__ == "__main__":
    main()
