"""The `scorehoi` command on the shipped pipeline and a shipped example, as a user runs it."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, DEFAULT_PIPELINE, main

EXAMPLE = DEFAULT_EXAMPLES / "astronaut"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scorehoi_diffusers.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)


def test_reconstruct_writes_picture_scene_and_matching_json(tmp_path):
    result = run_cli(
        "reconstruct", str(EXAMPLE / "image.jpg"), "--human-mask", str(EXAMPLE / "human_mask.png"),
        "--object-mask", str(EXAMPLE / "object_mask.png"), "--object", "ball", "--cycles", "2",
        "--out", str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "overlay" in result.stdout and "scene" in result.stdout
    overlay = Image.open(tmp_path / "image_overlay.png")
    photo = Image.open(EXAMPLE / "image.jpg")
    assert overlay.size == photo.size
    assert np.abs(np.asarray(overlay, np.int16) - np.asarray(photo.convert("RGB"), np.int16)).max() > 0
    Image.open(tmp_path / "image_before_after.png").verify()
    scene = trimesh.load(tmp_path / "image.glb")
    assert isinstance(scene, trimesh.Scene) and set(scene.geometry) == {"body", "object"}
    record = json.loads((tmp_path / "image.json").read_text())

    # The JSON holds what the pipeline returns for the same inputs and seed.
    from scorehoi_diffusers import ScoreHOIPipeline

    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    grey = lambda name: np.asarray(Image.open(EXAMPLE / name).convert("L"))  # noqa: E731
    out = pipe(image=np.asarray(photo.convert("RGB")), human_mask=grey("human_mask.png"),
               object_mask=grey("object_mask.png"), object="ball", num_cycles=2,
               generator=torch.Generator().manual_seed(0))
    for name in ("betas", "object_translation", "camera_translation", "body_pose"):
        np.testing.assert_allclose(np.asarray(record["params"][name]), getattr(out.params, name)[0].numpy(),
                                   atol=1e-5)
    np.testing.assert_allclose(record["contacts"]["human"], out.contacts.human[0].numpy(), atol=1e-6)
    body = scene.geometry["body"]
    np.testing.assert_allclose(np.asarray(body.vertices), out.body_vertices[0].numpy(), atol=1e-4)


@pytest.mark.parametrize(
    "args, message",
    [
        (["reconstruct", "missing.jpg", "--human-mask", "a.png", "--object-mask", "b.png", "--object", "box"],
         "no file at"),
        (["reconstruct", str(EXAMPLE / "image.jpg"), "--human-mask", str(EXAMPLE / "human_mask.png"),
          "--object-mask", str(EXAMPLE / "object_mask.png"), "--object", "spaceship"], "spaceship"),
        (["demo", "--pipeline", "/nonexistent"], "No pipeline folder"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_empty_mask_is_reported(tmp_path, capsys):
    empty = tmp_path / "empty.png"
    Image.new("L", Image.open(EXAMPLE / "image.jpg").size, 0).save(empty)
    code = main(["reconstruct", str(EXAMPLE / "image.jpg"), "--human-mask", str(empty), "--object-mask",
                 str(EXAMPLE / "object_mask.png"), "--object", "ball", "--out", str(tmp_path)])
    assert code == 2 and "human_mask" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["reconstruct", "demo", "synthesize", "evaluate"])
def test_every_subcommand_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0 and "usage: scorehoi" in result.stdout
