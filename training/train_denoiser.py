"""Train the ScoreHOI diffusion prior (the denoiser) and write a complete pipeline folder.

Objective: ε-prediction L2 on the x0 vector `(B, 331)` under the cosine schedule of `GuidedDDIMScheduler`
(T = 1000), with per-sample condition dropout so the same model also runs unconditionally.

Timesteps. Refinement only evaluates the prior at small timesteps (t = 0, 5, ..., t_start = 50 by default), so its
accuracy there is what matters. A share `--small_timestep_fraction` of each batch draws t uniformly from
`[0, --max_train_timestep]`, the rest uniformly from `[0, T)`: the small timesteps get many more samples than
uniform training would give them (5 % of them), while the whole range stays trained, so the model remains a valid
ε-predictor for deeper inversion (a larger `t_start`) and for plain sampling.

Condition. Rendered samples are conditioned exactly as at inference: the FROZEN regressor (`--regressor_path`, from
`train_regressor.py`) runs on the sample's crop and its `image_tokens`, with the object template's keypoints, are
the condition. Parameter-only samples (no picture: many more of them, since posing is cheap and rendering is not)
make up `--param_only_fraction` of every batch; with `--param_only_condition object` (default) they are conditioned
on the object keypoints alone, the condition the pipeline uses when it is given `initial_params` without a picture;
with `none` their condition is dropped, so they train only the unconditional branch. With `--body_keypoints` and
`--param_only_keypoints` they also get simulated 2D body detections, made in a crop of their own scene camera around
the projected body and object (`crop_intrinsics_around`): the prior then sees far more keypoint-conditioned samples
than rendering alone can give it, and can learn to need what the keypoints say. Condition dropout
(`--condition_dropout_prob`) applies to every sample on top, which trains the unconditional branch in both cases.

Output (`--output_dir`): a pipeline folder written by `ScoreHOIPipeline.save_pretrained` (denoiser, scheduler, body
model, and the regressor and contact estimator of `--regressor_path`, with its betas statistics) plus `README.md`
(model card) and `training_args.json`. Load it with `ScoreHOIPipeline.from_pretrained(output_dir)`.

Run: `accelerate launch training/train_denoiser.py --regressor_path runs/regressor --output_dir runs/pipeline`
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from checkpoint_state import CheckpointState
from diffusers.training_utils import EMAModel
from simulated_keypoints import (
    STREAM_PARAMETER_KEYPOINTS,
    SimulatedKeypoints,
    add_keypoint_arguments,
    parameter_crop_intrinsics,
    parameter_groups,
    with_keypoint_input,
)
from tqdm.auto import tqdm
from training_setup import (
    BETAS_STATISTICS_FILE,
    STREAM_NOISE,
    STREAM_PARAMETERS,
    TRAINING_ARGS_FILE,
    ObjectKeypoints,
    RenderedBatches,
    StepLog,
    add_training_arguments,
    build_table,
    check_estimator_body,
    check_training_arguments,
    create_accelerator,
    create_lr_scheduler,
    hub_repository,
    json_object,
    load_body_model,
    load_training_dataset,
    micro_batch_loader,
    process_slots,
    push_folder,
    record_launch,
    resolve_max_train_steps,
    resume_checkpoint,
    save_checkpoint,
    save_training_args,
    slot_indices,
    step_generator,
    synthetic_objects_suffix,
    warm_start_folder,
)

from scorehoi_diffusers.data.schema import PARAM_FIELDS, params_to_fields, sample_to_params
from scorehoi_diffusers.models.contact_estimator import ScoreHOIContactEstimator
from scorehoi_diffusers.models.denoiser import ConditionCache, ScoreHOIDenoiser
from scorehoi_diffusers.models.regressor import ScoreHOIRegressor
from scorehoi_diffusers.params import OBJECT_SLICE, HOIParamCodec
from scorehoi_diffusers.pipelines.model_card import write_model_card
from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline
from scorehoi_diffusers.schedulers.scheduling_guided_ddim import GuidedDDIMScheduler


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_arguments(parser, learning_rate=2e-4, batch_size=64)
    model = parser.add_argument_group("model")
    model.add_argument("--regressor_path", type=str, default=None,
                       help="output folder of train_regressor.py (regressor/, contact_estimator/, betas statistics).")
    model.add_argument("--denoiser_config", type=json_object, default={},
                       help="ScoreHOIDenoiser arguments as JSON (or a JSON file); default sizes otherwise.")
    objective = parser.add_argument_group("objective")
    objective.add_argument("--condition_dropout_prob", type=float, default=0.1)
    objective.add_argument("--max_train_timestep", type=int, default=50,
                           help="upper end (inclusive) of the oversampled timesteps; refinement's t_start.")
    objective.add_argument("--small_timestep_fraction", type=float, default=0.5,
                           help="share of samples with t <= --max_train_timestep; the rest cover [0, T).")
    objective.add_argument("--param_only_fraction", type=float, default=0.5,
                           help="share of each batch that is parameter-only samples (no picture).")
    objective.add_argument("--param_only_condition", choices=("object", "none"), default="object",
                           help="condition of parameter-only samples: the object keypoints, or none.")
    objective.add_argument("--param_only_keypoints", action="store_true",
                           help="with --body_keypoints: parameter-only samples get simulated body detections too, in "
                           "a crop of their scene camera around the projected body and object (else they have none).")
    objective.add_argument("--num_param_samples", type=int, default=20000,
                           help="synthetic: size of the parameter-only table (posed once, cached in OUTPUT_DIR/data).")
    objective.add_argument("--regressor_start_prob", type=float, default=0.0,
                           help="share of rendered samples noised from the frozen regressor's own estimate instead of "
                           "the truth, at a timestep in the upper half of [0, --max_train_timestep], with the noise "
                           "target that leads back to the truth: the prior learns to correct the regressor where "
                           "refinement inverts to (0: plain denoising of the truth).")
    objective.add_argument("--regressor_start_parts", choices=("all", "body"), default="all",
                           help="which entries of those samples start from the regressor's estimate: all, or the "
                           "body's only (the object's rotation and translation noised from the truth).")
    add_keypoint_arguments(parser)
    args = parser.parse_args(argv)
    for name in ("condition_dropout_prob", "small_timestep_fraction", "param_only_fraction", "regressor_start_prob"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            parser.error(f"--{name} must lie in [0, 1].")
    if args.max_train_timestep < 0 or args.num_param_samples < 1:
        parser.error("--max_train_timestep must be >= 0 and --num_param_samples >= 1.")
    if args.param_only_keypoints and not (args.body_keypoints and args.param_only_condition == "object"):
        parser.error("--param_only_keypoints needs --body_keypoints and --param_only_condition object.")
    return args


def sample_timesteps(batch_size: int, num_train_timesteps: int, max_small: int, small_fraction: float,
                     generator: torch.Generator) -> torch.Tensor:
    """`(B,)` timesteps: with probability `small_fraction` uniform in `[0, max_small]`, else uniform in `[0, T)`."""
    device = generator.device
    small = torch.rand(batch_size, generator=generator, device=device) < small_fraction
    high = min(max_small, num_train_timesteps - 1) + 1
    low = torch.randint(0, high, (batch_size,), generator=generator, device=device)
    full = torch.randint(0, num_train_timesteps, (batch_size,), generator=generator, device=device)
    return torch.where(small, low, full)


def regressor_start_timesteps(rows: torch.Tensor, timesteps: torch.Tensor, max_small: int,
                              generator: torch.Generator) -> torch.Tensor:
    """`timesteps (B,)` with the rows where `rows (B,)` is true redrawn uniformly in `[ceil(max_small / 2),
    max_small]`: the noise levels refinement inverts to (t_start), away from t = 0, where the target below has
    `1 - alphas_cumprod` near zero in its denominator."""
    low = (max_small + 1) // 2
    redrawn = torch.randint(low, max_small + 1, timesteps.shape, generator=generator, device=timesteps.device)
    return torch.where(rows, redrawn, timesteps)


def regressor_start(estimate: torch.Tensor, truth: torch.Tensor, parts: str) -> torch.Tensor:
    """The start `(B, 331)` of a sample noised from the regressor: its estimate `(B, 331)`, or with `parts="body"`
    the estimate's body entries and the truth's object rotation and translation."""
    if parts == "all":
        return estimate
    start = estimate.clone()
    start[:, OBJECT_SLICE] = truth[:, OBJECT_SLICE]
    return start


def noise_target_from_start(alphas_cumprod: torch.Tensor, start: torch.Tensor, x0: torch.Tensor,
                            noise: torch.Tensor, timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(noisy, target)`, each `(B, 331)`: `start (B, 331)` noised with `noise` at `timesteps (B,)`, and the ε that
    the denoiser must predict there so that its x0 estimate is `x0 (B, 331)`,
    `(noisy - sqrt(a_t) x0) / sqrt(1 - a_t)`. With `start = x0` the target is `noise` (plain ε-prediction); with
    `start` the regressor's estimate it is the noise plus the scaled correction from the estimate to the truth."""
    alpha = alphas_cumprod.to(device=x0.device, dtype=x0.dtype)[timesteps].unsqueeze(-1)
    noisy = alpha.sqrt() * start + (1 - alpha).sqrt() * noise
    return noisy, (noisy - alpha.sqrt() * x0) / (1 - alpha).sqrt()


