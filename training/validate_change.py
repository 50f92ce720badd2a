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
``optimization``, ``full``; with per-sample values).

Run: PYTHONPATH=training python training/validate_change.py --out FILE [--num-samples 200] [--first-index 20048]
     [--randomized] [--keypoints simulated] [--cycles 2] [--modes regressor full] [--object-refinement gradient]
"""
import argparse

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
    parser.add_argument("--out", required=True, help="the JSON file to write")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keypoints = None if args.keypoints == "none" else args.keypoints
    pipeline, data, estimate, regressor_row = validation_slice.load(args, keypoints)
    full_start = WithCallArguments(estimate, object_refinement=args.object_refinement)
    results = [regressor_row if mode == "regressor" else
               evaluate(pipeline, data, split=None, mode=mode, num_cycles=args.cycles,
                        initial_estimate_fn=full_start if mode == "full" else estimate)
               for mode in args.modes]
    for result in results:
        result.update(keypoints=args.keypoints, first_index=args.first_index, randomized=args.randomized,
                      object_refinement=args.object_refinement if result["mode"] == "full" else None)
    print(format_table(results))
    write_json(args.out, results, indent=2)


if __name__ == "__main__":
    main()
