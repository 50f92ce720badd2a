"""The ``scorehoi`` command: ``reconstruct``, ``demo``, ``synthesize`` and ``evaluate``.

Every subcommand has ``--help``; errors a user can fix (a missing file, an empty mask, an unknown object) are
printed as one line that says what to do, with exit status 2, instead of a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PIPELINE = REPO_ROOT / "checkpoints" / "scorehoi-synthetic"
DEFAULT_EXAMPLES = REPO_ROOT / "examples"


class UserError(Exception):
    """A problem with the command's inputs, reported without a traceback."""


def _load_pipeline(path: Optional[str], body_model: Optional[str]):
    from .body import BodyModel
    from .pipelines.pipeline_scorehoi import ScoreHOIPipeline

    folder = Path(path) if path else DEFAULT_PIPELINE
    if not (folder / "model_index.json").is_file():
        raise UserError(
            f"No pipeline folder at {folder} (model_index.json missing). Pass --pipeline DIR with a folder "
            "written by ScoreHOIPipeline.save_pretrained or the training scripts."
        )
    overrides = {"body_model": BodyModel(model_path=body_model)} if body_model else {}
    pipeline = ScoreHOIPipeline.from_pretrained(folder, **overrides)
    if pipeline.regressor is None:
        raise UserError(f"The pipeline at {folder} has no regressor/, so it cannot start from a picture.")
    return pipeline


def _read_image(path: str, name: str, mask: bool = False) -> np.ndarray:
    from .image_processor import load_image

    return load_image(path, f"--{name.replace('_', '-')}", mask=mask)


def _checked_items(items: Sequence[dict], object_root: Optional[str]) -> List[dict]:
    """Each item checked as the pipeline will check it (pictures, masks, bbox, intrinsics) and with its object
    template loaded, so that a bad input fails with one line before the pipeline loads."""
    from .image_processor import HOIImageProcessor
    from .objects import load_object

    for item in items:
        HOIImageProcessor().preprocess(item["image"], item["human_mask"], item["object_mask"],
                                       bbox=item.get("bbox"), intrinsics=item.get("intrinsics"))
    return [{**item, "template": load_object(item["object"], object_root=object_root)} for item in items]


def _reconstruct_files(
    pipeline, items: Sequence[dict], out_dir: Path, cycles: int, seed: int
) -> List[dict]:
    """Reconstruct a list of ``{name, image, human_mask, object_mask, object, template, bbox, intrinsics}`` items
    (see :func:`_checked_items`) and export them."""
    import torch

    from .export import export_reconstruction
    from .image_processor import to_rgb_array

    written = []
    for item in items:
        template = item["template"]
        start = time.perf_counter()
        output = pipeline(
            image=item["image"], human_mask=item["human_mask"], object_mask=item["object_mask"],
            object=template, bbox=item.get("bbox"), intrinsics=item.get("intrinsics"),
            num_cycles=cycles, generator=torch.Generator().manual_seed(seed),
        )
        seconds = time.perf_counter() - start
        paths = export_reconstruction(
            output, 0, pipeline.body_model, template, out_dir, item["name"],
            image=to_rgb_array(item["image"]), intrinsics=output.intrinsics[0].cpu().numpy(),
            extra={"inputs": item.get("sources", {}), "object": str(item["object"]), "seconds": seconds},
        )
        written.append({"name": item["name"], "seconds": seconds, **{k: str(v) for k, v in paths.items()}})
    return written


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from .camera import intrinsics_from_focal

    # Every input is read and checked before the pipeline loads: a typo costs no loading time.
    intrinsics = None
    if args.focal is not None:
        height, width = _read_image(args.image, "image").shape[:2]
        intrinsics = intrinsics_from_focal(args.focal, height, width, name="--focal")
    item = {
        "name": Path(args.image).stem,
        "image": _read_image(args.image, "image"),
        "human_mask": _read_image(args.human_mask, "human_mask", mask=True),
        "object_mask": _read_image(args.object_mask, "object_mask", mask=True),
        "object": args.object,
        "bbox": args.bbox,
        "intrinsics": intrinsics,
        "sources": {"image": args.image, "human_mask": args.human_mask, "object_mask": args.object_mask},
    }
    items = _checked_items([item], args.object_root)
    pipeline = _load_pipeline(args.pipeline, args.body_model)
    for entry in _reconstruct_files(pipeline, items, Path(args.out), args.cycles, args.seed):
        _print_written(entry)


