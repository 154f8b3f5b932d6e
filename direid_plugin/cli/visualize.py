"""``direid-visualize`` / ``tools/visualize.py``: pictures of a trained DDGAN or DFEN on real images.

    swap    --weights DDGAN        swap matrix over HR gallery + LR query images (paper Fig. 5/6)
    replay  --weights DDGAN        one image re-rendered with codes drawn from a bank of real codes
    ranked  --weights DFEN|DDGAN   ranked lists of queries, each image with its D_d degradation score
    space   --weights DDGAN        PCA of E_d codes of synthetically degraded images (paper Fig. 7)

Each takes ``--config-file`` and ``KEY VALUE`` overrides like the other commands: the images come
from ``data.targets[0]`` (its test split; replay's bank from its training split) at
``data.height`` x ``data.width``, and the architecture from the config's ``ddgan``/``dfen`` nodes.
PNGs go to ``--output-dir`` (default ``<data.save_dir>/pictures``); each command prints where.
"""
import os

import torch
from torchreid.reid.data.transforms import build_transforms

import direid_plugin  # noqa: F401  (registers the plugin with torchreid)
from direid_plugin import build
from direid_plugin.weights import CheckpointError
from direid_plugin.cli import arguments
from direid_plugin.cli.common import config_from_args, one_line_errors
from direid_plugin.config import ConfigError, derive
from direid_plugin.data.degradations import DEGRADATIONS, build_degradation
from direid_plugin.data.pairs import pair_transform
from direid_plugin.evaluation.features import flip_averaged
from direid_plugin.models.trained import load_trained_model
from direid_plugin.visualize import ranked, replay, space, swaps
from direid_plugin.visualize.dataset_images import (
    load_batch, picture_dataset, quality_label, same_identity_pairs, sample_items,
)


def _setup(cfg, args, accepted):
    """(model on the configured device, its name, device, target name, target dataset)."""
    model, name = load_trained_model(cfg, args.weights, accepted)
    device = torch.device("cuda" if build.use_gpu(cfg) else "cpu")
    target, dataset = picture_dataset(cfg)
    return model.to(device), name, device, target, dataset


def _stage1_transform(cfg):
    return pair_transform(cfg.data.height, cfg.data.width, cfg.data.norm_mean, cfg.data.norm_std)


def _normalisation(cfg):
    return {"mean": cfg.data.norm_mean, "std": cfg.data.norm_std}


def _output(cfg, args, file_name):
    return os.path.join(args.output_dir or os.path.join(cfg.data.save_dir, "pictures"), file_name)


def swap(cfg, args):
    model, _, device, target, dataset = _setup(cfg, args, ("ddgan",))
    pairs = same_identity_pairs(dataset.query, dataset.gallery, args.num_identities)
    if not pairs:
        raise ConfigError(f"data.targets[0] '{target}': no identity has both query and gallery images to swap")
    items = [gallery for gallery, _ in pairs] + [query for _, query in pairs]
    images = load_batch([item[0] for item in items], _stage1_transform(cfg), device)
    path = swaps.save_swap_matrix(model, images, [quality_label(dataset, item) for item in items],
                                  _output(cfg, args, f"swap_{target}.png"), **_normalisation(cfg))
    print(f"=> Degradation swaps of {len(pairs)} {target} identities, gallery then query images "
          f"({swaps.MATRIX_LAYOUT}): {path}")
    return path


def replay_codes(cfg, args):
    model, _, device, target, dataset = _setup(cfg, args, ("ddgan",))
    if args.image and not os.path.isfile(args.image):
        raise FileNotFoundError(f"--image {args.image}: no such file")
    if not dataset.train:
        raise ConfigError(f"data.targets[0] '{target}' has no training images for the code bank")
    transform = _stage1_transform(cfg)
    image_path, label = (args.image, "input") if args.image else (dataset.query[0][0], quality_label(dataset, dataset.query[0]))
    bank_items = sample_items(dataset.train, args.bank_size, args.seed)
    path = replay.save_replay_sheet(
        model, load_batch([image_path], transform, device)[0], label, bank_items,
        [quality_label(dataset, item) for item in bank_items], transform, _output(cfg, args, f"replay_{target}.png"),
        args.num_codes, args.seed, **_normalisation(cfg))
    print(f"=> {image_path} with {min(args.num_codes, len(bank_items))} codes from a bank of {len(bank_items)} "
          f"{target} training images ({replay.LAYOUT}): {path}")
    return path


