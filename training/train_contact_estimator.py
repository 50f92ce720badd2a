"""Fine-tune a pipeline's contact estimator on the states the refinement cycles hand it (``record_contact_states.py``).

The estimator is asked, after every cycle, which points touch. Trained on true geometry (jittered) and on the
regressor's estimate only, it reads a body the contact term has pulled onto the object as touching there, and
calls its neighbours touching too; the next cycle pulls those in turn, and contact precision falls from N = 2 to
N = 10 (docs/results.md, "Release-only contact refresh"). Here each sample is a recorded state, with the scene's
*true* labels as the target, so that a point pulled close is not taken for a contact; a share ``--truth_prob``
of the samples sees the true geometry jittered by ``--contact_geometry_noise`` metres instead, the estimator's
original objective. The loss is ``train_regressor.py``'s contact term (BCE of the human, object and floor logits).

The last ``--holdout_fraction`` of the recorded scenes (by dataset row) is not trained on; the script reports the
loss there, per cycle, before and after (a check of the fit, not a choice: the budget is fixed beforehand).

Output (``--output_dir``): a copy of ``--pipeline`` with the fine-tuned ``contact_estimator/`` and
``contact_estimator_training.json`` (the arguments and the held-out losses).

Run: python training/train_contact_estimator.py --states runs/dagger/states_none.safetensors \
         runs/dagger/states_simulated.safetensors --output_dir runs/pipelineD
"""
import argparse
import json
import shutil
from pathlib import Path

import torch
from diffusers.optimization import get_scheduler
from safetensors.torch import load_file
from tqdm.auto import tqdm
from train_regressor import contact_bce

from scorehoi_diffusers.export import write_json
from scorehoi_diffusers.models.contact_estimator import ScoreHOIContactEstimator

SCENE_KEYS = ("feature_map", "intrinsics", "human_contact", "object_contact", "floor_contact", "true_body_points",
              "true_object_points", "true_camera_translation", "dataset_row")
STATE_KEYS = ("body_points", "object_points", "camera_translation", "cycle", "scene")


def load_states(paths) -> dict[str, torch.Tensor]:
    """The recorded files joined: state ``scene`` indices are shifted to the joined per-scene rows."""
    joined: dict[str, list[torch.Tensor]] = {key: [] for key in SCENE_KEYS + STATE_KEYS}
    image_size, offset = None, 0
    for path in paths:
        tensors = load_file(path)
        size = tuple(tensors["image_size"].tolist())
        if image_size not in (None, size):
            raise ValueError(f"{path} was recorded at image size {size}, the others at {image_size}.")
        image_size = size
        for key in SCENE_KEYS + STATE_KEYS:
            joined[key].append(tensors[key] + offset if key == "scene" else tensors[key])
        offset += len(tensors["dataset_row"])
    out = {key: torch.cat(values) for key, values in joined.items()}
    out["image_size"] = image_size
    return out


def contact_loss(estimator, states, scene_ids, body, objects, camera, human_weight: float = 1.0) -> torch.Tensor:
    """BCE of the estimator's logits at geometry ``body (B, S, 3)``, ``objects (B, M, 3)``, ``camera (B, 3)`` of
    scenes ``scene_ids (B,)`` against their true labels; the body-point term weighted by ``human_weight``."""
    output = estimator(body, objects, camera, states["intrinsics"][scene_ids], states["feature_map"][scene_ids],
                       states["image_size"])
    return contact_bce(output, states["human_contact"][scene_ids], states["object_contact"][scene_ids],
                       states["floor_contact"][scene_ids], human_weight)


