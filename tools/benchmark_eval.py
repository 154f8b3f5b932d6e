"""Benchmark: torchreid's python ranking evaluator vs the plugin's vectorised one, same run.

Random data shaped like the test sets that matter (MLR-VIPeR 316 x 316, CUHK03-NP
1400 x 5332, and with --large a Market-like 3000 x 15000, where python takes ~35 s). For each
size it prints both times, their ratio, the vectorised evaluator's peak traced memory and the
agreement of the two results (max |dCMC|, |dmAP|). Market metric, max_rank 50.

    python tools/benchmark_eval.py [--large] [--seed 0]
"""
import argparse
import time
import tracemalloc
import warnings

import numpy as np
from tabulate import tabulate

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torchreid warns that its Cython evaluator is missing
    import torchreid.reid.metrics.rank as torchreid_rank

from direid_plugin.evaluation.fast_rank import evaluate_vectorised

# (num_query, num_gallery, num_identities, num_cameras)
SIZES = [(316, 316, 316, 2), (1400, 5332, 700, 2)]
LARGE_SIZE = (3000, 15000, 750, 6)
MAX_RANK = 50


def random_case(num_q, num_g, num_ids, num_cams, rng):
    """float32 distances where true matches are closer on average (a non-trivial CMC)."""
    q_pids, g_pids = rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g)
    q_camids, g_camids = rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g)
    distmat = rng.random((num_q, num_g), dtype=np.float32)
    distmat[q_pids[:, None] == g_pids] *= 0.3
    return distmat, q_pids, g_pids, q_camids, g_camids


def best_time(evaluate, case, min_total_s=1.0, max_runs=20):
    """Best wall time over repeated runs (at least one, until ``min_total_s`` is spent)."""
    times = []
    while not times or (sum(times) < min_total_s and len(times) < max_runs):
        start = time.perf_counter()
        result = evaluate(*case, MAX_RANK, False)
        times.append(time.perf_counter() - start)
    return min(times), result


def peak_memory_mib(evaluate, case):
    tracemalloc.start()
    evaluate(*case, MAX_RANK, False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also time 3000 x 15000 (python ~35 s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    rows = []
    for size in SIZES + ([LARGE_SIZE] if args.large else []):
        case = random_case(*size, rng)
        python_s, (python_cmc, python_map) = best_time(torchreid_rank.evaluate_py, case)
        fast_s, (fast_cmc, fast_map) = best_time(evaluate_vectorised, case)
        rows.append([
            f"{size[0]} x {size[1]}", f"{python_s:.4f}", f"{fast_s:.4f}", f"{python_s / fast_s:.1f}x",
            f"{peak_memory_mib(evaluate_vectorised, case):.0f}",
            f"{np.abs(python_cmc - fast_cmc).max():.1e}", f"{abs(python_map - fast_map):.1e}",
        ])
        print(tabulate(rows[-1:], tablefmt="plain", disable_numparse=True), flush=True)
    headers = ["query x gallery", "python s", "vectorised s", "speed-up", "vec peak MiB", "max |dCMC|", "|dmAP|"]
    print()
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
