"""Train the ScoreHOI regressor and its contact estimator (run this before `train_denoiser.py`).

The regressor maps a 5-channel crop (RGB, human mask, object mask) and the object's template keypoints to the
initial estimate `x0 (B, 331)` and the camera; the contact estimator reads human, object and floor contacts off a
reconstruction and the regressor's feature map. Both train together, with these losses (weights are flags):

- parameters: L2 between predicted and true rotation matrices (after Gram-Schmidt decoding of the 6D values) plus
  the object translation and the normalised betas (`--param_loss rotmat`), or plain L2 on `x0` (`x0`);
- vertices: L1 on the downsampled body vertices (`BodyModel.skin_subset`) and the posed object keypoints, both
  pelvis-relative, in metres;
- reprojection: L1 between the projections of those points with the predicted and the true camera, through the
  crop's intrinsics, in units of the crop size;
- camera: L2 on the crop-relative camera `(u, v, log_extent)` (`camera_translation_to_crop` of the truth);
- contacts: BCE-with-logits of the estimator's human, object and floor logits. The estimator sees, per sample,
  either the true geometry jittered by `--contact_geometry_noise` metres or the regressor's own prediction
  (probability `--contact_predicted_geometry_prob`), detached, as it will see refined reconstructions at inference;
  its gradient reaches the regressor's backbone through the sampled image features.

Output (`--output_dir`): `regressor/` and `contact_estimator/` (`save_pretrained`, EMA weights with `--use_ema`),
`betas_statistics.json` (the x0 codec's range, which the denoiser and pipeline must share) and `training_args.json`.
Pass the folder to `train_denoiser.py --regressor_path`.

Run: `accelerate launch training/train_regressor.py --output_dir runs/regressor [--use_ema] ...`
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from checkpoint_state import CheckpointState
from diffusers.training_utils import EMAModel
from simulated_keypoints import SimulatedKeypoints, add_keypoint_arguments, parameter_groups, with_keypoint_input
from tqdm.auto import tqdm
from training_setup import (
    BETAS_STATISTICS_FILE,
    STREAM_NOISE,
    ObjectKeypoints,
    RenderedBatches,
    StepLog,
    add_training_arguments,
    betas_statistics,
    check_estimator_body,
    check_training_arguments,
    create_accelerator,
    create_lr_scheduler,
    hub_repository,
    json_object,
    load_body_model,
    load_training_dataset,
    micro_batch_loader,
    push_folder,
    record_launch,
    resolve_max_train_steps,
    resume_checkpoint,
    save_checkpoint,
    save_training_args,
    step_generator,
    warm_start_betas_statistics,
    warm_start_folder,
)

from scorehoi_diffusers.camera import project_points
from scorehoi_diffusers.data.schema import sample_to_params
from scorehoi_diffusers.models.contact_estimator import ScoreHOIContactEstimator
from scorehoi_diffusers.models.regressor import ScoreHOIRegressor, camera_translation_to_crop
from scorehoi_diffusers.objects import ObjectTemplate
from scorehoi_diffusers.params import BETAS_SLICE, OBJECT_TRANSLATION_SLICE, HOIParamCodec, HOIParams

LOSS_NAMES = ("param", "vertex", "reprojection", "camera", "contact")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_training_arguments(parser, learning_rate=3e-4, batch_size=32)
    model = parser.add_argument_group("models")
    model.add_argument("--regressor_config", type=json_object, default={},
                       help="ScoreHOIRegressor arguments as JSON (or a JSON file); default sizes otherwise.")
    model.add_argument("--contact_estimator_config", type=json_object, default={},
                       help="ScoreHOIContactEstimator arguments as JSON (num_body_points and feature_dim are set "
                       "from the body model and the regressor).")
    model.add_argument("--betas_statistics", choices=("data", "default"), default="data",
                       help="x0 betas range: the training data's min/max (as the paper's release) or -3..3.")
    model.add_argument("--freeze_backbone", action="store_true",
                       help="keep the image backbone's weights and BatchNorm statistics as --init_from has them and "
                       "train the rest (with --body_keypoints: teach a trained regressor the keypoints without "
                       "paying for the backbone's backward pass).")
    losses = parser.add_argument_group("losses")
    losses.add_argument("--param_loss", choices=("rotmat", "x0"), default="rotmat")
    losses.add_argument("--param_loss_weight", type=float, default=1.0)
    losses.add_argument("--vertex_loss_weight", type=float, default=5.0)
    losses.add_argument("--reprojection_loss_weight", type=float, default=5.0)
    losses.add_argument("--camera_loss_weight", type=float, default=1.0)
    losses.add_argument("--contact_loss_weight", type=float, default=1.0)
    losses.add_argument("--contact_geometry_noise", type=float, default=0.02,
                        help="metres of Gaussian jitter on the true geometry the contact estimator sees.")
    losses.add_argument("--contact_predicted_geometry_prob", type=float, default=0.5,
                        help="probability that a sample's contact estimate uses the predicted geometry instead.")
    add_keypoint_arguments(parser)
    args = parser.parse_args(argv)
    if not 0.0 <= args.contact_predicted_geometry_prob <= 1.0:
        parser.error("--contact_predicted_geometry_prob must lie in [0, 1].")
    if args.freeze_backbone and args.init_from is None:
        parser.error("--freeze_backbone keeps a trained backbone: give --init_from.")
    return args


def posed_points(body, params: HOIParams, keypoints: torch.Tensor):
    """Downsampled body vertices `(B, S, 3)` and object keypoints `(B, K, 3)`, pelvis-relative, camera axes."""
    body_points, _ = body.skin_subset(params)
    object_points = ObjectTemplate.pose(keypoints, params.object_rotation, params.object_translation)
    return body_points, object_points


def rotations(params: HOIParams) -> torch.Tensor:
    """`(B, 53, 3, 3)`: the 52 joint rotations and the object rotation."""
    return torch.cat([params.global_orient[:, None], params.body_pose, params.left_hand_pose,
                      params.right_hand_pose, params.object_rotation[:, None]], dim=1)


def compute_losses(args, regressor, estimator, body, codec: HOIParamCodec, camera_extent_prior: float,
                   batch: dict, truth: HOIParams, keypoints: torch.Tensor, generator: torch.Generator,
                   body_keypoints: torch.Tensor | None = None) -> dict:
    """The five loss terms of one micro-batch (see the module docstring), each a scalar.

    `batch` comes from `RenderedBatches` (on the device), `truth` is its parameters, `keypoints (B, K, 3)` the
    object templates' keypoints, `generator` the micro-step's noise stream, `body_keypoints (B, 33, 3)` the
    simulated detections (with `--body_keypoints`).
    """
    pixel_values, intrinsics = batch["pixel_values"], batch["intrinsics"]
    size = pixel_values.shape[-2:]
    output = regressor(pixel_values, keypoints, intrinsics, body_keypoints=body_keypoints)
    predicted = codec.decode(output.x0, output.camera_translation)

    if args.param_loss == "rotmat":
        true_x0 = codec.encode(truth)
        param = (F.mse_loss(rotations(predicted), rotations(truth))
                 + F.mse_loss(output.x0[:, OBJECT_TRANSLATION_SLICE], true_x0[:, OBJECT_TRANSLATION_SLICE])
                 + F.mse_loss(output.x0[:, BETAS_SLICE], true_x0[:, BETAS_SLICE]))
    else:
        param = F.mse_loss(output.x0, codec.encode(truth))

    body_points, object_points = posed_points(body, predicted, keypoints)
    with torch.no_grad():
        true_body, true_object = posed_points(body, truth, keypoints)
    vertex = F.l1_loss(body_points, true_body) + F.l1_loss(object_points, true_object)

    points = torch.cat([body_points, object_points], dim=1)
    true_points = torch.cat([true_body, true_object], dim=1)
    scale = pixel_values.new_tensor([size[1], size[0]])
    reprojection = F.l1_loss(
        project_points(points + output.camera_translation[:, None], intrinsics) / scale,
        project_points(true_points + truth.camera_translation[:, None], intrinsics) / scale,
    )

    camera_target = camera_translation_to_crop(truth.camera_translation, intrinsics, tuple(size), camera_extent_prior)
    camera = F.mse_loss(output.camera_crop, camera_target)

    batch_size = pixel_values.shape[0]
    device = pixel_values.device
    use_predicted = torch.rand(batch_size, generator=generator, device=device) < args.contact_predicted_geometry_prob
    jitter = args.contact_geometry_noise * torch.randn(true_points.shape, generator=generator, device=device)
    seen_points = torch.where(use_predicted[:, None, None], points.detach(), true_points + jitter)
    seen_camera = torch.where(use_predicted[:, None], output.camera_translation.detach(), truth.camera_translation)
    num_body = true_body.shape[1]
    contacts = estimator(seen_points[:, :num_body], seen_points[:, num_body:], seen_camera, intrinsics,
                         output.feature_map, tuple(size))
    contact = contact_bce(contacts, batch["human_contact"], batch["object_contact"], batch["floor_contact"])
    return {"param": param, "vertex": vertex, "reprojection": reprojection, "camera": camera, "contact": contact}


def contact_bce(output, human_contact, object_contact, floor_contact, human_weight: float = 1.0) -> torch.Tensor:
    """The contact estimator's loss: binary cross-entropy of its human ``(B, S)``, object ``(B, M)`` and floor
    ``(B,)`` logits against the labels, summed, the body-point term weighted by ``human_weight``."""
    return (human_weight * F.binary_cross_entropy_with_logits(output.human_logits, human_contact)
            + F.binary_cross_entropy_with_logits(output.object_logits, object_contact)
            + F.binary_cross_entropy_with_logits(output.floor_logits, floor_contact))


def main(args: argparse.Namespace) -> None:
    check_training_arguments(args)
    init_folders = [warm_start_folder(args, name) for name in ("regressor", "contact_estimator")]  # before any data
    # `image_out` (the denoiser's image tokens) gets no gradient from these losses.
    accelerator = create_accelerator(args, find_unused_parameters=True)
    repo_id = hub_repository(accelerator, args)
    set_seed(args.seed)  # model initialisation; the data stream has its own seeds (training_setup)
    device = accelerator.device

    body = load_body_model(args).to(device)
    dataset = load_training_dataset(args, accelerator, body)
    statistics = warm_start_betas_statistics(args) or betas_statistics(dataset, args.betas_statistics)
    codec = HOIParamCodec(**statistics)

    if args.init_from is not None:
        if args.regressor_config or args.contact_estimator_config:
            raise ValueError("--init_from brings its own model configs; leave out --regressor_config and "
                             "--contact_estimator_config.")
        regressor = with_keypoint_input(ScoreHOIRegressor.from_pretrained(init_folders[0]), args)
        estimator = ScoreHOIContactEstimator.from_pretrained(init_folders[1])
        check_estimator_body(estimator, body, f"--init_from {args.init_from!r}")
    else:
        regressor = ScoreHOIRegressor(**{**args.regressor_config, "body_keypoints": args.body_keypoints})
        fixed = {"num_body_points": body.num_downsampled, "feature_dim": regressor.config.hidden_sizes[-1]}
        clashes = {k: v for k, v in args.contact_estimator_config.items() if k in fixed and v != fixed[k]}
        if clashes:
            raise ValueError(
                f"--contact_estimator_config sets {clashes}, but the body model and regressor need {fixed}.")
        estimator = ScoreHOIContactEstimator(**{**args.contact_estimator_config, **fixed})
    camera_extent_prior = regressor.config.camera_extent_prior
    regressor.train()
    estimator.train()
    if args.freeze_backbone:
        # Frozen weights and BatchNorm statistics: eval mode keeps the running statistics as they were loaded, and
        # the backbone's forward builds no graph, so a step skips its backward pass.
        regressor.backbone.requires_grad_(False)
        regressor.backbone.eval()

    optimizer = torch.optim.AdamW(
        parameter_groups([regressor, estimator], args),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
    )
    per_step = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    resolve_max_train_steps(args, len(dataset), per_step)
    lr_scheduler = create_lr_scheduler(args, optimizer, accelerator.num_processes)
    regressor, estimator, optimizer, lr_scheduler = accelerator.prepare(regressor, estimator, optimizer, lr_scheduler)

    ema_models = []
    if args.use_ema:
        for model, model_cls in ((regressor, ScoreHOIRegressor), (estimator, ScoreHOIContactEstimator)):
            unwrapped = accelerator.unwrap_model(model)
            ema = EMAModel(unwrapped.parameters(), decay=args.ema_max_decay, use_ema_warmup=True,
                           inv_gamma=args.ema_inv_gamma, power=args.ema_power,
                           model_cls=model_cls, model_config=unwrapped.config)
            ema_models.append(ema)
    checkpointed = CheckpointState([regressor, estimator], optimizer, lr_scheduler,
                                   dict(zip(("regressor", "contact_estimator"), ema_models)))

    global_step, resumed_from = resume_checkpoint(accelerator, args, checkpointed)
    for ema in ema_models:
        ema.to(device)
    record_launch(accelerator, args, "train_regressor", global_step, resumed_from)
    if accelerator.is_main_process:
        accelerator.init_trackers("train_regressor")

    build = RenderedBatches(dataset, args.train_batch_size, accelerator.process_index, accelerator.num_processes,
                            args.seed, args.resolution, augment=args.augmentation == "train",
                            detector_mask_prob=args.detector_mask_prob)
    accumulation = args.gradient_accumulation_steps
    loader = micro_batch_loader(build, global_step * accumulation, (args.max_train_steps - global_step) * accumulation,
                                args.dataloader_num_workers)
    keypoints_of = ObjectKeypoints(args.object_root, device, args.dataset)
    simulated = SimulatedKeypoints(body, args.seed, accelerator.process_index, args.keypoint_dropout_prob)
    weights = {name: getattr(args, f"{name}_loss_weight") for name in LOSS_NAMES}
    log = StepLog(accelerator, args.output_dir, global_step)

    accelerator.print(
        f"***** Training the regressor *****\n  samples = {len(dataset)}, processes = {accelerator.num_processes}, "
        f"batch per process = {args.train_batch_size}, accumulation = {accumulation}, "
        f"optimizer steps = {args.max_train_steps}, starting at step {global_step}"
    )
    progress = tqdm(total=args.max_train_steps, initial=global_step, desc="Steps",
                    disable=not accelerator.is_local_main_process)
    running = {name: 0.0 for name in ("loss", *LOSS_NAMES)}
    for micro_step, batch in enumerate(loader, start=global_step * accumulation):
        truth = sample_to_params(batch).to(device)
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        keypoints = keypoints_of(batch["object_name"])
        generator = step_generator(args.seed, micro_step, accelerator.process_index, STREAM_NOISE, device)
        body_keypoints = None
        if args.body_keypoints:
            body_keypoints = simulated(truth, batch["intrinsics"], batch["pixel_values"].shape[-2:], micro_step)
        with accelerator.accumulate(regressor, estimator):
            terms = compute_losses(args, regressor, estimator, body, codec, camera_extent_prior, batch, truth,
                                   keypoints, generator, body_keypoints)
            loss = sum(weights[name] * terms[name] for name in LOSS_NAMES)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_([*regressor.parameters(), *estimator.parameters()], args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)

        # One collective for all logged values: the mean over processes of this micro-step's loss and terms.
        logged = torch.stack([loss, *(terms[name] for name in LOSS_NAMES)]).detach()
        reduced = accelerator.reduce(logged, "mean") / accumulation
        for name, value in zip(running, reduced.tolist()):
            running[name] += value
        if accelerator.sync_gradients:
            for ema, model in zip(ema_models, (regressor, estimator)):
                ema.step(accelerator.unwrap_model(model).parameters())
            global_step += 1
            progress.update(1)
            values = {**running, "lr": lr_scheduler.get_last_lr()[0]}
            progress.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}")
            log.write(global_step, values)
            running = dict.fromkeys(running, 0.0)
            if global_step % args.checkpointing_steps == 0:
                save_checkpoint(accelerator, args, global_step, checkpointed)
    progress.close()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        output_dir = Path(args.output_dir)
        # EMA weights are saved; BatchNorm running statistics (buffers, not averaged) are the live model's.
        for ema, model in zip(ema_models, (regressor, estimator)):
            ema.store(accelerator.unwrap_model(model).parameters())
            ema.copy_to(accelerator.unwrap_model(model).parameters())
        accelerator.unwrap_model(regressor).save_pretrained(output_dir / "regressor")
        accelerator.unwrap_model(estimator).save_pretrained(output_dir / "contact_estimator")
        for ema, model in zip(ema_models, (regressor, estimator)):
            ema.restore(accelerator.unwrap_model(model).parameters())
        (output_dir / BETAS_STATISTICS_FILE).write_text(json.dumps(statistics, indent=2) + "\n")
        save_training_args(args, output_dir, "train_regressor", extra={"num_processes": accelerator.num_processes})
        accelerator.print(f"Saved the regressor and contact estimator to {output_dir}")
        if repo_id is not None:
            push_folder(repo_id, args.output_dir, args.hub_token)
    accelerator.end_training()


if __name__ == "__main__":
    main(parse_args())
