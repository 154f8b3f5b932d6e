"""Benchmark: the plugin's evaluation against torchreid's, on the same inputs, in one run.

Ranking (CMC + mAP from a distance matrix, what torchreid's engine passes), three implementations:

* torchreid's compiled ``evaluate_cy`` (upstream's rank_cy.pyx, built outside the project by
  tools/rank_cy_reference.py when Cython and a C compiler are present; said clearly when not);
* the plugin's ``evaluate_ranking`` (CPU; also CUDA when a GPU is present);
* torchreid 0.2.5's python ``evaluate_rank`` (what the registry package runs), up to 1000 x 5000
  (it takes ~50 s at 3000 x 15000 and ~13 min at MSMT17 size).

Cases: both metrics (market1501; cuhk03, single-gallery-shot with 10 random draws), sizes from
100 x 1000 to 3000 x 15000 and MSMT17's 11,659 x 82,161 (market1501; cuhk03 up to CUHK03's
1,400 x 5,332), few identities (query / 10, 2 cameras: many true matches per query) and many
(query / 2, 6 cameras), distinct distances (euclidean, float32, of 512-d features: identity
centre + noise) and heavy ties (the same distances rounded to 5 levels, 0-4). Times are medians
of repeated calls on the same input (up to 25, within a few seconds), each case in a subprocess
of its own. At MSMT17 size the
compiled reference ranks 2,000 queries per call (whole, its argsort and int64 match matrix would
need ~16 GB on top of the 3.8 GB matrix) and its time is the sum of the calls. Agreement with the
compiled reference: max |dCMC| and |dmAP| (its CMC and mAP are float32 sums; with ties its
unstable argsort orders tied items differently; its cuhk03 CMC draws from numpy's global stream,
so only its mAP is comparable there).

Re-ranking: 3,000 + 15,000 images, k1=20, k2=6, lambda=0.3, both from features: torchreid's
engine path (``compute_distance_matrix`` for q-g, q-q, g-g, then ``re_ranking``) vs the plugin's
``re_rank``, with peak resident memory ("added": the peak minus the RSS just before the call).

    python tools/benchmark_eval.py            # everything (~16 min on 2 cores)
    python tools/benchmark_eval.py --quick    # sizes up to 1000 x 5000, smaller re-ranking (~5 min)
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rank_cy_reference  # noqa: E402  (tools/rank_cy_reference.py)

FEATURE_DIM = 512
MSMT17_SIZE = (11659, 82161)
SIZES = {
    "market1501": [(100, 1000), (1000, 5000), (3000, 15000), MSMT17_SIZE],
    "cuhk03": [(100, 1000), (1000, 5000), (1400, 5332)],
}
QUICK_MAX_ELEMENTS = 1000 * 5000
PYTHON_MAX_ELEMENTS = 1000 * 5000
COMPILED_ROWS_PER_CALL = 2000  # at MSMT17 size only
TIE_LEVELS = 5
RERANK_SIZE = {"full": (3000, 15000), "quick": (600, 3000)}
TWO_GB_MIB = 2e9 / 2**20


def feature_inputs(num_query, num_gallery, num_ids, num_cams, seed):
    """512-d features (identity centre + noise, so rankings are neither random nor perfect), pids
    and camera ids of queries and gallery; the same for the same arguments."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    q_pids = torch.randint(0, num_ids, (num_query,), generator=generator)
    g_pids = torch.randint(0, num_ids, (num_gallery,), generator=generator)
    centres = 0.4 * torch.randn(num_ids, FEATURE_DIM, generator=generator)
    qf = centres[q_pids] + torch.randn(num_query, FEATURE_DIM, generator=generator)
    gf = centres[g_pids] + torch.randn(num_gallery, FEATURE_DIM, generator=generator)
    q_camids = torch.randint(0, num_cams, (num_query,), generator=generator)
    g_camids = torch.randint(0, num_cams, (num_gallery,), generator=generator)
    return qf, gf, q_pids.numpy(), g_pids.numpy(), q_camids.numpy(), g_camids.numpy()


