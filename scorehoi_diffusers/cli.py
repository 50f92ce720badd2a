"""The ``scorehoi`` command: ``reconstruct``, ``demo``, ``app``, ``synthesize``, ``evaluate`` and ``compare``.

Every subcommand has ``--help``; errors a user can fix (a missing file, an empty mask, an unknown object, an
unusable ``--out``) are printed as one line that says what to do, with exit status 2, instead of a traceback, and
are found before the pipeline loads. Each picture's results go to their own folder ``OUT/<name>/``, written as a
unit; an existing result is replaced only with ``--overwrite``. Every subcommand also takes ``--device`` (default:
``cuda`` when available, else ``cpu``), ``--threads`` (torch's CPU threads, default 1), ``--quiet`` (errors only,
no progress bars) and ``--verbose`` (the library's informational messages too), which set diffusers' logging
verbosity.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parent / "assets"
# Shipped inside the package, so the command works the same from a wheel as from a checkout.
DEFAULT_PIPELINE = ASSETS / "scorehoi-synthetic"
DEFAULT_EXAMPLES = ASSETS / "examples"


class UserError(Exception):
    """A problem with the command's inputs, reported without a traceback."""


def _check_guidance_fields(index_file: Path) -> None:
    """Unknown ``guidance`` or ``keypoint_guidance`` fields in a pipeline's model_index.json, named with the file,
    before loading."""
    from .guidance import GuidanceConfig

    try:
        index = json.loads(index_file.read_text())
        entries = {entry: index.get(entry) for entry in ("guidance", "keypoint_guidance")}
    except (OSError, ValueError, AttributeError) as error:
        raise UserError(f"--pipeline: {index_file} is not a readable JSON object ({error}).") from error
    known = {field.name for field in dataclasses.fields(GuidanceConfig)}
    for entry, guidance in entries.items():
        unknown = sorted(set(guidance) - known) if isinstance(guidance, dict) else []
        if unknown:
            raise UserError(
                f"--pipeline: {index_file} has unknown {entry} fields {unknown}; remove them "
                f"(known: {sorted(known)})."
            )


def _load_pipeline(path: str | None, body_model: str | None, need_regressor: bool = True, device: str = "cpu"):
    from diffusers.utils import logging

    from .body import BodyModel
    from .pipelines.pipeline_scorehoi import ScoreHOIPipeline

    folder = Path(path) if path else DEFAULT_PIPELINE
    if not (folder / "model_index.json").is_file():
        raise UserError(
            f"No pipeline folder at {folder} (model_index.json missing). Pass --pipeline DIR with a folder "
            "written by ScoreHOIPipeline.save_pretrained or the training scripts."
        )
    _check_guidance_fields(folder / "model_index.json")
    overrides = {"body_model": BodyModel(model_path=body_model)} if body_model else {}
    pipeline = ScoreHOIPipeline.from_pretrained(folder, **overrides)
    if need_regressor and pipeline.regressor is None:
        raise UserError(f"The pipeline at {folder} has no regressor/, so it cannot start from a picture.")
    if not logging.is_progress_bar_enabled():  # --quiet
        pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


