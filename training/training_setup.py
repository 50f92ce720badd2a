"""What `train_regressor.py` and `train_denoiser.py` share: arguments, the accelerator, the data stream,
atomic checkpoints and the Hub.

Data stream. Every random choice of a training step is a pure function of `(--seed, micro_step, process)`:
the samples of micro-batch `m` on process `r` are the global sample slots `(m * P + r) * n ... + n - 1`
(`P` processes, `n` samples per process), and slot `s` is item `perm_e[s mod N]` of epoch `e = s // N`,
with one seeded permutation per epoch. Augmentation, noise, timesteps and condition dropout draw from
generators seeded the same way. A run resumed at step `k` therefore sees exactly the batches and noise an
uninterrupted run sees after step `k`, whatever the global RNG state, and data loader workers (which only
build batches) cannot change the result.

Checkpoints are folders of safetensors and JSON files, never pickles (`checkpoint_state.py`), written atomically:
into `tmp-checkpoint-{step}` first, then renamed to `checkpoint-{step}`, so a run killed mid-save leaves a `tmp-*`
folder that `--resume_from_checkpoint latest` never picks.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, InitProcessGroupKwargs
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, broadcast_object_list, gather_object
from checkpoint_state import CheckpointState, load_training_state, save_training_state
from detector_masks import DETECTOR_MASK_COLUMN
from diffusers.optimization import get_scheduler

from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.data.behave import DATASETS
from scorehoi_diffusers.data.crop import CropConfig, crop_batch, to_model_input
from scorehoi_diffusers.data.dataset_objects import load_dataset_object
from scorehoi_diffusers.data.schema import FEATURES, PARAM_FIELDS
from scorehoi_diffusers.objects import load_object
from scorehoi_diffusers.params import NUM_BETAS, HOIParamCodec

logger = get_logger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
TEMPORARY_CHECKPOINT_PREFIX = "tmp-checkpoint-"
TRAINING_STATE_FILE = "training_state.json"
BETAS_STATISTICS_FILE = "betas_statistics.json"
TRAINING_ARGS_FILE = "training_args.json"
# Output folders that are training by-products, never part of a published model folder.
NOT_PUBLISHED = ["checkpoint-*", f"{TEMPORARY_CHECKPOINT_PREFIX}*", "logs/*", "data/*"]

# Independent random streams: the order of the rendered samples, the order of the parameter-only samples, and per
# micro-step the augmentation and the noise (see `slot_indices` and `step_seed`).
STREAM_RENDERED, STREAM_PARAMETERS, STREAM_AUGMENTATION, STREAM_NOISE = 0, 1, 2, 3
STREAM_DETECTOR_MASK = 5  # 4 is simulated_keypoints.STREAM_KEYPOINTS


# ---------------------------------------------------------------------------------------------------------
# Arguments


def json_object(value: str) -> dict:
    """A `--*_config` value: a JSON object, or the path of a JSON file holding one."""
    text = Path(value).read_text() if not value.lstrip().startswith("{") and Path(value).is_file() else value
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not a JSON object or a JSON file: {value!r} ({error})") from error
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}")
    return parsed


def add_training_arguments(parser: argparse.ArgumentParser, *, learning_rate: float, batch_size: int) -> None:
    """The arguments both scripts take, in the groups and with the names of diffusers' example scripts."""
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=("synthetic", "behave", "intercap"), default="synthetic")
    data.add_argument(
        "--train_data_dir", type=str, default=None,
        help="synthetic: a dataset folder saved by `scorehoi synthesize` (default: render --num_train_samples "
        "now and cache them in OUTPUT_DIR/data); behave/intercap: the folder with {behave,intercap}_train.json.",
    )
    data.add_argument("--image_root", type=str, default=None,
                      help="behave/intercap: the folder `file_name` is relative to (default: --train_data_dir).")
    data.add_argument("--object_root", type=str, default=None, help="behave/intercap: folder of the object meshes.")
    data.add_argument("--num_train_samples", type=int, default=10000,
                      help="synthetic samples rendered when no --train_data_dir is given.")
    data.add_argument("--synthetic_image_size", type=int, default=256, help="side of rendered synthetic pictures.")
    data.add_argument("--synthetic_seed", type=int, default=0, help="seed of the synthetic scenes.")
    data.add_argument("--synthetic_randomized", action="store_true",
                      help="render synthetic scenes in the randomised style (any colours, textures, clutter).")
    data.add_argument("--synthetic_objects", nargs="+", default=None, metavar="NAME",
                      help="shipped primitives the synthetic scenes draw from (default: all).")
    data.add_argument("--resolution", type=int, default=256, help="side of the square crop the regressor sees.")
    data.add_argument("--augmentation", choices=("none", "train"), default="train",
                      help="`train`: random crop scale, camera roll and colour (exact for the labels).")
    data.add_argument("--detector_mask_prob", type=float, default=0.0,
                      help="share of rendered samples whose person-mask channel is the bundled detector's mask "
                      f"(the table's `{DETECTOR_MASK_COLUMN}` column, added by training/detector_masks.py) instead "
                      "of the render's.")
    data.add_argument("--dataloader_num_workers", type=int, default=0)

    body = parser.add_argument_group("body model")
    body.add_argument("--body_model_path", type=str, default=None,
                      help="your SMPL-H .npz (or its folder); default: the licence-free stand-in body.")
    body.add_argument("--gender", choices=("neutral", "male", "female"), default="neutral")

    training = parser.add_argument_group("training")
    training.add_argument("--output_dir", type=str, required=True)
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--init_from", type=str, default=None, metavar="DIR",
                          help="warm start: load the trained models' weights and configs from this pipeline or "
                          "training output folder; the optimizer, LR schedule and EMA start afresh.")
    training.add_argument("--train_batch_size", type=int, default=batch_size,
                          help="samples per process and micro-step.")
    training.add_argument("--num_epochs", type=int, default=100)
    training.add_argument("--max_train_steps", type=int, default=None, help="optimizer steps; overrides --num_epochs.")
    training.add_argument("--gradient_accumulation_steps", type=int, default=1)
    training.add_argument("--learning_rate", type=float, default=learning_rate)
    training.add_argument("--lr_scheduler", type=str, default="cosine",
                          help='diffusers scheduler name: "linear", "cosine", "cosine_with_restarts", "polynomial", '
                          '"constant", "constant_with_warmup"')
    training.add_argument("--lr_warmup_steps", type=int, default=500)
    training.add_argument("--adam_beta1", type=float, default=0.9)
    training.add_argument("--adam_beta2", type=float, default=0.999)
    training.add_argument("--adam_weight_decay", type=float, default=1e-4)
    training.add_argument("--adam_epsilon", type=float, default=1e-8)
    training.add_argument("--max_grad_norm", type=float, default=1.0)
    training.add_argument("--mixed_precision", choices=("no", "fp16", "bf16"), default=None,
                          help="default: the `accelerate config` value.")
    training.add_argument("--use_ema", action="store_true", help="save exponential-moving-average weights.")
    training.add_argument("--ema_inv_gamma", type=float, default=1.0)
    training.add_argument("--ema_power", type=float, default=3 / 4)
    training.add_argument("--ema_max_decay", type=float, default=0.9999)

    checkpoints = parser.add_argument_group("checkpoints")
    checkpoints.add_argument("--checkpointing_steps", type=int, default=500,
                             help="save the full training state every this many optimizer steps.")
    checkpoints.add_argument("--checkpoints_total_limit", type=int, default=None, help="keep at most this many.")
    checkpoints.add_argument("--resume_from_checkpoint", type=str, default=None,
                             help='"latest" (newest complete checkpoint in --output_dir, if any) or a checkpoint '
                             'path.')

    logs = parser.add_argument_group("logging and Hub")
    logs.add_argument("--report_to", type=str, default=None, help='accelerate tracker: "tensorboard", "wandb", "all".')
    logs.add_argument("--push_to_hub", action="store_true")
    logs.add_argument("--hub_model_id", type=str, default=None, help="owner/name (default: the output folder's name).")
    logs.add_argument("--hub_token", type=str, default=None, help="default: the token of `hf auth login`.")
    logs.add_argument("--hub_private_repo", action="store_true")


