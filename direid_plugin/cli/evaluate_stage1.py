"""``direid-evaluate-stage1`` / ``tools/evaluate_stage1.py``: has stage 1 learned, on held-out images?

For each DDGAN checkpoint given (in iteration order), on the test split of ``data.targets[0]``
(images stage 1 never trains on):

- reconstruction and cross-reconstruction L1 on self-degraded pairs: every HR test image and its
  copy degraded by the configured ``degradation.*`` (seeded);
- D_d order: the share of test identities whose HR image D_d scores above their real LR image;
- degradation space: Spearman of PC 1 of E_d codes (real head E_d and self head E'_d) of
  ``--num-images`` HR test images down-sampled by a factor ~ U[--factor-range], as
  ``tools/visualize.py space --kind resolution`` draws it with the same seed and range; and
  "per image": ``--per-image`` copies of each, each image's mean code subtracted (``space
  --per-image``), which takes out what the codes carry besides the degradation (colour, light).

    python tools/evaluate_stage1.py --config-file configs/ddgan/ddgan_cpu.yaml \\
        --weights log/ddgan_cpu/ddgan/model.pth.tar-100 --weights log/ddgan_cpu/ddgan/model.pth.tar-4000
    python tools/evaluate_stage1.py --config-file configs/ddgan/ddgan_cpu.yaml --checkpoint-dir log/ddgan_cpu/ddgan
"""
import glob
import os
import re

import torch
from tabulate import tabulate

import direid_plugin  # noqa: F401  (registers the plugin with torchreid)
from direid_plugin import build
from direid_plugin.cli import arguments
from direid_plugin.cli.common import config_from_args, one_line_errors
from direid_plugin.config import ConfigError, derive
from direid_plugin.data.degradations import build_degradation
from direid_plugin.data.pairs import pair_transform
from direid_plugin.evaluation import stage1
from direid_plugin.files import write_json
from direid_plugin.models.trained import load_trained_model
from direid_plugin.visualize.dataset_images import picture_dataset, sample_items

HEADERS = ["iteration", "rec L1", "cross-rec L1", "D_d: HR > LR (% ids)", "Spearman E_d", "E_d per image",
           "Spearman E'_d", "E'_d per image"]


def checkpoint_iteration(path):
    """The iteration in a stage-1 checkpoint's name (``model.pth.tar-<iteration>``), else -1."""
    match = re.search(r"-(\d+)$", path)
    return int(match.group(1)) if match else -1


def checkpoints(args):
    """--weights files and every checkpoint in --checkpoint-dir, in iteration order."""
    paths = list(args.weights or [])
    if args.checkpoint_dir:
        found = glob.glob(os.path.join(args.checkpoint_dir, "model.pth.tar-*"))
        if not found:
            raise FileNotFoundError(f"--checkpoint-dir {args.checkpoint_dir}: no model.pth.tar-<iteration> file in it")
        paths += found
    if not paths:
        raise ConfigError("give DDGAN checkpoints with --weights FILE (repeatable) or --checkpoint-dir DIR")
    return sorted(set(paths), key=checkpoint_iteration)


def evaluate(cfg, args):
    target, dataset = picture_dataset(cfg)
    lr_camids = set(getattr(dataset, "lr_camids", None) or ())
    if not lr_camids:
        raise ConfigError(f"data.targets[0] '{target}' declares no LR camera: the D_d order needs real LR images")
    test = dataset.query + dataset.gallery
    hr_items = [item for item in test if item[2] not in lr_camids]
    lr_items = [item for item in test if item[2] in lr_camids]
    transform = pair_transform(cfg.data.height, cfg.data.width, cfg.data.norm_mean, cfg.data.norm_std)
    x_a, x_b = stage1.self_degraded_pairs([item[0] for item in hr_items], build_degradation(cfg.degradation),
                                          transform, args.seed)
    space_paths = [item[0] for item in sample_items(dataset.gallery, args.num_images, args.seed)]
    space_degradation = build_degradation(derive(cfg, {"degradation.kinds": ["resolution"],
                                                       "degradation.resolution_range": list(args.factor_range)}).degradation)
    device = torch.device("cuda" if build.use_gpu(cfg) else "cpu")
    print(f"=> {target} test split: {len(hr_items)} HR images self-degraded by {list(cfg.degradation.kinds)} "
          f"(seed {args.seed}); {len(space_paths)} gallery images down-sampled by U{list(args.factor_range)} for the "
          "degradation space")
    rows = []
    for path in checkpoints(args):
        model, _ = load_trained_model(cfg, path, ("ddgan",))
        model.to(device)
        errors = stage1.reconstruction_errors(model, x_a, x_b)
        order, n_ids = stage1.degradation_order(model, hr_items, lr_items, transform)
        rho = [stage1.degradation_space_spearman(model, space_paths, space_degradation, transform, args.seed, head, copies)
               for head in (False, True) for copies in (1, args.per_image)]
        rows.append([checkpoint_iteration(path), errors["rec"], errors["cross_rec"], 100 * order, *rho])
        print("   " + "  ".join(f"{h} {v:.3f}" if isinstance(v, float) else f"{h} {v}" for h, v in zip(HEADERS, rows[-1])),
              flush=True)
    print(f"\n{target} test split ({n_ids} identities), stage 1 never trained on these images:")
    print(tabulate(rows, headers=HEADERS, floatfmt=".3f", tablefmt="github"))
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"iteration {last[0]} / iteration {first[0]}: rec L1 x{last[1] / first[1]:.2f}, "
              f"cross-rec L1 x{last[2] / first[2]:.2f}")
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        write_json(args.output, {"dataset": target, "headers": HEADERS, "rows": rows})
    return rows


def main(argv=None):
    args = arguments.parser("evaluate_stage1").parse_args(argv)
    cfg = config_from_args(args)
    with one_line_errors():
        return evaluate(cfg, args)


if __name__ == "__main__":
    main()
