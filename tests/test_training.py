"""The training scripts under `accelerate launch` with two CPU processes, resuming, the saved pipeline, the Hub
failure path, atomic checkpoints and the model card.

Each script runs uninterrupted once (checkpoints every step). The regressor also runs in a second folder where it is
really killed (SIGKILL) half-way through writing its step-3 checkpoint (`kill_during_save.py`) and then relaunched;
the denoiser's second folder holds an early checkpoint of the first run plus hand-made debris of interrupted saves.
Either way the resumed run must pick the last complete checkpoint, continue from its step and end with exactly the
weights, optimizer state and losses of the uninterrupted run.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
TRAINING = REPO / "training"
sys.path.insert(0, str(TRAINING))

import checkpoint_state  # noqa: E402
import training_setup  # noqa: E402
from train_denoiser import (  # noqa: E402
    noise_target_from_start,
    regressor_start,
    regressor_start_timesteps,
    sample_timesteps,
)

from scorehoi_diffusers.pipelines.model_card import NOT_EVALUATED, render_model_card  # noqa: E402

TINY_REGRESSOR = json.dumps({"embedding_size": 8, "hidden_sizes": [8, 16, 16, 32], "hidden_size": 32, "num_layers": 1,
                             "head_hidden_size": 64, "image_feature_dim": 32})
TINY_ESTIMATOR = json.dumps({"hidden_size": 32, "num_layers": 1})
TINY_DENOISER = json.dumps({"hidden_size": 32, "num_layers": 1, "num_condition_latents": 4,
                            "timestep_embedding_dim": 32})
# Two primitives only: every process builds the templates it meets (signed-distance grids take a while).
COMMON = ["--resolution", "64", "--seed", "3", "--synthetic_objects", "box", "ball", "--use_ema",
          "--lr_scheduler", "constant_with_warmup", "--lr_warmup_steps", "2", "--checkpointing_steps", "1",
          "--checkpoints_total_limit", "2"]
SYNTHETIC_DATA = "data/synthetic-train-n8-seed0-64px-ball-box"


def _environment() -> dict:
    # One thread per process: two processes share the two cores. Offline: nothing may reach the network.
    return {**os.environ, "ACCELERATE_USE_CPU": "true", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(script: str, *args: str, kill_at_step: int | None = None) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes 2` on the CPU (two gloo processes); with `kill_at_step`, the
    run is killed while saving that step's checkpoint and must fail."""
    target = [str(TRAINING / script)]
    env = _environment()
    if kill_at_step is not None:
        target = [str(Path(__file__).parent / "kill_during_save.py"), *target]
        env["SCOREHOI_KILL_AT_STEP"] = str(kill_at_step)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), *target, *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    if kill_at_step is None:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    else:
        assert result.returncode != 0 and "SIGKILL" in result.stderr, result.stderr[-6000:]
    return result


def read_log(output_dir: Path) -> dict:
    lines = (output_dir / "logs" / "train_log.jsonl").read_text().splitlines()
    return {entry["step"]: entry for entry in map(json.loads, lines)}


def read_launch(output_dir: Path) -> dict:
    return json.loads((output_dir / "logs" / "launch.json").read_text())


def crash_copy(source: Path, target: Path, step: int) -> None:
    """A folder as a run killed after checkpoint `step` leaves it, plus debris of an interrupted later save."""
    target.mkdir()
    shutil.copytree(source / f"checkpoint-{step}", target / f"checkpoint-{step}")
    shutil.copytree(source / "data", target / "data")
    debris = target / f"{training_setup.TEMPORARY_CHECKPOINT_PREFIX}{step + 1}"
    debris.mkdir()
    (debris / "model.safetensors").write_bytes(b"half written")
    (target / "checkpoint-99").mkdir()  # a checkpoint folder without its state file: never complete


