"""Choose the keypoint-fitting stage's settings (``pipelines/keypoint_fit.py``) on the validation slice.

The slice (indices 20000.. of the seed-0 synthetic *train* stream, see ``validation_slice.py``) is disjoint from
training and from the test split; the two real photos are not looked at. Pictures in, as ``pipeline(image=...)``
runs, with the scenes' own person and object masks, plus 2D keypoints from a detection simulator (``--simulator``,
as in ``choose_keypoints.py``; ``learned`` uses the detector's measured noise, dropout and left/right swap rates;
``detector`` runs the bundled detector itself on each render and hands the pipeline its landmarks and its person
mask in place of the scene's, as on a photo without a hand-drawn mask).
Every setting is run at N = 0 (the start of the cycles: regressor, front/back check and fit) and N = ``--cycles``,
and gets the evaluation row (CD_h, CD_o, MPJPE, contacts, penetration), the keypoint measures of
``choose_keypoints.py`` (facing error, % flipped, reprojection error of the body points against the noiseless truth
in % of the true box height) and the silhouette IoU of the rendered body against the scene's person mask.

The rule, fixed before running: the lowest CD_h + CD_o at N = ``--cycles`` among the settings that flip no more
scenes than the best. The grid is small and one-dimensional in turn: the number of steps (``--steps``) at the
default learning rate, prior weight and sigma, then, from the best setting that fits (steps > 0), the learning
rate, then the prior weight, then sigma; then the shape fit (``--shape-prior-weights``: the betas fitted with each
of these pulls towards the start, against not fitted), then the mask-coverage weight (``--coverages``), then the
number of steps again (``--more-steps``) with everything else chosen; last, the best fit competes with the stage off
(``steps 0``, when in ``--steps``). One value in a list skips that stage.

With ``--mask-coverages W ...`` it instead chooses the guided cycles' mask-coverage weight
(``GuidanceConfig.mask_coverage``: the fit's coverage term, in image diagonals, acting at every guided step), the fit
at its defaults and the rest of the guidance at the pipeline's. The rule, fixed before running: the lowest
CD_h + CD_o at N = ``--cycles`` among the weights (the silhouette IoU against the scenes' person masks is printed
for each, not used to choose). The N = 0 rows are not run: the fit ignores this weight, so they are equal.

With ``--candidates SETTING ...`` (each a comma-separated ``NAME=VALUE`` list, the other fields at their defaults;
``default`` alone is the shipped fit; it was 30 steps at learning rate 0.01 with the quadratic prior and no restarts
when the robust prior was chosen) it instead measures those settings and picks the best by the same rule: a way to
compare whole settings that differ in several fields at once, e.g. the robust pose prior (``prior_scale``), which
only frees a limb with more steps and a larger learning rate.

With ``--paired NAME=VALUE ...`` it instead runs that setting (the other fields at their defaults) and
``--against NAME=VALUE ...`` (default: the stage off) on the same scenes and prints the paired differences (setting
minus reference, mean ± standard error over scenes) at N = 0 and N = ``--cycles``: the check that a setting does not
hurt the synthetic scenes (``cd_sum`` is CD_h + CD_o, scene by scene). A NAME may be a ``KeypointFit`` field or a
``GuidanceConfig`` field (which replaces that field of the pipeline's guidance); N = 0 is skipped when the two fits
are equal.

The robust pose prior's rule, fixed before running: among ``--candidates`` on 48 ``--randomized`` scenes (where the
regressor starts further off, as on real photos), the lowest CD_h + CD_o at N = 2 (``best``); that setting is kept
only if, ``--paired`` against the shipped fit on 48 standard-style scenes, its ``cd_sum`` is not worse by more than
2 standard errors (else the next best is checked the same way); then a paired check on 200 other validation scenes
(``--first-index 20048``) of both styles.

Run (the shipped settings' grid, in two calls: the second extends the coverage weight past the first's largest):
     python training/choose_keypoint_fit.py --num-samples 48 --cycles 2 --simulator learned --steps 0 30 \
         --learning-rates 0.01 --prior-weights 100 --sigmas 0.3 --shape-prior-weights 0.1 1 10 \
         --coverages 0 10 30 100 300 --more-steps 60 100
     python training/choose_keypoint_fit.py --num-samples 48 --cycles 2 --simulator learned --steps 30 \
         --learning-rates 0.01 --prior-weights 100 --sigmas 0.3 --shape-prior-weights 10 \
         --coverages 300 1000 3000 --more-steps 60
     python training/choose_keypoint_fit.py --num-samples 200 --first-index 20048 --cycles 2 \
         --paired fit_shape=True shape_prior_weight=10 coverage=1000 --against fit_shape=False coverage=0
(the steps, learning rate, prior weight and sigma were chosen before, with ``--steps 0 30 100``, then ``--steps 30
--learning-rates 0.003 0.03 --prior-weights 10 100 --sigmas 0.1``). The cycles' mask-coverage weight:
     python training/choose_keypoint_fit.py --num-samples 48 --cycles 2 --simulator learned \
         --mask-coverages 0 10 30 100 300 1000
     python training/choose_keypoint_fit.py --num-samples 200 --first-index 20048 --cycles 2 \
         --paired mask_coverage=100 --against mask_coverage=0
(the chosen weight, 100; the same with ``--cycles 10``, and with ``--randomized`` for the real-photo style; run when
the fit's defaults were 30 steps at learning rate 0.01 with the quadratic prior and no restarts).
The robust pose prior (``prior_scale``; steps and learning rate with it):
     python training/choose_keypoint_fit.py --num-samples 48 --cycles 2 --randomized --candidates \
         steps=30,learning_rate=0.01,prior_scale=none,limb_restart_threshold=none \
         steps=100,learning_rate=0.03,prior_scale=none,limb_restart_threshold=none \
         prior_scale=0.1,steps=100,learning_rate=0.03,limb_restart_threshold=none \
         prior_scale=0.05,steps=100,learning_rate=0.03,limb_restart_threshold=none \
         prior_scale=0.03,steps=100,learning_rate=0.03,limb_restart_threshold=none
     python training/choose_keypoint_fit.py --num-samples 48 --cycles 2 --paired prior_scale=0.1 steps=100 \
         learning_rate=0.03 limb_restart_threshold=none --against steps=30 \
         learning_rate=0.01 prior_scale=none limb_restart_threshold=none
Then, by the same rule on the same 48 randomised scenes (the runs are deterministic: the shipped fit's row repeats
the first call's), the limb restarts (``limb_restart_threshold``), which keep the restart that ends lowest on the
fit's own objective, so they only turn a limb with the robust prior (the quadratic one charges a quarter turn more
than any keypoint gain):
     python training/choose_keypoint_fit.py --num-samples 48 --cycles 2 --randomized --candidates \
         prior_scale=0.1,steps=100,learning_rate=0.03,limb_restart_threshold=0.1 \
         prior_scale=0.1,steps=100,learning_rate=0.03,limb_restart_threshold=0.2 \
         prior_scale=0.1,limb_restart_threshold=0.1,steps=30,learning_rate=0.01
     python training/choose_keypoint_fit.py --num-samples 48 --cycles 2 --paired prior_scale=0.1 steps=100 \
         learning_rate=0.03 limb_restart_threshold=0.2 --against steps=30 \
         learning_rate=0.01 prior_scale=none limb_restart_threshold=none
The first call's CD_h + CD_o at N = 2 (cm): shipped 15.06; steps 100, lr 0.03 with the quadratic prior 14.94;
with the robust prior at 0.1 / 0.05 / 0.03, 14.84 / 15.88 / 16.68. The last call's: 14.89 (restarts past 0.1),
14.84 (past 0.2: every column as without restarts), 15.24 (restarts past 0.1 at 30 steps, lr 0.01). Restarts
judged on the image terms alone (before they competed on the objective) were worse: 16.02 / 15.20 at 0.1 / 0.2
with the quadratic prior.
Chosen: prior_scale 0.1, 100 steps at lr 0.03, restarts past 0.2 (tied with no restarts on these scenes; the
restarts kept for the limbs the unit test shows the robust prior alone cannot bring back); standard style, 48 scenes,
paired against the shipped fit: CD_h + CD_o +0.16 ± 0.26 cm at N = 2 (-0.15 ± 0.20 at N = 0), MPJPE -0.28 ± 0.26.
On 200 other validation scenes (``--num-samples 200 --first-index 20048 --paired prior_scale=0.1 steps=100
learning_rate=0.03 limb_restart_threshold=0.2 --against steps=30 learning_rate=0.01 prior_scale=none
limb_restart_threshold=none``), at N = 2: randomised style CD_h + CD_o
-0.18 ± 0.17, MPJPE -0.06 ± 0.07 cm; standard style +0.16 ± 0.17, MPJPE +0.01 ± 0.08, penetration -0.14 ± 0.05 cm;
nothing worse by two standard errors in either.

The cycles' mask-coverage weight with the real detector's inputs (rule and check as above, fixed before the run):
     python training/choose_keypoint_fit.py --num-samples 48 --cycles 2 --randomized --simulator detector \
         --mask-coverages 30 100 300 1000
     python training/choose_keypoint_fit.py --num-samples 200 --first-index 20048 --cycles 2 [--randomized] \
         --simulator detector --paired mask_coverage=300 --against mask_coverage=100
CD_h + CD_o 21.902, 21.884, 21.876, 22.476 cm: 300 by 0.008 cm; paired on 200 other scenes, the randomised style's
penetration depth is worse by +0.103 ± 0.042 cm (standard style: nothing beyond two standard errors), so 100 stays.

``--clothes F`` (with ``--simulator detector``) widens the detector's person mask by a disk of radius F × the mask's
height before the pipeline gets it, and scores the silhouette IoU against that widened mask instead of the scene's
(``--clothes 0``: against the detector's own mask): a stand-in for a photo, where the detector's mask holds the
clothes the body cannot fill and the IoU is measured against it. Does it reproduce the IoU the cycles lose on the
real photos?
     python training/choose_keypoint_fit.py --num-samples 48 --cycles 10 --randomized --simulator detector \
         --clothes 0.04 --candidates default
"""
import argparse
import dataclasses

