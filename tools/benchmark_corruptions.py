"""Corruption robustness of torchreid models and DI-REID: the 20-corruption Re-ID benchmark.

Evaluates each model on a dataset's clean test set, on each corruption at each severity (20 x 5,
data/corruptions.py) and on the random-corruption set (each image one random type and level), in
the benchmark's three modes: query and gallery corrupted (``both``), queries only (``query``),
gallery only (``gallery``). Prints R1 / mAP / mINP tables (per corruption averaged over the
severities; clean vs corrupted), the mCE and relative mCE against a reference model (errors 1 - R1
and 1 - mAP; evaluation/corruption_metrics.py), and writes a heatmap of the mAP drop (model x
corruption), ``results.json`` and ``results.md`` under ``--output``.

    python tools/benchmark_corruptions.py --dataset viper --root ../shared/data \\
        --model zero-shot configs/corruptions/osnet_x0_25_viper_finetune.yaml ../shared/data/weights/osnet_x0_25_msmt17.pth \\
        --model fine-tuned configs/corruptions/osnet_x0_25_viper_finetune.yaml log/corruptions/viper_finetune/model/model.pth.tar-30 \\
        --reference zero-shot --output log/corruptions/viper

Adding a model to an earlier run evaluates only that model:

    python tools/benchmark_corruptions.py ... (the same models and one more) --reuse log/corruptions/viper/results.json

A model is ``LABEL CONFIG WEIGHTS``: the config gives the architecture and the test settings
(input size, normalisation, ``test.flip``, ``test.normalize_feature``, ``test.dist_metric``); the
weights are a stock torchreid model's (its classifier is not used) or a plugin model's checkpoint
(DI-REID's DFEN, rebuilt strictly). Corrupted test sets are cached once (datasets/corrupted.py)
and shared by all models; each model's clean query and gallery features are computed once, and
each corrupted set's features once for the three modes.
"""
import argparse
import json
import os
import time

import torch
from tqdm import tqdm

import direid_plugin  # noqa: F401  (registers the datasets and models)
from torchreid.reid.data.transforms import build_transforms
from torchreid.reid.utils import set_random_seed

from direid_plugin import weights
from direid_plugin.build import load_reported
from direid_plugin.config import ConfigError, load_config
from direid_plugin.data.corruptions import CORRUPTIONS, SEVERITIES, CorruptionError, check_corruption, check_severity
from direid_plugin.data.datasets.corrupted import MODES, CorruptedDataset
from direid_plugin.data.image_io import read_image
from direid_plugin.data.manifest import file_sha1
from direid_plugin.evaluation.corruption_metrics import RANDOM, map_drops, summaries
from direid_plugin.evaluation.distances import FeatureDistances
from direid_plugin.evaluation.features import flip_averaged
from direid_plugin.evaluation.ranking import evaluate_ranking
from direid_plugin.evaluation.tables import corruption_tables
from direid_plugin.files import write_json, write_text
from direid_plugin.models.trained import checkpoint_model_name, load_trained_model
from direid_plugin.registry import model_factory
from direid_plugin.visualize.corruption_heatmap import save_drop_heatmap


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="a registered dataset whose test set is corrupted (e.g. viper)")
    parser.add_argument("--root", required=True, help="data root (as ImageDataManager's root)")
    parser.add_argument("--split-id", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-image corruption draws (default 0)")
    parser.add_argument("--model", nargs=3, action="append", required=True, metavar=("LABEL", "CONFIG", "WEIGHTS"),
                        help="a model to evaluate; repeat for several")
    parser.add_argument("--reference", help="label of the mCE reference model (default: the first --model)")
    parser.add_argument("--corruptions", default=",".join(CORRUPTIONS), help="comma-separated subset (default: all 20)")
    parser.add_argument("--severities", default=",".join(map(str, SEVERITIES)), help="comma-separated subset of 1-5")
    parser.add_argument("--output", required=True, help="folder for results.json, results.md and the heatmap")
    parser.add_argument("--reuse", metavar="RESULTS_JSON",
                        help="an earlier run's results.json: a model with the same label, config and weights (by "
                             "SHA-1) evaluated on the same test sets is taken from it instead of evaluated again")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="test batch (default 32: osnet_x0_25 at 256x128 ran fastest at 16-32 on 2 CPU cores)")
    args = parser.parse_args(argv)
    labels = [label for label, _, _ in args.model]
    if len(set(labels)) != len(labels):
        parser.error(f"--model labels must differ, got {labels}")
    args.reference = args.reference or labels[0]
    if args.reference not in labels:
        parser.error(f"--reference {args.reference!r} is not a --model label ({', '.join(labels)})")
    try:
        args.corruptions = [c for c in args.corruptions.split(",") if c]
        args.severities = [int(s) for s in args.severities.split(",") if s]
        for corruption in args.corruptions:
            check_corruption(corruption)
        for severity in args.severities:
            check_severity(severity)
    except (CorruptionError, ValueError) as e:
        parser.error(f"--corruptions / --severities: {e}")
    return args


