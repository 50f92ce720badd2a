"""Regressor and contact estimator speed on this machine's CPU: seconds per image at batch 1 and 8 (eval, no grad).

Reports the median of several timed repeats (the CPU may be shared), and parameter counts.

Run: .venv/bin/python benchmarks/bench_regressor.py [--size 256] [--num-body-points 431] [--repeats 10]
"""
import argparse
import statistics
import time

import torch

from scorehoi_diffusers.models.contact_estimator import ScoreHOIContactEstimator
from scorehoi_diffusers.models.regressor import ScoreHOIRegressor


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN picks its kernels on the first call of a shape)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count(module: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels")
    parser.add_argument("--num-body-points", type=int, default=431, help="downsampled body vertices S")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    with torch.random.fork_rng():
        torch.manual_seed(0)
        regressor = ScoreHOIRegressor().eval()
        estimator = ScoreHOIContactEstimator(num_body_points=args.num_body_points).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, crop {args.size}², "
          f"S = {args.num_body_points}")
    print(f"regressor: {count(regressor)} parameters (backbone {count(regressor.backbone)}); "
          f"contact estimator: {count(estimator)}")

    generator = torch.Generator().manual_seed(0)
    size = args.size
    K = torch.tensor([[1.5 * size, 0.0, (size - 1) / 2], [0.0, 1.5 * size, (size - 1) / 2], [0.0, 0.0, 1.0]])
    for batch in (1, 8):
        pixels = torch.randn(batch, 5, size, size, generator=generator)
        keypoints = 0.3 * torch.randn(batch, 64, 3, generator=generator)
        intrinsics = K.expand(batch, 3, 3)
        body = 0.4 * torch.randn(batch, args.num_body_points, 3, generator=generator)
        objects = 0.2 * torch.randn(batch, 64, 3, generator=generator)
        camera = torch.tensor([0.0, 0.0, 3.0]).expand(batch, 3)
        with torch.no_grad():
            feature_map = regressor(pixels, keypoints, intrinsics).feature_map
            regress = median_seconds(lambda: regressor(pixels, keypoints, intrinsics), args.repeats)
            backbone = median_seconds(lambda: regressor.backbone(pixels), args.repeats)
            contact = median_seconds(
                lambda: estimator(body, objects, camera, intrinsics, feature_map, (size, size)), args.repeats
            )
        print(f"batch {batch}: regressor {regress / batch * 1e3:6.1f} ms/img (backbone {backbone / batch * 1e3:5.1f}) "
              f"| contact estimator {contact / batch * 1e3:6.1f} ms/img")


if __name__ == "__main__":
    main()
