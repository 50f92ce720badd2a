"""What a user waits for: ``scorehoi reconstruct`` wall time per photo, and batch-1 pipeline latency.

Measured:

* the command's wall time per photo, start-up included, for one photo and for a 20-photo folder (the shipped
  examples repeated, listed in a ``manifest.json``), figures and files included;
* where that time goes, for both runs (the command run in this process with its parts timed): start-up (a
  fresh interpreter importing what ``reconstruct`` needs), inputs (reading and checking pictures), load (the
  pipeline), template (building the object template), regressor (crop and initial estimate), cycles (the
  refinement cycles and contact refreshes), meshes (full body meshes), figures (overlay and before/after
  figure), files (PNG, .glb and JSON writing), other;
* ``pipeline(image=...)`` latency at batch 1 for N = 2 and N = 10 (median of ``--repeats`` calls), and at
  batch 8 for N = 2 and N = 10 per image, with ``--threads`` torch threads and, in the same run, with each of
  ``--compare-threads``; and where one call's time goes (regressor, contact estimator, denoiser, guidance
  gradient, scheduler, the rest). The batch-8 speed-up over the release-shaped baseline is
  ``bench_refine.py``'s (the baseline takes minutes).

Usage: OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_cli.py [--photos 20] [--repeats 3] [--threads 1]
The machine's load average is printed with the results: on a shared machine, read the numbers with it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

TARGETS = {"folder_seconds_per_photo": 3.0, "batch1_n2": 0.3, "batch1_n10": 1.0, "batch8_n10_per_image": 0.25}
PARTS = ("start-up", "inputs", "load", "template", "regressor", "cycles", "meshes", "figures", "files", "other")


class Breakdown:
    """Exclusive time per part: a timed function's time less that of the timed functions it calls."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []
        self._patches: list[tuple] = []

    def time(self, owner, name: str, part: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            self._inner.append(0.0)
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[part] += elapsed - self._inner.pop()
                if self._inner:
                    self._inner[-1] += elapsed

        self._patches.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)


def timed_command(argv: list[str]) -> dict[str, float]:
    """Run ``scorehoi ARGV`` in this process with its parts timed (seconds per part, and its wall time)."""
    import scorehoi_diffusers.cli as cli
    import scorehoi_diffusers.export as export
    import scorehoi_diffusers.objects as objects
    from scorehoi_diffusers.body import BodyModel
    from scorehoi_diffusers.image_processor import HOIImageProcessor
    from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline

    objects._load_cached.cache_clear()  # a fresh process builds its templates
    breakdown = Breakdown()
    for owner, name, part in [
        (cli, "_read_image", "inputs"), (HOIImageProcessor, "preprocess", "inputs"),
        (cli, "_load_pipeline", "load"), (objects, "load_object", "template"),
        (ScoreHOIPipeline, "prepare_initial_estimate", "regressor"), (ScoreHOIPipeline, "__call__", "cycles"),
        (BodyModel, "forward", "meshes"), (export, "bounded_photo", "figures"), (export, "overlay", "figures"),
        (export, "multi_view_figure", "figures"), (export, "save_png", "files"), (export, "export_scene", "files"),
        (export, "write_json", "files"),
    ]:
        breakdown.time(owner, name, part)
    start = time.perf_counter()
    try:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            code = cli.main(argv)
    finally:
        breakdown.restore()
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"scorehoi {' '.join(argv)} failed with status {code}")
    parts = dict(breakdown.seconds)
    parts["other"] = wall - sum(parts.values())
    return {**parts, "wall": wall}


def startup_seconds() -> float:
    """A fresh interpreter importing what ``scorehoi reconstruct`` needs (the pipeline and the export)."""
    command = "import scorehoi_diffusers.cli, scorehoi_diffusers.export"  # the export imports the pipeline
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", command], check=True)
    return time.perf_counter() - start


def command_wall_seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "scorehoi_diffusers.cli", *argv], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-2000:])
    return time.perf_counter() - start