def join_conditions(caches: Sequence[ConditionCache]) -> ConditionCache:
    """Concatenate condition caches along the batch; every cache here has an attention mask (drop masks are given)."""
    if len(caches) == 1:
        return caches[0]
    return ConditionCache(
        keys=torch.cat([c.keys for c in caches], dim=1),
        values=torch.cat([c.values for c in caches], dim=1),
        attention_mask=torch.cat([c.attention_mask for c in caches], dim=0),
    )


class ConditionedDenoiser(torch.nn.Module):
    """The denoiser with its condition encoding in one forward, so DDP sees every weight the loss uses.

    A batch is made of row groups with different condition inputs (rendered samples: image tokens and object
    keypoints; parameter-only samples: keypoints only); each group is encoded on its own and the caches are joined.
    """

    def __init__(self, denoiser: ScoreHOIDenoiser):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor,
                groups: list[tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor | None]]
                ) -> torch.Tensor:
        """`sample (B, 331)`, `timestep (B,)`; `groups`: `(image_tokens or None, keypoints, drop_mask, body_keypoints
        or None)`, in row order."""
        caches = [self.denoiser.encode_condition(tokens, keypoints, drop, body_keypoints=body_keypoints)
                  for tokens, keypoints, drop, body_keypoints in groups]
        return self.denoiser(sample, timestep, condition=join_conditions(caches)).sample