import cv2
import numpy as np
import torch
from choose_keypoints import MeasuredDetections, NoisyGroundTruthDetections, Recorder, run
from PIL import Image
from validation_slice import add_arguments, load

from scorehoi_diffusers.evaluation import DetectedPictures, paired_differences
from scorehoi_diffusers.guidance import GuidanceConfig
from scorehoi_diffusers.metrics import silhouette_iou
from scorehoi_diffusers.pipelines.keypoint_fit import KeypointFit
from scorehoi_diffusers.rendering import MeshLayer, render

# The metrics of the paired check (``--paired``): does the setting hurt any of them by more than two standard errors?
PAIRED_METRICS = ("cd_sum", "cd_human", "cd_object", "contact_precision", "contact_recall", "penetration_depth",
                  "mpjpe", "pa_mpjpe", "facing_error")
HIGHER_IS_BETTER = ("contact_precision", "contact_recall", "silhouette_iou")


class SilhouetteRecorder(Recorder):
    """:class:`Recorder` that also scores the rendered body's silhouette against the scene's person mask (IoU)."""

    def __init__(self, pipeline, estimate):
        super().__init__(pipeline, estimate)
        self.iou = []

    def __call__(self, **kwargs):
        output = super().__call__(**kwargs)
        batch = self.estimate.last
        with torch.no_grad():
            vertices = self.pipeline.body_model(output.params.to(dtype=torch.float32), frame="camera").vertices
        for i, person_mask in enumerate(batch["human_mask"]):
            reference = np.asarray(person_mask) > 127
            layer = MeshLayer(vertices[i].numpy(), self.pipeline.body_model.faces, name="body")
            rendered = render([layer], np.asarray(batch["intrinsics"][i]), reference.shape).masks[0]
            self.iou.append(silhouette_iou(rendered, reference))
        return output