def photo_folder(folder: Path, count: int) -> Path:
    """``count`` photos, the shipped examples in turn, listed in ``folder/manifest.json``."""
    from scorehoi_diffusers.cli import DEFAULT_EXAMPLES

    examples = []
    for spec_file in sorted(DEFAULT_EXAMPLES.glob("*/example.json")):
        spec = json.loads(spec_file.read_text())
        entry = {key: str(spec_file.parent / spec[key]) for key in ("image", "human_mask", "object_mask")
                 if key in spec}
        entry.update({key: spec[key] for key in ("object", "object_box", "person_box") if key in spec})
        if "intrinsics" in spec:
            entry["focal"] = spec["intrinsics"][0][0]
        examples.append(entry)
    photos = [{**examples[i % len(examples)], "name": f"photo_{i:02d}"} for i in range(count)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(photos, indent=1))
    return folder


def astronaut_inputs(batch: int) -> dict:
    """``pipeline(image=...)`` arguments for ``batch`` copies of the astronaut photo (masks given, no keypoints)."""
    import numpy as np
    from PIL import Image

    from scorehoi_diffusers.cli import DEFAULT_EXAMPLES

    example = DEFAULT_EXAMPLES / "astronaut"
    image = np.asarray(Image.open(example / "image.jpg").convert("RGB"))
    masks = [np.asarray(Image.open(example / name).convert("L")) for name in ("human_mask.png", "object_mask.png")]
    return dict(image=[image] * batch, human_mask=[masks[0]] * batch, object_mask=[masks[1]] * batch, object="ball")


def pipeline_latency(repeats: int, pipe=None) -> dict[str, float]:
    """Median seconds per image of ``pipeline(image=...)`` on the astronaut photo (the shipped pipeline unless
    ``pipe`` is given, e.g. one with compiled parts)."""
    import torch

    from scorehoi_diffusers.cli import DEFAULT_PIPELINE
    from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline

    if pipe is None:
        pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
        pipe.set_progress_bar_config(disable=True)

    def seconds(batch: int, cycles: int) -> float:
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            pipe(**astronaut_inputs(batch), num_cycles=cycles, generator=torch.Generator().manual_seed(0))
            runs.append((time.perf_counter() - start) / batch)
        return statistics.median(runs)

    seconds(1, 1)  # warm-up: first calls allocate and build the template
    return {"batch1_n2": seconds(1, 2), "batch1_n10": seconds(1, 10), "batch8_n10_per_image": seconds(8, 10),
            "batch8_n2_per_image": seconds(8, 2)}


PIPELINE_PARTS = ("regressor", "contacts", "denoiser", "guidance", "scheduler", "other")