def _writable_folder(path: str, option: str = "--out") -> Path:
    """``path`` as a folder this process can create and write in, checked before any slow work starts."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder} is a file, not a folder; give a folder path.")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(
            f"{option} {folder}: {existing} is a file, so no folder can be made under it; give another path."
        )
    try:
        # The only reliable test is to write: permissions, read-only mounts and quotas all show up here.
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UserError(
            f"{option} {folder}: cannot write in {existing} ({error.strerror}); choose a writable folder."
        ) from error
    return folder


def _check_no_result(out: Path, name: str, overwrite: bool) -> None:
    if (out / name).exists() and not overwrite:
        raise UserError(f"--out: {out / name} already exists; pass --overwrite to replace it or choose another --out.")


def _read_image(path: str, name: str, mask: bool = False) -> np.ndarray:
    from .image_processor import load_image

    return load_image(path, f"--{name.replace('_', '-')}", mask=mask)


def _checked_items(items: Sequence[dict], object_root: str | None, mesh_unit: str | None = None) -> list[dict]:
    """Each item checked as the pipeline will check it (pictures, masks, bbox, intrinsics), with the masks it
    leaves out made from its photo (:func:`_with_masks`) and its object template loaded, so that a bad input
    fails with one line before the pipeline loads."""
    from .image_processor import HOIImageProcessor
    from .objects import load_object

    items = [_with_masks(item) for item in items]
    for item in items:
        HOIImageProcessor().preprocess(item["image"], item["human_mask"], item["object_mask"],
                                       bbox=item.get("bbox"), intrinsics=item.get("intrinsics"))
    options = {"mesh_unit": mesh_unit} if mesh_unit else {}
    return [{**item, "template": load_object(item["object"], object_root=object_root, **options)} for item in items]


def _with_masks(item: dict) -> dict:
    """The item with its left-out masks made once, here: the person's by the detector, the object's from
    ``object_box`` by GrabCut; and with the detector's keypoints unless the item has its own (for a photo whose
    masks are given, the detector looks at the person the mask marks), so that every photo gets keypoint
    evidence."""
    from .pipelines.photo_inputs import detect_keypoints, resolve_photo_inputs

    keypoints = item.get("keypoints")
    if item.get("human_mask") is not None and item.get("object_mask") is not None:
        if keypoints is None:
            keypoints = detect_keypoints(item["image"], item["human_mask"] > 0, name=item["name"])
            if keypoints is None:
                print(f"scorehoi: {item['name']}: no person found inside the person mask; going on without keypoints.",
                      file=sys.stderr)
        return {**item, "keypoints": keypoints}
    boxes = {key: None if item.get(key) is None else [item[key]] for key in ("object_box", "person_box")}
    photo = resolve_photo_inputs([item["image"]], [item.get("human_mask")], [item.get("object_mask")], **boxes)
    if keypoints is None and photo.keypoints is not None:
        keypoints = photo.keypoints[0]
    return {**item, "human_mask": photo.human_mask[0], "object_mask": photo.object_mask[0], "keypoints": keypoints}


def _photo_specs(args: argparse.Namespace) -> list:
    """The photos the command names: image files (paired in order with ``--human-mask``/``--object-mask``),
    folders holding a manifest, and manifest files (:mod:`scorehoi_diffusers.manifest`)."""
    from .manifest import PhotoSpec, manifest_in_folder, read_manifest

    specs, images = [], []
    for source in args.inputs:
        path = Path(source)
        if path.is_dir():
            specs += read_manifest(manifest_in_folder(path))
        elif path.suffix.lower() in (".json", ".csv"):
            specs += read_manifest(path)
        else:
            images.append(source)
    for option, masks in (("--human-mask", args.human_mask), ("--object-mask", args.object_mask)):
        if masks is not None and len(masks) != len(images):
            raise UserError(f"{option}: {len(masks)} masks for {len(images)} photos on the command line; "
                            "give one mask per photo, in the photos' order (folders and manifests list their own).")
    for option, box in (("--bbox", args.bbox), ("--object-box", args.object_box), ("--person-box", args.person_box),
                        ("--keypoints", args.keypoints)):
        if box is not None and len(images) != 1:
            raise UserError(f"{option} applies to one photo on the command line; give it per photo in a manifest.")
    if images and args.object_mask is None and args.object_box is None:
        raise UserError("--object-mask or --object-box: give the object's mask, or a box X Y W H around it.")
    specs += [PhotoSpec(Path(image).stem, image, human, obj, bbox=args.bbox, object_box=args.object_box,
                        person_box=args.person_box, keypoints=args.keypoints)
              for image, human, obj in zip(images, args.human_mask or [None] * len(images),
                                           args.object_mask or [None] * len(images), strict=True)]
    names = [spec.name for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"several photos would be written to the same result folders {repeated}; rename them or "
                        "give each a 'name' in the manifest.")
    return specs


def _photo_item(spec, args: argparse.Namespace) -> dict:
    """A photo's pictures read and its camera made: the item :func:`_checked_items` checks."""
    from .camera import intrinsics_from_focal

    image = _read_image(spec.image, "image")
    focal, focal_name = (spec.focal, f"{spec.name} focal") if spec.focal is not None else (args.focal, "--focal")
    obj = spec.object if spec.object is not None else args.object
    if obj is None:
        raise UserError(f"--object: no object for {spec.name}; give --object or an 'object' in its manifest entry.")
    keypoints_name = "--keypoints" if spec.keypoints == args.keypoints else f"{spec.name} keypoints"
    given = {"image": spec.image, "human_mask": spec.human_mask, "object_mask": spec.object_mask,
             "object_box": spec.object_box, "person_box": spec.person_box, "keypoints": spec.keypoints}
    return {
        "name": spec.name,
        "image": image,
        "keypoints": None if spec.keypoints is None else _read_keypoints(spec.keypoints, keypoints_name),
        "human_mask": None if spec.human_mask is None else _read_image(spec.human_mask, "human_mask", mask=True),
        "object_mask": None if spec.object_mask is None else _read_image(spec.object_mask, "object_mask", mask=True),
        "object": obj,
        "bbox": spec.bbox,
        "object_box": spec.object_box,
        "person_box": spec.person_box,
        "intrinsics": None if focal is None else intrinsics_from_focal(focal, *image.shape[:2], name=focal_name),
        "sources": {key: value for key, value in given.items() if value is not None},
    }


