"""How well reconstructions of the shipped real photos match the photo's own evidence, as a markdown table.

For each shipped real photo (``scorehoi_diffusers/assets/examples``: the astronaut, with hand-drawn masks, and
the cameraman, with only an object box), the bundled person detector finds the person, the shipped pipeline
reconstructs the photo as ``scorehoi demo`` does, and the body, before and after refinement, is compared with
the detection:

* keypoint reprojection error: the body's BlazePose points projected into the photo against the detected
  landmarks with visibility > 0.5, mean distance in % of the detected person box height
  (``metrics.keypoint_reprojection_error``);
* silhouette IoU: the rendered body's pixels against the detector's person mask (``metrics.silhouette_iou``).

Detector time per photo (median of ``--repeats`` runs after a warm-up) is printed too. When the pipeline takes
a ``keypoints`` argument, the detected keypoints are passed to it. "initial" is the start of the refinement
cycles (``output.initial_params``): the regressor's estimate after the front/back check and, with keypoints, the
keypoint fit (``pipelines/keypoint_fit.py``; ``--keypoint-fit STEPS LR PRIOR SIGMA`` replaces its settings,
``--keypoint-fit 0 0.01 1 0.3`` turns it off; ``--prior-scale S`` makes its pose prior robust and
``--limb-restart-threshold T`` restarts limbs left far off, see ``KeypointFit``). ``--guidance NAME=VALUE ...``
replaces fields of the pipeline's guidance (``GuidanceConfig``), e.g. ``--guidance mask_coverage=300``. The right
arm's landmarks' errors (% box height) are printed per photo, and ``--overlays DIR`` writes each photo with the
initial and the refined body drawn over it, the detected landmarks (green) joined to the body's projected points
(red). ``--jitter K`` also reconstructs each photo K more times with the keypoints handed to the pipeline moved by
seeded Gaussian noise of ``--jitter-pixels`` (0.5 px: far under the detector's own error) and prints the spread of the
scores, which says how much of a difference between two runs a photo's numbers can carry. ``--detector-masks`` hands
the pipeline no hand-drawn person mask (the astronaut's), so that it uses the detector's, as issue 16's protocol
asks ("with the detector's keypoints and masks"); a hand-drawn object mask is kept. ``--attribute`` says which
part of the refinement's change moves the IoU: the refined body's IoU with one of its parts (root rotation, body
pose, shape, camera translation) put back to the initial's, and how far the cycles turned the body's facing.

Usage: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/real_photos.py [--cycles 10] [--repeats 5]
       [--jitter 8] [--detector-masks] [--attribute] [--threads 1]
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from scorehoi_diffusers import GuidanceConfig, ScoreHOIPipeline
from scorehoi_diffusers.body import blazepose_points
from scorehoi_diffusers.camera import project_points
from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, DEFAULT_PIPELINE, load_example
from scorehoi_diffusers.metrics import facing_error_deg, keypoint_reprojection_error, silhouette_iou
from scorehoi_diffusers.person_detection import VISIBLE, default_person_detector
from scorehoi_diffusers.pipelines.keypoint_fit import KeypointFit
from scorehoi_diffusers.pipelines.photo_inputs import choose_person
from scorehoi_diffusers.rendering import MeshLayer, overlay, render, save_png
from scorehoi_diffusers.skeleton import BLAZEPOSE_FITTED, BLAZEPOSE_NAMES

REAL_PHOTOS = ("astronaut", "cameraman")
# The landmarks whose errors are printed one by one: the right arm, the one the cameraman holds his camera with.
RIGHT_ARM = ("right_shoulder", "right_elbow", "right_wrist", "right_pinky", "right_index", "right_thumb")
# The scores whose spread ``--jitter`` reports, and their column titles.
JITTER_SCORES = {"initial_reprojection": "reprojection, initial (%)",
                 "refined_reprojection": "reprojection, refined (%)",
                 "initial_iou": "IoU, initial", "refined_iou": "IoU, refined"}
# The parts of a body ``--attribute`` puts back one at a time, and their column titles.
ATTRIBUTED = {"global_orient": "root rotation", "body_pose": "body pose", "betas": "shape",
              "camera_translation": "camera translation"}
# ``--facing-restart-margin`` left out: keep the pipeline's (argparse applies ``type`` only to string defaults).
PIPELINE_MARGIN = object()
# Seeds the keypoint jitter (run i draws from numpy's default_rng([JITTER_SEED, i]); the global RNG is not touched).
JITTER_SEED = 0


def body_evidence(pipe: ScoreHOIPipeline, params, intrinsics: torch.Tensor, shape) -> tuple[np.ndarray, np.ndarray]:
    """``(33, 2)`` projected BlazePose body points and the ``(H, W)`` rendered body mask of one sample."""
    body = pipe.body_model(params, frame="camera")
    points = blazepose_points(body.joints, body.landmarks)
    projected = project_points(points, intrinsics[None].to(points.dtype))[0].numpy()
    projected[~np.asarray(BLAZEPOSE_FITTED)] = np.nan  # landmarks without a body point are not scored
    layer = MeshLayer(body.vertices[0].numpy(), pipe.body_model.faces, name="body")
    return projected, render([layer], intrinsics.numpy(), shape).masks[0]


def guidance_config(default: GuidanceConfig, pairs: list[str]) -> GuidanceConfig:
    """``default`` with the numeric fields named in ``NAME=VALUE`` strings replaced; a bad one ends the run with a
    one-line message."""
    overrides = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            overrides[name] = float(value)
        except ValueError:
            raise SystemExit(f"--guidance: {pair!r} is not NAME=NUMBER") from None
    try:
        GuidanceConfig.from_dict(overrides, source="the list")  # unknown names and bad values
        return dataclasses.replace(default, **overrides)
    except ValueError as error:
        raise SystemExit(f"--guidance: {error}") from None


def overlay_figure(pipe: ScoreHOIPipeline, image: np.ndarray, params, intrinsics: torch.Tensor, person,
                   projected: np.ndarray) -> np.ndarray:
    """``image`` with the body of ``params`` over it and each visible detected landmark (green) joined to the
    body's projected point (red; ``projected`` ``(33, 2)`` from :func:`body_evidence`)."""
    body = pipe.body_model(params, frame="camera")
    layer = MeshLayer(body.vertices[0].numpy(), pipe.body_model.faces, name="body")
    picture = Image.fromarray(overlay(image, [layer], intrinsics.numpy(), alpha=0.5))
    draw = ImageDraw.Draw(picture)
    for (u, v), (pu, pv), seen in zip(person.keypoints, projected, person.visibility > VISIBLE):
        if seen and np.isfinite(pu):
            draw.line([(u, v), (pu, pv)], fill=(255, 255, 0), width=1)
            draw.ellipse([u - 2, v - 2, u + 2, v + 2], fill=(0, 255, 0))
            draw.ellipse([pu - 2, pv - 2, pu + 2, pv + 2], fill=(255, 0, 0))
    return np.asarray(picture)


