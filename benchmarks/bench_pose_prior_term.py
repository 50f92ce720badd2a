"""What the ``pose_prior`` guidance term costs: one guidance gradient with and without it, on this machine's CPU.

The shipped pipeline, one synthetic scene's parameters (seed 0, train stream, ``--first-index``), its contacts from
one refinement cycle, no image evidence; then ``--repeats`` interleaved calls of ``guidance_x0_gradient`` with the
keypoint guidance as shipped (``pose_prior`` 0.01) and with ``pose_prior`` 0, at batch 1.
Prints each median and their ratio (interleaving keeps another job's load on both sides alike).

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/bench_pose_prior_term.py [--repeats 60]
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
from scorehoi_diffusers.objects import load_object


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--first-index", type=int, default=24000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipeline = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipeline.set_progress_bar_config(disable=True)
    params, _, names = sample_params(1, seed=0, split="train", start=args.first_index)
    template = load_object(names[0])
    contacts = pipeline(initial_params=params, object=template, num_cycles=1).contacts
    x0 = pipeline.codec.encode(params)
    shipped = pipeline.default_guidance_config(keypoints=True)
    configs = {"with the term": shipped, "without": dataclasses.replace(shipped, pose_prior=0.0)}
    seconds = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, config in configs.items():
            begin = time.perf_counter()
            pipeline.guidance_x0_gradient(x0, template, params.camera_translation, contacts, {}, config)
            seconds[name].append(time.perf_counter() - begin)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        print(f"{name}: {1000 * median:.2f} ms per guidance gradient (batch 1, pose_prior "
              f"{configs[name].pose_prior:g})")
    print(f"ratio: {medians['with the term'] / medians['without']:.2f}")


if __name__ == "__main__":
    main()