def pipeline_parts(batch: int, cycles: int) -> dict[str, float]:
    """Seconds per image of one ``pipeline(image=...)`` call on the astronaut photo, by part: the regressor (crop
    and initial estimate), the learned contact estimator (1 + N passes), the denoiser (2 passes per step), the
    guidance gradient (one per guided step), the scheduler's steps, and the rest."""
    import torch

    from scorehoi_diffusers.cli import DEFAULT_PIPELINE
    from scorehoi_diffusers.models.contact_estimator import ScoreHOIContactEstimator
    from scorehoi_diffusers.pipelines.noise_prediction import NoisePrediction
    from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline
    from scorehoi_diffusers.schedulers.scheduling_guided_ddim import GuidedDDIMScheduler

    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    call = lambda: pipe(**astronaut_inputs(batch), num_cycles=cycles,  # noqa: E731
                        generator=torch.Generator().manual_seed(0))
    call()  # warm-up
    breakdown = Breakdown()
    for owner, name, part in [
        (ScoreHOIPipeline, "prepare_initial_estimate", "regressor"), (ScoreHOIContactEstimator, "forward", "contacts"),
        (NoisePrediction, "__call__", "denoiser"), (ScoreHOIPipeline, "guidance_gradient", "guidance"),
        (GuidedDDIMScheduler, "step", "scheduler"), (GuidedDDIMScheduler, "invert_step", "scheduler"),
        (ScoreHOIPipeline, "__call__", "other"),
    ]:
        breakdown.time(owner, name, part)
    try:
        call()
    finally:
        breakdown.restore()
    return {part: breakdown.seconds[part] / batch for part in PIPELINE_PARTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads, for the command (its --threads) and the pipeline latency")
    parser.add_argument("--compare-threads", type=int, nargs="*", default=[2],
                        help="also time the pipeline latency with these thread counts, in the same run")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from scorehoi_diffusers.cli import DEFAULT_EXAMPLES

    example = DEFAULT_EXAMPLES / "astronaut"
    one = [str(example / "image.jpg"), "--human-mask", str(example / "human_mask.png"), "--object-mask",
           str(example / "object_mask.png"), "--object", "ball"]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as temp:
        folder = photo_folder(Path(temp) / "photos", args.photos)
        runs = {"1 photo": one + ["--threads", str(args.threads)],
                f"{args.photos}-photo folder": [str(folder), "--threads", str(args.threads)]}
        walls = {label: command_wall_seconds(["reconstruct", *argv, "--out", f"{temp}/cli{i}"])
                 for i, (label, argv) in enumerate(runs.items())}
        startup = startup_seconds()
        parts = {label: timed_command(["reconstruct", *argv, "--out", f"{temp}/in{i}"])
                 for i, (label, argv) in enumerate(runs.items())}
    latency = pipeline_latency(args.repeats)
    parts_by_setting = {(batch, cycles): pipeline_parts(batch, cycles) for batch, cycles in ((1, 10), (8, 10))}
    compared = {}
    for threads in args.compare_threads:
        torch.set_num_threads(threads)
        compared[threads] = pipeline_latency(args.repeats)
    torch.set_num_threads(args.threads)
    load_after = os.getloadavg()[0]

    counts = {"1 photo": 1, f"{args.photos}-photo folder": args.photos}
    print(f"torch threads {torch.get_num_threads()}, load average {load_before:.1f} before, "
          f"{load_after:.1f} after, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    print("\nscorehoi reconstruct, wall seconds per photo (start-up, loading, figures and files included):")
    for label, wall in walls.items():
        print(f"  {label:18s} {wall / counts[label]:6.2f} s/photo   ({wall:.1f} s in all)")
    print("\nwhere the time goes (seconds per run; start-up measured apart):")
    print("  " + " ".join(f"{part:>9s}" for part in (*PARTS, "total")))
    for label, seconds in parts.items():
        row = {"start-up": startup, **seconds}
        row["total"] = startup + seconds["wall"]
        print("  " + " ".join(f"{row.get(part, 0.0):9.2f}" for part in (*PARTS, "total")) + f"   {label}")
    print(f"\npipeline(image=...) seconds per image (median), {args.threads} thread(s)"
          + "".join(f" | {threads} threads" for threads in compared) + ":")
    for key, value in latency.items():
        print(f"  {key:22s} {value:6.3f} s" + "".join(f" | {other[key]:6.3f} s" for other in compared.values()))
    print(f"\nwhere one pipeline(image=...) call's time goes, seconds per image, {args.threads} thread(s):")
    print("  " + " ".join(f"{part:>9s}" for part in PIPELINE_PARTS))
    for (batch, cycles), seconds in parts_by_setting.items():
        print("  " + " ".join(f"{seconds[part]:9.3f}" for part in PIPELINE_PARTS) + f"   batch {batch}, N = {cycles}")
    print("\ntargets:")
    measured = {"folder_seconds_per_photo": walls[f"{args.photos}-photo folder"] / args.photos, **latency}
    for key, target in TARGETS.items():
        verdict = "met" if measured[key] <= target else "MISSED"
        print(f"  {key:26s} {measured[key]:6.3f} s  target <= {target} s  {verdict}")


if __name__ == "__main__":
    main()
