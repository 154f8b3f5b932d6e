"""Benchmark: torchreid's evaluation vs the plugin's, on the same random 512-d features, in one run.

Measurements (CPU; threads as OMP_NUM_THREADS / torch's default):

* ranking, 3,000 queries x 15,000 gallery: torchreid's python ``evaluate_rank`` vs the plugin's
  ``evaluate_ranking``, both given the same distance matrix (what torchreid's engine passes);
* re-ranking, 3,000 + 15,000 images, k1=20, k2=6, lambda=0.3, both from features: torchreid's
  engine path (``compute_distance_matrix`` for q-g, q-q, g-g, then ``re_ranking``) vs the
  plugin's ``re_rank``;
* an MSMT17-size ranking (11,659 x 82,161) with the plugin, from features block by block (the
  engine's path; the full matrix alone would take 3.8 GB), for which torchreid's python
  evaluator would need ~13 min and more than 20 GB (an estimate from its 3,000 x 15,000 time and memory).

Each measurement runs in a subprocess of its own. Memory is the process's resident set: "peak
RSS" is its highest value during the measured call (the kernel's high-water mark, reset just
before the call), "added" that peak minus the RSS just before the call (imports, features and
the input matrix are already resident then: importing torch and torchreid alone takes ~0.9 GB).
Agreement: max |dCMC| and |dmAP| between the implementations; for re-ranking also the largest
difference of the re-ranked distances.

    python tools/benchmark_eval.py            # the sizes above (torchreid: ~35 s + ~90 s and 8 GB)
    python tools/benchmark_eval.py --quick    # one fifth of each side, under a minute
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

FEATURE_DIM = 512
SIZES = {
    "full": {"ranking": (3000, 15000), "re-ranking": (3000, 15000), "MSMT17-size ranking": (11659, 82161)},
    "quick": {"ranking": (600, 3000), "re-ranking": (600, 3000), "MSMT17-size ranking": (2332, 16432)},
}
TARGETS = "ranking >= 25x faster than torchreid; re-ranking peak RSS < 2 GB and no slower than torchreid"
TWO_GB_MIB = 2e9 / 2**20


def random_data(num_query, num_gallery, seed):
    """Features of ``num_query // 4`` identities (centre + noise, so rankings are neither random
    nor perfect), pids and six cameras; the same for a given seed and size."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    num_ids = max(1, num_query // 4)
    q_pids = torch.randint(0, num_ids, (num_query,), generator=generator)
    g_pids = torch.randint(0, num_ids, (num_gallery,), generator=generator)
    centres = 0.4 * torch.randn(num_ids, FEATURE_DIM, generator=generator)
    qf = centres[q_pids] + torch.randn(num_query, FEATURE_DIM, generator=generator)
    gf = centres[g_pids] + torch.randn(num_gallery, FEATURE_DIM, generator=generator)
    q_camids = torch.randint(0, 6, (num_query,), generator=generator)
    g_camids = torch.randint(0, 6, (num_gallery,), generator=generator)
    return qf, gf, q_pids.numpy(), g_pids.numpy(), q_camids.numpy(), g_camids.numpy()


# --- child process: one measurement ------------------------------------------------------------

def _rss_mib(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1)) / 1024


def _cmc_and_map(result):
    return result.cmc, result.mAP


def _timed_call(task, implementation, qf, gf, labels):
    """The call to time, after its untimed preparation; it returns what to compare."""
    from torchreid.reid.metrics import compute_distance_matrix
    from torchreid.reid.metrics.rank import evaluate_rank
    from torchreid.reid.utils import re_ranking

    from direid_plugin.evaluation.distances import FeatureDistances
    from direid_plugin.evaluation.ranking import evaluate_ranking
    from direid_plugin.evaluation.rerank import re_rank

    if task == "ranking":
        distmat = compute_distance_matrix(qf, gf).numpy()
        if implementation == "torchreid":
            return lambda: evaluate_rank(distmat, *labels, use_cython=False)
        return lambda: _cmc_and_map(evaluate_ranking(distmat, *labels))
    if task == "re-ranking":
        if implementation == "torchreid":
            distance = lambda a, b: compute_distance_matrix(a, b).numpy()  # noqa: E731
            return lambda: re_ranking(distance(qf, gf), distance(qf, qf), distance(gf, gf))
        return lambda: re_rank(qf, gf).numpy()
    return lambda: _cmc_and_map(evaluate_ranking(FeatureDistances(qf, gf), *labels))


