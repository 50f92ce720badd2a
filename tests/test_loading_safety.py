"""The claims of the README's "Loading saved folders safely" section that no other test holds: what loading a
saved pipeline folder does not do (run the folder's code) and what it does not check (weights' values, origin)."""
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.cli import DEFAULT_PIPELINE, main

DENOISER_WEIGHTS = "denoiser/diffusion_pytorch_model.safetensors"


@pytest.fixture
def folder(tmp_path):
    copy = tmp_path / "pipe"
    shutil.copytree(DEFAULT_PIPELINE, copy)
    return copy


def test_folder_pipeline_py_is_never_run(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    marker = tmp_path / "ran"
    (folder / "pipeline.py").write_text(f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit('ran')\n")
    pipe = ScoreHOIPipeline.from_pretrained(folder)
    assert isinstance(pipe, ScoreHOIPipeline) and not marker.exists()
    example = DEFAULT_PIPELINE.parent / "examples" / "synthetic_ball"
    code = main(["reconstruct", str(example / "image.png"), "--human-mask", str(example / "human_mask.png"),
                 "--object-mask", str(example / "object_mask.png"), "--object", "ball", "--cycles", "0",
                 "--pipeline", str(folder), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert not marker.exists()


def test_weight_values_and_origin_are_not_checked(folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = folder / DENOISER_WEIGHTS
    weights = load_file(path)
    name = sorted(weights)[0]
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, path, metadata={"format": "pt"})
    os.utime(path)
    pipe = ScoreHOIPipeline.from_pretrained(folder)  # a tampered file of the right shapes loads: no checksum
    assert torch.isnan(pipe.denoiser.state_dict()[name]).all()  # and its values are not inspected