class InputMaskSilhouetteRecorder(SilhouetteRecorder):
    """:class:`SilhouetteRecorder` scored against the person mask the pipeline was given (``--clothes``)."""

    def __call__(self, **kwargs):
        self.estimate.last = {**self.estimate.last, "human_mask": kwargs["human_mask"]}
        return super().__call__(**kwargs)


class ClothedPictures:
    """The detector's picture fields with its person mask widened by a disk of radius ``fraction`` × the mask's
    height (clothes the stand-in body cannot fill); a picture the detector missed keeps its own mask, unwidened."""

    def __init__(self, detected: DetectedPictures, fraction: float):
        self.detected, self.fraction = detected, fraction

    def widen(self, mask) -> Image.Image:
        pixels = np.asarray(mask) > 127
        rows = np.flatnonzero(pixels.any(axis=1))
        radius = int(round(self.fraction * (rows[-1] - rows[0] + 1))) if rows.size else 0
        if radius < 1:
            return mask
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        return Image.fromarray(cv2.dilate(pixels.astype(np.uint8) * 255, disk))

    def __call__(self, batch) -> dict:
        fields = self.detected(batch)
        rows = np.asarray(batch["index"]).reshape(-1)
        masks = [mask if int(row) in self.detected.missed else self.widen(mask)
                 for row, mask in zip(rows, fields["human_mask"])]
        return {**fields, "human_mask": masks}


