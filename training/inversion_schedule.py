"""Plain inversion first, exact inversion after: a cycle scheme tested against the shipped one on the validation slice.

Plain DDIM inversion drifts: every unguided round trip pulls the sample towards the prior. Over the first cycles
the pull corrects the regressor's bodies (CD_h and PA-MPJPE fall from N = 2 to N = 10); over many it also moves body
and object apart, and contact precision falls from N = 2 to N = 10 (issue 17's third target). Exact inversion in
every cycle stops the drift and with it the correction. The candidate keeps plain inversion for the first cycles and
inverts exactly after them (``inversion_iterations=[0, 0, 1]``: cycles 1-2 plain, later cycles one fixed-point
iteration), so N = 2 is the shipped result and later cycles refine it by guidance without drifting.

Rule (fixed before the runs, 2026-12-01): on 200 validation scenes never used before (index 22300-22499 of the
train stream; never the test split), without and with simulated keypoints, the candidate becomes the default only
if, in both keypoint settings:

(a) at N = 10, candidate minus shipped is worse by more than two standard errors on none of CD_h, CD_o, contact
    precision and recall, penetration depth, MPJPE and PA-MPJPE;
(b) the candidate's N = 10 minus its N = 2 (the shipped N = 2, identical by construction) is worse by more than two
    standard errors on none of them (issue 17's "N = 10 is not worse than N = 2");
(c) at N = 10 the candidate is better than shipped by more than two standard errors on at least one of them.

Run: PYTHONPATH=training python training/inversion_schedule.py --first-index 22300 --num-samples 200 \
         --keypoints none [--schedule 0 0 1] [--out FILE]
"""
import argparse

import torch
import validation_slice
from exact_inversion import WithCallArguments

from scorehoi_diffusers.evaluation import evaluate, format_table
from scorehoi_diffusers.export import write_json

METRICS = validation_slice.RULE_METRICS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    validation_slice.add_arguments(parser, num_samples=200)
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="none")
    parser.add_argument("--schedule", type=int, nargs="+", default=[0, 0, 1],
                        help="the candidate's inversion_iterations, one per cycle, the last repeated")
    parser.add_argument("--cycles", type=int, nargs=2, default=[2, 10], metavar=("FEW", "MANY"))
    parser.add_argument("--out", help="write every run (with per-sample values) to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    few, many = args.cycles
    if few > len(args.schedule) - 1 or any(args.schedule[:few]):
        raise SystemExit(f"--schedule {args.schedule} must be plain (0) for the first {few} cycles and say what "
                         "follows, so that its N = FEW run is the shipped one.")
    keypoints = None if args.keypoints == "none" else args.keypoints
    pipeline, data, estimate, _ = validation_slice.load(args, keypoints)
    runs = {}
    for name, cycles, schedule in (("shipped", few, 0), ("shipped", many, 0), ("candidate", many, args.schedule)):
        result = evaluate(pipeline, data, split=None, mode="full", num_cycles=cycles,
                          initial_estimate_fn=WithCallArguments(estimate, inversion_iterations=schedule))
        result.update(method=name, inversion_iterations=schedule, keypoints=args.keypoints,
                      first_index=args.first_index)
        runs[name, cycles] = result
        print(f"{name}, N = {cycles}", format_table([result]), sep="\n", flush=True)
        if args.out:
            write_json(args.out, list(runs.values()), indent=2)
    validation_slice.print_paired(f"(a) N = {many}: candidate minus shipped", runs["candidate", many],
                                  runs["shipped", many], METRICS)
    validation_slice.print_paired(f"(b) candidate N = {many} minus N = {few}", runs["candidate", many],
                                  runs["shipped", few], METRICS)
    validation_slice.print_paired(f"shipped N = {many} minus N = {few}", runs["shipped", many],
                                  runs["shipped", few], METRICS)


if __name__ == "__main__":
    main()
