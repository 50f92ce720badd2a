"""Write the README.md model card of a saved ScoreHOI pipeline folder from `template.md`.

The card is filled from the folder itself (which components it holds, which body model it names), from the training
arguments the training scripts saved (`training_args.json`, which also carries the regressor's), and from evaluation
metrics when they are given. Numbers in the card come only from those inputs: without metrics the evaluation section
says that the model has not been evaluated yet.

`train_denoiser.py` calls :func:`write_model_card` at the end of training. To add metrics later:

    python model_cards/generate_model_card.py PIPELINE_DIR --metrics metrics.json [--model_id OWNER/NAME]

where `metrics.json` is `{"metric name": value, ...}` or `{"description": "what was evaluated, how",
"metrics": {"metric name": value, ...}}`.
"""
from __future__ import annotations

import argparse
import json
import math
import numbers
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCardData

TEMPLATE_PATH = Path(__file__).resolve().parent / "template.md"
TAGS = ["human-object-interaction", "3d-reconstruction", "diffusion", "smplh", "scorehoi"]
# Dataset names for the card's metadata (BEHAVE and InterCap have no official Hub dataset).
DATASET_NAMES = {"synthetic": "scorehoi-synthetic-hoi", "behave": "behave", "intercap": "intercap"}
DATASET_DESCRIPTIONS = {
    "synthetic": "synthetic human-object interaction scenes generated and rendered by "
    "`scorehoi_diffusers.data.synthetic` (the stand-in body posed together with the shipped object primitives, "
    "contacts from the geometry)",
    "behave": "BEHAVE (the user's copy, CONTHO annotation layout)",
    "intercap": "InterCap (the user's copy, CONTHO annotation layout)",
}
NOT_EVALUATED = "Not evaluated yet: no metrics were given when this card was written, so none are reported."

PathLike = str | Path


def load_metrics(metrics: None | PathLike | Mapping[str, Any]) -> tuple:
    """`(description or None, {name: value})` from a mapping or a JSON file (see the module docstring)."""
    if metrics is None:
        return None, {}
    if not isinstance(metrics, Mapping):
        path = Path(metrics)
        if not path.is_file():
            raise FileNotFoundError(f"`metrics` file {str(path)!r} does not exist.")
        metrics = json.loads(path.read_text())
        if not isinstance(metrics, Mapping):
            raise ValueError(f"`metrics` file {str(path)!r} must hold a JSON object.")
    description = None
    if "metrics" in metrics:
        description, metrics = metrics.get("description"), metrics["metrics"]
        if not isinstance(metrics, Mapping):
            raise ValueError("`metrics['metrics']` must be a mapping of metric name to value.")
    for name, value in metrics.items():
        valid_number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not (valid_number or isinstance(value, str)):
            raise ValueError(f"Metric {name!r} must be a finite number or a string, got {value!r}.")
    return description, dict(metrics)


def _format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(rows: Mapping[str, Any]) -> str:
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| {name} | {_format_value(value)} |" for name, value in rows.items()]
    return "\n".join(lines)


def _dataset_text(args: Mapping[str, Any]) -> str:
    dataset = args.get("dataset", "synthetic")
    text = DATASET_DESCRIPTIONS.get(dataset, dataset)
    if dataset == "synthetic" and not args.get("train_data_dir"):
        text += (f": {args.get('num_train_samples')} samples rendered at {args.get('synthetic_image_size')} px, "
                 f"seed {args.get('synthetic_seed')}")
    elif args.get("train_data_dir"):
        text += f", read from `{Path(str(args['train_data_dir'])).name}`"
    if dataset == "synthetic" and args.get("synthetic_objects"):
        text += f"; objects: {', '.join(args['synthetic_objects'])}"
    if args.get("param_only_fraction"):
        source = (f"{args.get('num_param_samples')} synthetic scenes posed but not rendered"
                  if dataset == "synthetic" else "the same table's parameters without pictures")
        text += f"; plus parameter-only samples ({source}) as {args['param_only_fraction']:.0%} of every batch"
    return text