def describe(fit: KeypointFit) -> str:
    shape = f"shape prior {fit.shape_prior_weight:g}" if fit.fit_shape else "shape fixed"
    prior = f"prior {fit.prior_weight:g}" + ("" if fit.prior_scale is None else f" robust at {fit.prior_scale:g}")
    restarts = "" if fit.limb_restart_threshold is None else f", limb restarts past {fit.limb_restart_threshold:g}"
    if fit.facing_restart_margin is not None:
        restarts += f", facing restarts under {fit.facing_restart_margin:g}"
    return (f"steps {fit.steps}, lr {fit.learning_rate:g}, {prior}, sigma {fit.sigma:g}, {shape}, "
            f"coverage {fit.coverage:g}{restarts}")


def describe_guidance(overrides: dict) -> str:
    return "".join(f", guidance {name} {value:g}" for name, value in sorted(overrides.items()))


def run_setting(pipeline, data, estimate, simulate, fit: KeypointFit, cycles: int, guidance: dict | None = None
                ) -> dict:
    """The evaluation row of ``fit`` at N = ``cycles``, with the recorder's per-scene IoU and reprojection
    (``guidance``: fields replaced in the pipeline's guidance)."""
    pipeline.keypoint_fit = fit
    config = dataclasses.replace(pipeline.default_guidance_config(keypoints=True), **(guidance or {}))
    recorder_class = InputMaskSilhouetteRecorder if isinstance(simulate, ClothedPictures) else SilhouetteRecorder
    row = run(pipeline, data, estimate, simulate, config, cycles, describe(fit) + describe_guidance(guidance or {}),
              recorder_class)
    recorder = row.pop("recorder")
    row["iou_per_scene"] = np.asarray(recorder.iou)
    row["reprojection_per_scene"] = np.concatenate(recorder.reprojection)
    row["silhouette_iou"] = float(row["iou_per_scene"].mean())
    per_sample = row["per_sample"]
    per_sample["cd_sum"] = [None if h is None or o is None else h + o
                            for h, o in zip(per_sample["cd_human"], per_sample["cd_object"])]
    row["chamfer_per_scene"] = np.asarray(per_sample["cd_sum"], float)  # None (unscored) as NaN, as before
    print(f"    silhouette IoU {row['silhouette_iou']:.3f}", flush=True)
    return row