def _read_keypoints(path: str, name: str) -> np.ndarray:
    """The ``(33, 3)`` landmarks ``[[u, v, visibility], ...]`` of a JSON file (or ``{"keypoints": [...]}``)."""
    from .image_evidence import check_keypoints

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{name}: cannot read {path} as JSON ({error}).") from error
    if isinstance(data, dict) and "keypoints" in data:
        data = data["keypoints"]
    try:
        keypoints = check_keypoints(data, name)
    except (TypeError, ValueError) as error:
        raise UserError(f"{error} (in {path})") from error
    if keypoints.shape[0] != 1:
        raise UserError(f"{name}: {path} holds {keypoints.shape[0]} people's landmarks; give one (33, 3) list.")
    return keypoints[0].numpy()


def _report_failure(failures: list[str], name: str, error: Exception) -> None:
    """One line on stderr for a photo that failed, while the others go on."""
    from tqdm.auto import tqdm

    failures.append(name)
    lines = str(error).strip().splitlines()
    tqdm.write(f"scorehoi reconstruct: {name}: {lines[0] if lines else type(error).__name__}", file=sys.stderr)


def cmd_reconstruct(args: argparse.Namespace) -> None:
    # Every input and the output folder are checked before the pipeline loads: a typo costs no loading time. With
    # several photos a bad one is reported in one line and skipped, and the command fails at the end.
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}.")
    out = _writable_folder(args.out)
    specs = _photo_specs(args)
    several = len(specs) > 1
    failures: list[str] = []
    items = []
    for spec in specs:
        try:
            _check_no_result(out, spec.name, args.overwrite)
            items += _checked_items([_photo_item(spec, args)], args.object_root, args.mesh_unit)
        except Exception as error:
            if not several:
                raise
            _report_failure(failures, spec.name, error)
    start = time.perf_counter()
    if items:
        from .batch_reconstruction import reconstruct_items

        pipeline = _load_pipeline(args.pipeline, args.body_model, device=args.device)
        pipeline.set_progress_bar_config(disable=several or args.quiet)
        on_error = functools.partial(_report_failure, failures) if several else None
        for entry in reconstruct_items(pipeline, items, out, args.cycles, args.seed, args.overwrite,
                                       args.batch_size, on_error):
            _print_written(entry)
    if several:
        done = len(specs) - len(failures)
        print(f"Reconstructed {done} of {len(specs)} photos in {time.perf_counter() - start:.1f} s "
              f"(pipeline loading included); outputs in {out.resolve()}")
    if failures:
        raise UserError(f"{len(failures)} of {len(specs)} photos failed: {', '.join(failures)} (see above).")


def _print_written(entry: dict) -> None:
    print(f"{entry['name']} ({entry['seconds']:.2f} s):")
    for kind in ("overlay", "figure", "scene", "json", "smplh"):
        if kind in entry:
            print(f"  {kind:8s} {entry[kind]}")


EXAMPLE_KEYS = ("image", "object")