class ParameterBatches:
    """Micro-batch `m`'s parameter-only samples: rows of a parameter table (no pictures) as `params` (`HOIParams`),
    their `x0`, object names and, where the table has them, the scene cameras' `intrinsics (n, 3, 3)`."""

    def __init__(self, table: datasets.Dataset, codec: HOIParamCodec, per_process: int, process_index: int,
                 num_processes: int, seed: int):
        self.table, self.codec, self.per_process = table, codec, per_process
        self.process_index, self.num_processes, self.seed = process_index, num_processes, seed

    def __call__(self, micro_step: int) -> dict:
        slots = process_slots(micro_step, self.process_index, self.num_processes, self.per_process)
        rows = self.table[slot_indices(len(self.table), self.seed, STREAM_PARAMETERS, slots).tolist()]
        params = sample_to_params(rows)
        batch = {"params": params, "x0": self.codec.encode(params), "object_name": list(rows["object_name"])}
        if "intrinsics" in rows:
            batch["intrinsics"] = torch.as_tensor(np.asarray(rows["intrinsics"], dtype=np.float32))
        return batch


class TrainingBatches:
    """Micro-batch `m`: its rendered part (`RenderedBatches`) and its parameter-only part, either may be absent."""

    def __init__(self, rendered: RenderedBatches | None, parameters: ParameterBatches | None):
        self.rendered, self.parameters = rendered, parameters

    def __call__(self, micro_step: int) -> dict:
        return {"rendered": self.rendered(micro_step) if self.rendered else None,
                "parameters": self.parameters(micro_step) if self.parameters else None}