def with_per_scene_differences(mine: dict, theirs: dict, keys=("silhouette_iou", "reprojection_pct")) -> dict:
    """``paired_differences(mine, theirs)`` plus the recorder's per-scene measures ``keys`` (silhouette IoU,
    reprojection), which ``evaluate`` rows do not hold: each a mean and standard error of ``mine - theirs``."""
    differences = paired_differences(mine, theirs)
    per_scene = {"silhouette_iou": "iou_per_scene", "reprojection_pct": "reprojection_per_scene"}
    for key in keys:
        diff = mine[per_scene[key]] - theirs[per_scene[key]]
        differences[key] = {"mean": diff.mean(), "standard_error": standard_error(diff)}
    return differences


def measure(pipeline, data, estimate, simulate, fit: KeypointFit, cycles: int) -> dict:
    """The N = 0 and N = ``cycles`` rows of one setting (the N = ``cycles`` row, with ``start_*`` entries)."""
    start = run_setting(pipeline, data, estimate, simulate, fit, 0)
    row = run_setting(pipeline, data, estimate, simulate, fit, cycles)
    row["fit"] = fit
    for key in ("reprojection_pct", "flipped_pct", "mpjpe", "pa_mpjpe", "cd_human", "cd_object", "silhouette_iou"):
        row[f"start_{key}"] = start[key]
    differences = with_per_scene_differences(row, start, keys=("silhouette_iou",))
    print(f"N = {cycles} minus N = 0 (paired, mean ± standard error): " + ", ".join(
        f"{key} {differences[key]['mean']:+.3f} ± {differences[key]['standard_error']:.3f}"
        for key in ("silhouette_iou", "mpjpe", "pa_mpjpe", "cd_human", "cd_object", "penetration_depth")), flush=True)
    return row


def paired(pipeline, data, estimate, simulate, setting: tuple[KeypointFit, dict], reference: tuple[KeypointFit, dict],
           cycles: int) -> None:
    """Print the paired differences, ``setting`` minus ``reference`` (each a fit and guidance fields), at N = 0 (when
    the fits differ) and N = ``cycles``."""
    (fit, guidance), (reference_fit, reference_guidance) = setting, reference
    for n in (0, cycles) if fit != reference_fit else (cycles,):
        mine = run_setting(pipeline, data, estimate, simulate, fit, n, guidance)
        theirs = run_setting(pipeline, data, estimate, simulate, reference_fit, n, reference_guidance)
        differences = with_per_scene_differences(mine, theirs)
        print(f"N = {n}, {describe(fit)}{describe_guidance(guidance)} minus "
              f"{describe(reference_fit)}{describe_guidance(reference_guidance)}, over {len(data)} scenes:")
        for key in (*PAIRED_METRICS, "silhouette_iou", "reprojection_pct"):
            mean, error = differences[key]["mean"], differences[key]["standard_error"]
            worse = -mean if key in HIGHER_IS_BETTER else mean
            flag = "  <- worse by more than 2 SE" if worse > 2 * error else ""
            print(f"  {key}: {mean:+.3f} ± {error:.3f}{flag}")
        print(f"  silhouette IoU {theirs['silhouette_iou']:.3f} reference, {mine['silhouette_iou']:.3f} setting; "
              f"reprojection (% box height) {theirs['reprojection_pct']:.2f} reference, "
              f"{mine['reprojection_pct']:.2f} setting; flipped {theirs['flipped_pct']:.1f} % reference, "
              f"{mine['flipped_pct']:.1f} % setting", flush=True)
    print_misses(simulate)