@torch.no_grad()
def held_out_losses(estimator, states, held_out: torch.Tensor) -> dict[str, float]:
    """Mean loss on the held-out scenes' recorded states, per cycle, and on their true geometry."""
    estimator.eval()
    chosen = torch.isin(states["scene"], held_out)
    losses = {}
    for cycle in states["cycle"][chosen].unique().tolist():
        index = (chosen & (states["cycle"] == cycle)).nonzero().flatten()
        losses[f"cycle_{cycle}"] = float(contact_loss(
            estimator, states, states["scene"][index], states["body_points"][index],
            states["object_points"][index], states["camera_translation"][index]))
    losses["true_geometry"] = float(contact_loss(
        estimator, states, held_out, states["true_body_points"][held_out], states["true_object_points"][held_out],
        states["true_camera_translation"][held_out]))
    estimator.train()
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="scorehoi_diffusers/assets/scorehoi-synthetic")
    parser.add_argument("--states", nargs="+", required=True, help="record_contact_states.py outputs")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_train_steps", type=int, default=1000)
    parser.add_argument("--train_batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--lr_warmup_steps", type=int, default=50)
    parser.add_argument("--truth_prob", type=float, default=0.3)
    parser.add_argument("--contact_geometry_noise", type=float, default=0.02)
    parser.add_argument("--human_loss_weight", type=float, default=1.0,
                        help="weight of the body-point term (the object-keypoint BCE is about ten times larger)")
    parser.add_argument("--holdout_fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if not 0 <= args.truth_prob <= 1 or not 0 <= args.holdout_fraction < 1:
        parser.error("--truth_prob must lie in [0, 1] and --holdout_fraction in [0, 1).")
    torch.set_num_threads(args.num_threads)

    states = load_states(args.states)
    rows = states["dataset_row"].argsort()
    num_held_out = int(len(rows) * args.holdout_fraction)
    held_out = rows[len(rows) - num_held_out:]
    trainable = ~torch.isin(states["scene"], held_out)
    train_states = trainable.nonzero().flatten()
    train_scenes = rows[: len(rows) - num_held_out]
    print(f"{len(train_states)} states of {len(train_scenes)} scenes to train on, {num_held_out} scenes held out")

    estimator = ScoreHOIContactEstimator.from_pretrained(Path(args.pipeline) / "contact_estimator")
    estimator.train()
    before = held_out_losses(estimator, states, held_out) if num_held_out else {}
    optimizer = torch.optim.AdamW(estimator.parameters(), lr=args.learning_rate)
    lr_scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=args.lr_warmup_steps,
                                 num_training_steps=args.max_train_steps)
    generator = torch.Generator().manual_seed(args.seed)
    running = None
    for _ in (progress := tqdm(range(args.max_train_steps), desc="contact estimator")):
        batch = args.train_batch_size
        picked = train_states[torch.randint(len(train_states), (batch,), generator=generator)]
        scene_ids = states["scene"][picked]
        body, objects = states["body_points"][picked], states["object_points"][picked]
        camera = states["camera_translation"][picked]
        truth = torch.rand(batch, generator=generator) < args.truth_prob
        true_body = states["true_body_points"][scene_ids]
        true_objects = states["true_object_points"][scene_ids]
        jitter_body = args.contact_geometry_noise * torch.randn(true_body.shape, generator=generator)
        jitter_objects = args.contact_geometry_noise * torch.randn(true_objects.shape, generator=generator)
        body = torch.where(truth[:, None, None], true_body + jitter_body, body)
        objects = torch.where(truth[:, None, None], true_objects + jitter_objects, objects)
        camera = torch.where(truth[:, None], states["true_camera_translation"][scene_ids], camera)
        loss = contact_loss(estimator, states, scene_ids, body, objects, camera, args.human_loss_weight)
        loss.backward()
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        running = value if running is None else 0.98 * running + 0.02 * value
        progress.set_postfix(loss=f"{running:.4f}")

    after = held_out_losses(estimator, states, held_out) if num_held_out else {}
    output_dir = Path(args.output_dir)
    shutil.copytree(args.pipeline, output_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("checkpoint-*", "logs", "data"))
    estimator.save_pretrained(output_dir / "contact_estimator")
    report = {"arguments": vars(args), "held_out_loss_before": before, "held_out_loss_after": after,
              "final_running_loss": running}
    write_json(output_dir / "contact_estimator_training.json", report, indent=2)
    print(json.dumps({"before": before, "after": after}, indent=2))


if __name__ == "__main__":
    main()
