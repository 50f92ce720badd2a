"""Hub uploads (with the Hub client mocked) and the model card's metadata."""
import json
import sys
from pathlib import Path

import pytest
import torch
from diffusers import DiffusionPipeline
from huggingface_hub import ModelCard

from scorehoi_diffusers import BodyModel, GuidedDDIMScheduler, ScoreHOIPipeline
from scorehoi_diffusers.pipelines import hub
from scorehoi_diffusers.pipelines.model_card import render_model_card

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pipeline import holding_params, small_denoiser  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "scorehoi_diffusers" / "assets" / "scorehoi-synthetic"
SHIPPED_METRICS = REPO / "model_cards" / "scorehoi-synthetic-metrics.json"


class FakeHub:
    """Stands in for the Hub: records each upload and a copy of the folder as it was at upload time."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.repos, self.uploads = [], []

    def create_repo(self, repo_id, **kwargs):
        self.repos.append((repo_id, kwargs))
        return type("RepoUrl", (), {"repo_id": repo_id if "/" in repo_id else f"user/{repo_id}"})()

    def upload_folder(self, repo_id, folder_path, **kwargs):
        snapshot = self.tmp_path / f"uploaded-{len(self.uploads)}"
        files = {p.relative_to(folder_path): p.read_bytes() for p in Path(folder_path).rglob("*") if p.is_file()}
        for relative, data in files.items():
            (snapshot / relative).parent.mkdir(parents=True, exist_ok=True)
            (snapshot / relative).write_bytes(data)
        self.uploads.append({"repo_id": repo_id, "snapshot": snapshot, **kwargs})
        return f"https://huggingface.co/{repo_id}/commit/0"


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake = FakeHub(tmp_path)
    monkeypatch.setattr(hub, "create_repo", fake.create_repo)
    monkeypatch.setattr(hub, "upload_folder", fake.upload_folder)

    def refuse(*args, **kwargs):
        raise AssertionError("diffusers' own upload path must not run: it uploads an incomplete folder")

    # The functions diffusers' save_pretrained / PushToHubMixin call.
    monkeypatch.setattr("diffusers.pipelines.pipeline_utils.create_repo", refuse)
    monkeypatch.setattr("diffusers.utils.hub_utils.upload_folder", refuse)
    monkeypatch.setattr("diffusers.utils.hub_utils.create_repo", refuse)
    monkeypatch.setattr("diffusers.utils.hub_utils.load_or_create_model_card", refuse)
    return fake


def assert_complete_hub_folder(folder: Path) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline", "ScoreHOIPipeline"]
    assert (folder / "pipeline.py").read_text() == hub.HUB_SHIM_SOURCE
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "diffusers"
    assert "scorehoi" in card.data.tags


def test_save_pretrained_push_to_hub_uploads_a_loadable_folder(fake_hub, tmp_path, pipe_for_hub):
    folder = tmp_path / "my-scorehoi"
    pipe_for_hub.save_pretrained(folder, push_to_hub=True, repo_id="owner/my-scorehoi", token="t", private=True)
    assert fake_hub.repos == [("owner/my-scorehoi", {"private": True, "token": "t", "exist_ok": True})]
    (upload,) = fake_hub.uploads
    assert upload["repo_id"] == "owner/my-scorehoi" and upload["token"] == "t"
    assert_complete_hub_folder(upload["snapshot"])
    # What reached the "Hub" loads with stock diffusers and gives the same result.
    loaded = DiffusionPipeline.from_pretrained(upload["snapshot"], trust_remote_code=True)
    params = holding_params(1, gap=0.05)
    loaded.set_progress_bar_config(disable=True)
    again = loaded(initial_params=params, object="box", num_cycles=1)
    reference = pipe_for_hub(initial_params=params, object="box", num_cycles=1)
    assert torch.equal(again.body_vertices, reference.body_vertices)


def test_save_pretrained_push_to_hub_defaults_to_the_folder_name(fake_hub, tmp_path, pipe_for_hub):
    pipe_for_hub.save_pretrained(tmp_path / "named-after-folder", push_to_hub=True)
    assert fake_hub.repos[0][0] == "named-after-folder"
    assert fake_hub.uploads[0]["repo_id"] == "user/named-after-folder"


def test_push_to_hub_uploads_the_shipped_card(fake_hub):
    shipped = ScoreHOIPipeline.from_pretrained(SHIPPED)
    url = shipped.push_to_hub("owner/scorehoi-synthetic", commit_message="first")
    (upload,) = fake_hub.uploads
    assert url.startswith("https://huggingface.co/owner/scorehoi-synthetic")
    assert upload["commit_message"] == "first"
    assert_complete_hub_folder(upload["snapshot"])
    assert (upload["snapshot"] / "README.md").read_text() == (SHIPPED / "README.md").read_text()
    assert (upload["snapshot"] / "denoiser" / "diffusion_pytorch_model.safetensors").is_file()


def test_push_to_hub_of_a_new_pipeline_uploads_our_card(fake_hub, pipe_for_hub):
    pipe_for_hub.push_to_hub("owner/new")
    card = (fake_hub.uploads[0]["snapshot"] / "README.md").read_text()
    assert "# ScoreHOI pipeline" in card and "Not evaluated yet" in card
    assert_complete_hub_folder(fake_hub.uploads[0]["snapshot"])


@pytest.fixture(scope="module")
def pipe_for_hub():
    pipeline = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), BodyModel())
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def test_shipped_card_is_the_generators_and_follows_the_hub_spec(monkeypatch):
    card_text = (SHIPPED / "README.md").read_text()
    # The shipped card is regenerated, from the repository root, with `python model_cards/generate_model_card.py
    # scorehoi_diffusers/assets/scorehoi-synthetic --metrics model_cards/scorehoi-synthetic-metrics.json`.
    monkeypatch.chdir(REPO)
    assert card_text == render_model_card(SHIPPED.relative_to(REPO), metrics=SHIPPED_METRICS)
    card = ModelCard(card_text)
    assert card.data.datasets is None  # no fake Hub dataset ids: none of the training data is on the Hub
    assert all(metric.isidentifier() and metric == metric.lower() for metric in card.data.metrics)
    metrics = json.loads(SHIPPED_METRICS.read_text())["metrics"]
    results = {result.metric_name: result for result in card.data.eval_results}
    assert {name: result.metric_value for name, result in results.items()} == metrics
    full = results["full N=10: contact F"]
    assert (full.metric_type, full.metric_config, full.task_type, full.dataset_split) == (
        "contact_f", "full N=10", "image-to-3d", "test")
    assert {result.metric_type for result in results.values()} == set(card.data.metrics)


def test_model_card_metric_ids_and_bad_metrics(tmp_path, pipe_for_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe_for_hub.save_pretrained(tmp_path)
    card = ModelCard(render_model_card(tmp_path, metrics={"CD_human cm": 4.0, "notes": "qualitative only"}))
    assert card.data.metrics == ["cd_human_cm", "notes"]
    (result,) = card.data.eval_results  # text values are in the table, not in the model-index
    assert (result.metric_type, result.metric_value, result.metric_config) == ("cd_human_cm", 4.0, None)
    with pytest.raises(ValueError, match="metric"):
        render_model_card(tmp_path, metrics={"full: ---": 1.0})
    with pytest.raises(ValueError, match="dataset"):
        render_model_card(tmp_path, metrics={"metrics": {"a": 1.0}, "dataset": "synthetic"})