def settings(pairs: list[str] | None) -> tuple[KeypointFit, dict]:
    """A :class:`KeypointFit` and guidance fields from ``NAME=VALUE`` strings (a ``KeypointFit`` field, else a
    ``GuidanceConfig`` one; each value parsed as its field's default's type, as a float when that default is None;
    ``none`` is None)."""
    values, guidance = {}, {}
    for pair in pairs or []:
        name, _, value = pair.partition("=")
        for kind_of, chosen in ((KeypointFit, values), (GuidanceConfig, guidance)):
            if name in {field.name for field in dataclasses.fields(kind_of)}:
                kind = type(getattr(kind_of(), name))
                if value.lower() == "none":
                    chosen[name] = None
                elif kind is bool:
                    chosen[name] = value.lower() in ("1", "true", "yes")
                elif kind is type(None):
                    chosen[name] = float(value)
                else:
                    chosen[name] = kind(value)
                break
        else:
            raise SystemExit(f"unknown KeypointFit or GuidanceConfig setting {name!r} in {pair!r}")
    return KeypointFit(**values), guidance


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    style = "randomised" if args.randomized else "standard"
    print(f"\nValidation slice, {args.num_samples} {style}-style scenes from index {args.first_index}, simulator "
          f"{args.simulator}, N = {args.cycles}; ± standard error over scenes.")
    print("| setting | reproj. % (N=0→N) | IoU (N=0→N) | flipped % | MPJPE (N=0 → N) | PA-MPJPE | CD_h | CD_o | "
          "CD_h + CD_o |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        errors, chamfer = row["standard_errors"], row["chamfer_per_scene"]
        print(f"| {describe(row['fit'])} | {row['start_reprojection_pct']:.2f} → {row['reprojection_pct']:.2f} | "
              f"{row['start_silhouette_iou']:.3f} → {row['silhouette_iou']:.3f} | {row['flipped_pct']:.1f} | "
              f"{row['start_mpjpe']:.2f} → {row['mpjpe']:.2f} ± {errors['mpjpe']:.2f} | {row['pa_mpjpe']:.2f} ± "
              f"{errors['pa_mpjpe']:.2f} | {row['cd_human']:.2f} ± {errors['cd_human']:.2f} | "
              f"{row['cd_object']:.2f} ± {errors['cd_object']:.2f} | {chamfer.mean():.2f} ± "
              f"{standard_error(chamfer):.2f} |")


def best(rows: list[dict]) -> dict:
    fewest_flips = min(row["flipped_pct"] for row in rows)
    eligible = [row for row in rows if row["flipped_pct"] <= fewest_flips]
    return min(eligible, key=lambda row: row["cd_human"] + row["cd_object"])


def standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values)))