def ranking_inputs(num_query, num_gallery, identities, ties, seed):
    """Distance matrix (float32 NumPy) and labels of one ranking case."""
    import torch

    num_ids, num_cams = (max(2, num_query // 10), 2) if identities == "few" else (max(2, num_query // 2), 6)
    qf, gf, *labels = feature_inputs(num_query, num_gallery, num_ids, num_cams, seed)
    distmat = torch.cdist(qf, gf)
    if ties == "heavy":
        low, high = distmat.min(), distmat.max()
        distmat = ((distmat - low) * ((TIE_LEVELS - 1) / (high - low))).round_()
    return (distmat.numpy(), *labels)


# --- child processes --------------------------------------------------------------------------

def _median_seconds(call, budget_seconds, max_repeats=25):
    """(median seconds, last output) of repeated calls: at least one, more while under the budget."""
    seconds, output = [], None
    while len(seconds) < max_repeats and (not seconds or sum(seconds) < budget_seconds):
        start = time.perf_counter()
        output = call()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), output


def _compiled_in_row_blocks(rank_cy, distmat, q_pids, g_pids, q_camids, g_camids, cuhk03, rows):
    """The compiled reference over blocks of query rows, combined exactly (means over valid queries)."""
    cmc_sum, ap_sum, valid_total = 0, 0.0, 0
    for start in range(0, len(distmat), rows):
        part = slice(start, start + rows)
        keep = ~((g_pids == q_pids[part, None]) & (g_camids == q_camids[part, None]))
        valid = int(((g_pids == q_pids[part, None]) & keep).any(1).sum())
        if valid:
            cmc, mAP = rank_cy.evaluate_cy(distmat[part], q_pids[part], g_pids, q_camids[part], g_camids, 50, cuhk03)
            cmc_sum, ap_sum, valid_total = cmc_sum + cmc * valid, ap_sum + mAP * valid, valid_total + valid
    return cmc_sum / valid_total, ap_sum / valid_total


def measure_ranking(spec):
    """Child: time every available implementation on one case; print one JSON line."""
    import torch

    from torchreid.reid.metrics.rank import evaluate_rank

    import direid_plugin  # noqa: F401  (imported as users import it)
    from direid_plugin.evaluation.ranking import evaluate_ranking

    distmat, *labels = ranking_inputs(spec["num_query"], spec["num_gallery"], spec["identities"], spec["ties"],
                                      spec["seed"])
    cuhk03 = spec["metric"] == "cuhk03"
    budget = spec["budget_seconds"]
    out = {"threads": torch.get_num_threads()}

    def plugin(matrix):
        result = evaluate_ranking(matrix, *labels, use_metric_cuhk03=cuhk03)
        return result.cmc, result.mAP

    out["plugin"] = _median_seconds(lambda: plugin(distmat), budget)
    if spec["compiled"]:
        rank_cy = rank_cy_reference.load()
        if (spec["num_query"], spec["num_gallery"]) == MSMT17_SIZE:  # see the module doc
            call = lambda: _compiled_in_row_blocks(rank_cy, distmat, *labels, cuhk03, COMPILED_ROWS_PER_CALL)  # noqa: E731
        else:
            call = lambda: rank_cy.evaluate_cy(distmat, *labels, 50, cuhk03)  # noqa: E731
        out["compiled"] = _median_seconds(call, budget)
    if spec["num_query"] * spec["num_gallery"] <= PYTHON_MAX_ELEMENTS:
        out["python"] = _median_seconds(
            lambda: evaluate_rank(distmat, *labels, use_metric_cuhk03=cuhk03, use_cython=False), budget)
    if torch.cuda.is_available():
        on_gpu = torch.from_numpy(distmat).cuda()

        def plugin_cuda():
            result = plugin(on_gpu)
            torch.cuda.synchronize()
            return result

        plugin_cuda()  # warm-up: CUDA context and kernels
        out["plugin_cuda"] = _median_seconds(plugin_cuda, budget)
    serialised = {}
    for name, value in out.items():
        if isinstance(value, tuple):
            seconds, (cmc, mAP) = value
            serialised[name] = {"seconds": seconds, "cmc": np.asarray(cmc, dtype=np.float64).tolist(), "mAP": float(mAP)}
        else:
            serialised[name] = value
    print(json.dumps(serialised))


def _rss_mib(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1)) / 1024


