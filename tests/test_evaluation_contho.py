"""Evaluation on BEHAVE in CONTHO's layout: the annotation's own contact labels, the object frames, the CLI."""
import json

import numpy as np
import pytest
import torch
from contho_fixture import layout, make_sample, write_bodies, write_contho_object_models, write_dataset

from scorehoi_diffusers import cli
from scorehoi_diffusers.data.behave import ANNOTATED_CONTACT, load_contho_dataset
from scorehoi_diffusers.data.dataset_objects import load_dataset_objects
from scorehoi_diffusers.data.schema import sample_to_params
from scorehoi_diffusers.evaluation import NoisyGroundTruth, evaluate
from scorehoi_diffusers.metrics import contact_precision_recall, reconstruction_contacts
from scorehoi_diffusers.models.denoiser import ScoreHOIDenoiser
from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline
from scorehoi_diffusers.schedulers.scheduling_guided_ddim import GuidedDDIMScheduler


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("contho_eval")
    bodies = write_bodies(base)
    samples = [make_sample(10, "male", "boxmedium", "side"), make_sample(11, "male", "boxmedium", "side", "Rt")]
    write_dataset(base, "behave", samples, bodies)
    write_contho_object_models(base, "behave", "boxmedium")
    roots = layout(base, "behave")
    dataset = load_contho_dataset(roots["root"], "behave", "test", body=bodies[0]["male"],
                                  object_root=roots["object_root"], image_root=roots["image_root"], progress=False)
    pipeline = ScoreHOIPipeline(ScoreHOIDenoiser(), GuidedDDIMScheduler(), bodies[0]["male"])
    pipeline.set_progress_bar_config(disable=True)
    templates = load_dataset_objects(dataset["object_name"], roots["object_root"], "behave")
    return base, roots, dataset, pipeline, templates


def test_contact_scores_use_the_annotated_labels(setup):
    _, _, dataset, pipeline, templates = setup
    exact = NoisyGroundTruth(0, 0.0, 0.0, 0.0, 0.0, 0.0)  # the estimate is the ground truth itself
    kwargs = dict(mode="regressor", initial_estimate_fn=exact, num_surface_samples=200, object_templates=templates)
    recomputed = evaluate(pipeline, dataset, contact_labels="recomputed", **kwargs)
    annotated = evaluate(pipeline, dataset, **kwargs)  # "auto": the column is there and labels every vertex
    assert recomputed["contact_labels"] == "recomputed" and annotated["contact_labels"] == "annotated"
    assert recomputed["contact_precision"] == 1.0 and recomputed["contact_recall"] == 1.0

    # Expected: every vertex of the ground-truth body within 5 cm of the object, against the file's labels.
    rows = dataset.select_columns(
        ["pose", "betas", "object_rotation", "object_translation", "camera_translation", ANNOTATED_CONTACT])[:]
    params = sample_to_params(rows)
    with torch.no_grad():
        vertices = pipeline.body_model(params, frame="camera").vertices
    predicted = reconstruction_contacts(vertices, templates["boxmedium"], params.object_rotation,
                                        params.object_translation + params.camera_translation)
    precision, recall = contact_precision_recall(predicted, np.asarray(rows[ANNOTATED_CONTACT]))
    assert annotated["contact_precision"] == pytest.approx(np.nanmean(precision), abs=1e-9)
    assert annotated["contact_recall"] == pytest.approx(np.nanmean(recall), abs=1e-9)
    assert annotated["contact_precision"] < 0.5  # the fixture's labels are not the geometry's: they were used


def test_contact_labels_need_the_matching_body(setup, fake_smplh_path):
    _, _, dataset, pipeline, templates = setup
    from scorehoi_diffusers.body import BodyModel

    other = ScoreHOIPipeline(ScoreHOIDenoiser(), GuidedDDIMScheduler(), BodyModel(model_path=str(fake_smplh_path)))
    kwargs = dict(mode="regressor", initial_estimate_fn=NoisyGroundTruth(0), num_surface_samples=50,
                  object_templates=templates, num_samples=1)
    with pytest.raises(ValueError, match=r"labels 6890 body vertices but the body model has 642"):
        evaluate(other, dataset, contact_labels="annotated", **kwargs)
    with pytest.raises(ValueError, match="contact_labels"):
        evaluate(pipeline, dataset, contact_labels="both", **kwargs)
    plain = dataset.remove_columns([ANNOTATED_CONTACT])
    with pytest.raises(ValueError, match="annotated_contact"):
        evaluate(pipeline, plain, contact_labels="annotated", **kwargs)
    assert evaluate(pipeline, plain, **kwargs)["contact_labels"] == "recomputed"


