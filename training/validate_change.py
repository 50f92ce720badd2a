"""Evaluate the code of this checkout on the validation slice and write the results as ``scorehoi evaluate`` does.

A change to the code itself (not a setting the ``choose_*`` scripts can swap) is checked by running this script in
a checkout without the change and in one with it, on the same scenes, then pairing the two files:

    git worktree add /tmp/before HEAD~1 && cp training/validate_change.py /tmp/before/training/
    (cd /tmp/before && PYTHONPATH=training python training/validate_change.py --out /tmp/before.json ...)
    PYTHONPATH=training python training/validate_change.py --out /tmp/after.json ...
    scorehoi compare /tmp/after.json full full --reference-results /tmp/before.json

The slice is ``validation_slice``'s (indices 20000.. of the seed-0 synthetic *train* stream, never the test split);
``--first-index`` moves it, ``--randomized`` renders it in the randomised style, ``--keypoints simulated`` gives
every scene seeded simulated detections as ``scorehoi evaluate --keypoints simulated`` does, and
``--object-refinement gradient`` runs the full method with the object refined by gradient steps
(``ScoreHOIPipeline(object_refinement=...)``). Each ``--modes`` entry is one result in the file (``regressor``,
``optimization``, ``full``; with per-sample values). ``--guidance FIELD=VALUE`` changes fields of the full method's
default guidance, and ``--step-size`` and ``--pose-prior-weight`` replace the optimisation baseline's chosen ones, so
that settings chosen elsewhere (e.g. at another N) can be compared on the same scenes.

Run: PYTHONPATH=training python training/validate_change.py --out FILE [--num-samples 200] [--first-index 20048]
     [--randomized] [--keypoints simulated] [--cycles 2] [--modes regressor full] [--object-refinement gradient]
     [--guidance pose_prior=0.03] [--step-size 0.0018] [--pose-prior-weight 0.01]
"""
import argparse
import dataclasses

import torch
import validation_slice
from exact_inversion import WithCallArguments

from scorehoi_diffusers.evaluation import evaluate, format_table
from scorehoi_diffusers.export import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    validation_slice.add_arguments(parser, num_samples=200)
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="none")
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--modes", nargs="+", choices=("regressor", "optimization", "full"), default=["full"])
    parser.add_argument("--object-refinement", choices=("prior", "gradient"), default="prior",
                        help="the full method's object_refinement (ScoreHOIPipeline.__call__)")
    parser.add_argument("--guidance", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="fields of the full method's default guidance to change (VALUE read as JSON)")
    parser.add_argument("--step-size", type=float, default=None, help="the optimisation baseline's step size")
    parser.add_argument("--pose-prior-weight", type=float, default=None,
                        help="the optimisation baseline's pose prior weight")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    args = parser.parse_args()
    try:
        changes = validation_slice.guidance_changes(args.guidance)
    except argparse.ArgumentTypeError as error:
        parser.error(f"--guidance: {error}")
    torch.set_num_threads(1)
    keypoints = None if args.keypoints == "none" else args.keypoints
    pipeline, data, estimate, regressor_row = validation_slice.load(args, keypoints)
    guidance = dataclasses.replace(pipeline.default_guidance_config(keypoints=keypoints is not None), **changes)
    full_start = WithCallArguments(estimate, object_refinement=args.object_refinement)
    settings = {"full": {"initial_estimate_fn": full_start, "guidance_config": guidance},
                "optimization": {"initial_estimate_fn": estimate, "step_size": args.step_size,
                                 "pose_prior_weight": args.pose_prior_weight}}
    results = [regressor_row if mode == "regressor" else
               evaluate(pipeline, data, split=None, mode=mode, num_cycles=args.cycles, **settings[mode])
               for mode in args.modes]
    for result in results:
        result.update(keypoints=args.keypoints, first_index=args.first_index, randomized=args.randomized,
                      object_refinement=args.object_refinement if result["mode"] == "full" else None,
                      guidance_changes=changes if result["mode"] == "full" else None,
                      step_size=args.step_size if result["mode"] == "optimization" else None,
                      pose_prior_weight=args.pose_prior_weight if result["mode"] == "optimization" else None)
    print(format_table(results))
    write_json(args.out, results, indent=2)


if __name__ == "__main__":
    main()