def check_training_arguments(args: argparse.Namespace) -> None:
    """Errors for values argparse cannot check, naming the flag."""
    positive = ("train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "resolution",
                "num_train_samples", "synthetic_image_size", "num_epochs")
    for name in positive:
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}.")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        raise ValueError(f"--max_train_steps must be at least 1, got {args.max_train_steps}.")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        raise ValueError(f"--checkpoints_total_limit must be at least 1, got {args.checkpoints_total_limit}.")
    if not 0.0 <= args.detector_mask_prob <= 1.0:
        raise ValueError(f"--detector_mask_prob must be in [0, 1], got {args.detector_mask_prob}.")
    if args.dataset != "synthetic" and args.train_data_dir is None:
        raise ValueError(
            f"--dataset {args.dataset} needs --train_data_dir (the folder with {args.dataset}_train.json)."
        )


# ---------------------------------------------------------------------------------------------------------
# Warm start


def warm_start_folder(args: argparse.Namespace, component: str) -> Path | None:
    """`--init_from/<component>` (a `from_pretrained` folder), `None` without `--init_from`.

    Pipeline folders (`save_pretrained`, `scorehoi_diffusers/assets/scorehoi-synthetic`) and `train_regressor.py`
    output folders share the component layout (`regressor/`, `contact_estimator/`, `denoiser/`), so either works.
    """
    if args.init_from is None:
        return None
    folder = Path(args.init_from) / component
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"--init_from {args.init_from!r} has no {component}/config.json; pass a pipeline folder or the "
            f"--output_dir of an earlier training run."
        )
    return folder