def assert_same_tensors(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


def assert_same_optimizer(path_a: Path, path_b: Path) -> None:
    a, b = (load_file(p / checkpoint_state.OPTIMIZER_FILE) for p in (path_a, path_b))
    assert len(a) > 0
    assert_same_tensors(a, b)


def assert_same_ema(path_a: Path, path_b: Path, names: list[str]) -> None:
    for name in names:
        folder_a, folder_b = (p / checkpoint_state.ema_folder(name) for p in (path_a, path_b))
        weights_a, weights_b = (load_file(f / "diffusion_pytorch_model.safetensors") for f in (folder_a, folder_b))
        assert_same_tensors(weights_a, weights_b, atol=0)
        state_a, state_b = (json.loads((f / checkpoint_state.EMA_STATE_FILE).read_text()) for f in (folder_a,
                                                                                                        folder_b))
        assert state_a == state_b and state_a["optimization_step"] > 0


@pytest.fixture(scope="module")
def regressor_runs(tmp_path_factory):
    """An uninterrupted 3-step run (rendering its 8 samples on the fly), and a run killed while saving step 3 and
    relaunched."""
    root = tmp_path_factory.mktemp("regressor")
    args = [*COMMON, "--num_train_samples", "8", "--synthetic_image_size", "64", "--train_batch_size", "2",
            "--max_train_steps", "3", "--regressor_config", TINY_REGRESSOR,
            "--contact_estimator_config", TINY_ESTIMATOR]
    full, resumed = root / "full", root / "resumed"
    launch("train_regressor.py", "--output_dir", str(full), *args)
    launch("train_regressor.py", "--output_dir", str(resumed), *args, kill_at_step=3)
    # The crash left checkpoints 1 and 2 and a half-written temporary folder for step 3, nothing named checkpoint-3.
    debris = resumed / f"{training_setup.TEMPORARY_CHECKPOINT_PREFIX}3"
    assert [p.name for p in training_setup.list_checkpoints(resumed)] == ["checkpoint-1", "checkpoint-2"]
    assert debris.is_dir() and not (resumed / "checkpoint-3").exists()
    optimizer = checkpoint_state.OPTIMIZER_FILE
    assert (debris / optimizer).stat().st_size < (full / "checkpoint-3" / optimizer).stat().st_size
    launch("train_regressor.py", "--output_dir", str(resumed), "--resume_from_checkpoint", "latest", *args)
    return full, resumed


@pytest.fixture(scope="module")
def denoiser_runs(regressor_runs, tmp_path_factory):
    """As `regressor_runs`, 3 steps of 2 rendered + 2 parameter-only samples per process, resumed from step 2; half
    of the rendered samples are noised from the regressor's estimate (`--regressor_start_prob`)."""
    regressor_dir = regressor_runs[0]
    root = tmp_path_factory.mktemp("denoiser")
    args = [*COMMON, "--regressor_path", str(regressor_dir), "--train_data_dir", str(regressor_dir / SYNTHETIC_DATA),
            "--train_batch_size", "4", "--param_only_fraction", "0.5", "--num_param_samples", "8",
            "--max_train_steps", "3", "--denoiser_config", TINY_DENOISER, "--regressor_start_prob", "0.5"]
    full, resumed = root / "full", root / "resumed"
    launch("train_denoiser.py", "--output_dir", str(full), *args)
    crash_copy(full, resumed, step=2)
    launch("train_denoiser.py", "--output_dir", str(resumed), "--resume_from_checkpoint", "latest", *args)
    return full, resumed


@pytest.mark.parametrize("runs", ["regressor_runs", "denoiser_runs"])
def test_two_processes_ran(runs, request):
    for output_dir in request.getfixturevalue(runs):
        record = read_launch(output_dir)
        assert record["num_processes"] == 2
        assert record["distributed_type"] == "DistributedType.MULTI_CPU"
        assert sorted(p["process_index"] for p in record["processes"]) == [0, 1]
        assert len({p["pid"] for p in record["processes"]}) == 2


@pytest.mark.parametrize("runs, weights", [
    ("regressor_runs", ["regressor", "contact_estimator"]),
    ("denoiser_runs", ["denoiser"]),
])
def test_resume_continues_exactly(runs, weights, request):
    full, resumed = request.getfixturevalue(runs)
    record = read_launch(resumed)
    # `latest` took the complete checkpoint, not the temporary folder or the one without a state file.
    assert record["start_step"] == 2 and Path(record["resumed_from"]).name == "checkpoint-2"
    full_log, resumed_log = read_log(full), read_log(resumed)
    last = max(full_log)
    # Steps 3.. come from the resumed launch (a killed run's log also holds its own earlier steps, which must agree).
    assert set(range(3, last + 1)) <= set(resumed_log) <= set(full_log)
    for step in resumed_log:
        assert resumed_log[step]["loss"] == pytest.approx(full_log[step]["loss"], rel=1e-6, abs=1e-7)
        assert resumed_log[step]["lr"] == full_log[step]["lr"]
    # Final (EMA) weights, and the optimizer state of the last checkpoint, equal the uninterrupted run's.
    for name in weights:
        assert_same_tensors(*(load_file(d / name / "diffusion_pytorch_model.safetensors") for d in (full, resumed)))
    assert_same_optimizer(full / f"checkpoint-{last}", resumed / f"checkpoint-{last}")
    assert_same_ema(full / f"checkpoint-{last}", resumed / f"checkpoint-{last}", weights)
    # Rotation kept the newest two complete checkpoints; debris is never counted or removed as a checkpoint.
    assert [p.name for p in training_setup.list_checkpoints(full)] == [f"checkpoint-{last - 1}", f"checkpoint-{last}"]
    assert not (resumed / f"{training_setup.TEMPORARY_CHECKPOINT_PREFIX}3").exists()  # replaced by the real save


@pytest.mark.parametrize("runs", ["regressor_runs", "denoiser_runs"])
def test_checkpoints_hold_no_pickles(runs, request):
    checkpoints = [path for run in request.getfixturevalue(runs) for path in training_setup.list_checkpoints(run)]
    assert len(checkpoints) == 4
    for checkpoint in checkpoints:
        files = [p for p in checkpoint.rglob("*") if p.is_file()]
        assert not [p for p in files if p.suffix in (".pkl", ".bin", ".pt", ".pth", ".ckpt")], checkpoint
        assert all(p.suffix in (".safetensors", ".json") for p in files), files
        # What the EMA folder holds loads as a model by itself.
        assert (checkpoint / checkpoint_state.ema_folder("denoiser" if runs == "denoiser_runs" else "regressor")
                / "config.json").is_file()


def test_pickled_checkpoint_is_refused_clearly(tmp_path):
    from accelerate import Accelerator

    (tmp_path / "model.safetensors").write_bytes(b"")
    for name in ("optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
        (tmp_path / name).write_bytes(b"pickle")
    state = checkpoint_state.CheckpointState([torch.nn.Linear(1, 1)], None, None)
    with pytest.raises(FileNotFoundError, match=r"optimizer.safetensors.*pickled state.*--init_from"):
        checkpoint_state.load_training_state(Accelerator(cpu=True), state, tmp_path)


def test_regressor_folder_feeds_the_denoiser(regressor_runs):
    full = regressor_runs[0]
    for name in ("regressor", "contact_estimator"):
        assert (full / name / "config.json").is_file()
    statistics = json.loads((full / training_setup.BETAS_STATISTICS_FILE).read_text())
    assert len(statistics["betas_min"]) == len(statistics["betas_max"]) == 10
    losses = read_log(full)[1]
    for term in ("param", "vertex", "reprojection", "camera", "contact"):
        assert np.isfinite(losses[term]) and losses[term] > 0


def test_pipeline_folder_loads_offline(denoiser_runs, regressor_runs, monkeypatch):
    from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = denoiser_runs[0]
    pipe = ScoreHOIPipeline.from_pretrained(folder)
    assert pipe.regressor is not None and pipe.contact_estimator is not None
    assert pipe.denoiser.config.image_feature_dim == pipe.regressor.config.image_feature_dim
    statistics = json.loads((regressor_runs[0] / training_setup.BETAS_STATISTICS_FILE).read_text())
    assert pipe.config.betas_min == pytest.approx(statistics["betas_min"])
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: diffusers" in card and "pipeline_tag: image-to-3d" in card
    assert NOT_EVALUATED in card and "ScoreHOIPipeline.from_pretrained(" in card


def run_single(script: str, *args: str) -> subprocess.CompletedProcess:
    """One plain process (no launcher): enough for argument handling and warm starts."""
    result = subprocess.run([sys.executable, str(TRAINING / script), *args], env=_environment(),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def learned_weights(folder: Path) -> dict:
    """A saved model's parameters (BatchNorm running statistics move even at learning rate 0)."""
    weights = load_file(folder / "diffusion_pytorch_model.safetensors")
    return {k: v for k, v in weights.items() if "running_" not in k and "num_batches_tracked" not in k}


def test_init_from_warm_starts_every_model(regressor_runs, denoiser_runs, tmp_path):
    # At learning rate 0 a warm-started run must save exactly the weights it started from.
    still = ["--max_train_steps", "1", "--learning_rate", "0", "--lr_scheduler", "constant", "--lr_warmup_steps", "0",
             "--resolution", "64", "--seed", "5", "--synthetic_objects", "box", "ball", "--use_ema"]
    source = regressor_runs[0]
    run_single("train_regressor.py", "--output_dir", str(tmp_path / "regressor"), "--init_from", str(source),
               "--train_data_dir", str(source / SYNTHETIC_DATA), "--train_batch_size", "2", *still)
    for name in ("regressor", "contact_estimator"):
        assert_same_tensors(learned_weights(source / name), learned_weights(tmp_path / "regressor" / name), atol=0)
    assert (json.loads((tmp_path / "regressor" / training_setup.BETAS_STATISTICS_FILE).read_text())
            == json.loads((source / training_setup.BETAS_STATISTICS_FILE).read_text()))
    run_single("train_denoiser.py", "--output_dir", str(tmp_path / "pipeline"), "--init_from", str(denoiser_runs[0]),
               "--param_only_fraction", "1", "--num_param_samples", "4", "--train_batch_size", "2", *still)
    assert_same_tensors(learned_weights(denoiser_runs[0] / "denoiser"),
                        learned_weights(tmp_path / "pipeline" / "denoiser"), atol=0)


def test_body_keypoints_warm_start_adds_keypoint_input_to_both_models(regressor_runs, denoiser_runs, tmp_path):
    # At learning rate 0 the regressor keeps every weight it started from and gains a keypoint encoder whose last
    # layer is zero; the prior then trains on that regressor with simulated detections.
    still = ["--max_train_steps", "1", "--lr_scheduler", "constant", "--lr_warmup_steps", "0", "--resolution", "64",
             "--seed", "5", "--synthetic_objects", "box", "ball", "--body_keypoints"]
    source = regressor_runs[0]
    run_single("train_regressor.py", "--output_dir", str(tmp_path / "regressor"), "--init_from", str(source),
               "--train_data_dir", str(source / SYNTHETIC_DATA), "--train_batch_size", "2", "--learning_rate", "0",
               *still)
    before, after = learned_weights(source / "regressor"), learned_weights(tmp_path / "regressor" / "regressor")
    assert_same_tensors(before, {k: v for k, v in after.items() if not k.startswith("body_keypoint_encoder.")}, atol=0)
    assert (after["body_keypoint_encoder.mlp.4.weight"] == 0).all()
    config = json.loads((tmp_path / "regressor" / "regressor" / "config.json").read_text())
    assert config["body_keypoints"] is True
    run_single("train_denoiser.py", "--output_dir", str(tmp_path / "pipeline"), "--init_from", str(denoiser_runs[0]),
               "--regressor_path", str(tmp_path / "regressor"), "--train_data_dir", str(source / SYNTHETIC_DATA),
               "--param_only_fraction", "0.5", "--num_param_samples", "4", "--train_batch_size", "2",
               "--learning_rate", "1e-3", *still)
    denoiser = learned_weights(tmp_path / "pipeline" / "denoiser")
    assert denoiser["body_keypoint_encoder.mlp.4.weight"].abs().sum() > 0  # trained on the simulated detections
    assert json.loads((tmp_path / "pipeline" / "denoiser" / "config.json").read_text())["body_keypoints"] is True


def test_param_only_keypoints_reach_the_prior(denoiser_runs, tmp_path):
    # Parameter-only samples alone, one step: the keypoint encoder's last layer starts at zero and gets a gradient
    # only from non-zero keypoints (no keypoints encode to zeros), so it moves exactly when those samples have them.
    args = ["--init_from", str(denoiser_runs[0]), "--param_only_fraction", "1", "--num_param_samples", "4",
            "--train_batch_size", "2", "--max_train_steps", "1", "--learning_rate", "1e-3", "--lr_scheduler",
            "constant", "--lr_warmup_steps", "0", "--resolution", "64", "--seed", "5", "--synthetic_objects", "box",
            "ball", "--body_keypoints", "--keypoint_dropout_prob", "0"]
    run_single("train_denoiser.py", "--output_dir", str(tmp_path / "without"), *args)
    run_single("train_denoiser.py", "--output_dir", str(tmp_path / "with"), *args, "--param_only_keypoints")
    without = learned_weights(tmp_path / "without" / "denoiser")["body_keypoint_encoder.mlp.4.weight"]
    with_keypoints = learned_weights(tmp_path / "with" / "denoiser")["body_keypoint_encoder.mlp.4.weight"]
    assert (without == 0).all() and with_keypoints.abs().sum() > 0
    table = next((tmp_path / "with" / "data").iterdir())
    assert table.name.endswith("-cameras") and "intrinsics" in json.loads((table / "dataset_info.json").read_text())[
        "features"]
    result = subprocess.run([sys.executable, str(TRAINING / "train_denoiser.py"), "--output_dir", str(tmp_path / "o"),
                             "--param_only_fraction", "1", "--param_only_keypoints"], env=_environment(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--param_only_keypoints needs --body_keypoints" in result.stderr


def test_freeze_backbone_keeps_its_weights_and_statistics_and_trains_the_rest(regressor_runs, tmp_path):
    source = regressor_runs[0]
    run_single("train_regressor.py", "--output_dir", str(tmp_path / "regressor"), "--init_from", str(source),
               "--train_data_dir", str(source / SYNTHETIC_DATA), "--train_batch_size", "2", "--max_train_steps", "2",
               "--learning_rate", "1e-3", "--lr_scheduler", "constant", "--lr_warmup_steps", "0", "--resolution",
               "64", "--seed", "5", "--body_keypoints", "--freeze_backbone")
    before = load_file(source / "regressor" / "diffusion_pytorch_model.safetensors")
    after = load_file(tmp_path / "regressor" / "regressor" / "diffusion_pytorch_model.safetensors")
    backbone = [key for key in before if key.startswith("backbone.")]
    assert any("running_mean" in key for key in backbone)  # BatchNorm statistics are checked too
    assert_same_tensors({k: before[k] for k in backbone}, {k: after[k] for k in backbone}, atol=0)
    assert not torch.equal(before["head_trunk.0.weight"], after["head_trunk.0.weight"])
    result = subprocess.run([sys.executable, str(TRAINING / "train_regressor.py"), "--output_dir",
                             str(tmp_path / "o"), "--freeze_backbone"], env=_environment(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "--freeze_backbone keeps a trained backbone: give --init_from" in result.stderr


def test_init_from_without_models_is_a_clear_error(tmp_path):
    result = subprocess.run([sys.executable, str(TRAINING / "train_denoiser.py"), "--output_dir", str(tmp_path / "o"),
                             "--param_only_fraction", "1", "--init_from", str(tmp_path)],
                            env=_environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "--init_from" in result.stderr and "denoiser/config.json" in result.stderr


def test_push_to_hub_offline_fails_clearly(tmp_path):
    command = [sys.executable, str(TRAINING / "train_denoiser.py"), "--output_dir", str(tmp_path / "out"),
               "--param_only_fraction", "1", "--push_to_hub", "--hub_model_id", "someone/scorehoi-test"]
    result = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--push_to_hub" in result.stderr and "hf auth login" in result.stderr
    assert "Traceback" not in result.stderr


def test_latest_ignores_incomplete_checkpoints(tmp_path):
    def folder(name, complete):
        path = tmp_path / name
        path.mkdir()
        if complete:
            (path / training_setup.TRAINING_STATE_FILE).write_text("{}")

    folder("checkpoint-2", True)
    folder("checkpoint-10", True)
    folder("checkpoint-30", False)  # killed before the state file was written
    folder(f"{training_setup.TEMPORARY_CHECKPOINT_PREFIX}40", True)  # killed before the rename
    folder("checkpoint-x", True)
    assert [p.name for p in training_setup.list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-10"]


def test_data_stream_covers_each_epoch_once_and_splits_processes():
    slots = np.concatenate([training_setup.process_slots(m, r, 2, 3) for m in range(2) for r in range(2)])
    assert sorted(slots) == list(range(12))  # 2 micro-steps x 2 processes x 3 samples, disjoint
    items = training_setup.slot_indices(5, seed=7, stream=0, slots=np.arange(15))
    for epoch in items.reshape(3, 5):
        assert sorted(epoch) == list(range(5))
    assert not np.array_equal(items[:5], items[5:10])  # a new order every epoch


def test_timesteps_oversample_refinement_range():
    generator = torch.Generator().manual_seed(0)
    t = sample_timesteps(20000, 1000, 50, 0.5, generator)
    assert t.min() >= 0 and t.max() < 1000 and t.max() > 900
    assert (t <= 50).float().mean().item() == pytest.approx(0.5 + 0.5 * 51 / 1000, abs=0.02)


def test_regressor_starts_are_redrawn_near_t_start_only():
    generator = torch.Generator().manual_seed(0)
    timesteps = sample_timesteps(4000, 1000, 50, 0.5, generator)
    rows = torch.rand(4000, generator=generator) < 0.5
    redrawn = regressor_start_timesteps(rows, timesteps, 50, generator)
    assert torch.equal(redrawn[~rows], timesteps[~rows])
    assert redrawn[rows].min() == 25 and redrawn[rows].max() == 50


def test_body_only_regressor_start_keeps_the_true_object():
    from scorehoi_diffusers.params import OBJECT_ROTATION_SLICE, OBJECT_TRANSLATION_SLICE

    truth, estimate = torch.zeros(2, 331), torch.ones(2, 331)
    assert regressor_start(estimate, truth, "all") is estimate
    start = regressor_start(estimate, truth, "body")
    assert (start[:, OBJECT_ROTATION_SLICE] == 0).all() and (start[:, OBJECT_TRANSLATION_SLICE] == 0).all()
    assert start.sum() == 331 * 2 - 9 * 2 and (estimate == 1).all()  # the rest is the estimate, left untouched


def test_noise_target_leads_from_the_start_back_to_the_truth():
    from scorehoi_diffusers.schedulers.scheduling_guided_ddim import GuidedDDIMScheduler

    alphas = GuidedDDIMScheduler().alphas_cumprod.double()
    generator = torch.Generator().manual_seed(1)
    truth, noise, error = torch.randn(3, 6, 331, generator=generator, dtype=torch.float64)
    estimate = truth + 0.1 * error
    timesteps = torch.tensor([25, 30, 35, 40, 45, 50])
    noisy, target = noise_target_from_start(alphas, truth, truth, noise, timesteps)
    torch.testing.assert_close(target, noise)  # from the truth: plain ε-prediction
    noisy, target = noise_target_from_start(alphas, estimate, truth, noise, timesteps)
    alpha = alphas[timesteps].unsqueeze(-1)
    torch.testing.assert_close(noisy, alpha.sqrt() * estimate + (1 - alpha).sqrt() * noise)  # noised estimate
    torch.testing.assert_close((noisy - (1 - alpha).sqrt() * target) / alpha.sqrt(), truth)  # its x0 is the truth
    assert (target - noise).abs().mean() > 0.5  # the correction is in the target, scaled up by 1 / sigma_t


def test_model_card_reports_given_metrics_only(denoiser_runs, tmp_path):
    folder = denoiser_runs[0]
    card = render_model_card(folder, metrics={"description": "synthetic test split, 100 samples, seed 0",
                                              "metrics": {"chamfer human (cm)": 4.25, "contact F": 0.5}})
    assert "| chamfer human (cm) | 4.25 |" in card and "synthetic test split" in card and NOT_EVALUATED not in card
    assert "- chamfer_human_cm" in card.split("---")[1]  # the front matter lists the metric ids
    metrics_file = tmp_path / "metrics.json"
    metrics_file.write_text(json.dumps({"contact F": 0.61}))
    assert "| contact F | 0.61 |" in render_model_card(folder, metrics=metrics_file)
    with pytest.raises(ValueError, match="finite number"):
        render_model_card(folder, metrics={"contact F": float("nan")})
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        render_model_card(tmp_path)


def test_keypoint_layers_get_their_own_learning_rate():
    import argparse

    from simulated_keypoints import parameter_groups

    from scorehoi_diffusers.models.body_keypoints import with_body_keypoints
    from scorehoi_diffusers.models.denoiser import ScoreHOIDenoiser

    denoiser = with_body_keypoints(ScoreHOIDenoiser(**json.loads(TINY_DENOISER)))
    args = argparse.Namespace(learning_rate=1e-4, keypoint_lr_multiplier=10.0)
    other, keypoint = parameter_groups([denoiser], args)
    assert keypoint["lr"] == pytest.approx(1e-3) and other["lr"] == 1e-4
    assert len(keypoint["params"]) == len(list(denoiser.body_keypoint_encoder.parameters()))
    assert len(other["params"]) + len(keypoint["params"]) == len(list(denoiser.parameters()))
    with pytest.raises(ValueError, match="--keypoint_lr_multiplier must be > 0"):
        parameter_groups([denoiser], argparse.Namespace(learning_rate=1e-4, keypoint_lr_multiplier=0.0))


def _with_detector_masks(table, masks):
    import datasets
    from detector_masks import DETECTOR_FOUND_COLUMN, DETECTOR_MASK_COLUMN

    features = table.features.copy()
    features[DETECTOR_MASK_COLUMN], features[DETECTOR_FOUND_COLUMN] = datasets.Image(), datasets.Value("bool")
    return table.map(lambda row, i: {DETECTOR_MASK_COLUMN: masks[i], DETECTOR_FOUND_COLUMN: True}, with_indices=True,
                     features=features)


def test_detector_mask_prob_swaps_the_person_mask_channel(regressor_runs):
    import datasets
    from PIL import Image

    table = datasets.load_from_disk(str(regressor_runs[0] / SYNTHETIC_DATA))
    size = table[0]["human_mask"].size
    full = Image.new("L", size, 255)
    swapped = _with_detector_masks(table, [full] * len(table))

    def batch(data, prob, step=0):
        return training_setup.RenderedBatches(data, 4, 0, 1, seed=3, resolution=32, augment=True,
                                              detector_mask_prob=prob)(step)

    plain = batch(table, 0.0)
    assert torch.equal(batch(swapped, 0.0)["pixel_values"], plain["pixel_values"])  # the column alone changes nothing
    everyone = batch(swapped, 1.0)["pixel_values"]
    assert torch.equal(everyone[:, :3], plain["pixel_values"][:, :3])  # same crop, colours and object mask
    assert torch.equal(everyone[:, 4], plain["pixel_values"][:, 4])
    whole = everyone[:, 3] == everyone[:, 3].amax()  # the full mask covers everything the crop takes from the picture
    assert whole.float().mean() > (plain["pixel_values"][:, 3] == everyone[:, 3].amax()).float().mean()
    # A share of the samples, the same ones on every call (seeded by step and process), different by step.
    draws = [(batch(swapped, 0.5, step)["pixel_values"][:, 3] != batch(table, 0.0, step)["pixel_values"][:, 3])
             .flatten(1).any(1) for step in range(6)]
    assert torch.equal(draws[0], (batch(swapped, 0.5, 0)["pixel_values"][:, 3] != plain["pixel_values"][:, 3])
                       .flatten(1).any(1))
    share = torch.stack(draws).float().mean()
    assert 0.2 < share < 0.8


def test_detector_mask_prob_needs_the_column(regressor_runs):
    import datasets

    from scorehoi_diffusers.body import BodyModel

    table = datasets.load_from_disk(str(regressor_runs[0] / SYNTHETIC_DATA))
    with pytest.raises(ValueError, match="detector_masks.py"):
        training_setup._check_dataset(table, BodyModel(), "somewhere", detector_masks=True)
    training_setup._check_dataset(table, BodyModel(), "somewhere", detector_masks=False)


def test_detector_masks_keep_the_own_mask_where_nobody_is_found(regressor_runs, monkeypatch):
    import types

    import datasets
    import detector_masks
    from PIL import Image

    from scorehoi_diffusers import person_detection

    table = datasets.load_from_disk(str(regressor_runs[0] / SYNTHETIC_DATA)).select(range(2))
    found_mask = np.zeros(table[0]["human_mask"].size[::-1], dtype=bool)
    found_mask[:5] = True
    person = types.SimpleNamespace(mask=found_mask, keypoints_with_visibility=lambda: np.zeros((33, 3)))
    answers = iter([[person], []])
    monkeypatch.setattr(person_detection, "default_person_detector",
                        lambda: types.SimpleNamespace(detect=lambda image: next(answers)))
    out = detector_masks.detector_masks(table[:2])
    assert out[detector_masks.DETECTOR_FOUND_COLUMN] == [True, False]
    first, second = out[detector_masks.DETECTOR_MASK_COLUMN]
    assert np.array_equal(np.asarray(first) > 0, found_mask)
    assert isinstance(second, Image.Image) and np.array_equal(np.asarray(second), np.asarray(table[1]["human_mask"]))
