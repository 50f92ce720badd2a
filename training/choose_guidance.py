"""Compare guidance settings of a trained pipeline on a validation slice of the synthetic *train* stream.

The slice (indices 20000.. of the seed-0 train stream) lies past every table the training scripts rendered for the
shipped weights (the first 6000 indices), and it is disjoint from the test split, so choosing guidance here touches
neither training nor test data.
Prints one table row per setting, pictures in (the pipeline's own regressor gives the initial estimate).
The shipped default is the setting that beats the regressor alone on contact F, penetration depth and penetration
volume at both N = 2 and N = 10, with the smallest object-Chamfer cost among those.

With ``--scales`` the candidates are instead the pipeline's own guidance with only ``scale`` changed, and with
``--keypoints simulated`` every scene gets seeded simulated detections (the pipeline's keypoint fit and keypoint
term on), as ``training/choose_step_size.py`` gives the optimisation-only baseline; then the lowest
MPJPE + PA-MPJPE + CD_h + CD_o + penetration depth (cm) at the first ``--cycles`` is printed as the choice, the
baseline's own criterion, so that both methods have their step chosen the same way. Without keypoints the printed
choice is by the baseline's no-keypoint criterion, the lowest CD_h + CD_o + penetration depth.

With ``--contact-decisions`` the candidates are the pipeline's own guidance with only ``contact_decision`` changed
(``none``: the contact and floor terms weigh points by the estimator's probabilities; a number: by its decisions,
probability > that number), chosen by the same criterion as ``--scales``.

With ``--contact-thresholds`` the candidates are the pipeline's own guidance with only ``contact_threshold`` changed
(the distance in metres within which a point labelled "in contact" feels no pull; the metrics count a body point in
contact within 5 cm), chosen by the same criterion.

With ``--pose-priors`` the candidates are the pipeline's own guidance with only ``pose_prior`` changed (the weight of
the Gaussian pose prior's negative log-likelihood in the guidance loss, the prior the optimisation-only baseline
adds to its own loss with a weight chosen for it), chosen by the same criterion.

Asked 2026-12-02, since with keypoints the full method loses CD_h and PA-MPJPE to the optimisation-only baseline,
which has a conventional pose prior the full method lacked. Rule, fixed before the runs: ``pose_prior`` in {0, 0.003,
0.01, 0.03, 0.1} by the lowest MPJPE + PA-MPJPE + CD_h + CD_o + penetration depth at N = 2 on 100 fresh validation
scenes with simulated keypoints (``--keypoints simulated --num-samples 100 --first-index 24800 --cycles 2
--pose-priors 0 0.003 0.01 0.03 0.1``); if a weight W > 0 wins, it becomes the keypoint guidance's ``pose_prior``
only if, paired on 200 other fresh scenes (``--keypoints simulated --num-samples 200 --first-index 24900 --cycles 2
10 --pose-priors 0 W --paired``), W minus 0 is worse by more than two standard errors on none of CD_h, CD_o, contact
precision, recall and F, PA-MPJPE, MPJPE and penetration depth at N = 2 or 10, and its own N = 10 minus N = 2 is
worse by more than two standard errors on none of them. The guidance without keypoints keeps 0 (not asked).

With ``--configs NAME:FIELD=VALUE,…`` the candidates are the pipeline's own guidance with the named fields changed
(``NAME:`` alone is the guidance itself), chosen by the same criterion.

Asked 2026-12-02: direct inversion (``direct_inversion``, ``pipelines/ddim_inversion.py``), since issue 17 requires
that a ground-truth sample sent through inversion and denoising with guidance off does not move on average, and the
shipped exact inversion (one fixed-point iteration) leaves a detectable mean displacement of the body (0.012 cm per
joint at N = 2), while direct inversion returns the start exactly. It is asked without keypoints only, where the
round trip is measured and exact inversion ships. Because it answers a requirement rather than a metric, the rule
is one of non-inferiority, fixed before the runs: between ``direct_inversion`` with ``inversion_iterations`` 0 and
with 1, the lower CD_h + CD_o + penetration depth at N = 2 on 100 fresh validation scenes (``--num-samples 100
--first-index 25300 --cycles 2 --configs shipped: direct_k0:direct_inversion=true,inversion_iterations=0
direct_k1:direct_inversion=true``; a tie goes to k = 0, the cheaper); the winner becomes the guidance without
keypoints only if, paired with the shipped guidance on 200 other fresh scenes (``--num-samples 200 --first-index
25400 --cycles 2 10 --configs shipped: WINNER --paired``), it is worse by more than two standard errors on none of
CD_h, CD_o, contact precision, recall and F, PA-MPJPE, MPJPE and penetration depth at N = 2 or 10, and its own
N = 10 minus N = 2 is worse by more than two standard errors on none of them. (Failed: ``direct_k0`` won the
choice, 14.170 against 14.186 cm, 14.194 for the shipped guidance; in the check it is worse at N = 2 on contact
recall, −0.010 ± 0.004, and F, −0.007 ± 0.003, and at N = 10 on CD_h, +0.017 ± 0.007 cm, recall and F.)

Asked again the same day, with the candidate the failed check pointed to: direct inversion on the shipped exact
inversion (``direct_inversion`` with ``inversion_iterations`` 1, one more denoiser pass per cycle), which in that
check was worse on nothing. Those 200 scenes are not reused. Rule, fixed before the run: it becomes the guidance
without keypoints only if, paired with the shipped guidance on 200 fresh validation scenes (``--num-samples 200
--first-index 25600 --cycles 2 10 --configs shipped: direct_k1:direct_inversion=true --paired``), it is worse by more
than two standard errors on none of CD_h, CD_o, contact precision, recall and F, PA-MPJPE, MPJPE and penetration
depth at N = 2 or 10, and its own N = 10 minus N = 2 is worse by more than two standard errors on none of them.
(Failed: penetration depth at N = 10, +0.052 ± 0.017 cm; the shipped guidance keeps direct inversion off.)

Asked a third time the same day, since the second ask failed on penetration depth alone, with the penetration
weight (20 in the shipped guidance without keypoints) chosen with it. Rule, fixed before the runs: among
``direct_inversion`` with ``inversion_iterations`` 1 and ``penetration`` 20, 25 or 30, the lowest CD_h + CD_o +
penetration depth at N = 10 on 100 fresh validation scenes (``--num-samples 100 --first-index 25800 --cycles 10
--configs pen20:direct_inversion=true,penetration=20 pen25:direct_inversion=true,penetration=25
pen30:direct_inversion=true,penetration=30``). If penetration 20 wins, nothing ships (that candidate already failed
its check). Otherwise the winner becomes the guidance without keypoints only if, paired with the shipped guidance on
200 other fresh scenes (``--num-samples 200 --first-index 25900 --cycles 2 10 --configs shipped: WINNER
--paired``), it is worse by more than two standard errors on none of CD_h, CD_o, contact precision, recall and F,
PA-MPJPE, MPJPE and penetration depth at N = 2 or 10, and its own N = 10 minus N = 2 is worse by more than two
standard errors on none of them. (Nothing ships: penetration 20 won the choice, 16.302 against 16.311 cm for 25 and
16.436 for 30; run as two processes on the same scenes, ``pen20`` and ``pen25`` in one, ``pen30`` in the other.)

With ``--paired`` it also prints, per N, every candidate's paired differences against the first candidate, and each
candidate's last ``--cycles`` against its first (mean ± standard error over scenes): the check, on other validation
scenes (``--first-index``), that a choice holds up.

Run: .venv/bin/python training/choose_guidance.py [--pipeline DIR] [--num-samples 48] [--cycles 2 10]
     .venv/bin/python training/choose_guidance.py --keypoints simulated --num-samples 100 --scales 5 10 20
     .venv/bin/python training/choose_guidance.py --keypoints simulated --num-samples 100 --cycles 2 10 \
         --contact-decisions none 0.3 0.5 0.7
     .venv/bin/python training/choose_guidance.py --keypoints simulated --num-samples 200 --first-index 20100 \
         --cycles 2 10 --contact-decisions none 0.3 --paired
     .venv/bin/python training/choose_guidance.py --keypoints simulated --num-samples 200 --first-index 22500 \
         --cycles 2 10 --contact-thresholds 0.02 0.035 --paired
     .venv/bin/python training/choose_guidance.py --keypoints simulated --num-samples 100 --first-index 24800 \
         --cycles 2 --pose-priors 0 0.003 0.01 0.03 0.1
"""
import argparse
import dataclasses
import json

