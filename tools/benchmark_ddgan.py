"""Benchmark stage-1 (DDGAN) iterations: seconds per iteration and peak memory.

Each configuration runs in its own subprocess so its peak memory is its own. The baseline, measured
in the same run, is one training step of the stock torchreid model ``osnet_x0_25`` (softmax) at the
same batch and input size, and every DDGAN figure is also printed as a ratio to it.

    python tools/benchmark_ddgan.py                       # resnet50 and osnet_x0_25, batch 8, 256x128
    python tools/benchmark_ddgan.py --backbones osnet_x0_25 --iters 4 --height 128 --width 64

One DDGAN iteration is a D step and a G step on random pairs (no data loading), self and real
iterations alternating as in training.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

from tabulate import tabulate


def _peak_memory_mb(device):
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _time(step, iters, warmup, device):
    import torch

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / iters


def _measure(args):
    """Run in the child: one configuration, printed as JSON."""
    import torch
    import torchreid

    import direid_plugin  # noqa: F401
    from direid_plugin.config import load_config
    from direid_plugin.engines.ddgan_trainer import DDGANTrainer
    from direid_plugin.models.ddgan import DDGAN, from_config

    device = torch.device(args.device)
    torch.manual_seed(0)
    b, h, w = args.batch, args.height, args.width
    if args.child == "baseline":
        model = torchreid.models.build_model("osnet_x0_25", 100, pretrained=False, use_gpu=False).to(device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
        x, y = torch.randn(b, 3, h, w, device=device), torch.randint(0, 100, (b,), device=device)

        def step():
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    else:
        cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "configs", "ddgan", "ddgan_official.yaml"),
                          ["ddgan.backbone", args.child, "data.height", str(h), "data.width", str(w),
                           "ddgan.batch_size", str(b), "engine.amp", str(args.amp)])
        trainer = DDGANTrainer(DDGAN(100, **from_config(cfg)).to(device), cfg, paired=True)
        pids = torch.randint(0, 100, (b,))
        batch = {"hr": torch.randn(b, 3, h, w), "deg": torch.randn(b, 3, h, w), "lr": torch.randn(b, 3, h, w),
                 "hr_pid": pids, "lr_pid": pids}

        def step():
            trainer.train_step(batch)
    seconds = _time(step, args.iters, args.warmup, device)
    print(json.dumps({"seconds": seconds, "peak_mb": _peak_memory_mb(device)}))


def _run_child(name, args):
    cmd = [sys.executable, __file__, "--child", name, "--device", args.device, "--batch", str(args.batch),
           "--height", str(args.height), "--width", str(args.width), "--iters", str(args.iters),
           "--warmup", str(args.warmup), "--amp", str(args.amp)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=["resnet50", "osnet_x0_25"])
    parser.add_argument("--device", default="cuda" if _cuda_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--iters", type=int, default=6, help="timed iterations (even: self and real alternate)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--amp", default="True", help="mixed precision on CUDA (ignored on CPU)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _measure(args)

    baseline = _run_child("baseline", args)
    rows = [["osnet_x0_25 softmax step (baseline)", baseline["seconds"], 1.0, baseline["peak_mb"], 1.0]]
    for backbone in args.backbones:
        r = _run_child(backbone, args)
        rows.append([f"DDGAN iteration, {backbone} trunk", r["seconds"], r["seconds"] / baseline["seconds"],
                     r["peak_mb"], r["peak_mb"] / baseline["peak_mb"]])
    memory = "peak CUDA allocated MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(f"device {args.device}, batch {args.batch}, {args.height}x{args.width}, {args.iters} timed iterations")
    print(tabulate(rows, headers=["what", "s / iteration", "x baseline time", memory, "x baseline memory"],
                   floatfmt=".3f"))


def _cuda_available():
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
