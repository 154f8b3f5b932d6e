"""Benchmark stage-1 (DDGAN) iterations: seconds per iteration, peak memory, and where the time goes.

Each configuration runs in its own subprocess so its peak memory is its own. Measured in the same
run: the baseline, one training step of the stock torchreid model ``osnet_x0_25`` (softmax) at the
same batch and input size, and every DDGAN config at that size and batch; the first config is the
reference of the "x first config" ratio (by default the official architecture, so the line for
configs/ddgan/ddgan_cpu.yaml is the CPU preset's cost as a fraction of an official-width iteration).

    python tools/benchmark_ddgan.py --height 128 --width 48            # official vs CPU preset, osnet_x0_25
    python tools/benchmark_ddgan.py --profile --height 128 --width 64  # shares of E_c, E_d, G, D, penalty, backward
    python tools/benchmark_ddgan.py --backbones resnet50 osnet_x0_25 --configs configs/ddgan/ddgan_official.yaml
    python tools/benchmark_ddgan.py --height 128 --width 48 engine.channels_last True   # KEY VALUE overrides

One DDGAN iteration is a D step and a G step on random pairs (no data loading), self and real
iterations alternating as in training. ``--profile`` times ``--iters`` iterations of each kind
with the sections marked in the trainer (direid_plugin/profiling.py): each share is the time
spent in that part itself, its nested parts excluded, so a column adds up to 100 %.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

from tabulate import tabulate

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEFAULT_CONFIGS = [os.path.join("configs", "ddgan", "ddgan_official.yaml"), os.path.join("configs", "ddgan", "ddgan_cpu.yaml")]
# Display order of the profile's sections (direid_plugin/profiling.py names); others follow.
SECTIONS = ("E_c trunk", "E_c head", "E_d", "G reconstructions and swaps", "G cycle", "D_r", "D_d", "gradient penalty",
            "E_id", "backward (discriminator)", "backward (generator)", "optimiser steps")


def _peak_memory_mb(device):
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(step, iters, warmup, device):
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return (time.perf_counter() - start) / iters


def _ddgan_trainer(args, device):
    import torch

    import direid_plugin  # noqa: F401
    from direid_plugin.config import load_config
    from direid_plugin.engines.ddgan_trainer import DDGANTrainer
    from direid_plugin.models.ddgan import ddgan, from_config

    b, h, w = args.batch, args.height, args.width
    cfg = load_config(args.config, ["ddgan.backbone", args.backbone, "ddgan.backbone_weights", "", "data.height", h,
                                    "data.width", w, "ddgan.batch_size", b, "engine.amp", args.amp, *args.opts])
    trainer = DDGANTrainer(ddgan(100, pretrained=False, **from_config(cfg)).to(device), cfg, paired=True)
    pids = torch.randint(0, 100, (b,))
    batch = {"hr": torch.randn(b, 3, h, w), "deg": torch.randn(b, 3, h, w), "lr": torch.randn(b, 3, h, w),
             "hr_pid": pids, "lr_pid": pids}
    return trainer, lambda: trainer.train_step(batch)


def _profile(trainer, step, args, device):
    """Exclusive seconds per section, averaged over ``iters`` self and ``iters`` real iterations."""
    from direid_plugin.profiling import SectionTimer

    for _ in range(args.warmup):
        step()
    kinds = {"self": SectionTimer(device), "real": SectionTimer(device)}
    totals = {"self": 0.0, "real": 0.0}
    done = {"self": 0, "real": 0}
    while min(done.values()) < args.iters:
        kind = "self" if trainer.is_self_iteration(trainer.iteration + 1) else "real"
        if done[kind] >= args.iters:  # the schedule gives the other kind next
            step()
            continue
        _sync(device)
        start = time.perf_counter()
        with kinds[kind]:
            step()
        _sync(device)
        totals[kind] += time.perf_counter() - start
        done[kind] += 1
    return {kind: {"total": totals[kind] / args.iters,
                   "sections": {name: sec / args.iters for name, sec in kinds[kind].seconds.items()}}
            for kind in kinds}


def _measure(args):
    """Run in the child: one configuration, printed as JSON."""
    import torch
    import torchreid

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    b, h, w = args.batch, args.height, args.width
    result = {}
    if args.config == "baseline":
        model = torchreid.models.build_model("osnet_x0_25", 100, pretrained=False, use_gpu=False).to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
        x, y = torch.randn(b, 3, h, w, device=device), torch.randint(0, 100, (b,), device=device)

        def step():
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    else:
        trainer, step = _ddgan_trainer(args, device)
        if args.profile:
            result["profile"] = _profile(trainer, step, args, device)
    result["seconds"] = _time(step, args.iters, 0 if args.profile else args.warmup, device)
    result["peak_mb"] = _peak_memory_mb(device)
    print(json.dumps(result))


def _run_child(config, backbone, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--config", config, "--backbone", backbone,
           "--device", args.device, "--batch", str(args.batch), "--height", str(args.height), "--width", str(args.width),
           "--iters", str(args.iters), "--warmup", str(args.warmup), "--amp", str(args.amp), "--threads", str(args.threads)]
    cmd += ["--profile"] if args.profile else []
    out = subprocess.run(cmd + list(args.opts), capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{config} ({backbone}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _config_name(path):
    return os.path.splitext(os.path.basename(path))[0]


def _profile_table(label, profile):
    names = [n for n in SECTIONS if any(n in profile[k]["sections"] for k in profile)]
    names += sorted({n for k in profile for n in profile[k]["sections"]} - set(names))
    rows = []
    for name in names + ["other (losses, bookkeeping)"]:
        row = [name]
        for kind in ("self", "real"):
            total = profile[kind]["total"]
            seconds = profile[kind]["sections"].get(name)
            if seconds is None and name.startswith("other"):
                seconds = total - sum(profile[kind]["sections"].values())
            row += [None, None] if seconds is None else [seconds, 100 * seconds / total]
        rows.append(row)
    rows.append(["iteration", profile["self"]["total"], 100.0, profile["real"]["total"], 100.0])
    print(f"\n{label}: where one iteration's wall time goes")
    print(tabulate(rows, headers=["section", "self s", "self %", "real s", "real %"], floatfmt=(None, ".3f", ".1f", ".3f", ".1f"),
                   tablefmt="github", missingval="-"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS,
                        help="DDGAN configs to time; the first is the reference of the ratio column")
    parser.add_argument("--backbones", nargs="+", default=["osnet_x0_25"])
    parser.add_argument("--device", default="cuda" if _cuda_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--iters", type=int, default=6, help="timed iterations (with --profile: of each kind)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--amp", default="True", help="engine.amp: mixed precision where the device has it")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--profile", action="store_true", help="also print where each iteration's time goes")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--backbone", help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for every DDGAN config")
    args = parser.parse_args(argv)
    if args.child:
        return _measure(args)

    baseline = _run_child("baseline", "osnet_x0_25", args)
    rows = [["osnet_x0_25 softmax step (baseline)", "", baseline["seconds"], 1.0, "", baseline["peak_mb"]]]
    reference = {}
    for backbone in args.backbones:
        for config in args.configs:
            r = _run_child(config, backbone, args)
            reference.setdefault(backbone, r["seconds"])
            rows.append([f"DDGAN iteration, {_config_name(config)}", backbone, r["seconds"],
                         r["seconds"] / baseline["seconds"], r["seconds"] / reference[backbone], r["peak_mb"]])
            if args.profile:
                _profile_table(f"{_config_name(config)}, {backbone} trunk, {args.height}x{args.width}, batch {args.batch}",
                               r["profile"])
    memory = "peak CUDA allocated MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(f"\ndevice {args.device}, batch {args.batch}, {args.height}x{args.width}, {args.iters} timed iterations"
          + (f", overrides {' '.join(args.opts)}" if args.opts else ""))
    print(tabulate(rows, headers=["what", "trunk", "s / iteration", "x baseline", f"x {_config_name(args.configs[0])}",
                                  memory], floatfmt=".3f", tablefmt="github"))
    for backbone in args.backbones:
        for config, row in zip(args.configs[1:], [r for r in rows if r[1] == backbone][1:]):
            print(f"{_config_name(config)} / {_config_name(args.configs[0])} iteration time ({backbone}, "
                  f"{args.height}x{args.width}, batch {args.batch}): {row[4]:.3f}")


def _cuda_available():
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