def test_cli_evaluates_behave_with_separate_roots(setup, tmp_path, capsys):
    """The shipped pipeline on the fixture, with its own (stand-in) body, as the README's command runs it."""
    _, roots, _, _, _ = setup
    arguments = ["evaluate", "--dataset", "behave", "--split", "test", "--data-root", str(roots["root"]),
                 "--object-root", str(roots["object_root"]), "--num-samples", "2", "--mode", "regressor",
                 "--batch-size", "2", "--out", str(tmp_path)]
    # The pictures are not under the annotation folder: without --image-root the command says where it looked.
    assert cli.main(arguments) == 2
    assert "`image_root`" in capsys.readouterr().err
    assert cli.main(arguments + ["--image-root", str(roots["image_root"])]) == 0
    (written,) = tmp_path.glob("behave_test_regressor_*.json")
    result = json.loads(written.read_text())[0]
    assert result["num_samples"] == 2 and result["dataset"] == "behave" and result["cd_object"] is not None
    # The stand-in body does not have SMPL-H's 6890 vertices, so the per-vertex labels cannot be used.
    assert result["contact_labels"] == "recomputed"


def test_cli_evaluates_behave_with_the_users_gendered_smplh(setup, tmp_path):
    """The README's command with `--body-model`: the shipped pipeline runs with the user's SMPL-H (its learned
    contact estimator, trained for the stand-in, falls back to proximity) and contacts are scored against the
    annotation's per-vertex labels."""
    import shutil

    base, roots, _, _, _ = setup
    smplh = tmp_path / "smplh"
    smplh.mkdir()
    for gender in ("MALE", "FEMALE"):
        shutil.copy(base / f"SMPLH_{gender}.npz", smplh)
    shutil.copy(base / "SMPLH_MALE.npz", smplh / "SMPLH_NEUTRAL.npz")  # the pipeline's own body
    out = tmp_path / "out"
    arguments = ["evaluate", "--dataset", "behave", "--split", "test", "--data-root", str(roots["root"]),
                 "--image-root", str(roots["image_root"]), "--object-root", str(roots["object_root"]),
                 "--body-model", str(smplh), "--num-samples", "2", "--mode", "full", "--cycles", "1",
                 "--batch-size", "2", "--out", str(out)]
    assert cli.main(arguments) == 0
    (written,) = out.glob("behave_test_full_*.json")
    result = json.loads(written.read_text())[0]
    assert result["contact_labels"] == "annotated" and result["num_samples"] == 2
    assert all(result[key] is not None for key in ("cd_human", "cd_object", "penetration_depth"))


def test_ground_truth_bodies_are_posed_with_each_sample_gender(tmp_path):
    """BEHAVE/InterCap were fitted with gendered SMPL-H: each ground-truth mesh uses its sample's body."""
    from conftest import make_fake_smplh_arrays

    from scorehoi_diffusers.body import BodyModel
    from scorehoi_diffusers.evaluation import _ground_truth_body
    from scorehoi_diffusers.params import HOIParams

    bodies = {}
    for seed, gender in enumerate(("male", "female")):
        path = tmp_path / f"SMPLH_{gender.upper()}.npz"
        np.savez(path, **make_fake_smplh_arrays(seed))
        bodies[gender] = BodyModel(model_path=str(path))
    params = HOIParams.identity(3)
    params.betas[:] = torch.tensor([0.5, -0.3, 0.1])[:, None]
    with torch.no_grad():
        vertices, joints = _ground_truth_body(bodies, params, ["female", "male", "Female"])
        for row, gender in enumerate(("female", "male", "female")):
            expected = bodies[gender](params[row], frame="camera")
            torch.testing.assert_close(vertices[row], expected.vertices[0], rtol=0, atol=1e-6)
            torch.testing.assert_close(joints[row], expected.joints[0], rtol=0, atol=1e-6)
    assert not torch.equal(vertices[0], vertices[1])
    with pytest.raises(ValueError, match="no body for genders \\['neutral'\\]"):
        _ground_truth_body(bodies, params, None)