def example_inputs(name: str, detector_masks: bool, detector=None) -> tuple:
    """The detection and the pipeline arguments of shipped example ``name``: ``(person, arguments)``, with the
    example's picture, masks (``detector_masks``: the person mask left out, for the pipeline's detector to make),
    object, boxes and the chosen person's keypoints ``(1, 33, 3)``."""
    folder = DEFAULT_EXAMPLES / name
    spec = json.loads((folder / "example.json").read_text())
    item = load_example(folder)
    if detector_masks:
        item["human_mask"] = None
    image = item["image"]
    box = None if spec.get("object_box") is None else np.asarray(spec["object_box"], np.float32)
    person_box = None if spec.get("person_box") is None else np.asarray(spec["person_box"], np.float32)
    person = choose_person(detector or default_person_detector(), image, box, person_box, name)
    arguments = dict(image=image, human_mask=item["human_mask"], object_mask=item["object_mask"],
                     object=item["object"], object_box=spec.get("object_box"), person_box=spec.get("person_box"),
                     keypoints=person.keypoints_with_visibility()[None])
    return person, arguments


def body_scores(pipe: ScoreHOIPipeline, params, intrinsics: torch.Tensor, person, image: np.ndarray) -> dict:
    """The body of ``params`` against the detection ``person``: ``iou`` (rendered silhouette against the detector's
    mask), ``reprojection`` (keypoint error, % of the person box height) and ``projected`` ``(33, 2)``."""
    projected, rendered = body_evidence(pipe, params, intrinsics, image.shape[:2])
    error = keypoint_reprojection_error(projected[None], person.keypoints[None], person.visibility[None],
                                        float(person.box[3]))
    return {"iou": silhouette_iou(rendered, person.mask), "reprojection": float(error[0]), "projected": projected}