def check_estimator_body(estimator, body: BodyModel, source: str) -> None:
    """The contact estimator loaded from `source` must read this body model's downsampled points."""
    if estimator.config.num_body_points != body.num_downsampled:
        raise ValueError(
            f"The contact estimator in {source} was trained for {estimator.config.num_body_points} body points, but "
            f"this body model has {body.num_downsampled}: pass the --body_model_path it was trained with."
        )


def warm_start_betas_statistics(args: argparse.Namespace) -> dict[str, list[float]] | None:
    """The x0 betas range of the `--init_from` folder (its weights were trained for it), `None` without one."""
    if args.init_from is None:
        return None
    folder = Path(args.init_from)
    if (folder / BETAS_STATISTICS_FILE).is_file():
        return json.loads((folder / BETAS_STATISTICS_FILE).read_text())
    index = json.loads((folder / "model_index.json").read_text()) if (folder / "model_index.json").is_file() else {}
    if "betas_min" not in index or "betas_max" not in index:
        raise FileNotFoundError(
            f"--init_from {args.init_from!r} has neither {BETAS_STATISTICS_FILE} nor betas_min/betas_max in "
            "model_index.json; the warm-started weights need the x0 betas range they were trained with."
        )
    return {"betas_min": index["betas_min"], "betas_max": index["betas_max"]}


# ---------------------------------------------------------------------------------------------------------
# Accelerator, logs, Hub


def create_accelerator(args: argparse.Namespace, find_unused_parameters: bool = False) -> Accelerator:
    """The accelerator of a run; `find_unused_parameters` for models whose loss leaves some weights unused."""
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters),
            # Processes wait at barriers while data are rendered or converted (once per output folder).
            InitProcessGroupKwargs(timeout=datetime.timedelta(hours=2)),
        ],
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    if not accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_error()
    if accelerator.is_main_process:
        (output_dir / "logs").mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    return accelerator