def measure_reranking(spec):
    """Child: one re-ranking call with its peak memory; the re-ranked distances saved for comparison."""
    from torchreid.reid.metrics import compute_distance_matrix
    from torchreid.reid.utils import re_ranking

    import direid_plugin  # noqa: F401
    from direid_plugin.evaluation.ranking import evaluate_ranking
    from direid_plugin.evaluation.rerank import re_rank

    qf, gf, *labels = feature_inputs(spec["num_query"], spec["num_gallery"], max(1, spec["num_query"] // 4), 6,
                                     spec["seed"])
    if spec["implementation"] == "torchreid":
        distance = lambda a, b: compute_distance_matrix(a, b).numpy()  # noqa: E731
        call = lambda: re_ranking(distance(qf, gf), distance(qf, qf), distance(gf, gf))  # noqa: E731
    else:
        call = lambda: re_rank(qf, gf).numpy()  # noqa: E731
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the resident high-water mark (VmHWM)
    before = _rss_mib("VmRSS")
    start = time.perf_counter()
    reranked = call()
    seconds = time.perf_counter() - start
    peak = _rss_mib("VmHWM")
    np.save(spec["out"] + ".npy", reranked)
    result = evaluate_ranking(reranked, *labels)
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "added_mib": peak - before,
                      "cmc": result.cmc.tolist(), "mAP": result.mAP}))


# --- parent -----------------------------------------------------------------------------------

