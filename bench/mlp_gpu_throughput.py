"""GPU throughput of mlauto's MLP trainer against a device-resident reference loop, in the same run.

    python bench/mlp_gpu_throughput.py [--rows 2000000] [--features 64] [--hidden 512] [--layers 3]
                                       [--batch-sizes 1024 4096] [--epochs 5]

The reference keeps the data on the GPU and takes each batch by index (the fast pattern); the
DataLoader row shows the pattern to avoid (a TensorDataset on the host, copied batch by batch). The
trainer row is ``TorchMLPClassifier.fit`` as a Tune trial runs it, end to end: label encoding, its
inner validation split, the copy to the GPU, early-stopping bookkeeping and one validation pass per
epoch included. "steady" excludes everything before the first epoch ends. Target: trainer / reference
>= 0.8. Needs only torch, scikit-learn and numpy (no Ray), so it runs on an accelerator machine as is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from mlauto.models.mlp import TorchMLPClassifier, build_network  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_data(rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    w = rng.standard_normal(features).astype(np.float32)
    y = (X @ w + 0.5 * rng.standard_normal(rows).astype(np.float32) > 0).astype(np.int64)
    return X, y


def reference(X: np.ndarray, y: np.ndarray, args: argparse.Namespace, batch: int, device: torch.device) -> dict:
    """Data on the device, batches by index: the loop the trainer should match."""
    torch.manual_seed(0)
    xt, yt = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    net = build_network(X.shape[1], 2, args.hidden, args.layers, 0.1).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-5)
    loss_fn = nn.CrossEntropyLoss()

    def epoch() -> None:
        net.train()
        order = torch.randperm(len(xt), device=device)
        for start in range(0, len(xt), batch):
            idx = order[start : start + batch]
            opt.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()

    epoch()  # warm-up: CUDA context, cuBLAS handles, allocator
    sync(device)
    start = time.perf_counter()
    for _ in range(args.epochs):
        epoch()
    sync(device)
    seconds = time.perf_counter() - start
    return {"samples_per_s": len(xt) * args.epochs / seconds, "seconds": seconds}


def dataloader(X: np.ndarray, y: np.ndarray, args: argparse.Namespace, batch: int, device: torch.device) -> dict:
    """The pattern to avoid: host tensors through a DataLoader, one copy per batch (timed on a slice)."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    net = build_network(X.shape[1], 2, args.hidden, args.layers, 0.1).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-5)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=batch, shuffle=True)
    batches, seen = 0, 0
    start = time.perf_counter()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        opt.zero_grad()
        loss_fn(net(xb), yb).backward()
        opt.step()
        seen += len(xb)
        batches += 1
        if batches >= args.loader_batches:
            break
    sync(device)
    seconds = time.perf_counter() - start
    return {"samples_per_s": seen / seconds, "seconds": seconds, "batches": batches}


def trainer(X: np.ndarray, y: np.ndarray, args: argparse.Namespace, batch: int, device: torch.device) -> dict:
    """``TorchMLPClassifier.fit`` end to end; per-epoch times through its ``on_epoch`` hook."""
    model = TorchMLPClassifier(hidden=args.hidden, layers=args.layers, lr=1e-3, max_epochs=args.epochs,
                               patience=args.epochs + 1, batch_size=batch, seed=0, device=str(device))
    marks: list[float] = []

    def on_epoch(epoch: int, _model: object) -> bool:
        sync(device)
        marks.append(time.perf_counter())
        return False

    sync(device)
    start = time.perf_counter()
    model.fit(X, y, on_epoch=on_epoch)
    sync(device)
    seconds = time.perf_counter() - start
    n_train = round(len(X) * (1 - model.val_fraction))
    steady = (n_train * (len(marks) - 1) / (marks[-1] - marks[0])) if len(marks) > 1 else float("nan")
    return {"samples_per_s": n_train * model.n_epochs_ / seconds, "steady_samples_per_s": steady,
            "seconds": seconds, "epochs": model.n_epochs_, "train_rows": n_train}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--loader-batches", type=int, default=300)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}; torch {torch.__version__}; {args.rows} x {args.features} rows, "
          f"{args.layers} x {args.hidden} MLP, {args.epochs} epochs")
    X, y = make_data(args.rows, args.features)
    results = []
    for batch in args.batch_sizes:
        ref = reference(X, y, args, batch, device)
        fit = trainer(X, y, args, batch, device)
        loader = dataloader(X, y, args, batch, device)
        row = {"batch_size": batch, "reference": ref, "trainer": fit, "dataloader": loader,
               "trainer_vs_reference": fit["samples_per_s"] / ref["samples_per_s"],
               "steady_vs_reference": fit["steady_samples_per_s"] / ref["samples_per_s"],
               "dataloader_vs_reference": loader["samples_per_s"] / ref["samples_per_s"]}
        results.append(row)
        print(f"batch {batch:5d}: reference {ref['samples_per_s'] / 1e6:7.3f} M samples/s | "
              f"trainer {fit['samples_per_s'] / 1e6:7.3f} M/s end to end ({row['trainer_vs_reference']:.2f}x), "
              f"{fit['steady_samples_per_s'] / 1e6:7.3f} M/s steady ({row['steady_vs_reference']:.2f}x), "
              f"fit {fit['seconds']:.1f}s | DataLoader {loader['samples_per_s'] / 1e6:7.3f} M/s "
              f"({row['dataloader_vs_reference']:.3f}x)", flush=True)
    verdict = all(r["trainer_vs_reference"] >= 0.8 for r in results)
    print(f"target trainer >= 0.8x reference (end to end): {'MET' if verdict else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