def test_sets(args):
    """``{key: CorruptedDataset}``: key (corruption, severity) or RANDOM; built (or verified) once."""
    keys = [(c, s) for c in args.corruptions for s in args.severities] + [RANDOM]
    sets = {}
    for key in tqdm(keys, desc="corrupted test sets"):
        corruption, severity = (None, None) if key == RANDOM else key
        sets[key] = CorruptedDataset(args.dataset, "both", corruption, severity, root=args.root,
                                     split_id=args.split_id, seed=args.seed, verbose=False)
    return sets


def load_model(cfg, path):
    """The model of ``cfg`` with the weights at ``path``, in eval mode."""
    model_weights = weights.read(path, "--model WEIGHTS")
    plugin_model = checkpoint_model_name(model_weights.state)
    if plugin_model:  # rebuilt from the config's architecture nodes (e.g. dfen.*), whatever model.name says
        return load_trained_model(cfg, path, accepted=(plugin_model,), option="--model WEIGHTS")[0]
    factory = model_factory().get(cfg.model.name)
    if factory is None:
        raise ConfigError(f"model.name: unknown model '{cfg.model.name}'; run torchreid.models.show_avai_models()")
    classifier = model_weights.state.get("classifier.weight")
    model = factory(num_classes=1 if classifier is None else classifier.shape[0], loss=cfg.loss.name,
                    pretrained=False, use_gpu=False)
    load_reported(model, model_weights)
    return model.eval()


class FeatureExtractor:
    """Test features of image lists under one model's config (size, normalisation, flip, L2)."""

    def __init__(self, cfg, path, batch_size):
        self.device = torch.device("cuda" if cfg.use_gpu and torch.cuda.is_available() else "cpu")
        # channels_last: 0.50-0.63 s instead of 0.76-1.17 s per 128 images for osnet_x0_25 on 2 CPU cores.
        self.memory_format = torch.channels_last
        self.model = load_model(cfg, path).to(self.device, memory_format=self.memory_format)
        _, self.transform = build_transforms(cfg.data.height, cfg.data.width, norm_mean=list(cfg.data.norm_mean),
                                             norm_std=list(cfg.data.norm_std))
        self.flip, self.normalize = cfg.test.flip, cfg.test.normalize_feature
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, items):
        features = []
        for start in range(0, len(items), self.batch_size):
            images = torch.stack([self.transform(read_image(item[0])) for item in items[start:start + self.batch_size]])
            images = images.to(self.device).contiguous(memory_format=self.memory_format)
            features.append(flip_averaged(self.model, images, self.flip))
        features = torch.cat(features)
        return torch.nn.functional.normalize(features, dim=1) if self.normalize else features


def ranking_labels(q_items, g_items):
    """(q_pids, g_pids, q_camids, g_camids) as ``evaluate_ranking`` takes them."""
    return tuple(torch.tensor([item[i] for item in items]) for i in (1, 2) for items in (q_items, g_items))


def scores(query, gallery, labels, metric):
    result = evaluate_ranking(FeatureDistances(query, gallery, metric), *labels)
    return {"rank1": float(result.cmc[0]), "mAP": result.mAP, "mINP": result.mINP}


def evaluate_model(label, cfg, path, sets, clean_items, batch_size):
    """``{"clean": scores, "modes": {mode: {key: scores}}}`` of one model over every test set."""
    extract = FeatureExtractor(cfg, path, batch_size)
    metric = cfg.test.dist_metric
    labels = ranking_labels(*clean_items)  # every corrupted set keeps the clean sets' order and labels
    clean_q, clean_g = (extract(items) for items in clean_items)
    result = {"clean": scores(clean_q, clean_g, labels, metric), "modes": {mode: {} for mode in MODES}}
    for key, dataset in tqdm(sets.items(), desc=label):
        q, g = extract(dataset.query), extract(dataset.gallery)
        pairs = {"both": (q, g), "query": (q, clean_g), "gallery": (clean_q, g)}
        for mode, (qf, gf) in pairs.items():
            result["modes"][mode][key] = scores(qf, gf, labels, metric)
    return result