def choose_mask_coverage(pipeline, data, estimate, simulate, args) -> None:
    """Run every ``--mask-coverages`` weight at N = ``--cycles`` and print the table and the rule's choice."""
    rows = {weight: run_setting(pipeline, data, estimate, simulate, KeypointFit(), args.cycles,
                                {"mask_coverage": weight}) for weight in args.mask_coverages}
    print(f"\nValidation slice, {args.num_samples} scenes from index {args.first_index}, simulator {args.simulator}, "
          f"N = {args.cycles}{', randomised renders' if args.randomized else ''}; ± standard error over scenes.")
    print("| cycles' mask coverage | CD_h + CD_o | CD_h | CD_o | silhouette IoU | reproj. % | flipped % | MPJPE | "
          "PA-MPJPE | contact F | pen. depth |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for weight, row in rows.items():
        chamfer, errors, iou = row["chamfer_per_scene"], row["standard_errors"], row["iou_per_scene"]
        contact_f = float("nan") if row["contact_f"] is None else row["contact_f"]
        print(f"| {weight:g} | {chamfer.mean():.3f} ± {standard_error(chamfer):.3f} | {row['cd_human']:.2f} ± "
              f"{errors['cd_human']:.2f} | {row['cd_object']:.2f} ± {errors['cd_object']:.2f} | {iou.mean():.3f} ± "
              f"{standard_error(iou):.3f} | {row['reprojection_pct']:.2f} | {row['flipped_pct']:.1f} | "
              f"{row['mpjpe']:.2f} | {row['pa_mpjpe']:.2f} | {contact_f:.3f} | {row['penetration_depth']:.3f} |")
    chosen = min(rows, key=lambda weight: rows[weight]["cd_human"] + rows[weight]["cd_object"])
    print(f"chosen (lowest CD_h + CD_o at N = {args.cycles}): mask_coverage={chosen:g}")
    print_misses(simulate)


def print_misses(simulate) -> None:
    """With the real detector, how many scenes it found nobody in (they keep their rendered mask, no keypoints)."""
    simulate = simulate.detected if isinstance(simulate, ClothedPictures) else simulate
    if isinstance(simulate, DetectedPictures):
        print(f"detector: nobody found in {len(simulate.missed)} of {len(simulate.by_row)} scenes "
              f"{sorted(simulate.missed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser, num_samples=48)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--simulator", choices=("noisy-gt", "learned", "detector"), default="learned")
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 30, 100])
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    parser.add_argument("--prior-weights", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--shape-prior-weights", type=float, nargs="*", default=[0.1, 1.0, 10.0],
                        help="fit the betas with each of these pulls (against not fitting them)")
    parser.add_argument("--coverages", type=float, nargs="+", default=[0.0, 3.0, 10.0, 30.0])
    parser.add_argument("--more-steps", type=int, nargs="*", default=[60, 100])
    parser.add_argument("--mask-coverages", type=float, nargs="+",
                        help="choose the guided cycles' mask-coverage weight instead (the fit at its defaults)")
    parser.add_argument("--paired", nargs="+", metavar="NAME=VALUE",
                        help="compare this setting with --against, paired, instead of choosing")
    parser.add_argument("--against", nargs="+", metavar="NAME=VALUE", default=["steps=0"])
    parser.add_argument("--candidates", nargs="+", metavar="NAME=VALUE[,NAME=VALUE...]",
                        help="measure these settings ('default': the shipped fit) and choose among them")
    parser.add_argument("--clothes", type=float,
                        help="with --simulator detector: widen its person mask by this fraction of the mask's height "
                        "and score the IoU against the widened mask (a photo's clothes; 0: the detector's mask)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # this project's small tensors run faster on one intra-op thread
    pipeline, data, estimate, _ = load(args)
    if args.simulator == "learned":
        simulate = MeasuredDetections(pipeline.body_model)
    elif args.simulator == "detector":
        simulate = DetectedPictures()
        if args.clothes is not None:
            simulate = ClothedPictures(simulate, args.clothes)
    else:
        simulate = NoisyGroundTruthDetections(pipeline.body_model)
    if args.paired is not None:
        paired(pipeline, data, estimate, simulate, settings(args.paired), settings(args.against), args.cycles)
        return
    if args.mask_coverages is not None:
        choose_mask_coverage(pipeline, data, estimate, simulate, args)
        return
    if args.candidates is not None:
        rows = [measure(pipeline, data, estimate, simulate,
                        settings([] if candidate == "default" else candidate.split(","))[0], args.cycles)
                for candidate in args.candidates]
        print_table(rows, args)
        print(f"chosen: {best(rows)['fit']}")
        return
    default = KeypointFit(steps=1, fit_shape=False, coverage=0.0)
    rows = [measure(pipeline, data, estimate, simulate, dataclasses.replace(default, steps=s), args.cycles)
            for s in args.steps]
    fitting = [row for row in rows if row["fit"].steps > 0]
    chosen = best(fitting)["fit"] if fitting else None
    stages = (("learning_rate", args.learning_rates), ("prior_weight", args.prior_weights), ("sigma", args.sigmas),
              ("shape_prior_weight", args.shape_prior_weights), ("coverage", args.coverages),
              ("steps", args.more_steps))
    for field, values in stages:
        if chosen is None:
            break
        if field == "shape_prior_weight":  # the betas fitted with each pull, against the chosen (not fitted)
            candidates = [dataclasses.replace(chosen, fit_shape=True, shape_prior_weight=value) for value in values]
        else:
            candidates = [dataclasses.replace(chosen, **{field: value}) for value in values]
        for candidate in candidates:
            if candidate != chosen and all(row["fit"] != candidate for row in rows):
                rows.append(measure(pipeline, data, estimate, simulate, candidate, args.cycles))
        chosen = best([row for row in rows if row["fit"].steps > 0])["fit"]
    print_table(rows, args)
    print(f"best fit: {chosen}")
    print(f"chosen (the stage off competes too when --steps holds 0): {best(rows)['fit']}")


if __name__ == "__main__":
    main()