import torch
import validation_slice
from choose_step_size import CRITERION, KEYPOINT_CRITERION

from scorehoi_diffusers import GuidanceConfig
from scorehoi_diffusers.atomic_files import atomic_write_bytes
from scorehoi_diffusers.evaluation import evaluate, format_table

PAIRED_METRICS = ("cd_human", "cd_object", "contact_precision", "contact_recall", "contact_f", "penetration_depth",
                  "penetration_volume", "mpjpe", "pa_mpjpe", "facing_error")
CANDIDATES = {
    "release (s=1)": GuidanceConfig.release(),
    "s=10, penetration 1": GuidanceConfig(scale=10.0, penetration=1.0),
    "s=10, penetration 10": GuidanceConfig(scale=10.0, penetration=10.0),
    "s=10, penetration 10, floor 0": GuidanceConfig(scale=10.0, penetration=10.0, floor=0.0),
    "s=10, penetration 10, floor 0, mask 10": GuidanceConfig(scale=10.0, penetration=10.0, floor=0.0, mask=10.0),
    "s=30, penetration 10, floor 0, mask 10": GuidanceConfig(scale=30.0, penetration=10.0, floor=0.0, mask=10.0),
}
# The options that vary one field of the pipeline's own guidance: (argument, GuidanceConfig field, candidate label).
ONE_FIELD = (("scales", "scale", "s={:g}"), ("contact_decisions", "contact_decision", "contact_decision={}"),
             ("contact_thresholds", "contact_threshold", "contact_threshold={:g}"),
             ("pose_priors", "pose_prior", "pose_prior={:g}"))