def load_example(folder: Path) -> dict:
    """An example folder holds ``example.json`` naming its image and object, and its masks or an ``object_box``
    (then the person is detected and the object cut from the box; ``person_box`` picks among several people),
    and optional intrinsics."""
    file = Path(folder) / "example.json"
    try:
        spec = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"--examples: {file} is not a readable JSON file ({error}).") from error
    missing = [key for key in EXAMPLE_KEYS if not isinstance(spec, dict) or key not in spec]
    if missing:
        raise UserError(f"--examples: {file} lacks the keys {missing}; an example names its "
                        f"{', '.join(EXAMPLE_KEYS)} (see the shipped examples).")
    masks = {key: _read_image(str(folder / spec[key]), key, mask=True) if key in spec else None
             for key in ("human_mask", "object_mask")}
    item = {
        "name": folder.name,
        "image": _read_image(str(folder / spec["image"]), "image"),
        **masks,
        "object": spec["object"],
        "object_box": spec.get("object_box"),
        "person_box": spec.get("person_box"),
        "sources": {key: spec[key] for key in ("image", "human_mask", "object_mask", "object_box", "person_box",
                                               "source") if key in spec},
    }
    if "intrinsics" in spec:
        item["intrinsics"] = np.asarray(spec["intrinsics"], dtype=np.float32)
    return item


def cmd_demo(args: argparse.Namespace) -> None:
    out = _writable_folder(args.out)
    folders = sorted(p.parent for p in Path(args.examples).glob("*/example.json"))
    if not folders:
        raise UserError(f"No examples (*/example.json) under {args.examples}.")
    for folder in folders:
        _check_no_result(out, folder.name, args.overwrite)
    from .batch_reconstruction import reconstruct_items

    items = _checked_items([load_example(f) for f in folders], None)
    pipeline = _load_pipeline(args.pipeline, args.body_model, device=args.device)
    start = time.perf_counter()
    written = reconstruct_items(pipeline, items, out, args.cycles, args.seed, args.overwrite)
    for entry in written:
        _print_written(entry)
    print(f"Reconstructed {len(written)} examples in {time.perf_counter() - start:.1f} s; outputs in {out.resolve()}")


def cmd_app(args: argparse.Namespace) -> None:
    """Serve the web app (:mod:`scorehoi_diffusers.web_app`) until interrupted."""
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be in 1..65535, got {args.port}.")
    pipeline = _load_pipeline(args.pipeline, args.body_model, device=args.device)
    from .web_app import build_app, launch_app

    try:
        launch_app(build_app(pipeline), host=args.host, port=args.port)
    except OSError as error:
        raise UserError(f"--host {args.host} --port {args.port}: cannot serve there ({error}); choose another "
                        "--port.") from error


def cmd_synthesize(args: argparse.Namespace) -> None:
    from .data.synthetic import synthesize

    out = _writable_folder(args.out)
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise UserError(
            f"--out {out} is not empty; pass --overwrite to replace its contents or choose another folder."
        )
    from diffusers.utils import logging

    synthesize(args.num, out, seed=args.seed, image_size=args.image_size, overwrite=args.overwrite,
               progress=logging.is_progress_bar_enabled())
    print(f"Wrote {args.num} synthetic samples to {out.resolve()}")


def _results_path(out: Path, args: argparse.Namespace, num_samples: int) -> Path:
    keypoints = "" if args.keypoints == "none" else f"_keypoints-{args.keypoints}"
    name = f"{args.dataset}_{args.split}_{args.mode}_n{num_samples}_N{args.cycles}_seed{args.seed}{keypoints}"
    return out / f"{name}.json"


