"""Recording the states the refinement cycles hand the contact estimator, and fine-tuning it on them
(`training/record_contact_states.py`, `training/train_contact_estimator.py`)."""
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))

import record_contact_states  # noqa: E402
import train_contact_estimator  # noqa: E402

from scorehoi_diffusers import ScoreHOIPipeline  # noqa: E402
from scorehoi_diffusers.data.synthetic import generate_dataset  # noqa: E402
from scorehoi_diffusers.models.contact_estimator import ScoreHOIContactEstimator  # noqa: E402

SHIPPED = REPO / "scorehoi_diffusers" / "assets" / "scorehoi-synthetic"


@contextmanager
def script_arguments(argv: list[str]):
    """Run a script's ``main()`` in-process with ``argv``; afterwards restore ``sys.argv`` and torch's thread count,
    which the scripts set (other tests in this worker compare outputs bit for bit, and thread counts change the
    order of float sums)."""
    old_argv, old_threads = sys.argv, torch.get_num_threads()
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = old_argv
        torch.set_num_threads(old_threads)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two train-stream scenes through the shipped pipeline, one cycle, recorded."""
    folder = tmp_path_factory.mktemp("record")
    body = ScoreHOIPipeline.from_pretrained(SHIPPED).body_model
    generate_dataset(3, seed=0, split="train", start=30000, image_size=128, body=body, progress=False,
                     objects=["box"]).save_to_disk(str(folder / "table"))
    out = folder / "states.safetensors"
    argv = ["record_contact_states.py", "--data", str(folder / "table"), "--num-scenes", "2", "--cycles", "1",
            "--out", str(out)]
    with script_arguments(argv):
        record_contact_states.main()
    return load_file(out)


def test_every_call_of_the_estimator_is_recorded_with_its_scene_and_cycle(recorded):
    # The start and the result of the one cycle, for each of the two scenes.
    assert recorded["cycle"].tolist().count(0) == 2 and recorded["cycle"].tolist().count(1) == 2
    assert sorted(recorded["scene"].tolist()) == [0, 0, 1, 1]
    assert recorded["feature_map"].shape[0] == 2 and recorded["human_contact"].shape[0] == 2
    assert recorded["body_points"].shape[1:] == recorded["true_body_points"].shape[1:]
    assert recorded["dataset_row"].dtype == torch.int64 and recorded["cycle"].dtype == torch.int64


def test_recorded_states_and_truth_share_the_estimators_frame(recorded):
    # Pelvis-relative, camera axes: the estimate's body lies within centimetres of the true one, not metres.
    scene = recorded["scene"]
    error = (recorded["body_points"] - recorded["true_body_points"][scene]).norm(dim=-1).mean(dim=1)
    assert error.max() < 0.5
    camera = (recorded["camera_translation"] - recorded["true_camera_translation"][scene]).norm(dim=-1)
    assert camera.max() < 3.0


def _fake_states(path: Path, num_scenes: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    estimator_config = ScoreHOIContactEstimator.load_config(SHIPPED / "contact_estimator")
    body, points = estimator_config["num_body_points"], 64
    states_per_scene = 3
    scene = torch.arange(num_scenes).repeat_interleave(states_per_scene)
    true_body = 0.3 * torch.randn(num_scenes, body, 3, generator=generator)
    true_object = 0.3 * torch.randn(num_scenes, points, 3, generator=generator)
    true_camera = torch.tensor([0.0, 0.0, 3.0]) + 0.1 * torch.randn(num_scenes, 3, generator=generator)
    intrinsics = torch.tensor([[200.0, 0, 64], [0, 200.0, 64], [0, 0, 1]]).expand(num_scenes, 3, 3)
    save_file({
        "body_points": true_body[scene] + 0.05 * torch.randn(len(scene), body, 3, generator=generator),
        "object_points": true_object[scene] + 0.05 * torch.randn(len(scene), points, 3, generator=generator),
        "camera_translation": true_camera[scene],
        "cycle": torch.arange(states_per_scene).repeat(num_scenes),
        "scene": scene,
        "feature_map": torch.randn(num_scenes, estimator_config["feature_dim"], 4, 4, generator=generator),
        "intrinsics": intrinsics.contiguous(),
        "image_size": torch.tensor([128, 128]),
        "human_contact": (torch.rand(num_scenes, body, generator=generator) < 0.05).float(),
        "object_contact": (torch.rand(num_scenes, points, generator=generator) < 0.1).float(),
        "floor_contact": (torch.rand(num_scenes, generator=generator) < 0.5).float(),
        "true_body_points": true_body, "true_object_points": true_object, "true_camera_translation": true_camera,
        "dataset_row": torch.arange(num_scenes) + 100 * seed,
    }, str(path))


def _train(tmp_path: Path, name: str, states: list[Path]) -> Path:
    output = tmp_path / name
    argv = ["train_contact_estimator.py", "--states", *map(str, states), "--output_dir", str(output),
            "--max_train_steps", "3", "--train_batch_size", "4", "--learning_rate", "1e-3",
            "--lr_warmup_steps", "0", "--holdout_fraction", "0.25"]
    with script_arguments(argv):
        train_contact_estimator.main()
    return output


def test_joined_states_point_at_their_own_scenes(tmp_path):
    _fake_states(tmp_path / "a.safetensors", 3, seed=0)
    _fake_states(tmp_path / "b.safetensors", 2, seed=1)
    joined = train_contact_estimator.load_states([tmp_path / "a.safetensors", tmp_path / "b.safetensors"])
    b = load_file(tmp_path / "b.safetensors")
    assert joined["scene"].max() == 4 and len(joined["dataset_row"]) == 5
    # The second file's states still read the second file's features.
    assert torch.equal(joined["feature_map"][joined["scene"][-1]], b["feature_map"][b["scene"][-1]])


def test_fine_tuning_writes_a_loadable_pipeline_deterministically(tmp_path):
    states = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    _fake_states(states[0], 6, seed=0)
    _fake_states(states[1], 2, seed=1)
    first = _train(tmp_path, "first", states)
    second = _train(tmp_path, "second", states)
    shipped = load_file(SHIPPED / "contact_estimator" / "diffusion_pytorch_model.safetensors")
    tuned = load_file(first / "contact_estimator" / "diffusion_pytorch_model.safetensors")
    again = load_file(second / "contact_estimator" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(tuned[key], again[key]) for key in tuned)
    assert any(not torch.equal(tuned[key], shipped[key]) for key in tuned)
    # The other models are the source pipeline's, and the folder loads as a pipeline.
    assert (first / "denoiser" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        SHIPPED / "denoiser" / "diffusion_pytorch_model.safetensors").read_bytes()
    pipeline = ScoreHOIPipeline.from_pretrained(first)
    assert isinstance(pipeline.contact_estimator, ScoreHOIContactEstimator)
    report = json.loads((first / "contact_estimator_training.json").read_text())
    # Two of the eight scenes held out: the last by dataset row, both from the second file.
    assert set(report["held_out_loss_after"]) == {"cycle_0", "cycle_1", "cycle_2", "true_geometry"}
    assert not list(first.rglob("*.pkl")) and not list(first.rglob("*.bin"))
