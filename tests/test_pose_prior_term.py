"""The `pose_prior` guidance term: the Gaussian pose prior's negative log-likelihood in the guidance loss."""
import dataclasses

import pytest
import torch
from test_optimization_baseline import CONFIG, bent_params
from test_pipeline import hand_contacts

from scorehoi_diffusers.guidance import GuidanceConfig, GuidanceInputs, guidance_loss
from scorehoi_diffusers.objects import load_object
from scorehoi_diffusers.optimization_baseline import GuidanceOptimization
from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline
from scorehoi_diffusers.pose_prior import GaussianPosePrior


def test_the_term_is_the_given_likelihood_weighted_and_absent_at_weight_zero_or_without_it():
    body = torch.zeros(2, 5, 3)
    nll = torch.tensor([3.0, 7.0])
    inputs = GuidanceInputs(body_points=body, object_points=body[:, :2], pose_negative_log_likelihood=nll)
    total, terms = guidance_loss(inputs, GuidanceConfig(contact=0, penetration=0, floor=0, pose_prior=0.5))
    assert set(terms) == {"pose_prior"} and torch.equal(terms["pose_prior"], nll)
    torch.testing.assert_close(total, 0.5 * nll)
    assert guidance_loss(inputs, GuidanceConfig(contact=0, penetration=0, floor=0))[1] == {}  # default weight 0
    bare = GuidanceInputs(body_points=body, object_points=body[:, :2])
    assert guidance_loss(bare, GuidanceConfig(pose_prior=1.0))[1] == {}
    with pytest.raises(ValueError, match="pose_negative_log_likelihood"):
        GuidanceInputs(body_points=body, object_points=body[:, :2], pose_negative_log_likelihood=nll[:1])
    with pytest.raises(ValueError, match="pose_prior"):
        GuidanceConfig(pose_prior=-1.0)


def test_its_gradient_is_the_weighted_gradient_of_the_priors_likelihood(untrained_pipeline):
    """∇_{x0} of the guidance with the term = ∇ without it + weight · ∇_{x0} NLL(decode(x0).body_pose)."""
    template = load_object("box")
    params = bent_params()
    x0 = untrained_pipeline.codec.encode(params)
    camera = torch.zeros(2, 3)
    contacts = hand_contacts(untrained_pipeline.body_model, params)

    def gradient(weight):
        config = dataclasses.replace(CONFIG, pose_prior=weight)
        return untrained_pipeline.guidance_x0_gradient(x0, template, camera, contacts, {}, config)

    with torch.enable_grad():
        leaf = x0.clone().requires_grad_(True)
        nll = GaussianPosePrior.from_file()(untrained_pipeline.codec.decode(leaf).body_pose)
        (expected,) = torch.autograd.grad(nll.sum(), leaf)
    torch.testing.assert_close(gradient(0.3) - gradient(0.0), 0.3 * expected, rtol=1e-4, atol=1e-5)
    assert expected.abs().sum() > 0


def test_the_pipeline_reports_the_term_and_pulls_the_pose_towards_training_poses(untrained_pipeline):
    def refine(weight):
        config = dataclasses.replace(CONFIG, scale=1.0, pose_prior=weight)
        return untrained_pipeline(initial_params=bent_params(), object="box", num_cycles=2, guidance_config=config,
                        generator=torch.Generator().manual_seed(0), output_type="pt")

    without, with_prior = refine(0.0), refine(5.0)
    prior = GaussianPosePrior.from_file()
    assert (prior(with_prior.params.body_pose) < prior(without.params.body_pose)).all()
    assert "pose_prior" not in without.guidance_term_history
    assert with_prior.guidance_term_history["pose_prior"].shape == (2, 2)


def test_the_optimisation_baseline_weighs_the_prior_by_its_own_weight_only(untrained_pipeline):
    """The guidance's `pose_prior` weight is the full method's: the baseline leaves it out of its loss."""
    def optimise(guidance_weight):
        config = dataclasses.replace(CONFIG, pose_prior=guidance_weight)
        return GuidanceOptimization(untrained_pipeline, 1e-4, 0.0)(
            initial_params=bent_params(), object="box", num_cycles=1, guidance_config=config
        )

    assert torch.equal(optimise(0.0).body_vertices, optimise(100.0).body_vertices)


def test_the_shipped_pipeline_weighs_the_pose_prior_with_keypoints_only():
    """The shipped defaults: 0.01 with keypoints (chosen on validation scenes by ``training/choose_guidance.py``'s
    rule), 0 without them (not asked)."""
    from scorehoi_diffusers.cli import DEFAULT_PIPELINE

    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    assert pipe.default_guidance_config(keypoints=True).pose_prior == 0.01
    assert pipe.default_guidance_config().pose_prior == 0.0