def _check_no_results_file(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise UserError(f"--out: {path} already exists; pass --overwrite to replace it or choose another --out.")


def _read_results(path: str, mode: str) -> dict:
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise UserError(
            f"{path} is not a readable results JSON ({error}); give a file `scorehoi evaluate` wrote."
        ) from error
    for result in results if isinstance(results, list) else [results]:
        if isinstance(result, dict) and result.get("mode") == mode:
            if "per_sample" not in result:
                raise UserError(f"{path}: the {mode!r} results have no per-sample values; re-run `scorehoi evaluate`.")
            return result
    raise UserError(f"{path} has no results of mode {mode!r}.")


def cmd_compare(args: argparse.Namespace) -> None:
    """Print the paired differences (mode minus reference) with their standard errors."""
    from .evaluation import paired_differences

    result = _read_results(args.results, args.mode)
    reference = _read_results(args.reference_results or args.results, args.reference)
    print(f"{args.mode} minus {args.reference}, paired over the same samples (mean ± standard error, n):")
    for key, stats in paired_differences(result, reference).items():
        if stats["mean"] is None:
            continue
        error = "" if stats["standard_error"] is None else f" ± {stats['standard_error']:.4g}"
        print(f"  {key:20s} {stats['mean']:+.4g}{error}  (n = {stats['count']})")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Load the pipeline and the split, evaluate, print a table and write the results as JSON."""
    from .evaluation import ABLATION_MODES, RegressorEstimate, evaluate, format_table
    from .export import write_json

    out = _writable_folder(args.out)
    if args.dataset != "synthetic" and args.data_root is None:
        raise UserError(
            f"--dataset {args.dataset} needs --data-root (the folder with {args.dataset}_{args.split}.json)."
        )
    # The file name holds the number of samples, known before loading unless the dataset has fewer.
    _check_no_results_file(_results_path(out, args, args.num_samples), args.overwrite)
    pipeline = _load_pipeline(args.pipeline, args.body_model, need_regressor=False, device=args.device)
    pipeline.set_progress_bar_config(disable=True)
    object_templates, gt_bodies = None, None
    if args.dataset == "synthetic":
        from diffusers.utils import logging

        from .data.synthetic import synthetic_split

        dataset = synthetic_split(args.split, args.num_samples, seed=args.seed, image_size=args.image_size,
                                  body=pipeline.body_model, progress=logging.is_progress_bar_enabled())  # --quiet
    else:
        from .data.behave import gendered_bodies, load_contho_dataset
        from .data.dataset_objects import load_dataset_objects

        # Ground truth from the user's gendered SMPL-H, as fitted; the stand-in's pelvis is not SMPL-H's, so the
        # annotations' pelvis is checked only with the user's SMPL-H.
        if args.body_model:
            bodies, checks = gendered_bodies(args.body_model), {}
            gt_bodies = bodies
        else:
            bodies, checks = pipeline.body_model, {"pelvis_tolerance": None}
        dataset = load_contho_dataset(args.data_root, args.dataset, args.split, body=bodies,
                                      object_root=args.object_root, max_samples=args.num_samples,
                                      image_root=args.image_root, **checks)
        object_templates = load_dataset_objects(dataset["object_name"], args.object_root, args.dataset)
    num_samples = min(args.num_samples, len(dataset))
    path = _results_path(out, args, num_samples)
    _check_no_results_file(path, args.overwrite)
    if args.keypoints != "none" and pipeline.regressor is None:
        raise UserError("--keypoints needs a pipeline with a regressor (pictures in); this one has none.")
    keypoints = None if args.keypoints == "none" else args.keypoints
    estimate = RegressorEstimate(pipeline, keypoints, args.seed) if pipeline.regressor is not None else None
    kwargs = dict(split=None, num_samples=num_samples, num_cycles=args.cycles, seed=args.seed,
                  batch_size=args.batch_size, initial_estimate_fn=estimate, object_root=args.object_root,
                  object_templates=object_templates, contact_labels=args.contact_labels, gt_body_model=gt_bodies)
    if args.step_size is not None:
        kwargs["step_size"] = args.step_size
    if args.pose_prior_weight is not None:
        kwargs["pose_prior_weight"] = args.pose_prior_weight
    modes = ABLATION_MODES if args.mode == "ablation" else (args.mode,)
    results = [evaluate(pipeline, dataset, mode=mode, **kwargs) for mode in modes]
    for result in results:
        result.update(dataset=args.dataset, pipeline=str(args.pipeline or DEFAULT_PIPELINE))
        if estimate is not None:
            result["protocol"] = "regressor_on_images"
            result["keypoints"] = args.keypoints
            if estimate.detected is not None:  # the rows the detector found nobody in (no keypoints, own mask)
                result["detector_missed"] = sorted(estimate.detected.missed)
    print(format_table(results))
    if estimate is not None and estimate.detected is not None:
        print(f"The person detector found nobody in {len(estimate.detected.missed)} of {num_samples} pictures.")
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, results, indent=2)
    print(f"Wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scorehoi", description="ScoreHOI: physically plausible human-object reconstruction from one image."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def pipeline_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pipeline", default=None, help="pipeline folder (default: the shipped scorehoi-synthetic)")
        p.add_argument("--body-model", default=None,
                       help="your SMPL-H .npz file or folder (default: the licence-free stand-in body)")
        p.add_argument("--cycles", type=int, default=10, help="refinement cycles N (default 10)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    def out_options(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
        p.add_argument("--out", default=default, required=default is None, help=f"output folder ({what})")
        p.add_argument("--overwrite", action="store_true", help="replace existing results (default: refuse)")

    p = sub.add_parser("reconstruct", help="reconstruct body and object from photos, in one process")
    p.add_argument("inputs", nargs="+", metavar="PHOTO",
                   help="RGB photo(s); or a folder holding manifest.json or manifest.csv, or such a manifest file, "
                        "listing per photo: image, and optionally human_mask, object_mask, object_box, person_box, "
                        "object, bbox, focal, keypoints, name")
    p.add_argument("--human-mask", nargs="+", default=None,
                   help="mask of the person (white inside), one per photo on the command line, in order "
                        "(default: found by the bundled person detector)")
    p.add_argument("--object-mask", nargs="+", default=None,
                   help="mask of the object (white inside), one per photo on the command line, in order "
                        "(default: cut from --object-box)")
    p.add_argument("--object-box", type=float, nargs=4, metavar=("X", "Y", "W", "H"), default=None,
                   help="box around the object, cut into its mask by GrabCut when --object-mask is not given")
    p.add_argument("--person-box", type=float, nargs=4, metavar=("X", "Y", "W", "H"), default=None,
                   help="box around the person to reconstruct, when the photo shows several")
    p.add_argument("--object", default=None,
                   help="shipped object name (box, ball, stool, table, chair, stick, bag), dataset name, or mesh path "
                        "(for the photos whose manifest entry names none)")
    p.add_argument("--object-root", default=None, help="folder of dataset object meshes (BEHAVE/InterCap)")
    p.add_argument("--mesh-unit", choices=("m", "cm", "mm"), default=None,
                   help="length unit of the --object mesh file (default m)")
    p.add_argument("--bbox", type=float, nargs=4, metavar=("X", "Y", "W", "H"), default=None,
                   help="box around person and object (default: around both masks)")
    p.add_argument("--focal", type=float, default=None, help="focal length in pixels (default 1.2 x longer side)")
    p.add_argument("--keypoints", default=None, metavar="FILE.json",
                   help="the person's 33 BlazePose landmarks [[u, v, visibility], ...] in the photo's pixels "
                        "(one photo on the command line; in a manifest: a 'keypoints' entry per photo)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="photos of one object reconstructed together (default 8; 1: one at a time)")
    out_options(p, "outputs/reconstruct", "the results go to OUT/<image name>/")
    pipeline_options(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("demo", help="reconstruct the shipped examples with the shipped pipeline")
    p.add_argument("--examples", default=str(DEFAULT_EXAMPLES), help="folder of example folders (default: shipped)")
    out_options(p, "outputs/demo", "each example's results go to OUT/<example name>/")
    pipeline_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("app", help="start the web app: reconstruct from a photo in the browser, on this machine")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0: the network too)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--pipeline", default=None, help="pipeline folder (default: the shipped scorehoi-synthetic)")
    p.add_argument("--body-model", default=None,
                   help="your SMPL-H .npz file or folder (default: the licence-free stand-in body)")
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("synthesize", help="generate a synthetic HOI dataset (datasets.Dataset on disk)")
    p.add_argument("--num", type=int, required=True, help="number of samples")
    out_options(p, None, "must be empty unless --overwrite")
    p.add_argument("--seed", type=int, default=0, help="seed (sample i depends only on seed and i)")
    p.add_argument("--image-size", type=int, default=256, help="image side in pixels")
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("evaluate", help="CONTHO-protocol metrics of a pipeline on a dataset split")
    p.add_argument("--pipeline", default=None, help="pipeline folder (default: the shipped scorehoi-synthetic)")
    p.add_argument("--dataset", choices=("synthetic", "behave", "intercap"), default="synthetic")
    p.add_argument("--split", choices=("train", "test"), default="test")
    p.add_argument("--data-root", default=None,
                   help="BEHAVE/InterCap: folder of {dataset}_{split}.json (CONTHO's data/base_data/annotations)")
    p.add_argument("--image-root", default=None,
                   help="BEHAVE/InterCap: folder the pictures' file_name is relative to (CONTHO's "
                        "data/BEHAVE/sequences or data/InterCap/sequences; default: --data-root)")
    p.add_argument("--object-root", default=None,
                   help="BEHAVE/InterCap object meshes: CONTHO's data/base_data/object_models, or BEHAVE's objects/")
    p.add_argument("--contact-labels", choices=("auto", "annotated", "recomputed"), default="auto",
                   help="contact P/R ground truth: the annotation's per-vertex labels (CONTHO's protocol), the "
                        "recomputed ones, or annotated when the split has them (default)")
    p.add_argument("--body-model", default=None, help="your SMPL-H file or folder (default: stand-in)")
    p.add_argument("--num-samples", type=int, default=200)
    p.add_argument("--image-size", type=int, default=192, help="synthetic: rendered picture side")
    p.add_argument("--mode", choices=("regressor", "optimization", "prior", "frozen_contacts", "full", "ablation"),
                   default="full", help="optimization: the 'w/o diffusion' row; ablation: every mode in turn")
    p.add_argument("--step-size", type=float, default=None,
                   help="gradient-descent step of --mode optimization (default: the one chosen on validation data)")
    p.add_argument("--pose-prior-weight", type=float, default=None,
                   help="pose prior weight of --mode optimization (default: the one chosen on validation data)")
    p.add_argument("--cycles", type=int, default=10)
    p.add_argument("--keypoints", choices=("none", "simulated", "detected"), default="none",
                   help="simulated: give the pipeline simulated 2D detections of each ground-truth body (measured "
                        "detector rates, seeded by --seed); detected: run the bundled person detector on each "
                        "picture and give the pipeline its keypoints and person mask")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    out_options(p, "outputs/evaluation", "for the JSON results")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="paired differences between two modes of evaluate's JSON results")
    p.add_argument("results", help="a JSON file written by `scorehoi evaluate`")
    p.add_argument("mode", help="the mode to compare, e.g. optimization")
    p.add_argument("reference", help="the reference mode, e.g. full")
    p.add_argument("--reference-results", default=None, help="JSON holding the reference (default: RESULTS)")
    p.set_defaults(func=cmd_compare)
    for p in sub.choices.values():
        run_options(p)
    return parser


def run_options(p: argparse.ArgumentParser) -> None:
    """Options every subcommand takes; :func:`apply_run_options` applies them."""
    p.add_argument("--device", default=None,
                   help="torch device to run on, e.g. cpu, cuda, cuda:1, mps (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the refinement's small tensors run faster on one thread "
                        "than split across cores)")
    loudness = p.add_mutually_exclusive_group()
    loudness.add_argument("--quiet", action="store_true", help="only errors: no progress bars, no warnings")
    loudness.add_argument("--verbose", action="store_true", help="also the library's informational messages")


def apply_run_options(args: argparse.Namespace) -> None:
    """Set diffusers' logging verbosity (which the library logs through), check ``--threads`` and resolve
    ``--device``."""
    import torch
    from diffusers.utils import logging

    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}.")

    if args.quiet:
        logging.set_verbosity_error()
        logging.disable_progress_bar()
    elif args.verbose:
        logging.set_verbosity_info()
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
        return
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise UserError(f"--device {args.device!r} is not a torch device; use e.g. cpu, cuda or cuda:0.") from error
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0][:120]
        raise UserError(f"--device {args.device!r} is not available here ({reason}); use --device cpu.") from error


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with ``count`` torch CPU threads, and give the caller's count back after (``main`` may run in-process).

    The command's default is one: splitting the refinement's ``(B, 331)``-sized operations across cores costs
    more in waking threads than it saves (``benchmarks/bench_refine.py --threads 1`` against ``--threads 2``).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        apply_run_options(args)
        with torch_threads(args.threads):
            args.func(args)
    except UserError as error:
        print(f"scorehoi {args.command}: {error}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError, IsADirectoryError) as error:
        # The library's input errors already name the input and what to do.
        print(f"scorehoi {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