def record_launch(accelerator: Accelerator, args: argparse.Namespace, script: str, start_step: int,
                  resumed_from: str | None) -> None:
    """Write `logs/launch.json`: which processes took part (gathered from every rank) and where the run started."""
    ranks = gather_object([{"process_index": accelerator.process_index, "pid": os.getpid(),
                            "device": str(accelerator.device)}])
    if accelerator.is_main_process:
        record = {
            "script": script,
            "num_processes": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type),
            "processes": ranks,
            "start_step": start_step,
            "resumed_from": resumed_from,
        }
        (Path(args.output_dir) / "logs" / "launch.json").write_text(json.dumps(record, indent=2) + "\n")


class StepLog:
    """One JSON line per optimizer step in `logs/train_log.jsonl` (main process), plus accelerate's trackers.

    A run starting at step `start_step` first drops the lines of later steps (left by a run that went on past the
    checkpoint it resumes from), so the file always describes one training history.
    """

    def __init__(self, accelerator: Accelerator, output_dir: str, start_step: int):
        self.accelerator = accelerator
        self.path = Path(output_dir) / "logs" / "train_log.jsonl"
        if accelerator.is_main_process and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= start_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, step: int, values: dict[str, float]) -> None:
        self.accelerator.log(values, step=step)
        if self.accelerator.is_main_process:
            with self.path.open("a") as log:
                log.write(json.dumps({"step": step, **values}) + "\n")


def hub_repository(accelerator: Accelerator, args: argparse.Namespace) -> str | None:
    """With `--push_to_hub`, create (or find) the Hub repository before training, so a missing login or
    network fails in seconds, not after the run. Exits every process with status 2 and says what to do."""
    if not args.push_to_hub:
        return None
    result = [None, None]
    if accelerator.is_main_process:
        from huggingface_hub import create_repo

        name = args.hub_model_id or Path(args.output_dir).resolve().name
        try:
            result[0] = create_repo(name, exist_ok=True, token=args.hub_token, private=args.hub_private_repo).repo_id
        except Exception as error:  # the Hub client raises many types (offline, HTTP, auth); all mean the same here
            result[1] = (
                f"--push_to_hub: cannot create or reach the Hub repository {name!r}: "
                f"{type(error).__name__}: {error}\n"
                "To publish, run `hf auth login` (or pass --hub_token), check the network and that "
                "HF_HUB_OFFLINE is not set, and give --hub_model_id OWNER/NAME; or train without --push_to_hub "
                "and upload the output folder later with `hf upload OWNER/NAME OUTPUT_DIR`."
            )
    broadcast_object_list(result)
    if result[1] is not None:
        if accelerator.is_main_process:
            print(result[1], file=sys.stderr)
        accelerator.end_training()
        sys.exit(2)
    return result[0]


def push_folder(repo_id: str, folder: str, token: str | None) -> None:
    """Upload a finished model folder, leaving checkpoints, logs and cached data out."""
    from huggingface_hub import upload_folder

    try:
        upload_folder(repo_id=repo_id, folder_path=folder, commit_message="End of training", token=token,
                      ignore_patterns=NOT_PUBLISHED)
    except Exception as error:  # as in `hub_repository`
        print(f"--push_to_hub: the upload to {repo_id!r} failed ({type(error).__name__}: {error}). The model is "
              f"saved in {folder!r}; upload it with `hf upload {repo_id} {folder}`.", file=sys.stderr)
        sys.exit(2)


def save_training_args(args: argparse.Namespace, folder: Path, script: str, extra: dict | None = None) -> None:
    """`training_args.json`: the script's arguments (the Hub token left out) and `extra` facts of the run."""
    values = {"script": script, **vars(args), **(extra or {})}
    values.pop("hub_token", None)
    (folder / TRAINING_ARGS_FILE).write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------------------
# Optimisation


def create_lr_scheduler(args: argparse.Namespace, optimizer: torch.optim.Optimizer, num_processes: int):
    """diffusers' `get_scheduler`; accelerate steps a prepared scheduler once per process, hence the factor."""
    return get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * num_processes,
        num_training_steps=args.max_train_steps * num_processes,
    )