def measure(spec):
    """Child: time one call, record its memory, save its output to ``spec['out']`` (npz)."""
    import torch

    import direid_plugin  # noqa: F401  (imported as users import it)
    from direid_plugin.evaluation.ranking import evaluate_ranking

    qf, gf, *labels = random_data(spec["num_query"], spec["num_gallery"], spec["seed"])
    call = _timed_call(spec["task"], spec["implementation"], qf, gf, labels)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the resident high-water mark (VmHWM)
    before = _rss_mib("VmRSS")
    start = time.perf_counter()
    output = call()
    seconds = time.perf_counter() - start
    peak = _rss_mib("VmHWM")
    if spec["task"] == "re-ranking":  # compare rankings too: rank the re-ranked distances (untimed)
        np.save(spec["out"] + ".npy", output)
        result = evaluate_ranking(output, *labels)
        output = _cmc_and_map(result)
    np.savez(spec["out"], cmc=output[0], mAP=output[1])
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "added_mib": peak - before,
                      "threads": torch.get_num_threads()}))


# --- parent ------------------------------------------------------------------------------------

def run_child(spec):
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{spec['task']} ({spec['implementation']}) failed:\n{out.stderr[-3000:]}")
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    with np.load(spec["out"] + ".npz") as saved:
        measured.update(cmc=saved["cmc"], mAP=float(saved["mAP"]))
    return measured


def max_abs_difference(path_a, path_b, rows=500):
    a, b = np.load(path_a, mmap_mode="r"), np.load(path_b, mmap_mode="r")
    return max(float(np.abs(a[i:i + rows] - b[i:i + rows]).max()) for i in range(0, len(a), rows))


def agreement(theirs, ours):
    length = min(len(theirs["cmc"]), len(ours["cmc"]))
    return f"{np.abs(theirs['cmc'][:length] - ours['cmc'][:length]).max():.1e} / {abs(theirs['mAP'] - ours['mAP']):.1e}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one fifth of each side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return measure(json.loads(args.child))

    sizes = SIZES["quick" if args.quick else "full"]
    rows, checks = [], []
    with tempfile.TemporaryDirectory(prefix="benchmark_eval_") as folder:
        def run(task, implementation):
            num_query, num_gallery = sizes[task]
            spec = dict(task=task, implementation=implementation, num_query=num_query, num_gallery=num_gallery,
                        seed=args.seed, out=os.path.join(folder, f"{task}-{implementation}".replace(" ", "_")))
            print(f"  {task} {num_query} x {num_gallery}: {implementation} ...", flush=True)
            return run_child(spec), spec["out"]

        for task in ("ranking", "re-ranking"):
            (theirs, their_file), (ours, our_file) = run(task, "torchreid"), run(task, "plugin")
            speedup = theirs["seconds"] / ours["seconds"]
            match = agreement(theirs, ours)
            if task == "re-ranking":
                match += f"; max |d distance| {max_abs_difference(their_file + '.npy', our_file + '.npy'):.1e}"
            rows.append([task, "x".join(map(str, sizes[task])), theirs["seconds"], ours["seconds"], speedup,
                         f"{theirs['peak_mib']:.0f} (+{theirs['added_mib']:.0f})",
                         f"{ours['peak_mib']:.0f} (+{ours['added_mib']:.0f})", match])
            checks.append((task, speedup, ours["peak_mib"]))
        msmt, _ = run("MSMT17-size ranking", "plugin")
        rows.append(["MSMT17-size ranking (plugin, from features)", "x".join(map(str, sizes["MSMT17-size ranking"])),
                     None, msmt["seconds"], None, None, f"{msmt['peak_mib']:.0f} (+{msmt['added_mib']:.0f})",
                     f"mAP {msmt['mAP']:.3f}"])

    print(f"\n{FEATURE_DIM}-d random features, seed {args.seed}, {msmt['threads']} torch threads, CPU")
    headers = ["task", "size", "torchreid s", "plugin s", "speed-up", "torchreid peak RSS MiB (added)",
               "plugin peak RSS MiB (added)", "max |dCMC| / |dmAP|"]
    print(tabulate(rows, headers=headers, floatfmt=".2f", tablefmt="github", missingval="-"))
    (_, ranking_speedup, _), (_, rerank_speedup, rerank_peak) = checks
    print(f"\nTargets ({TARGETS}):")
    print(f"  ranking speed-up {ranking_speedup:.1f}x: {'met' if ranking_speedup >= 25 else 'NOT met'}")
    print(f"  re-ranking plugin peak RSS {rerank_peak * 2**20 / 1e9:.2f} GB: {'met' if rerank_peak < TWO_GB_MIB else 'NOT met'}; "
          f"speed-up {rerank_speedup:.1f}x: {'met' if rerank_speedup >= 1 else 'NOT met'}")
    print(f"  MSMT17-size ranking completed in {msmt['seconds']:.1f} s, peak RSS {msmt['peak_mib'] * 2**20 / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