def _procedure_rows(args: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    rows = {label: args[key] for key, label in keys.items() if args.get(key) is not None}
    if "num_processes" in args:
        rows["effective batch"] = (f"{args['train_batch_size']} per process x {args['num_processes']} processes x "
                                   f"{args['gradient_accumulation_steps']} accumulation")
    return rows


COMMON_ROWS = {
    "init_from": "warm start from (weights of an earlier run)",
    "max_train_steps": "optimizer steps",
    "learning_rate": "learning rate (AdamW)",
    "lr_scheduler": "learning-rate schedule",
    "lr_warmup_steps": "warm-up steps",
    "adam_weight_decay": "weight decay",
    "use_ema": "EMA weights",
    "mixed_precision": "mixed precision",
    "resolution": "crop size (px)",
    "augmentation": "augmentation",
    "seed": "seed",
}
DENOISER_ROWS = {
    "param_only_fraction": "parameter-only share of each batch",
    "param_only_condition": "condition of parameter-only samples",
    "num_param_samples": "parameter-only samples",
    "condition_dropout_prob": "condition dropout",
    "max_train_timestep": "oversampled timesteps: t <=",
    "small_timestep_fraction": "share of oversampled timesteps",
}
REGRESSOR_ROWS = {
    "param_loss": "parameter loss",
    "param_loss_weight": "weight: parameters",
    "vertex_loss_weight": "weight: vertices",
    "reprojection_loss_weight": "weight: 2D reprojection",
    "camera_loss_weight": "weight: camera",
    "contact_loss_weight": "weight: contacts",
}


def render_model_card(
    pipeline_dir: PathLike,
    training_args: Mapping[str, Any] | None = None,
    metrics: None | PathLike | Mapping[str, Any] = None,
    model_id: str | None = None,
    template_path: PathLike = TEMPLATE_PATH,
) -> str:
    """The model card text of a saved pipeline folder.

    Args:
        pipeline_dir: a folder written by `ScoreHOIPipeline.save_pretrained`.
        training_args: the denoiser's training arguments (with the regressor's under `regressor_training_args`);
            default: the folder's `training_args.json` when present.
        metrics: evaluation results, a mapping or a JSON file (see the module docstring); `None`: not evaluated.
        model_id: the Hub id or path shown in the usage example (default: the folder's name).
        template_path: the Markdown template (`string.Template` placeholders).
    """
    folder = Path(pipeline_dir)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a saved pipeline folder (no model_index.json).")
    index = json.loads(index_path.read_text())
    if training_args is None and (folder / "training_args.json").is_file():
        training_args = json.loads((folder / "training_args.json").read_text())
    training_args = dict(training_args or {})
    regressor_args = dict(training_args.get("regressor_training_args") or {})
    description, metric_values = load_metrics(metrics)

    present = [name for name, spec in index.items() if not name.startswith("_") and isinstance(spec, list)
               and spec[0] is not None]
    has_regressor = "regressor" in present
    body_config_path = folder / "body_model" / "config.json"
    body_path = json.loads(body_config_path.read_text()).get("model_path") if body_config_path.is_file() else None

    dataset_names = sorted({DATASET_NAMES.get(a.get("dataset", "synthetic"), a.get("dataset"))
                            for a in (training_args, regressor_args) if a})
    front_matter = ModelCardData(
        library_name="diffusers",
        pipeline_tag="image-to-3d",
        license="apache-2.0",
        tags=TAGS,
        datasets=dataset_names,
        metrics=list(metric_values),
    ).to_yaml()

    components = {
        "denoiser": "`denoiser` (ScoreHOIDenoiser, the ε-prediction prior over the 331-number x0 vector)",
        "scheduler": "`scheduler` (GuidedDDIMScheduler, cosine schedule, 1000 steps)",
        "body_model": "`body_model` (the licence-free stand-in body)" if body_path is None
        else "`body_model` (SMPL-H, loaded from the user's own files)",
        "regressor": "`regressor` (ScoreHOIRegressor, crop to initial estimate and image tokens)",
        "contact_estimator": "`contact_estimator` (ScoreHOIContactEstimator, learned contacts)",
    }
    if has_regressor:
        call = 'image=image, human_mask=human_mask, object_mask=object_mask, object="box"'
        usage_note = ""
    else:
        call = 'initial_params=initial_params, object="box"'
        usage_note = ("\nThis folder has no regressor: give an initial estimate from any regressor as "
                      "`initial_params` (`scorehoi_diffusers.HOIParams`), plus the masks and camera if image "
                      "guidance is wanted.\n")

    if training_args:
        data_lines = [f"- Prior (denoiser): {_dataset_text(training_args)}."]
        if regressor_args:
            data_lines.append(f"- Regressor and contact estimator: {_dataset_text(regressor_args)}.")
        training_data = "\n".join(data_lines)
        procedure = ["Trained with `training/train_denoiser.py` (ε-prediction L2, condition dropout, image tokens "
                     "from the frozen regressor on each sample's crop):", "",
                     _table(_procedure_rows(training_args, {**COMMON_ROWS, **DENOISER_ROWS}))]
        if regressor_args:
            procedure += ["", "Regressor and contact estimator, trained first with `training/train_regressor.py`:", "",
                          _table(_procedure_rows(regressor_args, {**COMMON_ROWS, **REGRESSOR_ROWS}))]
        if any(a.get("init_from") for a in (training_args, regressor_args) if a):
            procedure += ["", "These tables describe the last training stage only: it continued from the weights "
                          "named under \"warm start from\" (`--init_from`), so the weights carry the earlier stages' "
                          "training too; the repository's `training/train_shipped.sh` lists every stage."]
        training_procedure = "\n".join(procedure)
    else:
        training_data = training_procedure = "Not recorded: no training arguments were given for this folder."

    if metric_values:
        evaluation = ((description.strip() + "\n\n") if description else "") + "\n".join(
            ["| metric | value |", "|---|---|"] + [f"| {k} | {_format_value(v)} |" for k, v in metric_values.items()])
    else:
        evaluation = NOT_EVALUATED

    limitations = []
    if body_path is None:
        limitations.append("The body is the project's stand-in, a human-like mesh in the SMPL-H file format with "
                           "SMPL-H's skeleton; it is not SMPL-H. Its shape space, surface and vertex count differ, "
                           "so results are not comparable with SMPL-H-based numbers, and the weights (which index "
                           "its vertices) do not transfer to a real SMPL-H body without retraining.")
    if any(a.get("dataset", "synthetic") == "synthetic" for a in (training_args, regressor_args) if a):
        limitations.append("Trained on synthetic scenes (simple renders of primitive objects): expect a domain gap on "
                           "real photographs and on objects unlike the primitives.")
    limitations.append("Needs good human and object masks and the object's template mesh; one person and one object "
                       "per crop.")
    template = string.Template(Path(template_path).read_text())
    return template.substitute(
        front_matter=f"---\n{front_matter}\n---\n",
        title=f"ScoreHOI pipeline: {model_id or folder.resolve().name}",
        components=", ".join(components[name] for name in components if name in present),
        model_id=model_id or str(folder),
        call_arguments=call,
        usage_note=usage_note,
        training_data=training_data,
        training_procedure=training_procedure,
        evaluation=evaluation,
        limitations="\n".join(f"- {line}" for line in limitations),
    )


def write_model_card(pipeline_dir: PathLike, **kwargs) -> Path:
    """Render the card (arguments as :func:`render_model_card`) into `pipeline_dir/README.md`."""
    path = Path(pipeline_dir) / "README.md"
    path.write_text(render_model_card(pipeline_dir, **kwargs))
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write the README.md model card of a saved ScoreHOI pipeline.")
    parser.add_argument("pipeline_dir")
    parser.add_argument("--metrics", default=None, help="JSON file of evaluation results; omit if not evaluated.")
    parser.add_argument("--model_id", default=None, help="Hub id shown in the usage example.")
    args = parser.parse_args(argv)
    print(write_model_card(args.pipeline_dir, metrics=args.metrics, model_id=args.model_id))


if __name__ == "__main__":
    main()
