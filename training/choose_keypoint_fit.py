"""Choose the keypoint-fitting stage's settings (``pipelines/keypoint_fit.py``) on the validation slice.

The slice (indices 20000.. of the seed-0 synthetic *train* stream, see ``validation_slice.py``) is disjoint from
training and from the test split; the two real photos are not looked at. Pictures in, as ``pipeline(image=...)``
runs, plus 2D keypoints from a detection simulator (``--simulator``, as in ``choose_keypoints.py``; ``learned``
uses the detector's measured noise, dropout and left/right swap rates). Every setting is run at N = 0 (the start
of the cycles: regressor, front/back check and fit) and N = ``--cycles``, and gets the evaluation row (CD_h, CD_o,
MPJPE, contacts, penetration) and the keypoint measures of ``choose_keypoints.py`` (facing error, % flipped,
reprojection error of the body points against the noiseless truth in % of the true box height).

The rule, fixed before running: the lowest CD_h + CD_o at N = ``--cycles`` among the settings that flip no more
scenes than the best. The grid is small and one-dimensional in turn: the number of steps (``--steps``) at
learning rate 0.01, prior weight 1 and sigma 0.3, then, from the best setting that fits (steps > 0), the learning
rate, then the prior weight, then sigma; last, the best fit competes with the stage off (``steps 0``, when in
``--steps``).

With ``--paired STEPS LR PRIOR SIGMA`` it instead runs that setting and the stage off on the same scenes and prints
the paired differences (fit minus off, mean ± standard error over scenes) at N = 0 and N = ``--cycles``: the check
that the chosen fit does not hurt the synthetic scenes.

Run: python training/choose_keypoint_fit.py --num-samples 48 --cycles 2 --simulator learned
     python training/choose_keypoint_fit.py --num-samples 200 --first-index 20048 --cycles 2 --paired 30 0.01 100 0.3
"""
import argparse

import numpy as np
from choose_keypoints import MeasuredDetections, NoisyGroundTruthDetections, run
from validation_slice import add_arguments, load

from scorehoi_diffusers.evaluation import paired_differences
from scorehoi_diffusers.pipelines.keypoint_fit import KeypointFit

# The metrics of the paired check (``--paired``): does the fit hurt any of them by more than two standard errors?
PAIRED_METRICS = ("cd_human", "cd_object", "contact_precision", "contact_recall", "penetration_depth", "mpjpe",
                  "pa_mpjpe", "facing_error")
HIGHER_IS_BETTER = ("contact_precision", "contact_recall")


def measure(pipeline, data, estimate, simulate, fit: KeypointFit, cycles: int) -> dict:
    """The N = 0 and N = ``cycles`` rows of one setting (the N = ``cycles`` row, with ``start_*`` entries)."""
    pipeline.keypoint_fit = fit
    name = f"steps {fit.steps}, lr {fit.learning_rate:g}, prior {fit.prior_weight:g}, sigma {fit.sigma:g}"
    config = pipeline.default_guidance_config()
    start = run(pipeline, data, estimate, simulate, config, 0, name)
    row = run(pipeline, data, estimate, simulate, config, cycles, name)
    row["fit"] = fit
    for key in ("reprojection_pct", "flipped_pct", "mpjpe", "pa_mpjpe", "cd_human", "cd_object"):
        row[f"start_{key}"] = start[key]
    return row


