"""What direct inversion costs or saves: one guided pipeline call per setting, on this machine's CPU.

Three settings of the guidance without keypoints: exact inversion with one fixed-point iteration (ten more denoiser
passes per cycle than plain inversion; the shipped setting before direct inversion was asked), direct inversion on
plain inversion (no extra pass: the first denoising step reuses the path's top noise), and plain
inversion alone.

The shipped pipeline, synthetic scenes' parameters (seed 0, train stream, ``--first-index``) as the initial estimate,
the pipeline's guidance without keypoints with only ``direct_inversion`` and ``inversion_iterations`` changed;
``--repeats`` interleaved calls per setting at each batch size and N (interleaving keeps another job's load on all
settings alike). Prints each median in seconds per image and its ratio to the first setting's.

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/bench_direct_inversion.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.cli import DEFAULT_PIPELINE
from scorehoi_diffusers.data.synthetic import sample_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--first-index", type=int, default=24000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cycles", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipeline = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipeline.set_progress_bar_config(disable=True)
    guidance = pipeline.default_guidance_config(keypoints=False)
    configs = {
        "exact inversion, k = 1": dataclasses.replace(guidance, direct_inversion=False, inversion_iterations=1),
        "direct inversion, k = 0": dataclasses.replace(guidance, direct_inversion=True, inversion_iterations=0),
        "plain inversion, k = 0": dataclasses.replace(guidance, direct_inversion=False, inversion_iterations=0),
    }
    for batch in args.batch_sizes:
        params, _, _ = sample_params(batch, seed=0, objects=["box"], split="train", start=args.first_index)
        for cycles in args.cycles:
            seconds = {name: [] for name in configs}
            for _ in range(args.repeats + 1):  # the first round warms up and is dropped
                for name, config in configs.items():
                    begin = time.perf_counter()
                    pipeline(initial_params=params, object="box", num_cycles=cycles, guidance_config=config)
                    seconds[name].append((time.perf_counter() - begin) / batch)
            medians = {name: statistics.median(values[1:]) for name, values in seconds.items()}
            reference = next(iter(medians.values()))
            for name, median in medians.items():
                print(f"batch {batch}, N = {cycles}, {name}: {median:.3f} s per image "
                      f"({median / reference:.2f}x the first)", flush=True)


if __name__ == "__main__":
    main()
