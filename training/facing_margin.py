"""How the front/back check's margin changes the regressor's estimate, on the validation slice only.

The regressor row of ``evaluate`` with seeded simulated detections, for the check as the pipeline runs it (margin
0: the twin is taken whenever it fits the detections better) and for margins the twin must win by (in person-box
sizes), against no keypoints at all. The pipeline keeps margin 0; the README says why.

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python training/facing_margin.py --margins 0 0.02 0.05 0.1
"""
import argparse
import functools

import validation_slice

from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate
from scorehoi_diffusers.pipelines import keypoint_fit

METRICS = ("mpjpe", "pa_mpjpe", "cd_object", "facing_flipped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    validation_slice.add_arguments(parser, num_samples=200)
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1])
    args = parser.parse_args()
    pipeline, data, _, regressor_row = validation_slice.load(args)
    print("no keypoints:", {name: round(regressor_row[name], 3) for name in METRICS})
    check = keypoint_fit.choose_facing
    for margin in args.margins:
        keypoint_fit.choose_facing = functools.partial(check, margin=margin)  # this process only
        estimate = RegressorEstimate(pipeline, keypoints="simulated", seed=0)
        row = evaluate(pipeline, data, split=None, mode="regressor", initial_estimate_fn=estimate)
        print(f"margin {margin:g}:", {name: round(row[name], 3) for name in METRICS}, flush=True)
    keypoint_fit.choose_facing = check


if __name__ == "__main__":
    main()
