"""The PyTorch MLP family on CPU and on a GPU, same data and seed: fit time, accuracy, and that a
GPU-trained model pickles and predicts on a CPU-only host (how it is saved to MLflow and served).

    python bench/mlp_device.py [--rows 200000] [--features 50] [--epochs 15]

Needs only torch, scikit-learn and numpy (no Ray), so it runs on an accelerator machine as is.
"""

import argparse
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from mlauto.models.mlp import TorchMLPClassifier  # noqa: E402


def run(device: str, X_tr, y_tr, X_te, y_te, epochs: int) -> dict:
    model = TorchMLPClassifier(hidden=256, layers=3, lr=1e-3, max_epochs=epochs, patience=epochs + 1,
                               batch_size=1024, seed=0, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.fit(X_tr, y_tr)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    proba = model.predict_proba(X_te)
    predict_s = time.perf_counter() - start
    clone = pickle.loads(pickle.dumps(model))  # what mlflow.sklearn (cloudpickle) stores and serving loads
    same = bool(np.allclose(clone.predict_proba(X_te[:1000]), proba[:1000]))
    on_cpu = all(p.device.type == "cpu" for p in clone.network_.parameters())
    return {"device": device, "fit_s": fit_s, "epochs": model.n_epochs_, "predict_s": predict_s,
            "accuracy": float((model.classes_[proba.argmax(1)] == y_te).mean()),
            "pickle_round_trip_equal": same, "weights_on_cpu_after_fit": on_cpu}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    X, y = make_classification(n_samples=args.rows, n_features=args.features, n_informative=20,
                               n_classes=3, random_state=0)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
    print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
          + f", CPU threads: {torch.get_num_threads()}")
    print(f"{len(X_tr)} train rows x {args.features} features, 3 classes, {args.epochs} epochs, batch 1024")
    results = [run("cpu", X_tr, y_tr, X_te, y_te, args.epochs)]
    if torch.cuda.is_available():
        run("cuda", X_tr[:5000], y_tr[:5000], X_te, y_te, 1)  # warm-up: CUDA context, kernels
        results.append(run("cuda", X_tr, y_tr, X_te, y_te, args.epochs))
    for r in results:
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    if len(results) == 2:
        cpu, gpu = results
        print(f"fit speed-up GPU vs CPU: {cpu['fit_s'] / gpu['fit_s']:.2f}x; "
              f"accuracy difference: {abs(cpu['accuracy'] - gpu['accuracy']):.4f}")
        assert gpu["pickle_round_trip_equal"] and gpu["weights_on_cpu_after_fit"]
        assert abs(cpu["accuracy"] - gpu["accuracy"]) < 0.02


if __name__ == "__main__":
    main()