def load_parameter_table(args: argparse.Namespace, accelerator, body, dataset: datasets.Dataset | None):
    """The parameter-only samples: for BEHAVE/InterCap the training table's own parameters; for synthetic data
    `--num_param_samples` scenes posed (not rendered) by `sample_params`, each process posing a share, cached in
    `OUTPUT_DIR/data`. With `--param_only_keypoints` the table also holds each scene camera's `intrinsics`."""
    columns = [*PARAM_FIELDS, "object_name"] + (["intrinsics"] if args.param_only_keypoints else [])
    if args.dataset != "synthetic":
        return dataset.select_columns(columns)
    from scorehoi_diffusers.data.synthetic import sample_scenes

    name = f"synthetic-params-n{args.num_param_samples}-seed{args.synthetic_seed}" + synthetic_objects_suffix(args)
    path = Path(args.output_dir) / "data" / (name + ("-cameras" if args.param_only_keypoints else ""))

    def pose(first: int, stop: int, scratch_dir: Path) -> datasets.Dataset:
        scenes = sample_scenes(stop - first, seed=args.synthetic_seed, body=body, objects=args.synthetic_objects,
                               start=first)
        fields = {**params_to_fields(scenes.params), "object_name": scenes.object_names}
        if args.param_only_keypoints:  # at the size the renders are made, so the crops match theirs
            fields["intrinsics"] = scenes.intrinsics_for(args.synthetic_image_size).numpy()
        return datasets.Dataset.from_dict(fields)

    build_table(accelerator, path, args.num_param_samples, pose)
    return datasets.load_from_disk(str(path)).select_columns(columns)


def load_regressor(path: str | None, body, device):
    """The frozen regressor, contact estimator and betas statistics of a `train_regressor.py` output folder."""
    if path is None:
        return None, None, None
    folder = Path(path)
    needed = [folder / "regressor", folder / "contact_estimator", folder / BETAS_STATISTICS_FILE]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"--regressor_path {path!r} lacks {missing}; pass the --output_dir of train_regressor.py."
        )
    regressor = ScoreHOIRegressor.from_pretrained(folder / "regressor").to(device).eval().requires_grad_(False)
    estimator = ScoreHOIContactEstimator.from_pretrained(folder / "contact_estimator").eval().requires_grad_(False)
    check_estimator_body(estimator, body, f"--regressor_path {path!r}")
    statistics = json.loads((folder / BETAS_STATISTICS_FILE).read_text())
    return regressor, estimator, statistics