def run_child(kind, spec):
    out = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(spec)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{kind} {spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def agreement(reference, ours, cmc_comparable=True):
    d_map = abs(reference["mAP"] - ours["mAP"])
    if not cmc_comparable:
        return f"- / {d_map:.1e}"
    length = min(len(reference["cmc"]), len(ours["cmc"]))
    d_cmc = np.abs(np.subtract(reference["cmc"][:length], ours["cmc"][:length])).max()
    return f"{d_cmc:.1e} / {d_map:.1e}"


def _ms(measured):
    return None if measured is None else 1000 * measured["seconds"]


def ranking_cases(quick):
    for metric, sizes in SIZES.items():
        for num_query, num_gallery in sizes:
            if quick and num_query * num_gallery > QUICK_MAX_ELEMENTS:
                continue
            for identities in ("few", "many"):
                for ties in ("distinct", "heavy"):
                    yield dict(metric=metric, num_query=num_query, num_gallery=num_gallery, identities=identities,
                               ties=ties)


def ranking_benchmark(args, compiled_available):
    rows, slower = [], []
    for case in ranking_cases(args.quick):
        print(f"  ranking {case['metric']} {case['num_query']} x {case['num_gallery']}, {case['identities']} ids, "
              f"{case['ties']} ...", flush=True)
        measured = run_child("ranking", dict(case, seed=args.seed, compiled=compiled_available,
                                             budget_seconds=args.repeat_budget))
        ours, compiled, python = measured["plugin"], measured.get("compiled"), measured.get("python")
        ratio = compiled["seconds"] / ours["seconds"] if compiled else None
        if ratio is not None and ratio < 1:
            slower.append(case)
        match = agreement(compiled, ours, cmc_comparable=case["metric"] == "market1501") if compiled else "-"
        rows.append([case["metric"], f"{case['num_query']} x {case['num_gallery']}", case["identities"], case["ties"],
                     _ms(compiled), _ms(ours), ratio, _ms(python), python and python["seconds"] / ours["seconds"],
                     _ms(measured.get("plugin_cuda")), match])
    headers = ["metric", "size", "ids", "distances", "compiled ms", "plugin ms", "plugin speed-up vs compiled",
               "python ms", "plugin speed-up vs python", "plugin CUDA ms", "vs compiled: max |dCMC| / |dmAP|"]
    return rows, headers, slower, measured["threads"]


def reranking_benchmark(args, folder):
    num_query, num_gallery = RERANK_SIZE["quick" if args.quick else "full"]
    results = {}
    for implementation in ("torchreid", "plugin"):
        print(f"  re-ranking {num_query} + {num_gallery}: {implementation} ...", flush=True)
        spec = dict(implementation=implementation, num_query=num_query, num_gallery=num_gallery, seed=args.seed,
                    out=os.path.join(folder, f"rerank-{implementation}"))
        results[implementation] = run_child("reranking", spec)
    theirs, ours = results["torchreid"], results["plugin"]
    a, b = np.load(os.path.join(folder, "rerank-torchreid.npy"), mmap_mode="r"), np.load(
        os.path.join(folder, "rerank-plugin.npy"), mmap_mode="r")
    max_distance = max(float(np.abs(a[i:i + 500] - b[i:i + 500]).max()) for i in range(0, len(a), 500))
    row = [f"{num_query} + {num_gallery}", theirs["seconds"], ours["seconds"], theirs["seconds"] / ours["seconds"],
           f"{theirs['peak_mib']:.0f} (+{theirs['added_mib']:.0f})", f"{ours['peak_mib']:.0f} (+{ours['added_mib']:.0f})",
           agreement(theirs, ours) + f"; max |d distance| {max_distance:.1e}"]
    headers = ["images", "torchreid s", "plugin s", "speed-up", "torchreid peak RSS MiB (added)",
               "plugin peak RSS MiB (added)", "max |dCMC| / |dmAP|"]
    return row, headers, ours["peak_mib"], theirs["seconds"] / ours["seconds"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ranking up to 1000 x 5000; re-ranking 600 + 3000")
    parser.add_argument("--only", choices=("ranking", "reranking"), help="run one of the two benchmarks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat-budget", type=float, default=3.0,
                        help="repeat each timed call (up to 25 times) while its total stays under this many seconds")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, spec = args.child
        return (measure_ranking if kind == "ranking" else measure_reranking)(json.loads(spec))

    import torch

    cuda = "CUDA: " + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available on this machine")
    if args.only != "reranking":
        try:
            rank_cy_reference.load()
            compiled_available, compiled_note = True, "compiled reference: built from " + rank_cy_reference.DEFAULT_SOURCE
        except rank_cy_reference.ReferenceUnavailable as e:
            compiled_available, compiled_note = False, f"{e}\n  -> the compiled columns are empty"
        print(compiled_note)
        rows, headers, slower, threads = ranking_benchmark(args, compiled_available)
        print(f"\nRanking: {threads} torch threads, CPU; {cuda}; seed {args.seed}; median of up to 25 calls")
        print(tabulate(rows, headers=headers, floatfmt=".2f", tablefmt="github", missingval="-"))
        if compiled_available:
            missed = ["{metric} {num_query} x {num_gallery} {identities} ids {ties}".format(**case) for case in slower]
            verdict = "met" if not slower else f"NOT met in {len(slower)} case(s): {missed}"
            print(f"\nTarget (plugin at least as fast as the compiled reference in every case): {verdict}")
        else:
            print("\nTarget (plugin at least as fast as the compiled reference): not measured (no compiled reference)")
    if args.only != "ranking":
        with tempfile.TemporaryDirectory(prefix="benchmark_eval_") as folder:
            row, headers, peak, speedup = reranking_benchmark(args, folder)
        print("\nRe-ranking (k1 20, k2 6, lambda 0.3), from 512-d features, CPU")
        print(tabulate([row], headers=headers, floatfmt=".2f", tablefmt="github"))
        print(f"\nTargets (re-ranking peak RSS < 2 GB and no slower than torchreid): peak {peak * 2**20 / 1e9:.2f} GB: "
              f"{'met' if peak < TWO_GB_MIB else 'NOT met'}; speed-up {speedup:.1f}x: {'met' if speedup >= 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
