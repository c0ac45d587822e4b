"""Training throughput of the Knet MLP on packed 2-bit genotypes vs a dense float32 baseline.

Three paths train the same network (hidden 100 → 50 → 25, BatchNorm, Softplus, dropout 0.3, Adam)
for the same number of optimizer steps on the same random genotypes:

* ``packed``  — :func:`deepprs.train.train_network` on :class:`PackedGenotypes` (batches unpacked and
  standardised on the device; N × M / 4 bytes resident);
* ``dense-trainer`` — the same trainer given a dense float32 dosage matrix (N × M × 4 bytes);
* ``dense-loop`` — a bare PyTorch loop over a pre-standardised float32 tensor (the floor: no
  unpacking, no standardisation per batch).

Prints samples/s per path and the packed / dense ratios, and writes a markdown table with
``--out``.  Example::

    python3 benchmarks/bench_mlp.py --n-samples 10000 --n-variants 50000 --steps 30 --threads 2
    python3 benchmarks/bench_mlp.py --device cuda --amp bf16    # on a GPU machine
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from deepprs.io.packed import PackedGenotypes, pack_dosage
from deepprs.models.neural import MLPNet
from deepprs.train import GenotypeBatcher, train_network
from deepprs.utils.device import resolve_device


def random_packed(n_samples: int, n_variants: int, seed: int, block: int = 1000) -> PackedGenotypes:
    """Random hard calls (MAF uniform 0.05-0.5, 1% missing) packed in sample blocks."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.5, n_variants)
    packed = np.empty((n_samples, (n_variants + 3) // 4), dtype=np.uint8)
    for start in range(0, n_samples, block):
        rows = min(block, n_samples - start)
        dosage = (rng.random((rows, n_variants)) < freq).astype(np.int8)
        dosage += (rng.random((rows, n_variants)) < freq).astype(np.int8)
        dosage[rng.random((rows, n_variants)) < 0.01] = -1
        packed[start : start + rows] = pack_dosage(dosage)
    return PackedGenotypes(packed=packed, n_variants=n_variants)


def mse(module, x, side, y):
    return F.mse_loss(module(x, side), y)


def time_trainer(genotypes, y, center, scale, train_index, *, batch_size: int, device, amp, seed: int) -> float:
    torch.manual_seed(seed)
    module = MLPNet(len(center), 0)
    t0 = time.perf_counter()
    train_network(
        module,
        mse,
        genotypes,
        y,
        train_index=train_index,
        center=center,
        scale=scale,
        epochs=1,
        batch_size=batch_size,
        device=device,
        amp=amp,
        seed=seed,
        patience=None,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(train_index) / (time.perf_counter() - t0)


def time_dense_loop(
    dense: torch.Tensor, y: torch.Tensor, train_index: np.ndarray, *, batch_size: int, device, seed: int
) -> float:
    torch.manual_seed(seed)
    module = MLPNet(dense.shape[1], 0).to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    empty = torch.zeros((batch_size, 0), device=device)
    order = torch.as_tensor(train_index)[torch.randperm(len(train_index))]
    module.train()
    t0 = time.perf_counter()
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size].to(dense.device)
        x = dense.index_select(0, rows).to(device)
        loss = F.mse_loss(module(x, empty[: len(rows)]), y.index_select(0, rows).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(order) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--n-variants", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps timed per path")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats per path (best is reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default=None, help="bf16 or fp16 autocast (CUDA only)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="append a markdown result table to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp = args.amp or False

    t0 = time.perf_counter()
    packed = random_packed(args.n_samples, args.n_variants, args.seed)
    center, scale = packed.variant_stats()
    setup_packed = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed + 1)
    y = rng.normal(size=args.n_samples).astype(np.float32)
    n_train = min(args.n_samples, args.steps * args.batch_size)
    train_index = np.sort(rng.choice(args.n_samples, n_train, replace=False))

    t0 = time.perf_counter()
    dense_raw = packed.unpack().numpy()  # float32, NaN = missing
    dense_batcher = GenotypeBatcher(dense_raw, center, scale, device=torch.device("cpu"))
    dense_std = torch.empty(dense_raw.shape, dtype=torch.float32)
    for start in range(0, args.n_samples, 1000):
        block = np.arange(start, min(start + 1000, args.n_samples))
        dense_std[block] = dense_batcher(block)
    del dense_batcher
    setup_dense = time.perf_counter() - t0

    # unpacking cost alone (one batch, on the device)
    batcher = GenotypeBatcher(packed, center, scale, device=device)
    rows = train_index[: args.batch_size]
    batcher(rows)
    t0 = time.perf_counter()
    for _ in range(5):
        batcher(rows)
    if device.type == "cuda":
        torch.cuda.synchronize()
    unpack_ms = (time.perf_counter() - t0) / 5 * 1000

    # warm-up (first-call allocator / kernel setup would otherwise be charged to the first path)
    warm_index = train_index[: 2 * args.batch_size]
    time_trainer(
        packed, y, center, scale, warm_index, batch_size=args.batch_size, device=device, amp=amp, seed=args.seed
    )
    time_dense_loop(
        dense_std, torch.as_tensor(y), warm_index, batch_size=args.batch_size, device=device, seed=args.seed
    )

    results: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, fn in (
            (
                "packed",
                lambda: time_trainer(
                    packed,
                    y,
                    center,
                    scale,
                    train_index,
                    batch_size=args.batch_size,
                    device=device,
                    amp=amp,
                    seed=args.seed,
                ),
            ),
            (
                "dense-trainer",
                lambda: time_trainer(
                    dense_raw,
                    y,
                    center,
                    scale,
                    train_index,
                    batch_size=args.batch_size,
                    device=device,
                    amp=amp,
                    seed=args.seed,
                ),
            ),
            (
                "dense-loop",
                lambda: time_dense_loop(
                    dense_std,
                    torch.as_tensor(y),
                    train_index,
                    batch_size=args.batch_size,
                    device=device,
                    seed=args.seed,
                ),
            ),
        ):
            results[name] = max(results.get(name, 0.0), fn())

    lines = [
        f"### MLP training throughput: {args.n_samples:,} samples x {args.n_variants:,} variants, "
        f"device {device}" + (f", amp {amp}" if amp else ""),
        "",
        f"- machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, batch {args.batch_size}, {args.steps} steps per path, "
        f"best of {args.repeats}",
        f"- memory: packed {packed.nbytes / 2**20:.0f} MiB vs dense float32 "
        f"{dense_raw.nbytes / 2**20:.0f} MiB (x{dense_raw.nbytes / packed.nbytes:.0f})",
        f"- setup: generate+pack+stats {setup_packed:.1f} s; unpack to dense + standardise {setup_dense:.1f} s",
        f"- unpack + standardise one batch of {args.batch_size} on {device}: {unpack_ms:.1f} ms",
        "",
        "| path | samples/s | relative to dense-loop |",
        "|---|---:|---:|",
    ]
    for name, rate in results.items():
        lines.append(f"| {name} | {rate:,.0f} | {rate / results['dense-loop']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
