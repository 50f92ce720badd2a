"""Throughput of the synthetic HOI generator: parameter-only samples/s and rendered samples/s.

Usage:
    python benchmarks/bench_synthetic.py [--processes 2] [--num-params 1024] [--num-rendered 64]
                                         [--image-size 256] [--contact-sheet docs/synthetic_contact_sheet.png]

Work is split over ``--processes`` worker processes (one torch thread each, the way ``generate_dataset``'s
``num_proc`` runs); worker start-up and the one-off loading of the body and object templates are excluded.
Rendered samples are fully encoded (PNG images, schema features), as a dataset stores them. With
``--contact-sheet`` it also writes the contact sheet shipped in the docs: the first sample of 16 different
interactions of seed 0. Besides wall-clock rates it prints samples per CPU second of one worker, which other
load on the machine barely changes (N idle cores give about N times that).
"""
import argparse
import multiprocessing
import time


def _warm_up(_):
    import torch

    torch.set_num_threads(1)
    from scorehoi_diffusers.data import synthetic

    synthetic.sample_params(4, seed=12345)
    next(synthetic.generate_samples(1, seed=12345, image_size=64))
    return True


def _parameters(job):
    from scorehoi_diffusers.data import synthetic

    start, count = job
    cpu = time.process_time()
    params, _, _ = synthetic.sample_params(count, seed=0, start=start)
    return params.batch_size, time.process_time() - cpu


def _rendered(job):
    from scorehoi_diffusers.data import synthetic
    from scorehoi_diffusers.data.schema import FEATURES

    start, count, size = job
    cpu = time.process_time()
    done = 0
    for sample in synthetic.generate_samples(count, seed=0, image_size=size, start=start):
        FEATURES.encode_example(sample)
        done += 1
    return done, time.process_time() - cpu


def _timed(pool, function, jobs) -> tuple:
    """Samples per wall-clock second over all workers, and per CPU second of one worker."""
    start = time.perf_counter()
    results = pool.map(function, jobs)
    wall = time.perf_counter() - start
    total = sum(count for count, _ in results)
    return total / wall, total / sum(cpu for _, cpu in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--num-params", type=int, default=1024)
    parser.add_argument("--num-rendered", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--contact-sheet", default=None, help="also write a 16-sample contact sheet PNG here")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    with context.Pool(args.processes) as pool:
        pool.map(_warm_up, range(args.processes))
        per = -(-args.num_params // args.processes)
        jobs = [(k * per, per) for k in range(args.processes)]
        rate, per_cpu = _timed(pool, _parameters, jobs)
        print(f"parameter-only: {rate:7.1f} samples/s ({args.processes} processes, {args.num_params} samples); "
              f"{per_cpu:.1f} per CPU second")
        per = -(-args.num_rendered // args.processes)
        jobs = [(k * per, per, args.image_size) for k in range(args.processes)]
        rate, per_cpu = _timed(pool, _rendered, jobs)
        size = args.image_size
        print(f"rendered {size}x{size}: {rate:7.1f} samples/s ({args.processes} processes, "
              f"{args.num_rendered} samples); {per_cpu:.1f} per CPU second")

    if args.contact_sheet:
        from scorehoi_diffusers.data import synthetic
        from scorehoi_diffusers.rendering import save_png

        # The first sample of each interaction, so the sheet shows 16 different ones.
        generator = synthetic.SyntheticHOIGenerator()
        first = {}
        for index, name in enumerate(generator.interactions_of(range(2000), seed=0)):
            first.setdefault(name, index)
        indices = sorted(first.values())[:16]
        samples = list(generator.render(generator.scenes(indices, seed=0), args.image_size, seed=0))
        save_png(args.contact_sheet, synthetic.contact_sheet(samples, columns=4))
        print(f"wrote {args.contact_sheet}")


if __name__ == "__main__":
    main()
