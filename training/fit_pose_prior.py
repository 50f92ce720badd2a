"""Fit the conventional pose prior (``scorehoi_diffusers/pose_prior.py``) on synthetic *training* poses only.

The poses are the ground-truth body poses of indices 0 .. ``--num-samples - 1`` of the seed-0 synthetic train stream
(the scenes the shipped weights were trained on: the first 12000), built with the stand-in body without rendering.
The validation slice (indices 20000..) and the test split are not touched. Everything is seeded and the fit is
float64, so re-running writes the same file bit for bit.

Run: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python training/fit_pose_prior.py [--num-samples 12000] [--out PATH]
"""
import argparse
import hashlib

import torch

from scorehoi_diffusers.data.synthetic.dataset import sample_params
from scorehoi_diffusers.pose_prior import (
    DEFAULT_POSE_PRIOR_PATH,
    GaussianPosePrior,
    body_pose_axis_angle,
    fit_gaussian,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-samples", type=int, default=12000)
    parser.add_argument("--out", default=str(DEFAULT_POSE_PRIOR_PATH))
    args = parser.parse_args()
    torch.set_num_threads(1)
    params, _, _ = sample_params(args.num_samples, seed=0, split="train", start=0)
    prior = GaussianPosePrior(**fit_gaussian(body_pose_axis_angle(params.body_pose)))
    path = prior.save(args.out)
    train_nll = prior(params.body_pose)
    print(f"fitted on {args.num_samples} training poses; their mean negative log-likelihood {train_nll.mean():.3f}")
    print(f"wrote {path} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()})")


if __name__ == "__main__":
    main()
