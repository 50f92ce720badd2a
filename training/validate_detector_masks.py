"""Compare pipelines on the validation slice with each picture's own person mask and with the detector's.

Stage 7 of the weights (``training/train_detector_masks.sh``) teaches the regressor the bundled detector's person
mask, which is what a photo without a hand-drawn mask gives it. This evaluates each ``--pipelines`` folder on the
validation slice (``validation_slice.py``; never the test split) in three ways, and prints every pipeline's rows and
its paired differences against the first folder (mean ± standard error):

- the regressor alone with each picture's own mask;
- the regressor alone with the detector's person mask in its place, no keypoints
  (``detector_mask_effect.DetectorMaskOnly``; a picture where it finds nobody keeps its own mask);
- with ``--cycles N``: the full method at N cycles with the detector's keypoints and person mask
  (``scorehoi evaluate --keypoints detected``).

The rule stage 7 was judged by, fixed before its runs, with the shipped pipeline first, then stage 7, then the
control run that never saw the detector's mask: stage 7 ships only if (A) with the detector's mask its regressor's
MPJPE is lower than the shipped one's by more than two standard errors, (B) with the own mask none of MPJPE,
PA-MPJPE, CD_h and CD_o is higher by more than two, (C) with the detector's mask its MPJPE is lower than the
control's by more than two, and (D) after the prior is retrained on it, the full method at N = 2 with the detector
is not worse than the shipped pipeline's by more than two on CD_h, CD_o, PA-MPJPE and penetration depth.

Usage: PYTHONPATH=training python training/validate_detector_masks.py --pipelines SHIPPED STAGE7 CONTROL
    [--num-samples 100] [--cycles 2] [--out results.json]
"""
import argparse
import json

import torch
from detector_mask_effect import DetectorMaskOnly
from validation_slice import FIRST_INDEX

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.data.synthetic import generate_dataset
from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate, paired_differences

REGRESSOR_METRICS = ("mpjpe", "pa_mpjpe", "cd_human", "cd_object", "facing_error")
FULL_METRICS = (*REGRESSOR_METRICS, "contact_precision", "contact_recall", "penetration_depth")


def rows_of(pipeline, data, cycles: int | None) -> dict:
    """The evaluation rows of one pipeline: ``own mask``, ``detector's mask`` and (with ``cycles``) ``full``."""
    detected = RegressorEstimate(pipeline, "detected")
    rows = {
        "own mask": evaluate(pipeline, data, split=None, mode="regressor",
                             initial_estimate_fn=RegressorEstimate(pipeline)),
        "detector's mask": evaluate(pipeline, data, split=None, mode="regressor",
                                    initial_estimate_fn=DetectorMaskOnly(detected)),
    }
    if cycles is not None:
        rows["full"] = evaluate(pipeline, data, split=None, mode="full", num_cycles=cycles,
                                initial_estimate_fn=detected)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", nargs="+", required=True, help="pipeline folders; the first is the reference")
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--first-index", type=int, default=FIRST_INDEX)
    parser.add_argument("--cycles", type=int, help="also the full method at this many cycles, detector's input")
    parser.add_argument("--out", help="write every row and paired difference to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipelines = [ScoreHOIPipeline.from_pretrained(folder) for folder in args.pipelines]
    for pipeline in pipelines:
        pipeline.set_progress_bar_config(disable=True)
    data = generate_dataset(args.num_samples, seed=0, split="train", start=args.first_index, image_size=192,
                            body=pipelines[0].body_model, progress=False)
    results = {folder: rows_of(pipeline, data, args.cycles) for folder, pipeline in zip(args.pipelines, pipelines)}
    reference = results[args.pipelines[0]]
    report = {"num_samples": args.num_samples, "first_index": args.first_index, "cycles": args.cycles, "rows": {}}
    for folder, rows in results.items():
        for name, row in rows.items():
            metrics = FULL_METRICS if name == "full" else REGRESSOR_METRICS
            entry = {key: [row[key], row["standard_errors"][key]] for key in metrics}
            print(f"{folder} | {name} | " + " | ".join(f"{key} {row[key]:.3f} ± {row['standard_errors'][key]:.3f}"
                                                        for key in metrics))
            if folder != args.pipelines[0]:
                differences = paired_differences(row, reference[name])
                entry["minus_reference"] = {key: [differences[key]["mean"], differences[key]["standard_error"]]
                                            for key in metrics}
                print("    minus the first: " + " | ".join(
                    f"{key} {differences[key]['mean']:+.3f} ± {differences[key]['standard_error']:.3f}"
                    for key in metrics))
            report["rows"][f"{folder} | {name}"] = entry
    if len(args.pipelines) > 2:  # stage 7 against its control (rule C)
        differences = paired_differences(results[args.pipelines[1]]["detector's mask"],
                                         results[args.pipelines[2]]["detector's mask"])
        report["second_minus_third_detector_mask"] = {
            key: [differences[key]["mean"], differences[key]["standard_error"]] for key in REGRESSOR_METRICS}
        print("second minus third, detector's mask: " + " | ".join(
            f"{key} {differences[key]['mean']:+.3f} ± {differences[key]['standard_error']:.3f}"
            for key in REGRESSOR_METRICS))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
