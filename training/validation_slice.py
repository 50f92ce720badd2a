"""The validation slice the choose_* scripts pick settings on, and the regressor-alone row they compare against.

The slice is indices 20000.. of the seed-0 synthetic *train* stream: past every table the training scripts
rendered for the shipped weights (the first 6000 indices) and disjoint from the test split, so a choice made on it
touches neither training nor test data. Pictures in: the pipeline's own regressor gives the initial estimate, as
in ``scorehoi evaluate``.
"""
import argparse
import dataclasses
import json
from collections.abc import Iterable

from scorehoi_diffusers import GuidanceConfig, ScoreHOIPipeline
from scorehoi_diffusers.data.synthetic import generate_dataset
from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate, paired_differences

FIRST_INDEX = 20000
# What the paired rules of the contact and cycle-scheme checks guard (mean ± standard error of each difference).
RULE_METRICS = ("cd_human", "cd_object", "contact_precision", "contact_recall", "penetration_depth", "mpjpe",
                "pa_mpjpe", "facing_error")


def guidance_changes(assignments: Iterable[str]) -> dict:
    """``FIELD=VALUE`` strings (VALUE read as JSON) -> ``{FIELD: VALUE}``, fields of ``GuidanceConfig`` to change
    with ``dataclasses.replace``; an unknown field or a value that is not JSON is an ``argparse.ArgumentTypeError``
    naming it."""
    known = {field.name for field in dataclasses.fields(GuidanceConfig)}
    changes = {}
    for assignment in assignments:
        field, _, value = assignment.partition("=")
        if field not in known:
            raise argparse.ArgumentTypeError(f"{field!r} is not a GuidanceConfig field; known: {sorted(known)}")
        try:
            changes[field] = json.loads(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{field}={value!r}: the value must be JSON (true, 0.5, null)") from None
    return changes


def add_arguments(parser: argparse.ArgumentParser, num_samples: int) -> None:
    """``--pipeline``, ``--num-samples``, ``--first-index`` and ``--randomized``."""
    parser.add_argument("--pipeline", default="scorehoi_diffusers/assets/scorehoi-synthetic")
    parser.add_argument("--num-samples", type=int, default=num_samples)
    parser.add_argument("--first-index", type=int, default=FIRST_INDEX)
    parser.add_argument("--randomized", action="store_true",
                        help="render the slice in the randomised style (any colours, textures, clutter and light), "
                        "where the regressor, trained on the default style, starts further off, as on real photos")


def load_slice(args: argparse.Namespace):
    """``(pipeline, slice)``: the pipeline (progress bars off) and the rendered slice."""
    pipeline = ScoreHOIPipeline.from_pretrained(args.pipeline)
    pipeline.set_progress_bar_config(disable=True)
    data = generate_dataset(args.num_samples, seed=0, split="train", start=args.first_index, image_size=192,
                            body=pipeline.body_model, progress=False, randomized=args.randomized)
    return pipeline, data


def load(args: argparse.Namespace, keypoints: str | None = None):
    """``(pipeline, slice, estimate, regressor_row)``: :func:`load_slice`, the slice's regressor estimate (with
    ``keypoints="simulated"``, seeded simulated detections handed to the pipeline, seed 0) and the regressor-alone
    evaluation row."""
    pipeline, data = load_slice(args)
    estimate = RegressorEstimate(pipeline, keypoints, seed=0)
    regressor_row = evaluate(pipeline, data, split=None, mode="regressor", initial_estimate_fn=estimate)
    return pipeline, data, estimate, regressor_row


def print_paired(title: str, result: dict, reference: dict, metrics) -> None:
    """Print ``title`` and, per metric, ``result`` minus ``reference`` paired over their scenes (mean ± standard
    error): both are ``evaluate`` rows of the same scenes."""
    differences = paired_differences(result, reference)
    print(f"{title} (paired, mean ± standard error):")
    for key in metrics:
        print(f"  {key:18s} {differences[key]['mean']:+.4f} ± {differences[key]['standard_error']:.4f}")
