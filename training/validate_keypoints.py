"""Compare pipelines on the validation slice with simulated detections: the check before shipping new weights.

Evaluates each `--pipeline` on indices 20000.. of the seed-0 synthetic *train* stream (`validation_slice.py`: never
rendered for training, disjoint from the test split), pictures in, with simulated BlazePose detections of each
sample's ground truth handed to the pipeline as `keypoints` (`RegressorEstimate(keypoints="simulated")`, measured
detector rates, seeded), in modes `regressor` (N = 0) and `full` at `--cycles`. With `--round-trip` it also sends
each ground-truth sample through `--cycles` cycles of inversion and denoising with guidance off (mode `prior`
started from the truth, with the same pictures and keypoints): its errors are how far the prior moves a perfect
estimate. Prints each row and the paired differences of every pipeline against the first, and writes all results
to `--out` (JSON).

    python training/validate_keypoints.py --pipeline scorehoi_diffusers/assets/scorehoi-synthetic runs/pipeline_kp \\
        --num-samples 96 --cycles 2 --out runs/validation_keypoints.json
"""
import argparse
import json
import os
import sys

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.atomic_files import atomic_write_bytes
from scorehoi_diffusers.data.synthetic import generate_dataset
from scorehoi_diffusers.evaluation import NoisyGroundTruth, RegressorEstimate, evaluate, paired_differences

sys.path.insert(0, os.path.dirname(__file__))
from validation_slice import FIRST_INDEX  # noqa: E402

REPORTED = ("mpjpe", "pa_mpjpe", "facing_error", "facing_flipped", "cd_human", "cd_object", "contact_f",
            "penetration_depth", "penetration_volume")


class StartFromTruth:
    """``initial_estimate_fn``: the ground truth as the initial estimate, with the pictures (and keypoints) of
    ``estimate`` for the image tokens, contact estimator and evidence."""

    def __init__(self, estimate: RegressorEstimate):
        self.estimate, self.truth = estimate, NoisyGroundTruth(0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def __call__(self, batch):
        return self.truth(batch)[0], None, None, None, self.estimate(batch)[4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", nargs="+", required=True, help="pipeline folders; the first is the reference")
    parser.add_argument("--num-samples", type=int, default=96)
    parser.add_argument("--first-index", type=int, default=FIRST_INDEX)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["regressor", "full"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--reuse", default=None, help="a JSON this script wrote: its rows are not evaluated again")
    parser.add_argument("--round-trip", action="store_true", help="also measure the prior's drift from the truth")
    args = parser.parse_args()
    rows = [(mode, mode) for mode in args.modes] + ([("round_trip", "prior")] if args.round_trip else [])

    data = None
    results = {}
    if args.reuse is not None:
        with open(args.reuse) as handle:
            results = json.load(handle)["results"]
    for folder in args.pipeline:
        if all(f"{folder}|{name}" in results for name, _ in rows):
            continue
        pipeline = ScoreHOIPipeline.from_pretrained(folder)
        pipeline.set_progress_bar_config(disable=True)
        if data is None:
            data = generate_dataset(args.num_samples, seed=0, split="train", start=args.first_index, image_size=192,
                                    body=pipeline.body_model, progress=False)
        estimate = RegressorEstimate(pipeline, keypoints="simulated", seed=0)
        for name, mode in rows:
            if f"{folder}|{name}" in results:
                continue
            start = StartFromTruth(estimate) if name == "round_trip" else estimate
            row = evaluate(pipeline, data, split=None, mode=mode, num_cycles=args.cycles, initial_estimate_fn=start)
            results[f"{folder}|{name}"] = row
            errors = row["standard_errors"]
            print(folder, name, " ".join(f"{key}={row[key]:.4g}±{errors.get(key) or 0:.2g}" for key in REPORTED
                                         if row.get(key) is not None), flush=True)
    reference = args.pipeline[0]
    differences = {}
    for folder in args.pipeline[1:]:
        for name, _ in rows:
            diff = paired_differences(results[f"{folder}|{name}"], results[f"{reference}|{name}"])
            differences[f"{folder}|{name}"] = diff
            print(f"{folder} - {reference}, {name}: " + " ".join(
                f"{key}={diff[key]['mean']:+.4g}±{diff[key]['standard_error'] or 0:.2g}" for key in REPORTED
                if key in diff))
    atomic_write_bytes(args.out, json.dumps({"results": results, "paired_differences_vs_first": differences},
                                            indent=2).encode())


if __name__ == "__main__":
    main()