def named_config(text: str) -> tuple[str, dict]:
    """``NAME:FIELD=VALUE,FIELD=VALUE`` (VALUE read as JSON) -> ``(NAME, {FIELD: VALUE})``; ``NAME:`` changes
    nothing. An unknown field or a value that is not JSON is an ``argparse`` error naming it."""
    name, colon, assignments = text.partition(":")
    if not name or not colon:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME:FIELD=VALUE,... (NAME: alone for no change)")
    return name, validation_slice.guidance_changes(filter(None, assignments.split(",")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    validation_slice.add_arguments(parser, num_samples=48)
    parser.add_argument("--cycles", type=int, nargs="+", default=[2])
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="none")
    parser.add_argument("--scales", type=float, nargs="*", help="only change the pipeline guidance's scale")
    parser.add_argument("--contact-decisions", nargs="*", type=lambda value: None if value == "none" else float(value),
                        help="only change the pipeline guidance's contact_decision ('none' or a probability)")
    parser.add_argument("--contact-thresholds", nargs="*", type=float,
                        help="only change the pipeline guidance's contact_threshold (metres)")
    parser.add_argument("--pose-priors", nargs="*", type=float,
                        help="only change the pipeline guidance's pose_prior weight")
    parser.add_argument("--configs", nargs="*", type=named_config,
                        help="candidates NAME:FIELD=VALUE[,FIELD=VALUE...] (JSON values), each the pipeline's own "
                             "guidance with those fields changed, e.g. shipped: direct:direct_inversion=true")
    parser.add_argument("--out", help="also write every candidate's evaluation (with per-sample values) to this JSON")
    parser.add_argument("--paired", action="store_true",
                        help="print each candidate's paired differences against the first candidate")
    args = parser.parse_args()
    if args.configs and any(getattr(args, option) for option, _, _ in ONE_FIELD):
        parser.error("--configs replaces the candidates; give it alone, without --scales and the like")
    if args.configs and len({name for name, _ in args.configs}) < len(args.configs):
        parser.error("--configs: every candidate needs its own NAME")
    torch.set_num_threads(1)
    keypoints = None if args.keypoints == "none" else args.keypoints
    criterion = CRITERION if keypoints is None else KEYPOINT_CRITERION
    pipeline, data, estimate, regressor_row = validation_slice.load(args, keypoints)
    candidates = CANDIDATES
    varied = [(field, label, getattr(args, option)) for option, field, label in ONE_FIELD if getattr(args, option)]
    default = pipeline.default_guidance_config(keypoints=keypoints is not None)
    for field, label, values in varied:
        candidates = {label.format(value): dataclasses.replace(default, **{field: value}) for value in values}
    if args.configs:
        varied.append(("configs", None, args.configs))
        candidates = {name: dataclasses.replace(default, **changes) for name, changes in args.configs}
    rows = [regressor_row]
    scores, results = {}, {}
    for cycles in args.cycles:
        for name, config in candidates.items():
            row = evaluate(pipeline, data, split=None, mode="full", num_cycles=cycles,
                           initial_estimate_fn=estimate, guidance_config=config)
            results[cycles, name] = dict(row)
            row["mode"] = f"full N={cycles}, {name}"
            rows.append(row)
            scores[cycles, name] = sum(row[key] for key in criterion)
            print(format_table([row]), f"{' + '.join(criterion)} = {scores[cycles, name]:.3f} cm", flush=True)
    print(format_table(rows))
    if args.out:
        rows_by_name = {f"N{cycles}|{name}": row for (cycles, name), row in results.items()}
        atomic_write_bytes(args.out, json.dumps(rows_by_name).encode())
    if args.paired:
        reference, first, last = next(iter(candidates)), args.cycles[0], args.cycles[-1]
        pairs = [((cycles, name), (cycles, reference)) for cycles, name in results if name != reference]
        pairs += [((last, name), (first, name)) for name in candidates if last != first]
        for (cycles, name), (reference_cycles, reference_name) in pairs:
            validation_slice.print_paired(f"N = {cycles}, {name} minus N = {reference_cycles}, {reference_name}",
                                          results[cycles, name], results[reference_cycles, reference_name],
                                          PAIRED_METRICS)
    if varied:
        first = args.cycles[0]
        name = min((key for key in scores if key[0] == first), key=scores.get)[1]
        print(f"chosen at N = {first}: {name} ({scores[first, name]:.3f} cm)")


if __name__ == "__main__":
    main()
