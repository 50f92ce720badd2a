"""training/copy_guidance.py: a candidate pipeline gets the shipped guidance weights and keeps everything else."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from copy_guidance import copy_guidance  # noqa: E402


def test_only_the_guidance_entries_change(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "model_index.json").write_text(json.dumps(
        {"guidance": {"scale": 10.0}, "keypoint_guidance": {"scale": 3.0}, "denoiser": ["x", "A"]}))
    (tmp_path / "b" / "model_index.json").write_text(json.dumps({"guidance": {"scale": 1.0}, "denoiser": ["y", "B"]}))
    copy_guidance(tmp_path / "a", tmp_path / "b")
    assert json.loads((tmp_path / "b" / "model_index.json").read_text()) == {
        "guidance": {"scale": 10.0}, "keypoint_guidance": {"scale": 3.0}, "denoiser": ["y", "B"]}
    (tmp_path / "a" / "model_index.json").write_text(json.dumps({"guidance": {"scale": 5.0}}))
    copy_guidance(tmp_path / "a", tmp_path / "b")
    assert json.loads((tmp_path / "b" / "model_index.json").read_text()) == {
        "guidance": {"scale": 5.0}, "denoiser": ["y", "B"]}