def _degradation_discriminator(cfg, args, model, device):
    """D_d for the scores: the stage-1 D_d of --ddgan-weights if given, else the model's own."""
    if args.ddgan_weights:
        ddgan, _ = load_trained_model(cfg, args.ddgan_weights, ("ddgan",), option="--ddgan-weights")
        return ddgan.degradation_discriminator.to(device)
    if model.degradation_discriminator is None:
        raise CheckpointError(f"--weights {args.weights}: this DFEN has no degradation discriminator (dfen.attention "
                              f"'{cfg.dfen.attention}', not 'guided'); give --ddgan-weights its stage-1 DDGAN checkpoint "
                              "to score the images")
    return model.degradation_discriminator


def ranked_lists(cfg, args):
    model, name, device, target, dataset = _setup(cfg, args, ("dfen", "ddgan"))
    discriminator = _degradation_discriminator(cfg, args, model, device)
    _, transform = build_transforms(cfg.data.height, cfg.data.width, norm_mean=cfg.data.norm_mean,
                                    norm_std=cfg.data.norm_std)
    queries = sample_items(dataset.query, args.num_queries, args.seed)
    path, _ = ranked.save_ranked_lists(
        _output(cfg, args, f"ranked_{target}.png"), lambda x: flip_averaged(model, x, cfg.test.flip), discriminator.score,
        queries, dataset.gallery, transform, lambda item: quality_label(dataset, item), device,
        args.topk or cfg.test.visrank_topk, cfg.test.dist_metric, cfg.test.normalize_feature, **_normalisation(cfg))
    print(f"=> Ranked lists of {len(queries)} {target} queries over {len(dataset.gallery)} gallery images "
          f"(blue: query, green: same identity, red: other; captions: camera quality, identity, D_d score, "
          f"higher = judged less degraded): {path}")
    return path


def degradation_space(cfg, args):
    model, _, device, target, dataset = _setup(cfg, args, ("ddgan",))
    kind = args.kind or cfg.degradation.kinds[0]
    if kind not in DEGRADATIONS:
        raise ConfigError(f"--kind {kind}: unknown degradation kind; choose one of {sorted(DEGRADATIONS)}")
    degradation = build_degradation(derive(cfg, {"degradation.kinds": [kind]}).degradation)
    items = sample_items(dataset.gallery, args.num_images, args.seed)
    codes, amounts = space.space_codes(model, [item[0] for item in items], degradation, _stage1_transform(cfg), device,
                                       args.seed, args.head == "self", args.per_image)
    parameter = DEGRADATIONS[kind].param_names[0]
    low, high = degradation.degradations[0].ranges[0]
    encoder = "E'_d (self head)" if args.head == "self" else "E_d (real head)"
    per_image = args.per_image > 1
    images = f"{len(items)} {target} gallery images" + (f" x {args.per_image} degraded copies" if per_image else "")
    centred = ["each image's mean code subtracted"] if per_image else []
    title = [f"{encoder} codes of {images}", *centred, f"{kind} {parameter} ~ U[{low:g}, {high:g}] (seed {args.seed})"]
    path, summary = space.save_space_plot(  # short title lines: one long line is clipped by the figure
        _output(cfg, args, f"space_{target}_{kind}{'_per_image' if per_image else ''}.png"), codes, amounts,
        f"{kind} {parameter}", "\n".join(title))
    print(f"=> Degradation space of {', '.join([images, *centred])} ({kind} {parameter}; Spearman of PC 1 vs "
          f"{parameter}: {summary['pc1_spearman']:+.2f}): {path}")
    return path


COMMANDS = {"swap": swap, "replay": replay_codes, "ranked": ranked_lists, "space": degradation_space}


def main(argv=None):
    args = arguments.parser("visualize").parse_args(argv)
    cfg = config_from_args(args)
    with one_line_errors():
        return COMMANDS[args.command](cfg, args)


if __name__ == "__main__":
    main()
