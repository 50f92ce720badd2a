"""The cases whose outputs must stay bit-identical across refactors (see ``make_golden.py``)."""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "scorehoi_diffusers" / "assets" / "scorehoi-synthetic"
EXAMPLE = REPO / "scorehoi_diffusers" / "assets" / "examples" / "synthetic_ball"
MACHINE_KEY = "meta/machine"


def machine() -> str:
    """What decides float32 rounding on a CPU: the processor, torch's build and kernel set, and its thread count.

    Another processor (a new CI machine) runs other kernels and differs in the last bits, so the outputs are only
    bit-identical to a recording made where this string is the same."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return (f"{model}; torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
            f"{torch.get_num_threads()} threads")


def _example():
    import json

    spec = json.loads((EXAMPLE / "example.json").read_text())
    return {
        "image": np.asarray(Image.open(EXAMPLE / spec["image"]).convert("RGB")),
        "human_mask": np.asarray(Image.open(EXAMPLE / spec["human_mask"]).convert("L")),
        "object_mask": np.asarray(Image.open(EXAMPLE / spec["object_mask"]).convert("L")),
        "intrinsics": np.asarray(spec["intrinsics"], dtype=np.float32),
        "object": spec["object"],
    }


def _record(prefix: str, output, arrays: dict[str, np.ndarray]) -> None:
    for name, value in output.params.items():
        arrays[f"{prefix}/params/{name}"] = value
    for name, value in output.initial_params.items():
        arrays[f"{prefix}/initial_params/{name}"] = value
    for name, value in output.contacts.items():
        arrays[f"{prefix}/contacts/{name}"] = value
    arrays[f"{prefix}/body_vertices"] = output.body_vertices
    arrays[f"{prefix}/object_vertices"] = output.object_vertices
    arrays[f"{prefix}/guidance_loss_history"] = output.guidance_loss_history


def pipeline_cases(pipe, learned_contacts: dict) -> dict[str, np.ndarray]:
    """Pipeline outputs on the shipped weights. ``learned_contacts`` holds the keyword arguments that make
    ``pipe(image=...)`` use the learned contact estimator (none once the pipeline does so by default)."""
    from scorehoi_diffusers.contacts import ProximityContactEstimator

    example = _example()
    arrays: dict[str, np.ndarray] = {}
    common = dict(num_cycles=2, output_type="np", **example)
    _record("learned", pipe(**common, **learned_contacts), arrays)
    proximity = pipe(**common, contact_estimator=ProximityContactEstimator())
    _record("proximity", proximity, arrays)
    from scorehoi_diffusers.params import HOIParams

    initial = HOIParams(**{k: torch.from_numpy(v) for k, v in proximity.initial_params.items()})
    stochastic = pipe(initial_params=initial, object="ball", num_cycles=1, eta=0.5,
                      generator=torch.Generator().manual_seed(0), output_type="np")
    _record("stochastic", stochastic, arrays)
    return arrays


def data_cases() -> dict[str, np.ndarray]:
    """Synthetic scenes (parameters and a small render) and the body model on them."""
    from scorehoi_diffusers.body import BodyModel
    from scorehoi_diffusers.data.synthetic import generate_samples, sample_params

    arrays: dict[str, np.ndarray] = {}
    body = BodyModel()
    params, contacts, _ = sample_params(6, seed=0, split="test", body=body)
    for name in ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "betas",
                 "object_rotation", "object_translation", "camera_translation"):
        arrays[f"synthetic/params/{name}"] = getattr(params, name).numpy()
    for name, value in contacts.items():
        arrays[f"synthetic/contacts/{name}"] = value.numpy()
    with torch.no_grad():
        points, joints = body.skin_subset(params)
        full = body(params)
    arrays["body/skin_subset/points"] = points.numpy()
    arrays["body/skin_subset/joints"] = joints.numpy()
    arrays["body/forward/vertices"] = full.vertices.numpy()
    arrays["body/forward/joints"] = full.joints.numpy()
    for i, sample in enumerate(generate_samples(2, seed=0, image_size=64, split="test", body=body)):
        arrays[f"synthetic/render{i}/image"] = np.asarray(sample["image"])
        arrays[f"synthetic/render{i}/human_mask"] = np.asarray(sample["human_mask"])
        arrays[f"synthetic/render{i}/object_mask"] = np.asarray(sample["object_mask"])
    return arrays


def load_shipped():
    from scorehoi_diffusers import ScoreHOIPipeline

    pipe = ScoreHOIPipeline.from_pretrained(PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def compute_cases(learned_contacts: dict | None = None) -> dict[str, np.ndarray]:
    """Every case; the "learned" one runs ``pipe(image=...)`` with its defaults unless `learned_contacts` is given."""
    pipe = load_shipped()
    return {**pipeline_cases(pipe, learned_contacts or {}), **data_cases()}