def measure(name: str, pipe: ScoreHOIPipeline, cycles: int, repeats: int, guidance: GuidanceConfig,
            overlays: Path | None = None, jitter: int = 0, jitter_pixels: float = 0.5,
            detector_masks: bool = False, attribute: bool = False) -> dict:
    detector = default_person_detector()
    person, arguments = example_inputs(name, detector_masks, detector)  # its detection warms the graph up
    image = arguments["image"]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detector.detect(image)
        times.append(time.perf_counter() - start)
    keypoints = arguments.pop("keypoints")[0]
    arguments.update(num_cycles=cycles, generator=torch.Generator().manual_seed(0), guidance_config=guidance)
    if "keypoints" in inspect.signature(pipe.__call__).parameters:
        arguments["keypoints"] = keypoints[None]
    masks = "hand-drawn" if arguments["human_mask"] is not None else "detector"
    if arguments["object_mask"] is None:
        masks += " + GrabCut"
    elif arguments["human_mask"] is None:
        masks += " + hand-drawn object"
    row = {"photo": name, "masks": masks,
           "visible": int((person.visibility > VISIBLE).sum()), "detector_ms": 1000 * statistics.median(times),
           "keypoints_passed": "keypoints" in arguments,
           **scores(pipe, arguments, person, image, name, overlays, attribute)}
    row["right_arm_visibility"] = {landmark: float(person.visibility[BLAZEPOSE_NAMES.index(landmark)])
                                   for landmark in RIGHT_ARM}
    if jitter and "keypoints" in arguments:
        runs = []
        for run in range(jitter):
            jittered = keypoints.copy()
            noise = np.random.default_rng([JITTER_SEED, run]).normal(0.0, jitter_pixels, jittered[:, :2].shape)
            jittered[:, :2] += noise.astype(np.float32)
            generator = torch.Generator().manual_seed(0)
            runs.append(scores(pipe, {**arguments, "keypoints": jittered[None], "generator": generator}, person,
                               image, name, attribute=attribute))
        row["jitter"] = {key: [run[key] for run in runs] for key in JITTER_SCORES}
        if attribute:  # the attribution table shows the mean over the unjittered run and the jittered ones
            every = [row, *runs]
            row["attribution"] = {part: float(np.mean([run["attribution"][part] for run in every]))
                                  for part in ATTRIBUTED}
            for key in ("refined_iou", "facing_turn"):
                row[f"mean_{key}"] = float(np.mean([run[key] for run in every]))
    return row


