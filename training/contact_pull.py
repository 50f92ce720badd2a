"""A stronger contact pull, alone and with the release-only refresh, against the shipped guidance on validation scenes.

``training/contact_label_precision.py`` found the labels the contact term pulls on better than the geometry that comes
out (100 validation scenes, N = 10, no keypoints: labels above the 0.3 decision have precision 0.80 → 0.77 over the
cycles and recall 0.91, the output's contacts 0.745 and 0.764). So the pull leaves about one labelled true contact in
seven more than 5 cm from the object, and the refresh, which re-reads the pulled geometry, loses label precision
cycle by cycle. The candidates: the contact weight at 2 instead of 0.5 (the geometry follows the labels more
closely), and the same with ``add_contacts=False`` (a refresh may release a label but not add one, so the labels keep
the initial estimate's precision).

Rule (fixed before the runs, 2026-12-01): on 200 validation scenes never used before (index 22800-22999 of the train
stream; never the test split), without and with simulated keypoints, a candidate becomes the default only if, in
both keypoint settings:

(a) at N = 2 and at N = 10 it is worse than the shipped guidance by more than two standard errors on none of CD_h,
    CD_o, contact precision and recall, penetration depth, MPJPE and PA-MPJPE;
(b) its N = 10 minus its N = 2 is worse by more than two standard errors on none of them;
(c) at N = 10 it is better than the shipped guidance by more than two standard errors on at least one of them.
If both pass, the one better on more of those metrics at N = 10 (beyond two standard errors) is taken.

Second candidate, after the first two failed on penetration depth (rule fixed before its runs, 2026-12-01): the
contact weight at 2 and the penetration weight at 40 (both four times the shipped, so that the pull and the push
keep their balance while both gain on the image terms), with the release-only refresh, judged by the same rule on
200 other fresh validation scenes (index 23000-23199):
``--contact-weight 2 --penetration-weight 40 --variants release-only --first-index 23000``.

Third round, one setting each (rules fixed before their runs, 2026-12-01): the second candidate failed without
keypoints only (the body got worse) and, with keypoints, passed every clause but one that sat on its edge (precision
at N = 2, -1.996 SE). So the candidates become setting-specific defaults:

* with keypoints, contact 2, penetration 40, release-only, judged by (a)-(c) with simulated keypoints alone on 200
  fresh scenes (index 23200-23399): ``--keypoints simulated --contact-weight 2 --penetration-weight 40 --variants
  release-only --first-index 23200``;
* without keypoints, a smaller step up that may keep the body, contact 1, penetration 20 (both twice the shipped),
  release-only, judged by (a)-(c) without keypoints alone on 200 fresh scenes (index 23400-23599):
  ``--keypoints none --contact-weight 1 --penetration-weight 20 --variants release-only --first-index 23400``.
Each that passes becomes the default for its setting; one that fails leaves its setting's default as it is.

Outcome: the no-keypoint candidate passed and is the default without keypoints (``guidance`` in model_index.json);
the keypoint candidate failed (a) at N = 2 on precision (-0.0225 +- 0.0078), so ``keypoint_guidance`` kept the
earlier default. Fourth round (rule fixed before its run, 2026-12-01): the no-keypoint default's weights, contact 1,
penetration 20, release-only, judged by (a)-(c) with simulated keypoints against the keypoint default on 200 fresh
scenes (index 23600-23799): ``--keypoints simulated --contact-weight 1 --penetration-weight 20 --variants
release-only --first-index 23600``. If it passes it becomes the keypoint default too. "Shipped" is always the
pipeline's default for the setting (``default_guidance_config(keypoints=...)``, its refresh included).

Fifth round (rule fixed before its run, 2026-12-01), after round four failed with keypoints on precision at N = 2
(-0.016 +- 0.005) and MPJPE (+0.022 +- 0.011), and the release-only refresh alone had failed on recall (-0.006 at
N = 2, -0.017 at N = 10): halfway between the two, contact 0.75 and penetration 15 (1.5 times the keypoint
default), release-only, judged by (a)-(c) with simulated keypoints against the keypoint default on 200 fresh scenes
(index 23800-23999): ``--keypoints simulated --contact-weight 0.75 --penetration-weight 15 --variants release-only
--first-index 23800``. If it passes it becomes the keypoint default; it is the last round for this setting.
Outcome: it passed (nothing worse beyond two standard errors; at N = 10 precision +0.024 +- 0.007 and penetration
depth -0.095 +- 0.046 cm better; its N = 10 minus N = 2 precision +0.000 +- 0.010), so ``keypoint_guidance`` is
contact 0.75, penetration 15, release-only.

Run: PYTHONPATH=training python training/contact_pull.py --first-index 22800 --num-samples 200 --keypoints none \
         [--contact-weight 2] [--out FILE]
"""
import argparse
import dataclasses

import torch
import validation_slice

from scorehoi_diffusers.evaluation import evaluate, format_table
from scorehoi_diffusers.export import write_json

METRICS = validation_slice.RULE_METRICS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    validation_slice.add_arguments(parser, num_samples=200)
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="none")
    parser.add_argument("--contact-weight", type=float, default=2.0)
    parser.add_argument("--penetration-weight", type=float, help="default: the shipped guidance's")
    parser.add_argument("--variants", nargs="+", choices=("add", "release-only"), default=["add", "release-only"],
                        help="the candidates' contact refresh: today's, and/or release-only")
    parser.add_argument("--cycles", type=int, nargs=2, default=[2, 10], metavar=("FEW", "MANY"))
    parser.add_argument("--out", help="write every run (with per-sample values) to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline, data, estimate, _ = validation_slice.load(args, None if args.keypoints == "none" else args.keypoints)
    shipped = pipeline.default_guidance_config(keypoints=args.keypoints != "none")
    penetration = shipped.penetration if args.penetration_weight is None else args.penetration_weight
    stronger = dataclasses.replace(shipped, contact=args.contact_weight, penetration=penetration)
    weights = f"contact {args.contact_weight:g}, penetration {penetration:g}"
    candidates = {"shipped": shipped}
    if "add" in args.variants:
        candidates[weights] = dataclasses.replace(stronger, add_contacts=True)
    if "release-only" in args.variants:
        candidates[f"{weights}, release-only"] = dataclasses.replace(stronger, add_contacts=False)
    runs = {}
    for cycles in args.cycles:
        for name, config in candidates.items():
            result = evaluate(pipeline, data, split=None, mode="full", num_cycles=cycles, guidance_config=config,
                              initial_estimate_fn=estimate)
            result.update(method=name, keypoints=args.keypoints, first_index=args.first_index)
            runs[name, cycles] = result
            print(f"{name}, N = {cycles}", format_table([result]), sep="\n", flush=True)
            if args.out:
                write_json(args.out, list(runs.values()), indent=2)
    few, many = args.cycles
    for name in list(candidates)[1:]:
        for cycles in args.cycles:
            validation_slice.print_paired(f"(a) N = {cycles}: {name} minus shipped", runs[name, cycles],
                                          runs["shipped", cycles], METRICS)
        validation_slice.print_paired(f"(b) {name}: N = {many} minus N = {few}", runs[name, many],
                                      runs[name, few], METRICS)
    validation_slice.print_paired(f"shipped: N = {many} minus N = {few}", runs["shipped", many],
                                  runs["shipped", few], METRICS)


if __name__ == "__main__":
    main()
