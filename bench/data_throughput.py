"""Ingest + clean + profile throughput and peak memory: Ray Data streaming vs pandas, in one run.

    PYTHONPATH=$PWD python bench/data_throughput.py --rows 1000000 10000000

Generates a wide dirty CSV folder per size (21 columns: numbers, an integer with out-of-range values,
a numeric column with unparseable text, categories with unseen values and a high-cardinality one,
missing values, duplicate rows, rows without a target), then, each in a fresh process:

- ray:    ``ray.data.read_csv`` (every column as text) -> :func:`mlauto.data.clean_dataset` (clean in
          ``map_batches`` on the workers, de-duplicate, write kept + quarantined rows as Parquet) with
          the profile accumulated from the kept rows;
- pandas: ``pd.read_csv`` of every file, concatenated -> :func:`mlauto.data.clean_frame` with the same
          rules and the same profile, then the kept rows written to Parquet.

Peak memory is the peak of the summed PSS (proportional set size, so the shared object store is
not counted twice) over the measured process and all its descendants (Ray's GCS, raylet and
workers), sampled every 0.2 s. Ray start-up time is not counted in the throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

CHUNK = 1_000_000
CATS = [f"c{i}" for i in range(10)]
RULES = {"columns": {"age": {"range": [0, 120]}, "cat_0": {"categories": CATS}}}
TARGET = "y"


def dirty_chunk(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)

    def holes(arr: pa.Array, frac: float) -> pa.Array:
        return pc.if_else(pa.array(rng.random(n) < frac), pa.scalar(None, arr.type), arr)

    cols: dict[str, pa.Array] = {}
    for i in range(10):
        cols[f"num_{i}"] = holes(pa.array(np.round(rng.normal(i, 1 + i, n), 4)), 0.02)
    dirty = pc.cast(pa.array(np.round(rng.normal(0, 1, n), 4)), pa.string())
    cols["num_dirty"] = pc.if_else(pa.array(rng.random(n) < 0.002), pa.scalar("abc"), dirty)
    age = rng.integers(18, 90, n)
    age[rng.random(n) < 0.001] = 150
    cols["age"] = pa.array(age)
    for i in range(5):
        values = np.array(CATS)[rng.integers(0, 10, n)]
        if i == 0:
            values[rng.random(n) < 0.001] = "zz_unseen"
        cols[f"cat_{i}"] = holes(pa.array(values), 0.02)
    cols["city"] = pa.array(np.char.add("city_", rng.integers(0, 1000, n).astype(str)))
    score = np.nan_to_num(cols["num_1"].to_numpy(zero_copy_only=False)) + rng.normal(0, 2, n)
    cols[TARGET] = holes(pa.array(np.where(score > 1, "yes", "no")), 0.005)
    table = pa.table(cols)
    dup = np.sort(rng.choice(n, n // 100, replace=False))  # 1% of the rows repeat an earlier row
    take = np.arange(n)
    take[dup[dup > 0]] = rng.integers(0, dup[dup > 0])
    return table.take(pa.array(take))


def generate(folder: str, rows: int, chunk: int = CHUNK) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    files = []
    for k, start in enumerate(range(0, rows, chunk)):
        path = os.path.join(folder, f"part-{k:04d}.csv")
        if not os.path.exists(path):
            pcsv.write_csv(dirty_chunk(min(chunk, rows - start), seed=k), path + ".tmp")
            os.replace(path + ".tmp", path)
        files.append(path)
    return files


def run_ray(files: list[str]) -> dict:
    import ray
    import ray.data

    from mlauto.data import ProfileAccumulator, clean_dataset, clean_rules
    from mlauto.data.clean import CleanOutput

    ray.init(num_cpus=2, object_store_memory=1 << 30, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.resource_limits = ray.data.ExecutionResources(object_store_memory=512 << 20)
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    out = os.path.dirname(files[0])
    header = open(files[0]).readline().strip().split(",")
    start = time.perf_counter()
    ds = ray.data.read_csv(files, convert_options=pcsv.ConvertOptions(
        column_types={c.strip('"'): pa.string() for c in header}))
    result = clean_dataset(ds, TARGET, clean_rules(RULES), CleanOutput("bench", out, os.path.join(out, "kept-ray.parquet")),
                           progress=False,
                           profiler=lambda plan: ProfileAccumulator(plan.kinds, TARGET))
    seconds = time.perf_counter() - start
    ray.shutdown()
    return {"seconds": seconds, "rows_in": result.rows_in, "kept": result.rows_kept,
            "quarantined": result.rows_quarantined, "reasons": result.reasons}


def run_pandas(files: list[str]) -> dict:
    import pandas as pd

    from mlauto.data import ProfileAccumulator, clean_frame, clean_rules

    out = os.path.dirname(files[0])
    start = time.perf_counter()
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    result = clean_frame(frame, TARGET, clean_rules(RULES), fingerprint="bench-pandas",
                         quarantine_dir=out, profiler=lambda plan: ProfileAccumulator(plan.kinds, TARGET))
    result.frame.to_parquet(os.path.join(out, "kept-pandas.parquet"), index=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows_in": result.rows_in, "kept": result.rows_kept,
            "quarantined": result.rows_quarantined, "reasons": result.reasons}


def tree_memory(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:  # the measured run has just exited
        return 0
    for p in procs:
        try:
            info = p.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure(engine: str, folder: str) -> dict:
    """Run one engine in a fresh process; sample the memory of its process tree."""
    cmd = [sys.executable, __file__, "--engine", engine, "--folder", folder]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "RAY_DEDUP_LOGS": "0"})
    ps, peak, done = psutil.Process(proc.pid), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_memory(ps))
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    stdout, _ = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"{engine} run failed ({proc.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_mb"] = peak[0] / 2**20
    result["rows_per_s"] = result["rows_in"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--dir", default="/tmp/mlauto-bench-data")
    parser.add_argument("--pandas-max-rows", type=int, default=10_000_000,
                        help="skip the pandas baseline above this size (it holds everything in memory)")
    parser.add_argument("--file-rows", type=int, default=CHUNK, help="rows per generated CSV file")
    parser.add_argument("--engine", choices=["ray", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # child process: one measured run, result as the last stdout line
        files = sorted(os.path.join(args.folder, f) for f in os.listdir(args.folder) if f.endswith(".csv"))
        print(json.dumps((run_ray if args.engine == "ray" else run_pandas)(files)), flush=True)
        return
    rows_out = []
    for rows in args.rows:
        folder = os.path.join(args.dir, f"rows-{rows}-per-file-{args.file_rows}")
        t0 = time.perf_counter()
        files = generate(folder, rows, args.file_rows)
        size = sum(os.path.getsize(f) for f in files) / 2**20
        print(f"{rows:,} rows: {len(files)} file(s), {size:,.0f} MiB (generated/checked in "
              f"{time.perf_counter() - t0:.0f}s)", flush=True)
        ray_res = measure("ray", folder)
        pd_res = None
        if rows <= args.pandas_max_rows:
            # pandas holds every row: skip it when the extrapolated peak would not fit in free memory
            known = [(r, p["peak_mb"]) for r, _, _, p in rows_out if p]
            need_mb = known[-1][1] * rows / known[-1][0] if known else 0.0
            free_mb = psutil.virtual_memory().available / 2**20
            if need_mb * 1.3 < free_mb:
                pd_res = measure("pandas", folder)
            else:
                print(f"  pandas skipped: needs ~{need_mb:,.0f} MiB, {free_mb:,.0f} MiB free", flush=True)
        if pd_res:
            assert pd_res["kept"] == ray_res["kept"] and pd_res["reasons"] == ray_res["reasons"], (pd_res, ray_res)
        assert ray_res["rows_in"] == ray_res["kept"] + ray_res["quarantined"] == rows
        rows_out.append((rows, size, ray_res, pd_res))
        print(f"  quarantined {ray_res['quarantined']:,}: {ray_res['reasons']}", flush=True)
    print()
    print(f"{'rows':>12} {'MiB':>7} {'ray rows/s':>11} {'ray peak MiB':>13} {'pandas rows/s':>14} "
          f"{'pandas peak MiB':>16} {'ray/pandas speed':>17}")
    for rows, size, r, p in rows_out:
        print(f"{rows:>12,} {size:>7,.0f} {r['rows_per_s']:>11,.0f} {r['peak_mb']:>13,.0f} "
              f"{(p['rows_per_s'] if p else float('nan')):>14,.0f} {(p['peak_mb'] if p else float('nan')):>16,.0f} "
              f"{(r['rows_per_s'] / p['rows_per_s'] if p else float('nan')):>17.2f}")
    if len(rows_out) > 1:
        small, big = rows_out[0], rows_out[-1]
        print(f"\nray peak memory {big[0]:,} rows / {small[0]:,} rows: {big[2]['peak_mb'] / small[2]['peak_mb']:.2f}x "
              f"(target <= 1.5x)")
        if small[3] and big[3]:
            print(f"pandas peak memory {big[0]:,} / {small[0]:,} rows: {big[3]['peak_mb'] / small[3]['peak_mb']:.2f}x")


if __name__ == "__main__":
    main()
