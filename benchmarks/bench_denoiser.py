"""Speed of ScoreHOIDenoiser on this machine: ms per forward with a cached and an uncached condition.

Also times the denoiser + scheduler part of the refinement loop (10 cycles of inversion to t_start = 50 and
denoising back with stride 5, 200 forwards; guidance not included).

Usage: python benchmarks/bench_denoiser.py [--image-tokens N] [--hidden-size H] [--num-layers L]
    [--mlp-ratio R] [--device cpu]
"""

import argparse
import time

import torch

from scorehoi_diffusers.models import ScoreHOIDenoiser
from scorehoi_diffusers.params import X0_DIM
from scorehoi_diffusers.schedulers import GuidedDDIMScheduler


def _ms_per_call(fn, device: torch.device, repeats: int = 40, min_seconds: float = 0.05, warmup: int = 10) -> float:
    """The best of `repeats` timing windows of at least `min_seconds` each: on a shared machine the other loads
    only ever add time, so the minimum is the model's own cost (as `timeit` recommends)."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    windows = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while calls == 0 or time.perf_counter() - start < min_seconds:
            fn()
            calls += 1
        sync()
        windows.append((time.perf_counter() - start) / calls * 1e3)
    return min(windows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-tokens", type=int, default=128, help="number of image tokens Ni")
    parser.add_argument("--keypoints", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=None)
    parser.add_argument("--num-layers", type=int, default=None)
    parser.add_argument("--mlp-ratio", type=float, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    overrides = {
        k: v
        for k, v in (("hidden_size", args.hidden_size), ("num_layers", args.num_layers), ("mlp_ratio", args.mlp_ratio))
        if v is not None
    }
    device = torch.device(args.device)
    model = ScoreHOIDenoiser(**overrides).to(device).eval()
    scheduler = GuidedDDIMScheduler()
    generator = torch.Generator().manual_seed(0)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"config: {dict((k, v) for k, v in model.config.items() if not k.startswith('_'))}")
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.3f} M")
    print(f"condition: {args.image_tokens} image tokens + {args.keypoints} keypoints")

    for batch in (1, 8):
        sample = torch.randn(batch, X0_DIM, generator=generator).to(device)
        image = torch.randn(batch, args.image_tokens, model.config.image_feature_dim, generator=generator).to(device)
        keypoints = torch.randn(batch, args.keypoints, 3, generator=generator).to(device)
        with torch.inference_mode():
            condition = model.encode_condition(image, keypoints)
            cached = _ms_per_call(lambda: model(sample, 25, condition=condition), device)
            uncached = _ms_per_call(lambda: model(sample, 25, image_tokens=image, object_keypoints=keypoints), device)
            encode = _ms_per_call(lambda: model.encode_condition(image, keypoints), device)
            refinement = _ms_per_call(lambda: _refine(model, scheduler, sample, condition), device, 3, 0.0, 1)
        print(
            f"batch {batch}: {cached:.3f} ms/forward cached condition, {uncached:.3f} ms uncached "
            f"(encode_condition {encode:.3f} ms); 10 refinement cycles {refinement:.0f} ms "
            f"= {refinement / batch / 1e3:.3f} s/image"
        )


def _refine(model, scheduler, sample, condition, cycles: int = 10):
    scheduler.set_refinement_timesteps(t_start=50, stride=5)
    for _ in range(cycles):
        for t in scheduler.inversion_timesteps:
            sample = scheduler.invert_step(model(sample, t, condition=condition).sample, t, sample).next_sample
        for t in scheduler.timesteps:
            sample = scheduler.step(model(sample, t, condition=condition).sample, t, sample).prev_sample
    return sample


if __name__ == "__main__":
    main()