def json_key(key):
    """``"fog_3"`` for ``("fog", 3)``; ``"random"`` stays."""
    return key if key == RANDOM else f"{key[0]}_{key[1]}"


def from_json_key(key):
    if key == RANDOM:
        return key
    corruption, severity = key.rsplit("_", 1)
    return corruption, int(severity)


def test_set_description(args):
    """What makes two runs' test sets the same."""
    return {"dataset": args.dataset, "root": os.path.abspath(args.root), "split_id": args.split_id, "seed": args.seed,
            "corruptions": args.corruptions, "severities": args.severities}


def model_description(config, path):
    return {"config": config, "weights": path, "weights_sha1": file_sha1(path)}


def reusable_results(path, args):
    """``{label: (results, model description, seconds)}`` of ``path``'s models (an earlier run on the
    same test sets)."""
    with open(path) as f:
        earlier = json.load(f)
    if {k: earlier.get(k) for k in test_set_description(args)} != test_set_description(args):
        raise SystemExit(f"--reuse {path}: its test sets differ from this run's ({test_set_description(args)})")
    return {label: ({"clean": earlier["results"][label]["clean"],
                     "modes": {mode: {from_json_key(k): v for k, v in per_key.items()}
                               for mode, per_key in earlier["results"][label]["modes"].items()}},
                    {key: model[key] for key in ("config", "weights", "weights_sha1")}, model["seconds"])
            for label, model in earlier["models"].items()}


def main(argv=None):
    args = parse_args(argv)
    configs = {label: load_config(config) for label, config, _ in args.model}
    set_random_seed(args.seed)  # as training does: a dataset that draws its splits at first use (viper) draws them alike
    start = time.perf_counter()
    sets = test_sets(args)
    cache_seconds = time.perf_counter() - start
    images = sum(len({item[0] for item in d.query + d.gallery}) for d in sets.values())
    print(f"=> {len(sets)} corrupted test sets of {args.dataset} ({images} images) built or verified in {cache_seconds:.1f} s")
    any_set = next(iter(sets.values()))
    clean_items = any_set.clean_query, any_set.clean_gallery
    reusable = reusable_results(args.reuse, args) if args.reuse else {}
    results, seconds, models = {}, {}, {}
    for label, config, path in args.model:
        models[label] = model_description(config, path)
        if label in reusable and reusable[label][1] == models[label]:
            results[label], _, seconds[label] = reusable[label]
            print(f"=> {label}: reused from {args.reuse} (evaluated in {seconds[label]:.0f} s)")
            continue
        start = time.perf_counter()
        results[label] = evaluate_model(label, configs[label], path, sets, clean_items, args.batch_size)
        seconds[label] = time.perf_counter() - start
        print(f"=> {label}: {seconds[label]:.0f} s")
    summary = summaries(results, args.reference)
    tables = lambda tablefmt: corruption_tables(results, summary, args.reference, args.corruptions, args.severities,
                                                tablefmt)
    for title, table in tables("simple"):
        print(f"\n{title}\n{table}")
    heatmap = save_drop_heatmap(os.path.join(args.output, "map_drop_heatmap.png"),
                                map_drops(results, "both"), args.corruptions,
                                f"mAP drop under corruption (query and gallery corrupted), {args.dataset} split "
                                f"{args.split_id}")
    write_text(os.path.join(args.output, "results.md"),
               "".join(f"### {title}\n\n{table}\n\n" for title, table in tables("github")))
    serialised = {label: {"clean": r["clean"], "modes": {mode: {json_key(k): v for k, v in per_key.items()}
                                                         for mode, per_key in r["modes"].items()}}
                  for label, r in results.items()}
    write_json(os.path.join(args.output, "results.json"), {
        **test_set_description(args), "reference": args.reference,
        "models": {label: dict(models[label], seconds=seconds[label]) for label in models},
        "cache_seconds": cache_seconds, "cache_folders": {json_key(k): d.cache_dir for k, d in sets.items()},
        "results": serialised, "summary": summary})
    print(f"\n=> wrote {heatmap}, results.json and results.md in {args.output}")


if __name__ == "__main__":
    main()