def scores(pipe: ScoreHOIPipeline, arguments: dict, person, image: np.ndarray, name: str,
           overlays: Path | None = None, attribute: bool = False) -> dict:
    """Reconstruct with ``arguments`` and score the initial and the refined body against the detection ``person``:
    reprojection error (% box height), silhouette IoU and the right arm's landmark errors (with ``attribute``, also
    the refined body's IoU with each of :data:`ATTRIBUTED` put back to the initial's, and the facing's turn)."""
    output = pipe(**arguments)
    row = {}
    if attribute:
        def iou(params) -> float:
            return silhouette_iou(body_evidence(pipe, params, output.intrinsics[0], image.shape[:2])[1], person.mask)

        initial = output.initial_params
        row["attribution"] = {part: iou(dataclasses.replace(output.params, **{part: getattr(initial, part)}))
                              for part in ATTRIBUTED}
        row["facing_turn"] = float(facing_error_deg(initial.global_orient[0],
                                                    output.params.global_orient[0]))
    height = float(person.box[3])
    for stage, params in (("initial", output.initial_params), ("refined", output.params)):
        body = body_scores(pipe, params, output.intrinsics[0], person, image)
        projected = body["projected"]
        row[f"{stage}_reprojection"], row[f"{stage}_iou"] = body["reprojection"], body["iou"]
        errors = 100 * np.linalg.norm(projected - person.keypoints, axis=-1) / height
        row[f"{stage}_right_arm"] = {landmark: float(errors[BLAZEPOSE_NAMES.index(landmark)])
                                     for landmark in RIGHT_ARM}
        if overlays is not None:
            figure = overlay_figure(pipe, image, params, output.intrinsics[0], person, projected)
            save_png(overlays / f"{name}_{stage}.png", figure)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", default=str(DEFAULT_PIPELINE))
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keypoint-fit", nargs=4, type=float, metavar=("STEPS", "LR", "PRIOR", "SIGMA"),
                        help="the keypoint fit's settings (default: the pipeline's)")
    parser.add_argument("--guidance", nargs="+", default=[], metavar="NAME=VALUE",
                        help="replace these fields of the pipeline's guidance, e.g. mask_coverage=300")
    parser.add_argument("--prior-scale", type=float,
                        help="the keypoint fit's robust pose-prior scale (KeypointFit.prior_scale; default none)")
    parser.add_argument("--limb-restart-threshold", type=float,
                        help="restart limbs this far off after the keypoint fit (KeypointFit.limb_restart_threshold)")
    parser.add_argument("--overlays", type=Path, help="write the initial and refined overlays into this folder")
    parser.add_argument("--jitter", type=int, default=0,
                        help="also reconstruct each photo this many times with its keypoints jittered, for the spread")
    parser.add_argument("--jitter-pixels", type=float, default=0.5,
                        help="standard deviation of the keypoint jitter, in pixels (default 0.5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1): the cameraman's numbers change in the last bits with it")
    parser.add_argument("--attribute", action="store_true",
                        help="the refined IoU with each part of the body put back to the initial's")
    parser.add_argument("--facing-restart-margin", type=lambda value: None if value == "none" else float(value),
                        default=PIPELINE_MARGIN, metavar="MARGIN",
                        help="fit the start's silhouette twin too, and keep the lower objective, where the front/back "
                        "check's errors differ by less than this (box sizes; inf: always; none: never; "
                        "KeypointFit.facing_restart_margin; default: the pipeline's)")
    parser.add_argument("--detector-masks", action="store_true",
                        help="no hand-drawn person mask: the pipeline takes the detector's (issue 16's protocol)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = ScoreHOIPipeline.from_pretrained(args.pipeline)
    if args.keypoint_fit is not None:
        steps, learning_rate, prior_weight, sigma = args.keypoint_fit
        pipe.keypoint_fit = KeypointFit(int(steps), learning_rate, prior_weight, sigma)
    for name in ("prior_scale", "limb_restart_threshold"):
        if getattr(args, name) is not None:
            pipe.keypoint_fit = dataclasses.replace(pipe.keypoint_fit, **{name: getattr(args, name)})
    if args.facing_restart_margin is not PIPELINE_MARGIN:
        pipe.keypoint_fit = dataclasses.replace(pipe.keypoint_fit, facing_restart_margin=args.facing_restart_margin)
    pipe.set_progress_bar_config(disable=True)
    guidance = guidance_config(pipe.default_guidance_config(keypoints=True), args.guidance)
    rows = [measure(name, pipe, args.cycles, args.repeats, guidance, args.overlays, args.jitter, args.jitter_pixels,
                    args.detector_masks, args.attribute) for name in REAL_PHOTOS]
    print(f"Real photos, pipeline {Path(args.pipeline).name}, {args.cycles} cycles, seed 0; keypoints passed to "
          f"the pipeline: {'yes' if rows[0]['keypoints_passed'] else 'no (it takes no `keypoints`)'}; "
          f"keypoint fit: {pipe.keypoint_fit}; guidance: {guidance}.\n")
    print("| photo | masks | visible landmarks | detector (ms) | reprojection error, % box height (initial → "
          "refined) | silhouette IoU (initial → refined) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['photo']} | {row['masks']} | {row['visible']} | {row['detector_ms']:.0f} | "
              f"{row['initial_reprojection']:.2f} → {row['refined_reprojection']:.2f} | "
              f"{row['initial_iou']:.3f} → {row['refined_iou']:.3f} |")
    print("\nRight arm, error in % of box height (initial → refined; detector visibility):\n")
    print("| photo | " + " | ".join(RIGHT_ARM) + " |")
    print("|---|" + "---|" * len(RIGHT_ARM))
    for row in rows:
        cells = [f"{row['initial_right_arm'][k]:.1f} → {row['refined_right_arm'][k]:.1f} "
                 f"({row['right_arm_visibility'][k]:.2f})" for k in RIGHT_ARM]
        print(f"| {row['photo']} | " + " | ".join(cells) + " |")
    fit = "" if args.keypoint_fit is None else " --keypoint-fit " + " ".join(f"{v:g}" for v in args.keypoint_fit)
    for name in ("prior_scale", "limb_restart_threshold"):
        if getattr(args, name) is not None:
            fit += f" --{name.replace('_', '-')} {getattr(args, name):g}"
    if any("jitter" in row for row in rows):
        print(f"\nSpread over {args.jitter} runs with the keypoints handed to the pipeline jittered by "
              f"{args.jitter_pixels:g} px (standard deviation; scored against the unjittered detection): mean ± "
              "standard deviation (lowest – highest)\n")
        print("| photo | " + " | ".join(JITTER_SCORES.values()) + " |")
        print("|---|" + "---|" * len(JITTER_SCORES))
        for row in rows:
            cells = [f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} ({min(values):.3f} – {max(values):.3f})"
                     for values in (row["jitter"][key] for key in JITTER_SCORES)]
            print(f"| {row['photo']} | " + " | ".join(cells) + " |")
        fit += f" --jitter {args.jitter} --jitter-pixels {args.jitter_pixels:g}"
    if args.facing_restart_margin is not PIPELINE_MARGIN:
        margin = args.facing_restart_margin
        fit += f" --facing-restart-margin {'none' if margin is None else format(margin, 'g')}"
    if args.detector_masks:
        fit += " --detector-masks"
    if args.attribute:
        over = f" (mean over the unjittered run and the {args.jitter} jittered ones)" if args.jitter else ""
        print("\nRefined silhouette IoU with one part of the body put back to the initial's, and the turn of the "
              f"body's facing (degrees) over the cycles{over}:\n")
        print("| photo | refined IoU | " + " | ".join(f"with the initial {title}" for title in ATTRIBUTED.values())
              + " | facing turn (°) |")
        print("|---|---|" + "---|" * len(ATTRIBUTED) + "---|")
        for row in rows:
            cells = [f"{row['attribution'][part]:.3f}" for part in ATTRIBUTED]
            refined = row.get("mean_refined_iou", row["refined_iou"])
            turn = row.get("mean_facing_turn", row["facing_turn"])
            print(f"| {row['photo']} | {refined:.3f} | " + " | ".join(cells) + f" | {turn:.1f} |")
        fit += " --attribute"
    overrides = " --guidance " + " ".join(args.guidance) if args.guidance else ""
    print("\nReproduce: OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/real_photos.py "
          f"--cycles {args.cycles} --repeats {args.repeats} --threads {args.threads}{fit}{overrides}")


if __name__ == "__main__":
    main()