def _print_written(entry: dict) -> None:
    print(f"{entry['name']} ({entry['seconds']:.2f} s):")
    for kind in ("overlay", "figure", "scene", "json"):
        if kind in entry:
            print(f"  {kind:8s} {entry[kind]}")


def load_example(folder: Path) -> dict:
    """An example folder holds ``example.json`` naming its image, masks, object and optional intrinsics."""
    spec = json.loads((folder / "example.json").read_text())
    item = {
        "name": folder.name,
        "image": _read_image(str(folder / spec["image"]), "image"),
        "human_mask": _read_image(str(folder / spec["human_mask"]), "human_mask", mask=True),
        "object_mask": _read_image(str(folder / spec["object_mask"]), "object_mask", mask=True),
        "object": spec["object"],
        "sources": {key: spec[key] for key in ("image", "human_mask", "object_mask", "source") if key in spec},
    }
    if "intrinsics" in spec:
        item["intrinsics"] = np.asarray(spec["intrinsics"], dtype=np.float32)
    return item


def cmd_demo(args: argparse.Namespace) -> None:
    folders = sorted(p.parent for p in Path(args.examples).glob("*/example.json"))
    if not folders:
        raise UserError(f"No examples (*/example.json) under {args.examples}.")
    items = _checked_items([load_example(f) for f in folders], None)
    pipeline = _load_pipeline(args.pipeline, args.body_model)
    out = Path(args.out)
    start = time.perf_counter()
    written = _reconstruct_files(pipeline, items, out, args.cycles, args.seed)
    for entry in written:
        _print_written(entry)
    print(f"Reconstructed {len(written)} examples in {time.perf_counter() - start:.1f} s; outputs in {out.resolve()}")


def cmd_synthesize(args: argparse.Namespace) -> None:
    from .data.synthetic import synthesize

    synthesize(args.num, args.out, seed=args.seed, image_size=args.image_size)
    print(f"Wrote {args.num} synthetic samples to {Path(args.out).resolve()}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation import run_evaluation_command

    run_evaluation_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scorehoi", description="ScoreHOI: physically plausible human-object reconstruction from one image."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def pipeline_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pipeline", default=None, help=f"pipeline folder (default: {DEFAULT_PIPELINE})")
        p.add_argument("--body-model", default=None,
                       help="your SMPL-H .npz file or folder (default: the licence-free stand-in body)")
        p.add_argument("--cycles", type=int, default=10, help="refinement cycles N (default 10)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    p = sub.add_parser("reconstruct", help="reconstruct body and object from one picture")
    p.add_argument("image", help="RGB picture")
    p.add_argument("--human-mask", required=True, help="mask of the person (white inside)")
    p.add_argument("--object-mask", required=True, help="mask of the object (white inside)")
    p.add_argument("--object", required=True,
                   help="shipped object name (box, ball, stool, table, chair, stick, bag), dataset name, or mesh path")
    p.add_argument("--object-root", default=None, help="folder of dataset object meshes (BEHAVE/InterCap)")
    p.add_argument("--bbox", type=float, nargs=4, metavar=("X", "Y", "W", "H"), default=None,
                   help="box around person and object (default: around both masks)")
    p.add_argument("--focal", type=float, default=None, help="focal length in pixels (default 1.2 x longer side)")
    p.add_argument("--out", default="outputs/reconstruct", help="output folder")
    pipeline_options(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("demo", help="reconstruct the shipped examples with the shipped pipeline")
    p.add_argument("--examples", default=str(DEFAULT_EXAMPLES), help="folder of example folders")
    p.add_argument("--out", default="outputs/demo", help="output folder")
    pipeline_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("synthesize", help="generate a synthetic HOI dataset (datasets.Dataset on disk)")
    p.add_argument("--num", type=int, required=True, help="number of samples")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="seed (sample i depends only on seed and i)")
    p.add_argument("--image-size", type=int, default=256, help="image side in pixels")
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("evaluate", help="CONTHO-protocol metrics of a pipeline on a dataset split")
    p.add_argument("--pipeline", default=None, help=f"pipeline folder (default: {DEFAULT_PIPELINE})")
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
    p.add_argument("--mode", choices=("regressor", "prior", "frozen_contacts", "full", "ablation"), default="full")
    p.add_argument("--cycles", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/evaluation", help="folder for the JSON results")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as error:
        print(f"scorehoi {args.command}: {error}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, KeyError, TypeError) as error:
        # The library's input errors already name the input and what to do.
        print(f"scorehoi {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