def resolve_max_train_steps(args: argparse.Namespace, num_items: int, items_per_step: int) -> int:
    """`--max_train_steps`, or `--num_epochs` passes over `num_items` at `items_per_step` per optimizer step."""
    if args.max_train_steps is None:
        args.max_train_steps = args.num_epochs * math.ceil(num_items / items_per_step)
    return args.max_train_steps


def step_seed(seed: int, micro_step: int, process_index: int, stream: int) -> int:
    """A 63-bit seed for one random stream of one micro-step on one process."""
    state = np.random.SeedSequence([seed, stream, micro_step, process_index]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def step_generator(seed: int, micro_step: int, process_index: int, stream: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(step_seed(seed, micro_step, process_index, stream))


def slot_indices(num_items: int, seed: int, stream: int, slots: np.ndarray) -> np.ndarray:
    """Items of global sample slots: slot `s` is `perm_e[s mod N]` with one permutation per epoch `e = s // N`."""
    slots = np.asarray(slots, dtype=np.int64)
    epochs, positions = np.divmod(slots, num_items)
    out = np.empty_like(slots)
    for epoch in np.unique(epochs):
        permutation = np.random.default_rng([seed, stream, int(epoch)]).permutation(num_items)
        out[epochs == epoch] = permutation[positions[epochs == epoch]]
    return out


def process_slots(micro_step: int, process_index: int, num_processes: int, per_process: int) -> np.ndarray:
    first = (micro_step * num_processes + process_index) * per_process
    return np.arange(first, first + per_process)


class MicroBatches(torch.utils.data.Dataset):
    """Micro-batches `first, first + 1, ...` of this process: item `k` is `build(first + k)`."""

    def __init__(self, build: Callable[[int], dict], first: int, count: int):
        self.build, self.first, self.count = build, first, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        return self.build(self.first + index)


def micro_batch_loader(build: Callable[[int], dict], first: int, count: int, num_workers: int):
    """A `DataLoader` over :class:`MicroBatches` (already batched, so `batch_size=None`)."""
    return torch.utils.data.DataLoader(MicroBatches(build, first, count), batch_size=None, num_workers=num_workers)


# ---------------------------------------------------------------------------------------------------------
# Body, objects, data


def load_body_model(args: argparse.Namespace) -> BodyModel:
    return BodyModel(model_path=args.body_model_path, gender=args.gender).eval().requires_grad_(False)


class ObjectKeypoints:
    """`(B, K, 3)` template keypoints (object frame) of a batch of object names, templates loaded once.

    BEHAVE / InterCap objects load in the frame their pose annotations refer to (`load_dataset_object`).
    """

    def __init__(self, object_root: str | None, device, dataset: str = "synthetic"):
        self.object_root, self.device, self.dataset = object_root, device, dataset
        self._keypoints: dict[str, torch.Tensor] = {}

    def _load(self, name: str):
        if self.dataset in DATASETS:
            return load_dataset_object(name, self.object_root, self.dataset)
        return load_object(name, object_root=self.object_root)

    def __call__(self, names: Sequence[str]) -> torch.Tensor:
        for name in set(names) - set(self._keypoints):
            self._keypoints[name] = self._load(name).keypoints.to(self.device)
        return torch.stack([self._keypoints[name] for name in names])


def load_training_dataset(args: argparse.Namespace, accelerator: Accelerator, body: BodyModel) -> datasets.Dataset:
    """The training table in the sample schema (`scorehoi_diffusers.data.schema`).

    A saved dataset folder is opened as is. Anything built here is built once into `OUTPUT_DIR/data/<name>` and
    reused by later (and resumed) runs: synthetic renders by all processes, each rendering a share
    (:func:`build_table`); converted BEHAVE/InterCap annotations by the main process.
    """
    if args.dataset == "synthetic" and args.train_data_dir is not None:
        path = Path(args.train_data_dir)
        if not (path / "dataset_info.json").is_file():
            raise FileNotFoundError(
                f"--train_data_dir {str(path)!r} is not a saved dataset folder (no dataset_info.json); "
                "create one with `scorehoi synthesize`, or leave --train_data_dir out to render samples now."
            )
    elif args.dataset == "synthetic":
        from scorehoi_diffusers.data.synthetic import generate_dataset

        name = (f"synthetic-train-n{args.num_train_samples}-seed{args.synthetic_seed}-{args.synthetic_image_size}px"
                + synthetic_objects_suffix(args) + ("-randomized" if args.synthetic_randomized else ""))
        path = Path(args.output_dir) / "data" / name

        def render(first: int, stop: int, cache_dir: Path) -> datasets.Dataset:
            return generate_dataset(stop - first, seed=args.synthetic_seed, image_size=args.synthetic_image_size,
                                    body=body, objects=args.synthetic_objects, start=first,
                                    progress=accelerator.is_local_main_process, cache_dir=cache_dir,
                                    randomized=args.synthetic_randomized)

        build_table(accelerator, path, args.num_train_samples, render)
    else:
        path = Path(args.output_dir) / "data" / f"{args.dataset}-train"
        if accelerator.is_main_process and not path.is_dir():
            from scorehoi_diffusers.data.behave import load_contho_dataset

            logger.info(f"Converting {args.dataset} annotations from {args.train_data_dir} into {path}")
            temporary = path.with_name(path.name + ".tmp")
            shutil.rmtree(temporary, ignore_errors=True)
            load_contho_dataset(args.train_data_dir, args.dataset, "train", body, args.object_root,
                                image_root=args.image_root).save_to_disk(str(temporary))
            os.replace(temporary, path)
        accelerator.wait_for_everyone()
    dataset = datasets.load_from_disk(str(path))
    _check_dataset(dataset, body, str(path), args.detector_mask_prob > 0)
    return dataset


def synthetic_objects_suffix(args: argparse.Namespace) -> str:
    """Part of a cached synthetic table's folder name: the object subset, when one is chosen."""
    return "" if args.synthetic_objects is None else "-" + "-".join(sorted(args.synthetic_objects))


def build_table(accelerator: Accelerator, path: Path, num_rows: int,
                make_rows: Callable[[int, int, Path], datasets.Dataset]) -> None:
    """Build a table of `num_rows` rows into `path` unless it exists, every process making a contiguous share.

    `make_rows(first, stop, scratch_dir)` returns rows `first .. stop - 1`; the main process joins the shares in
    order, writes them to a temporary folder and renames it to `path`, so a killed run never leaves a partial
    table under the final name.
    """
    if path.is_dir():
        return
    shards = path.with_name(path.name + ".shards")
    if accelerator.is_main_process:
        shutil.rmtree(shards, ignore_errors=True)  # left by a killed run
        shards.mkdir(parents=True)
    accelerator.wait_for_everyone()
    bounds = np.linspace(0, num_rows, accelerator.num_processes + 1).astype(int)
    first, stop = int(bounds[accelerator.process_index]), int(bounds[accelerator.process_index + 1])
    if stop > first:
        logger.info(f"Building rows {first}..{stop - 1} of {path.name}", main_process_only=False)
        part = shards / f"part-{accelerator.process_index:05d}"
        make_rows(first, stop, shards / f"scratch-{accelerator.process_index:05d}").save_to_disk(str(part))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        parts = [datasets.load_from_disk(str(p)) for p in sorted(shards.glob("part-*"))]
        temporary = path.with_name(path.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        datasets.concatenate_datasets(parts).save_to_disk(str(temporary))
        os.replace(temporary, path)
        shutil.rmtree(shards)
    accelerator.wait_for_everyone()


def _check_dataset(dataset: datasets.Dataset, body: BodyModel, where: str, detector_masks: bool) -> None:
    missing = sorted(set(FEATURES) - set(dataset.column_names))
    if missing:
        raise ValueError(f"The dataset in {where!r} lacks the schema columns {missing}.")
    if detector_masks and DETECTOR_MASK_COLUMN not in dataset.column_names:
        raise ValueError(f"--detector_mask_prob needs the column {DETECTOR_MASK_COLUMN!r}, which the dataset in "
                         f"{where!r} lacks; add it with training/detector_masks.py and pass that folder.")
    if len(dataset) == 0:
        raise ValueError(f"The dataset in {where!r} is empty.")
    num_contacts = len(dataset[0]["human_contact"])
    if num_contacts != body.num_downsampled:
        raise ValueError(
            f"The dataset in {where!r} has {num_contacts} body contact labels per sample, but the body model has "
            f"{body.num_downsampled} downsampled vertices: the data were made with another body model. Pass the "
            "same --body_model_path the data were made with."
        )


def betas_statistics(dataset: datasets.Dataset, kind: str) -> dict[str, list[float]]:
    """`betas_min`/`betas_max` of the x0 codec: the training table's range (`"data"`) or -3..3 (`"default"`)."""
    if kind == "default":
        codec = HOIParamCodec.default()
        return {"betas_min": codec.betas_min.tolist(), "betas_max": codec.betas_max.tolist()}
    betas = np.asarray(dataset.with_format("numpy")["betas"], dtype=np.float64).reshape(-1, NUM_BETAS)
    low, high = betas.min(axis=0), betas.max(axis=0)
    if not (high > low).all():
        raise ValueError("The training betas have no spread in some dimension; pass --betas_statistics default.")
    return {"betas_min": low.tolist(), "betas_max": high.tolist()}


class RenderedBatches:
    """Builds micro-batch `m` of this process from the sample table: crop to `resolution` (with `augment`, the
    training augmentation of `CropConfig.training`), then tensors.

    Returns a dict with `pixel_values (n, 5, S, S)`, `intrinsics (n, 3, 3)` of the crop, the schema's parameter
    fields after the crop's camera roll, `human_contact (n, Sb)`, `object_contact (n, 64)`, `floor_contact (n,)`
    and `object_name` (list). Picklable, so data loader workers can run it. With `detector_mask_prob` > 0 each
    sample's person mask is, with that probability, the table's `DETECTOR_MASK_COLUMN` (the detector's mask, as a
    photo without a hand-drawn mask gives it) instead of the render's.
    """

    def __init__(self, dataset: datasets.Dataset, per_process: int, process_index: int, num_processes: int,
                 seed: int, resolution: int, augment: bool, detector_mask_prob: float = 0.0):
        self.dataset, self.per_process = dataset, per_process
        self.process_index, self.num_processes = process_index, num_processes
        self.seed, self.augment, self.detector_mask_prob = seed, augment, detector_mask_prob
        self.crop = CropConfig.training(out_size=resolution) if augment else CropConfig(out_size=resolution)

    def __call__(self, micro_step: int) -> dict:
        slots = process_slots(micro_step, self.process_index, self.num_processes, self.per_process)
        rows = self.dataset[slot_indices(len(self.dataset), self.seed, STREAM_RENDERED, slots).tolist()]
        if self.detector_mask_prob > 0:
            seed = step_seed(self.seed, micro_step, self.process_index, STREAM_DETECTOR_MASK)
            swap = np.random.default_rng(seed).random(len(slots)) < self.detector_mask_prob
            rows["human_mask"] = [theirs if use else own for own, theirs, use in
                                  zip(rows["human_mask"], rows[DETECTOR_MASK_COLUMN], swap)]
        rng = None
        if self.augment:
            rng = np.random.default_rng(step_seed(self.seed, micro_step, self.process_index, STREAM_AUGMENTATION))
        cropped = crop_batch(rows, self.crop, rng)
        batch = {"pixel_values": to_model_input(cropped), "object_name": list(cropped["object_name"])}
        for name in ("intrinsics", *PARAM_FIELDS, "human_contact", "object_contact", "floor_contact"):
            batch[name] = torch.as_tensor(np.asarray(cropped[name], dtype=np.float32))
        return batch


# ---------------------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_step(path: Path) -> int | None:
    """The step of a complete checkpoint folder, else `None` (temporary or half-written folders)."""
    match = CHECKPOINT_PATTERN.match(path.name)
    if match is None or not (path / TRAINING_STATE_FILE).is_file():
        return None
    return int(match.group(1))


def list_checkpoints(output_dir: str) -> list[Path]:
    """Complete checkpoints in `output_dir`, oldest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [(checkpoint_step(path), path) for path in folder.iterdir() if path.is_dir()]
    return [path for step, path in sorted((s, p) for s, p in found if s is not None)]


def save_checkpoint(accelerator: Accelerator, args: argparse.Namespace, global_step: int,
                    state: CheckpointState) -> Path:
    """`state` into a temporary folder, renamed when complete; keeps the newest `--checkpoints_total_limit`.
    Every process must call it (each saves its own RNG state)."""
    output_dir = Path(args.output_dir)
    final = output_dir / f"checkpoint-{global_step}"
    temporary = output_dir / f"{TEMPORARY_CHECKPOINT_PREFIX}{global_step}"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)  # left by a run killed while saving this step
    accelerator.wait_for_everyone()
    temporary.mkdir(parents=True, exist_ok=True)
    save_training_state(accelerator, state, temporary)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        progress = {
            "global_step": global_step,
            "micro_step": global_step * args.gradient_accumulation_steps,
            "num_processes": accelerator.num_processes,
            "train_batch_size": args.train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "seed": args.seed,
        }
        (temporary / TRAINING_STATE_FILE).write_text(json.dumps(progress, indent=2) + "\n")
        if final.exists():  # re-saving a step after resuming from an older checkpoint: move the old one aside
            replaced = output_dir / f"{TEMPORARY_CHECKPOINT_PREFIX}{global_step}-replaced"
            os.replace(final, replaced)
            shutil.rmtree(replaced)
        os.replace(temporary, final)
        if args.checkpoints_total_limit is not None:
            for old in list_checkpoints(args.output_dir)[: -args.checkpoints_total_limit]:
                logger.info(f"Removing old checkpoint {old}")
                shutil.rmtree(old)
        logger.info(f"Saved state to {final}")
    accelerator.wait_for_everyone()
    return final


def resume_checkpoint(accelerator: Accelerator, args: argparse.Namespace, state: CheckpointState) -> tuple:
    """Load `--resume_from_checkpoint` into the prepared objects of `state`; returns `(global_step, path or None)`.

    `latest` with no complete checkpoint starts a new run (so a job can always be relaunched with it); an
    explicit path that is not a complete checkpoint is an error.
    """
    if args.resume_from_checkpoint is None:
        return 0, None
    if args.resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(args.output_dir)
        if not checkpoints:
            accelerator.print(f"No complete checkpoint in {args.output_dir!r}; starting a new training run.")
            return 0, None
        path = checkpoints[-1]
    else:
        path = Path(args.resume_from_checkpoint)
        if not path.is_dir() and (Path(args.output_dir) / path).is_dir():
            path = Path(args.output_dir) / path
        if checkpoint_step(path) is None:
            raise FileNotFoundError(
                f"--resume_from_checkpoint {args.resume_from_checkpoint!r} is not a complete checkpoint folder "
                f"(checkpoint-<step> with {TRAINING_STATE_FILE}); use 'latest' or one of "
                f"{[p.name for p in list_checkpoints(args.output_dir)]}."
            )
    progress = json.loads((path / TRAINING_STATE_FILE).read_text())
    changed = {key: (progress[key], value) for key, value in (
        ("num_processes", accelerator.num_processes), ("train_batch_size", args.train_batch_size),
        ("gradient_accumulation_steps", args.gradient_accumulation_steps), ("seed", args.seed),
    ) if progress.get(key) != value}
    if changed:
        logger.warning(f"Resuming with different settings {changed} (saved, now): the run continues, but not with "
                       "the exact batches an uninterrupted run would have seen.")
    accelerator.print(f"Resuming from checkpoint {path}")
    load_training_state(accelerator, state, path)
    return int(progress["global_step"]), str(path)