def paired(pipeline, data, estimate, simulate, fit: KeypointFit, cycles: int) -> None:
    """Print the paired differences, fit minus off, at N = 0 and N = ``cycles``."""
    config = pipeline.default_guidance_config()
    for n in (0, cycles):
        rows = {}
        for setting in (KeypointFit(steps=0), fit):
            pipeline.keypoint_fit = setting
            rows[setting.steps] = run(pipeline, data, estimate, simulate, config, n, f"steps {setting.steps}")
        differences = paired_differences(rows[fit.steps], rows[0])
        print(f"N = {n}, {fit} minus the stage off, over {len(data)} scenes:")
        for key in PAIRED_METRICS:
            mean, error = differences[key]["mean"], differences[key]["standard_error"]
            worse = -mean if key in HIGHER_IS_BETTER else mean
            flag = "  <- worse by more than 2 SE" if worse > 2 * error else ""
            print(f"  {key}: {mean:+.3f} ± {error:.3f}{flag}")
        print(f"  reprojection (% box height): {rows[0]['reprojection_pct']:.2f} off, "
              f"{rows[fit.steps]['reprojection_pct']:.2f} fit; flipped {rows[0]['flipped_pct']:.1f} % off, "
              f"{rows[fit.steps]['flipped_pct']:.1f} % fit", flush=True)


def best(rows: list[dict]) -> dict:
    fewest_flips = min(row["flipped_pct"] for row in rows)
    eligible = [row for row in rows if row["flipped_pct"] <= fewest_flips]
    return min(eligible, key=lambda row: row["cd_human"] + row["cd_object"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser, num_samples=48)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--simulator", choices=("noisy-gt", "learned"), default="learned")
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 30, 100])
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    parser.add_argument("--prior-weights", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--paired", nargs=4, type=float, metavar=("STEPS", "LR", "PRIOR", "SIGMA"),
                        help="compare this setting with the stage off, paired, instead of choosing")
    args = parser.parse_args()
    pipeline, data, estimate, _ = load(args)
    if args.simulator == "learned":
        simulate = MeasuredDetections(pipeline.body_model)
    else:
        simulate = NoisyGroundTruthDetections(pipeline.body_model)
    if args.paired is not None:
        steps, learning_rate, prior_weight, sigma = args.paired
        paired(pipeline, data, estimate, simulate, KeypointFit(int(steps), learning_rate, prior_weight, sigma),
               args.cycles)
        return
    default = KeypointFit(steps=1)
    rows = [measure(pipeline, data, estimate, simulate, KeypointFit(steps=s, learning_rate=default.learning_rate,
                                                                    prior_weight=default.prior_weight,
                                                                    sigma=default.sigma), args.cycles)
            for s in args.steps]
    fitting = [row for row in rows if row["fit"].steps > 0]
    chosen = best(fitting)["fit"] if fitting else None
    for field, values in (("learning_rate", args.learning_rates), ("prior_weight", args.prior_weights),
                          ("sigma", args.sigmas)):
        if chosen is None:
            break
        for value in values:
            if np.isclose(getattr(chosen, field), value):
                continue
            settings = {**{name: getattr(chosen, name) for name in ("steps", "learning_rate", "prior_weight",
                                                                     "sigma")}, field: value}
            rows.append(measure(pipeline, data, estimate, simulate, KeypointFit(**settings), args.cycles))
        chosen = best([row for row in rows if row["fit"].steps > 0])["fit"]
    print(f"\nValidation slice, {args.num_samples} scenes from index {args.first_index}, simulator {args.simulator}, "
          f"N = {args.cycles}; ± standard error over scenes is in the rows above.")
    print("| steps | lr | prior | sigma | reproj. % (N=0→N) | flipped % | MPJPE (N=0 → N) | PA-MPJPE | CD_h | CD_o |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        fit = row["fit"]
        print(f"| {fit.steps} | {fit.learning_rate:g} | {fit.prior_weight:g} | {fit.sigma:g} | "
              f"{row['start_reprojection_pct']:.2f} → {row['reprojection_pct']:.2f} | {row['flipped_pct']:.1f} | "
              f"{row['start_mpjpe']:.2f} → {row['mpjpe']:.2f} | {row['pa_mpjpe']:.2f} | {row['cd_human']:.2f} | "
              f"{row['cd_object']:.2f} |")
    print(f"best fit: {chosen}")
    print(f"chosen (the stage off competes too when --steps holds 0): {best(rows)['fit']}")


if __name__ == "__main__":
    main()