def main(args: argparse.Namespace) -> None:
    check_training_arguments(args)
    init_denoiser = warm_start_folder(args, "denoiser")  # checked before any data is built
    num_parameters = round(args.train_batch_size * args.param_only_fraction)
    num_rendered = args.train_batch_size - num_parameters
    # Without rendered samples the image projection of the condition gets no gradient.
    accelerator = create_accelerator(args, find_unused_parameters=num_rendered == 0)
    repo_id = hub_repository(accelerator, args)
    set_seed(args.seed)  # model initialisation; the data stream has its own seeds (training_setup)
    device = accelerator.device

    body = load_body_model(args).to(device)
    regressor, estimator, statistics = load_regressor(args.regressor_path, body, device)
    if regressor is not None and regressor.config.body_keypoints != args.body_keypoints:
        reads = "reads" if regressor.config.body_keypoints else "lacks"
        raise ValueError(f"The regressor of --regressor_path {reads} keypoint input: pass --body_keypoints exactly "
                         "when it reads them, so both models see them.")
    if num_rendered and regressor is None:
        raise ValueError("Rendered samples are conditioned on the frozen regressor's image tokens: train it first "
                         "(training/train_regressor.py) and pass --regressor_path, or pass --param_only_fraction 1 "
                         "to train a prior without image condition.")
    dataset = load_training_dataset(args, accelerator, body) if num_rendered or args.dataset != "synthetic" else None
    table = load_parameter_table(args, accelerator, body, dataset) if num_parameters else None
    # The x0 codec: the regressor's betas range (they must agree), else the standard -3..3 for a prior alone.
    codec = HOIParamCodec(**statistics) if statistics is not None else HOIParamCodec.default()

    if init_denoiser is not None:
        if args.denoiser_config:
            raise ValueError("--init_from brings its own denoiser config; leave out --denoiser_config.")
        denoiser = ScoreHOIDenoiser.from_pretrained(init_denoiser,
                                                    condition_dropout_prob=args.condition_dropout_prob)
        denoiser = with_keypoint_input(denoiser, args)
        if regressor is not None and denoiser.config.image_feature_dim != regressor.config.image_feature_dim:
            raise ValueError(f"The denoiser of --init_from {args.init_from!r} reads "
                             f"{denoiser.config.image_feature_dim}"
                             f"-dim image tokens, the regressor makes {regressor.config.image_feature_dim}.")
    else:
        config = {**args.denoiser_config, "condition_dropout_prob": args.condition_dropout_prob,
                  "body_keypoints": args.body_keypoints}
        if regressor is not None:
            config["image_feature_dim"] = regressor.config.image_feature_dim
        denoiser = ScoreHOIDenoiser(**config)
    model = ConditionedDenoiser(denoiser).train()
    noise_scheduler = GuidedDDIMScheduler()

    optimizer = torch.optim.AdamW(parameter_groups([model.denoiser], args), lr=args.learning_rate,
                                  betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay, eps=args.adam_epsilon)
    items, per_batch = (len(dataset), num_rendered) if num_rendered else (len(table), num_parameters)
    resolve_max_train_steps(args, items, per_batch * accelerator.num_processes * args.gradient_accumulation_steps)
    lr_scheduler = create_lr_scheduler(args, optimizer, accelerator.num_processes)
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    denoiser = accelerator.unwrap_model(model).denoiser

    ema = None
    if args.use_ema:
        ema = EMAModel(denoiser.parameters(), decay=args.ema_max_decay, use_ema_warmup=True,
                       inv_gamma=args.ema_inv_gamma, power=args.ema_power,
                       model_cls=ScoreHOIDenoiser, model_config=denoiser.config)
    checkpointed = CheckpointState([model], optimizer, lr_scheduler, {"denoiser": ema} if ema is not None else {})

    global_step, resumed_from = resume_checkpoint(accelerator, args, checkpointed)
    if ema is not None:
        ema.to(device)
    record_launch(accelerator, args, "train_denoiser", global_step, resumed_from)
    if accelerator.is_main_process:
        accelerator.init_trackers("train_denoiser")

    rank, world = accelerator.process_index, accelerator.num_processes
    rendered = None
    if num_rendered:
        rendered = RenderedBatches(dataset, num_rendered, rank, world, args.seed, args.resolution,
                                   augment=args.augmentation == "train", detector_mask_prob=args.detector_mask_prob)
    parameters = ParameterBatches(table, codec, num_parameters, rank, world, args.seed) if num_parameters else None
    accumulation = args.gradient_accumulation_steps
    loader = micro_batch_loader(TrainingBatches(rendered, parameters), global_step * accumulation,
                                (args.max_train_steps - global_step) * accumulation, args.dataloader_num_workers)
    keypoints_of = ObjectKeypoints(args.object_root, device, args.dataset)
    simulated = SimulatedKeypoints(body, args.seed, rank, args.keypoint_dropout_prob)
    simulated_parameters = SimulatedKeypoints(body, args.seed, rank, args.keypoint_dropout_prob,
                                              stream=STREAM_PARAMETER_KEYPOINTS)
    log = StepLog(accelerator, args.output_dir, global_step)
    num_train_timesteps = noise_scheduler.config.num_train_timesteps

    accelerator.print(
        f"***** Training the denoiser *****\n  rendered samples = {len(dataset) if dataset is not None else 0}, "
        f"parameter-only samples = {len(table) if table is not None else 0}, processes = {world}, batch per process = "
        f"{num_rendered} rendered + {num_parameters} parameter-only, accumulation = {accumulation}, "
        f"optimizer steps = {args.max_train_steps}, starting at step {global_step}"
    )
    progress = tqdm(total=args.max_train_steps, initial=global_step, desc="Steps",
                    disable=not accelerator.is_local_main_process)
    running_loss = 0.0
    for micro_step, batch in enumerate(loader, start=global_step * accumulation):
        generator = step_generator(args.seed, micro_step, rank, STREAM_NOISE, device)
        x0, groups, start = [], [], None
        if batch["rendered"] is not None:
            part = batch["rendered"]
            keypoints = keypoints_of(part["object_name"])
            truth = sample_to_params(part).to(device)
            x0.append(codec.encode(truth))
            pixel_values, intrinsics = part["pixel_values"].to(device), part["intrinsics"].to(device)
            body_keypoints = None
            if args.body_keypoints:
                body_keypoints = simulated(truth, intrinsics, pixel_values.shape[-2:], micro_step)
            with torch.no_grad(), accelerator.autocast():
                output = regressor(pixel_values, keypoints, intrinsics, body_keypoints=body_keypoints)
            tokens = output.image_tokens
            if args.regressor_start_prob:
                estimate = codec.encode(codec.decode(output.x0.float()))
                start = regressor_start(estimate, x0[-1], args.regressor_start_parts)  # (num_rendered, 331)
            drop = torch.rand(num_rendered, generator=generator, device=device) < args.condition_dropout_prob
            groups.append((tokens.float(), keypoints, drop, body_keypoints))
        if batch["parameters"] is not None:
            part = batch["parameters"]
            x0.append(part["x0"].to(device))
            drop = torch.rand(num_parameters, generator=generator, device=device) < args.condition_dropout_prob
            if args.param_only_condition == "none":
                drop = torch.ones_like(drop)
            object_keypoints = keypoints_of(part["object_name"])
            body_keypoints = None
            if args.param_only_keypoints:
                truth = part["params"].to(device)
                with torch.no_grad():
                    posed = body(truth, frame="camera")  # one body pass for both the crop and the detections
                crop = parameter_crop_intrinsics(posed.vertices, truth, object_keypoints,
                                                 part["intrinsics"].to(device), args.resolution)
                body_keypoints = simulated_parameters(truth, crop, (args.resolution, args.resolution), micro_step,
                                                      posed=posed)
            groups.append((None, object_keypoints, drop, body_keypoints))
        x0 = torch.cat(x0)
        noise = torch.randn(x0.shape, generator=generator, device=device)
        timesteps = sample_timesteps(x0.shape[0], num_train_timesteps, args.max_train_timestep,
                                     args.small_timestep_fraction, generator)
        target = noise
        if start is not None:  # --regressor_start_prob: some rendered rows start from the regressor's estimate
            rows = torch.zeros(x0.shape[0], dtype=torch.bool, device=device)
            drawn = torch.rand(num_rendered, generator=generator, device=device)
            rows[:num_rendered] = drawn < args.regressor_start_prob
            timesteps = regressor_start_timesteps(rows, timesteps, args.max_train_timestep, generator)
            starts = x0.clone()
            starts[:num_rendered] = torch.where(rows[:num_rendered, None], start, x0[:num_rendered])
            noisy, target = noise_target_from_start(noise_scheduler.alphas_cumprod, starts, x0, noise, timesteps)
        else:
            noisy = noise_scheduler.add_noise(x0, noise, timesteps)

        with accelerator.accumulate(model):
            prediction = model(noisy, timesteps, groups)
            loss = F.mse_loss(prediction.float(), target)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)

        running_loss += accelerator.reduce(loss.detach(), "mean").item() / accumulation
        if accelerator.sync_gradients:
            if ema is not None:
                ema.step(denoiser.parameters())
            global_step += 1
            progress.update(1)
            values = {"loss": running_loss, "lr": lr_scheduler.get_last_lr()[0]}
            progress.set_postfix(loss=f"{running_loss:.4f}", lr=f"{values['lr']:.2e}")
            log.write(global_step, values)
            running_loss = 0.0
            if global_step % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, args, global_step, checkpointed)
    progress.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        output_dir = Path(args.output_dir)
        if ema is not None:
            ema.store(denoiser.parameters())
            ema.copy_to(denoiser.parameters())
        pipeline = ScoreHOIPipeline(denoiser=denoiser, scheduler=noise_scheduler, body_model=body, regressor=regressor,
                                    contact_estimator=estimator, betas_min=codec.betas_min.tolist(),
                                    betas_max=codec.betas_max.tolist(), crop_size=args.resolution)
        pipeline.save_pretrained(output_dir)
        if ema is not None:
            ema.restore(denoiser.parameters())
        regressor_args = None
        if args.regressor_path is not None and (Path(args.regressor_path) / TRAINING_ARGS_FILE).is_file():
            regressor_args = json.loads((Path(args.regressor_path) / TRAINING_ARGS_FILE).read_text())
        save_training_args(args, output_dir, "train_denoiser",
                           extra={"num_processes": world, "regressor_training_args": regressor_args})
        write_model_card(output_dir, model_id=repo_id)
        accelerator.print(f"Saved the pipeline to {output_dir}")
        if repo_id is not None:
            push_folder(repo_id, args.output_dir, args.hub_token)
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
