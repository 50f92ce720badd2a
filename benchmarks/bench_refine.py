"""Refinement speed: seconds per image of ScoreHOIPipeline vs. a release-shaped loop, on this machine's CPU.

Ours: the default ScoreHOIDenoiser config, the stand-in body, a shipped primitive object, a noisy-GT initial
estimate of synthetic test scenes (or a random one), N = 2 and N = 10 cycles at batch 1 and 8, the whole
``pipeline(...)`` call timed (contact refresh and final meshes included). The baseline
(:mod:`release_baseline`) runs on the same inputs; it is slow, so ``--baseline-cycles`` cycles are timed and
the per-cycle time is extrapolated linearly to N (cycles are identical, so the loop is linear in N).
Peak memory is the process's peak resident set size during one batch-8 refinement (the kernel's mark
is reset just before it), and likewise over the baseline runs. When a target is missed (or with
``--profile``) one batch-8, N = 10 call is profiled.

Usage: python benchmarks/bench_refine.py [--threads 2] [--baseline-cycles 2] [--initial synthetic|random]
On a shared machine run it with ``OMP_WAIT_POLICY=PASSIVE`` (or ``--threads 1``): with spinning OpenMP
threads a busy core makes every small torch op wait, several times slower.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from release_baseline import ReleaseShapedDenoiser, ReleaseShapedRefiner  # noqa: E402

from scorehoi_diffusers.body import BodyModel  # noqa: E402
from scorehoi_diffusers.contacts import Contacts, ProximityContactEstimator, ReconstructionState  # noqa: E402
from scorehoi_diffusers.data.schema import params_to_fields  # noqa: E402
from scorehoi_diffusers.evaluation import NoisyGroundTruth  # noqa: E402
from scorehoi_diffusers.guidance import guidance_loss  # noqa: E402
from scorehoi_diffusers.models.denoiser import ScoreHOIDenoiser  # noqa: E402
from scorehoi_diffusers.objects import ObjectTemplate, load_object  # noqa: E402
from scorehoi_diffusers.params import HOIParamCodec, HOIParams, axis_angle_to_matrix  # noqa: E402
from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline  # noqa: E402
from scorehoi_diffusers.schedulers.scheduling_guided_ddim import GuidedDDIMScheduler  # noqa: E402

RELEASE_CYCLES = 20
TARGETS = {"n10_seconds": 0.5, "n2_seconds": 0.12, "speedup": 10.0}  # at batch 8
IMAGE_TOKENS = 64

# (label, function) of the pieces the profile attributes time to.
PROFILE_PIECES = (
    ("denoiser forward", ScoreHOIDenoiser.forward),
    ("  (condition encoding, once per call)", ScoreHOIDenoiser.encode_condition),
    ("guided gradient (all of it)", ScoreHOIPipeline.guidance_gradient),
    ("  x0 decode (6D → matrices)", HOIParamCodec.decode),
    ("  subset skinning", BodyModel.skin_subset),
    ("  object SDF lookup", ObjectTemplate.signed_distance_posed),
    ("  guidance terms (forward)", guidance_loss),
    ("  guidance backward (autograd.grad)", torch.autograd.grad),
    ("scheduler step (guided DDIM)", GuidedDDIMScheduler.step),
    ("scheduler invert_step", GuidedDDIMScheduler.invert_step),
    ("contact re-estimation", ProximityContactEstimator.__call__),
    ("final full meshes (smplx)", BodyModel.forward),
)


def _profile_key_matches(key, piece) -> bool:
    """Whether a pstats key ``(file, line, name)`` is ``piece``."""
    code = piece.__code__
    return (key[0], key[1], key[2]) == (code.co_filename, code.co_firstlineno, code.co_name)


def machine_description() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    # Spinning OpenMP threads (the default wait policy) are what a busy machine punishes most.
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "default")
    return (f"{model}, {os.cpu_count()} logical cores, torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads (OMP_WAIT_POLICY {wait_policy}), Python {platform.python_version()}; load average {load}")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise OSError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs``), so the next peak is that of what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size in MB since the last :func:`reset_peak_rss` (else since start)."""
    try:
        return _status_mb("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def current_rss_mb() -> float:
    try:
        return _status_mb("VmRSS")
    except OSError:
        return float("nan")


def initial_estimates(kind: str, batch: int, body: BodyModel, template, seed: int = 0):
    """``(initial HOIParams, Contacts)`` of ``batch`` samples: noisy-GT synthetic scenes or random poses."""
    if kind == "synthetic":
        from scorehoi_diffusers.data.synthetic import sample_params

        params, contacts, _ = sample_params(batch, seed=seed, body=body, objects=[template.name], split="test")
        fields = params_to_fields(params)
        fields["index"] = list(range(batch))
        estimate = NoisyGroundTruth(seed=seed)(fields)[0]
        return estimate, Contacts(contacts["human"], contacts["object"], contacts["floor"])
    generator = torch.Generator().manual_seed(seed)
    params = HOIParams.identity(batch)
    params.body_pose = axis_angle_to_matrix(0.2 * torch.randn(batch, 21, 3, generator=generator))
    params.object_translation = torch.tensor([0.0, 0.0, 0.3]) + 0.05 * torch.randn(batch, 3, generator=generator)
    body_points, _ = body.skin_subset(params)
    object_points = template.pose(template.keypoints, params.object_rotation, params.object_translation)
    sdf = template.signed_distance_posed(body_points, params.object_rotation, params.object_translation)
    state = ReconstructionState(params, body_points, object_points, sdf, torch.tensor([0.0, -1.0, 0.0]))
    return params, ProximityContactEstimator()(state)


def best_of(fn, repeats: int) -> float:
    """Fastest of ``repeats`` runs: on a shared machine other loads only ever add time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def profile_call(fn) -> None:
    """cProfile one call; print cumulative seconds of the pieces in PROFILE_PIECES and the top functions."""
    wall = best_of(fn, 1)
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = max(v[3] for k, v in stats.stats.items() if k[2] == "__call__" and "pipeline_scorehoi" in k[0])
    print(f"\nProfile of one batch-8, N = 10 call: {wall:.3f} s unprofiled, {total:.3f} s under cProfile "
          "(cumulative seconds; indented rows are inside the row above them, not exclusive)")
    for label, piece in PROFILE_PIECES:
        matches = [v for k, v in stats.stats.items() if _profile_key_matches(k, piece)]
        if not matches:
            continue
        calls = sum(v[1] for v in matches)
        seconds = sum(v[3] for v in matches)
        print(f"  {label:42s} {seconds:7.3f} s  {100 * seconds / total:5.1f} %  ({calls} calls)")
    print("\nTop 12 functions by own time:")
    stats.sort_stats("tottime").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cycles", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--baseline-cycles", type=int, default=2,
                        help="cycles of the baseline actually timed per batch size (extrapolated linearly)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of ours per setting (the best is kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--object", default="box")
    parser.add_argument("--initial", choices=["synthetic", "random"], default="synthetic",
                        help="noisy-GT synthetic test scenes, or random poses with the object in front")
    parser.add_argument("--profile", action="store_true", help="profile even when the targets are met")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # the random baseline weights; timing does not depend on them

    print(f"Machine: {machine_description()}")
    body = BodyModel()
    template = load_object(args.object)
    pipeline = ScoreHOIPipeline(ScoreHOIDenoiser(), GuidedDDIMScheduler(), body)
    pipeline.set_progress_bar_config(disable=True)
    denoiser_params = sum(p.numel() for p in pipeline.denoiser.parameters())
    print(f"Ours: ScoreHOIDenoiser default config ({denoiser_params / 1e6:.2f} M parameters), stand-in body "
          f"({body.num_vertices} vertices, {body.num_downsampled} downsampled), object {template.name!r} "
          f"({template.vertices.shape[0]} vertices), {args.initial} initial estimate, {IMAGE_TOKENS} image tokens")

    # One set of inputs; smaller batches are its first rows.
    count = max(args.batch_sizes)
    generator = torch.Generator().manual_seed(0)
    params, contacts = initial_estimates(args.initial, count, body, template)
    tokens = torch.randn(count, IMAGE_TOKENS, pipeline.denoiser.config.image_feature_dim, generator=generator)
    feature = torch.randn(count, 2048, generator=generator)
    inputs = {
        batch: (params[:batch], Contacts(contacts.human[:batch], contacts.object[:batch], contacts.floor[:batch]),
                tokens[:batch], feature[:batch])
        for batch in args.batch_sizes
    }

    def ours(batch: int, cycles: int):
        params, contacts, tokens, _ = inputs[batch]
        return lambda: pipeline(initial_params=params, object=template, contacts=contacts, image_tokens=tokens,
                                num_cycles=cycles)

    big = max(args.batch_sizes)
    resident = current_rss_mb()
    exact = reset_peak_rss()
    ours(big, max(args.cycles))()  # also the warm-up of the largest batch
    print(f"Peak RSS of one batch-{big}, N = {max(args.cycles)} refinement: {peak_rss_mb():.0f} MB "
          f"(resident before it: {resident:.0f} MB" + (")" if exact else "; peak since start, clear_refs failed)"))

    results = {}
    for batch in args.batch_sizes:
        ours(batch, 1)()  # warm-up: allocator, kernels
        for cycles in args.cycles:
            results[batch, cycles] = best_of(ours(batch, cycles), args.repeats) / batch
            print(f"ours      batch {batch:2d}  N = {cycles:2d}: {results[batch, cycles]:.4f} s/image", flush=True)

    per_cycle = {}
    if not args.skip_baseline:
        refiner = ReleaseShapedRefiner(body, ReleaseShapedDenoiser())
        baseline_params = sum(p.numel() for p in refiner.denoiser.parameters())
        reset_peak_rss()
        print(f"\nBaseline: release-shaped loop, {baseline_params / 1e6:.1f} M-parameter residual MLP, full SMPL-H "
              f"forward + backward per guided step, per-sample downsampling loop; {args.baseline_cycles} cycle(s) "
              "timed per batch size, extrapolated linearly to N cycles")
        for batch in args.batch_sizes:
            params, contacts, _, feature = inputs[batch]
            run = lambda cycles: refiner(params, template, contacts, feature, num_cycles=cycles)  # noqa: E731
            run(0)  # warm-up: builds the full meshes once
            seconds = best_of(lambda: run(args.baseline_cycles), 1)
            per_cycle[batch] = seconds / args.baseline_cycles / batch
            print(f"baseline  batch {batch:2d}: {per_cycle[batch]:.4f} s/image per cycle (timed "
                  f"{args.baseline_cycles} cycles: {seconds:.2f} s per batch); release default N = {RELEASE_CYCLES}: "
                  f"{per_cycle[batch] * RELEASE_CYCLES:.3f} s/image (extrapolated)", flush=True)
        print(f"Peak RSS of the baseline runs: {peak_rss_mb():.0f} MB")

        print("\n| batch | N | ours s/img | baseline s/img (extrapolated) | ours / baseline | speed-up |")
        print("|---|---|---|---|---|---|")
        for (batch, cycles), seconds in results.items():
            baseline = per_cycle[batch] * cycles
            print(f"| {batch} | {cycles} | {seconds:.4f} | {baseline:.3f} | {seconds / baseline:.4f} | "
                  f"{baseline / seconds:.1f}x |")

    missed = []
    if (big, 10) in results:
        if results[big, 10] > TARGETS["n10_seconds"]:
            missed.append(f"N=10 {results[big, 10]:.3f} s/img > {TARGETS['n10_seconds']}")
        if big in per_cycle and per_cycle[big] * 10 / results[big, 10] < TARGETS["speedup"]:
            missed.append(f"speed-up {per_cycle[big] * 10 / results[big, 10]:.1f}x < {TARGETS['speedup']}x")
    if (big, 2) in results and results[big, 2] > TARGETS["n2_seconds"]:
        missed.append(f"N=2 {results[big, 2]:.3f} s/img > {TARGETS['n2_seconds']}")
    print(f"\nTargets at batch {big}: N=10 <= {TARGETS['n10_seconds']} s/img, N=2 <= {TARGETS['n2_seconds']} "
          f"s/img, >= {TARGETS['speedup']:.0f}x the baseline: "
          + ("MISSED: " + "; ".join(missed) if missed else "met"))
    if missed or args.profile:
        profile_call(ours(big, 10))
    print(f"\nLoad average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"(above {os.cpu_count()} means other processes shared the cores and slowed every number)")


if __name__ == "__main__":
    main()
