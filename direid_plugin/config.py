"""The plugin's yacs configuration.

torchreid's usual nodes (``model``, ``data``, ``sampler``, ``train``, ``sgd``/``adam``/``rmsprop``,
``loss``, ``test``) keep upstream deep-person-reid's key names, so existing configs carry over.
Plugin nodes (``engine``, ``degradation``, ``ddgan``, ``dfen``) are typed: a typo or a wrong
value type is an error that names the key. One function builds each node, so each subsystem
owns its block.

YAML files may name a parent with ``_BASE_: relative/path.yaml``, or several with a list (merged in
order, a later parent overriding an earlier one); the parents are merged first, then the file.
"""
import ast
import difflib
import os

import yaml
from yacs.config import CfgNode as CN


class ConfigError(ValueError):
    """A config file or override names an unknown key or gives a value of the wrong type."""


def _model_node():
    node = CN()
    node.name = "osnet_x0_25"
    # torchreid's ImageNet init; off by default because it needs a download (see compat.py).
    node.pretrained = False
    # A local torchreid-format state dict loaded non-strictly (classifier dropped on mismatch).
    node.pretrained_path = ""
    node.load_weights = ""  # weights to evaluate or fine-tune from
    node.resume = ""  # "" | "auto" (newest valid checkpoint in data.save_dir) | a path
    return node


def _data_node():
    node = CN()
    node.type = "image"
    node.root = os.environ.get("DIREID_DATA_ROOT", "reid-data")
    node.sources = ["synthetic_mlr"]
    node.targets = ["synthetic_mlr"]
    node.workers = 2
    node.split_id = 0
    node.height = 256
    node.width = 128
    node.combineall = False
    node.transforms = ["random_flip"]
    node.k_tfm = 1
    node.norm_mean = [0.485, 0.456, 0.406]
    node.norm_std = [0.229, 0.224, 0.225]
    node.save_dir = "log"
    node.load_train_targets = False
    # Decode every train/query/gallery image once before the run, drop unreadable ones and list
    # them at the end and in <save_dir>/skipped_images.txt (data/datamanager.py); False: fail on them.
    node.skip_bad_images = False
    return node


def _sampler_node():
    node = CN()
    node.train_sampler = "RandomSampler"
    node.train_sampler_t = "RandomSampler"
    node.num_instances = 4
    node.num_cams = 1
    node.num_datasets = 1
    return node


def _train_node():
    node = CN()
    node.optim = "adam"
    node.lr = 0.0003
    node.weight_decay = 5e-4
    node.max_epoch = 60
    node.start_epoch = 0
    node.batch_size = 32
    node.fixbase_epoch = 0
    node.open_layers = ["classifier"]
    node.staged_lr = False
    node.new_layers = ["classifier"]
    node.base_lr_mult = 0.1
    node.lr_scheduler = "single_step"
    node.stepsize = [20]
    node.gamma = 0.1
    node.print_freq = 20
    node.seed = 1
    return node


def _optimizer_nodes(cfg):
    cfg.sgd = CN()
    cfg.sgd.momentum = 0.9
    cfg.sgd.dampening = 0.0
    cfg.sgd.nesterov = False
    cfg.rmsprop = CN()
    cfg.rmsprop.alpha = 0.99
    cfg.adam = CN()
    cfg.adam.beta1 = 0.9
    cfg.adam.beta2 = 0.999


def _loss_node():
    node = CN()
    node.name = "softmax"  # softmax | triplet (softmax + hard-mined triplet)
    node.softmax = CN()
    node.softmax.label_smooth = True
    node.triplet = CN()
    node.triplet.margin = 0.3
    node.triplet.weight_t = 1.0
    node.triplet.weight_x = 0.0
    return node


def _test_node():
    node = CN()
    node.batch_size = 100
    node.dist_metric = "euclidean"
    node.normalize_feature = False
    node.ranks = [1, 5, 10, 20]
    node.evaluate = False
    node.eval_freq = -1
    node.start_eval = 0
    node.rerank = False
    node.visrank = False
    node.visrank_topk = 10
    node.use_metric_cuhk03 = False
    # "standard": torchreid's CMC + mAP; "single_shot": the MLR protocol (one random gallery
    # image per identity per trial, averaged over trials; evaluation/single_shot.py). 100 trials
    # is the official DI-REID test's count.
    node.protocol = "standard"
    node.single_shot_trials = 100
    # "plugin": the plugin's ranking (CMC, mAP, mINP; evaluation/ranking.py) and memory-bounded
    # re-ranking (evaluation/rerank.py), on the model's device; "torchreid": torchreid's own
    # python evaluate_rank and re_ranking on CPU (slow; no mINP; standard protocol only).
    node.evaluator = "plugin"
    node.seed = 0
    # Test feature = mean of the image's and its mirror's (official DI-REID protocol, docs/method.md 6.2),
    # for every engine, so baselines and DI-REID evaluated from one config are augmented alike.
    node.flip = False
    return node


def _engine_node():
    node = CN()
    # "auto": the plugin model's own engine (ddgan, dfen), else loss.name's (torchreid's softmax / triplet).
    node.name = "auto"
    node.amp = True  # mixed precision, used only where the device supports it (CUDA)
    node.channels_last = False
    # Flush denormal floats to zero on CPU (torch.set_flush_denormal) for the whole run. Stage 1 on
    # corrupted pairs slowed from 0.44 to 1.6 s/iteration as values turned denormal; with it on it
    # stayed at 0.40-0.41 (README, corruption results). Off by default: published runs used it off.
    node.flush_denormal = False
    node.keep_last = 3  # checkpoints kept per model
    node.progress = True  # tqdm bars for training and feature extraction
    node.max_nonfinite_steps = 10  # consecutive NaN/inf steps skipped before TrainingDiverged (engines/guards.py)
    return node


def _degradation_node():
    node = CN()
    # Names from direid_plugin.data.degradations, composed in random order and count.
    # Kinds: resolution, illumination, jpeg, gaussian_blur, motion_blur, gaussian_noise,
    # poisson_noise, fog; the benchmark corruptions corruption.<name> (data/corruptions.py) and
    # corruption.random (one of the 20 per image). Parameters are drawn uniformly from [low, high]
    # (integers inclusive).
    node.kinds = ["resolution"]
    node.compose_p = 0.5  # K ~ Binomial(len(kinds), compose_p) conditioned on K >= 1 kinds applied
    node.resolution_range = [2.0, 4.0]  # paper U[2, 4]; the official code uses U[3, 5]
    node.gamma_range = [2.0, 3.5]
    node.gain_range = [1.0, 1.0]  # official code: [0.75, 1.0]
    node.jpeg_quality_range = [10, 20]
    node.gaussian_blur_sigma_range = [1.0, 3.0]
    node.motion_blur_size_range = [5, 15]
    node.gaussian_noise_std_range = [5.0, 20.0]
    node.poisson_peak_range = [10.0, 60.0]  # photons at a white pixel
    node.fog_beta_range = [0.6, 1.8]
    node.fog_airlight_range = [0.7, 1.0]  # a fraction of white
    node.corruption_severity_range = [1, 5]  # corruption levels
    # Training-time augmentation: each training image is degraded by the kinds above with this
    # probability (before resizing), for every model the data manager trains (0: off). The fair
    # baseline of a corruption-trained DI-REID uses the same kinds.
    node.train_augment_p = 0.0
    node.seed = 0
    return node


def _ddgan_node():
    """Stage-1 DDGAN architecture (read by models.ddgan.from_config) and loss forms."""
    node = CN()
    # Content encoder E_c: a torchreid backbone cut to 4 levels (models/backbones.py lists them).
    node.backbone = "osnet_x0_25"  # the paper's is resnet50; osnet_x0_25 is the CPU-friendly one
    node.backbone_weights = ""  # torchreid-format Re-ID/ImageNet weights for the trunk, loaded non-strictly
    node.feat_inv_dim = 2048  # f_inv width
    # Cost knobs: the official architecture by default; configs/ddgan/ddgan_cpu.yaml narrows them.
    # content map channels (at 1/4 resolution); also the width of E_c's content branch (half of it)
    # and of the decoder (halved by each up-sampling)
    node.content_dim = 128
    node.code_dim = 128  # degradation code width
    node.deg_encoder_dim = 64  # E_d / E'_d trunk width (its convolutions have 1, 1, 2, 4, 4, 4 times this)
    node.adain_mlp_dim = 512  # hidden width of the decoder's 8 AdaIN MLPs
    node.upsample_kernel = 5  # kernel size of the decoder's two up-sampling convolutions (odd)
    node.dis_dim = 32  # D_r / D_d width (first convolutions; residual blocks at twice that)
    node.dr_scales = 3  # D_r scales
    node.dd_scales = 1  # D_d scales: 1 for resolution-only degradation (official), 3 otherwise
    node.multi_scale = True  # False: Table-3 "w/o multi-scale" (last trunk level only)
    node.freeze_trunk = True  # stage 1 runs the trunk under no_grad (official code)
    node.trunk_bn_eval = False  # True stops the frozen trunk's BatchNorm statistics from drifting
    # Frozen identity encoder E_id for the paper's identity-preserving loss (Eq. 3, 8); "" = none.
    node.eid_name = ""
    node.eid_weights = ""
    node.eid_distance = "l1"  # l1 | l2 | cosine, between E_id features of generated and source images
    # Loss forms.
    node.gan_type = "lsgan"  # lsgan (official code) | nsgan (paper Eq. 4, 7)
    node.grad_penalty = 0.01  # R1-style penalty weight on real images
    # Lazy penalty (StyleGAN2's R1 practice): applied on every k-th D step of each iteration kind
    # (self / real) with its weight multiplied by k, so its average weight is unchanged. 1 = every step.
    node.grad_penalty_every = 1
    node.rank_margin = 1.0
    node.pixel_loss = "l1"  # l1 | smooth_l1 | l2
    _ddgan_training_keys(node)
    return node


def _ddgan_training_keys(node):
    """Stage-1 engine (engines/ddgan_engine.py): schedule, loss weights and variant switches.

    Defaults are the official code's; configs/ddgan/ddgan_paper.yaml switches to the paper's
    formulation. A weight of 0 switches a loss term off (the per-term ablation switches).
    """
    node.max_iter = 30000
    node.batch_size = 8  # pairs per iteration (stage 2 and baselines use train.batch_size)
    node.lr = 1e-4  # both optimisers (Adam)
    node.betas = [0.0, 0.999]
    node.weight_decay = 5e-4
    node.lr_step = 20000  # MultiStepLR milestones s, 1.5 s, 1.75 s (per iteration), gamma lr_gamma
    node.lr_gamma = 0.1
    node.sync_prob = -1.0  # < 0: alternate self (odd) and real (even) iterations; else P(self)
    node.lr_camids = []  # LR cameras of the training data; [] = what the dataset declares (else unpaired)
    node.w_real = 1.0  # reality adversarial (Eq. 4, 7)
    node.w_deg = 1.0  # degradation ranking / classification (Eq. 5, 10)
    node.w_rec = 10.0  # self reconstruction x_aa, x_bb (Eq. 2, 6)
    node.w_cross_rec = 10.0  # self pairs: x_ab -> x_b, x_ba -> x_a (official; the paper has none)
    node.w_inv = 5.0  # content invariance |c_a - c_b| on self pairs (Eq. 1)
    node.w_id = 0.5  # identification CE on content features of real images (Eq. 9)
    node.w_cycle = 10.0  # swap-back reconstruction on real pairs (official)
    node.w_pre = 0.0  # identity preserving through frozen E_id (Eq. 3, 8; paper)
    node.w_kl = 0.0  # KL consistency of f_inv logits on self pairs (official --enable_kl)
    node.real_deg = "binary"  # real pairs with known LR cameras: binary (official) | ranking (Eq. 10)
    node.self_d_fake = "random"  # self-iteration D_r fake: random one of x_ab/x_ba (official) | both
    node.log_freq = 50
    node.image_freq = 1000
    node.checkpoint_freq = 1000


def _dfen_node():
    """Stage-2 DFEN model (models/dfen.py) and engine (engines/dfen_engine.py).

    The E_c architecture comes from the ``ddgan`` node (it must match the stage-1 checkpoint).
    Defaults mix the paper (guided attention, BNNeck heads) and the official code (memory replay);
    configs/dfen/dfen_{paper,official}.yaml pin each variant.
    """
    node = CN()
    # Stage-1 DDGAN checkpoint (<save_dir>/ddgan/model.pth.tar-<iter>): E_c init, frozen D_d for the
    # guided attention, frozen E_c/E_d/G for memory replay. Training needs it unless none of those is used.
    node.ddgan_checkpoint = ""
    node.use_dil = True  # False: Table-3 "w/o DIL" (E_c keeps its ddgan.backbone_weights init)
    # Degradation-sensitive branch E_id: a torchreid Re-ID backbone (resnet / osnet families).
    node.sen_backbone = "osnet_x0_25"
    node.sen_weights = ""  # torchreid-format Re-ID weights, loaded non-strictly (classifier dropped)
    node.shared_trunk = False  # True (official): E_id is only its last stage on top of E_c's trunk
    node.attention = "guided"  # guided (paper Eq. 13, from D_d) | self (official gating of f_sen) | none
    node.attention_dim = 128  # latent width of the attention MLP
    node.head = "bnneck"  # bnneck (BN + bias-free linear) | classblock (official 512-d bottleneck)
    node.test_feature = "fused"  # fused | inv | sen: the eval-mode feature
    # Loss (Eq. 14): sum over branches of w * (CE + hard-mined triplet); 0 switches a branch's loss off.
    node.w_inv = 0.5
    node.w_sen = 0.5
    node.w_fused = 1.0
    node.triplet_margin = 0.3
    node.label_smooth = False  # the official code uses plain cross-entropy
    # Memory replay (IJCV): none | bank (official default) | shuffle | resample (no decoder: the
    # self-degradation prior re-applied to the batch, a CPU-budget stand-in); KL weight w_replay.
    node.memory_replay = "bank"
    node.w_replay = 5.0
    return node


def _pipeline_node():
    """The end-to-end command (pipeline.py): which toolbox baseline sits beside DI-REID."""
    node = CN()
    node.baseline_model = "osnet_x0_25"  # "" skips the baseline
    node.baseline_loss = "triplet"  # softmax | triplet (softmax + hard-mined triplet)
    node.baseline_weights = ""  # torchreid-format init for the baseline (model.pretrained_path)
    node.swap_pairs = 6  # rows of the degradation-swap picture
    # Stage-1 input [height, width]; [] = data.height/width. E_c is fully convolutional with global
    # pooling, so stage 1 can learn at a smaller size than stage 2 trains and tests at (CPU budgets).
    node.stage1_size = []
    return node


def get_default_config():
    """A fresh default config (mutable; freeze it after merging)."""
    cfg = CN()
    cfg.use_gpu = True
    cfg.model = _model_node()
    cfg.data = _data_node()
    cfg.sampler = _sampler_node()
    cfg.train = _train_node()
    _optimizer_nodes(cfg)
    cfg.loss = _loss_node()
    cfg.test = _test_node()
    cfg.engine = _engine_node()
    cfg.degradation = _degradation_node()
    cfg.ddgan = _ddgan_node()
    cfg.dfen = _dfen_node()
    cfg.pipeline = _pipeline_node()
    # Free-form node for user experiments; everything else is typed.
    cfg.extra = CN(new_allowed=True)
    return cfg


def _read_yaml(path, seen=()):
    """Read a YAML file and fold in its ``_BASE_`` chain (parents first)."""
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"{path}: _BASE_ inheritance forms a cycle through {list(seen)}")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of config nodes")
    base = data.pop("_BASE_", None)
    if base is None:
        return data
    merged = {}
    for parent in [base] if isinstance(base, str) else base:  # a list: merged in order, later ones win
        merged = _deep_merge(merged, _read_yaml(os.path.join(os.path.dirname(path), parent), seen + (path,)))
    return _deep_merge(merged, data)


def _deep_merge(base, override):
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _promote_ints(default, data, prefix=""):
    """Accept ``1`` where a float is expected (yacs would reject it); nothing else is coerced."""
    for key, value in data.items():
        if not isinstance(default, CN) or key not in default:
            continue
        ref = default[key]
        if isinstance(value, dict):
            _promote_ints(ref, value, f"{prefix}{key}.")
        elif isinstance(ref, float) and isinstance(value, int) and not isinstance(value, bool):
            data[key] = float(value)
        elif isinstance(ref, list) and isinstance(value, list) and ref and all(isinstance(r, float) for r in ref):
            data[key] = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]


def config_keys(node, prefix=""):
    """Every dotted key of a config node."""
    keys = []
    for key, value in node.items():
        keys += config_keys(value, f"{prefix}{key}.") if isinstance(value, CN) else [prefix + key]
    return keys


def close_matches(word, candidates):
    """' (did you mean 'a' or 'b'?)' for the candidates nearest to ``word``, or ''."""
    found = difflib.get_close_matches(word, candidates, n=2, cutoff=0.75)
    return f" (did you mean {' or '.join(repr(c) for c in found)}?)" if found else ""


def _check_value_types(default, data, source, prefix=""):
    """Name the key, the type it takes and the syntax (a list's, on the command line) instead of
    yacs' type-mismatch text."""
    for key, value in data.items():
        ref = default.get(key) if isinstance(default, CN) else None
        if isinstance(value, dict):
            _check_value_types(ref, value, source, f"{prefix}{key}.")
        elif ref is None or isinstance(ref, CN):
            continue  # a new key, or a node given a value: yacs reports those
        elif isinstance(ref, (list, tuple)):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{source}: {prefix}{key} is a list: write {prefix}{key} \"[{value!r}]\" on the "
                                  f"command line, or {key}: [{value}] in YAML")
        elif type(value) is not type(ref):
            kind = {"int": "an int", "float": "a number", "bool": "True or False", "str": "a string"}.get(
                type(ref).__name__, f"a {type(ref).__name__}")
            raise ConfigError(f"{source}: {prefix}{key} must be {kind} (default {ref!r}), got {value!r}")


def _merge(cfg, data, source):
    _promote_ints(cfg, data)
    _check_value_types(cfg, data, source)
    try:
        cfg.merge_from_other_cfg(CN(data))
    except KeyError as e:
        key = str(e.args[0]).replace("Non-existent config key: ", "")  # yacs' wording
        raise ConfigError(f"{source}: unknown config key '{key}'{close_matches(key, config_keys(cfg))}; "
                          "see direid_plugin/config.py for valid keys") from None
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None


def _decode_value(raw):
    """Command-line values are Python literals (``1e-4``, ``"['a','b']"``), else plain strings."""
    if not isinstance(raw, str):
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def _opts_to_dict(opts):
    options = [x for x in opts if str(x).startswith("--")]  # no key or value starts with "--"
    if options:
        raise ConfigError(f"{options[0]} comes after the KEY VALUE overrides, where it would be read as one; "
                          f"put command options before the first KEY VALUE pair")
    if len(opts) % 2:
        raise ConfigError(f"command-line overrides must come in KEY VALUE pairs, got {opts}")
    data = {}
    for key, raw in zip(opts[0::2], opts[1::2]):
        value = _decode_value(raw)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return data


def derive(cfg, overrides):
    """A frozen copy of ``cfg`` with ``{"node.key": value}`` overrides, checked like any other."""
    new = cfg.clone()
    new.defrost()
    _merge(new, _opts_to_dict([x for item in overrides.items() for x in item]), "derived config")
    new.freeze()
    return new


def load_config(config_file=None, opts=(), freeze=True):
    """Default config, then ``config_file`` (with its ``_BASE_`` chain), then ``KEY VALUE`` opts."""
    cfg = get_default_config()
    if config_file:
        _merge(cfg, _read_yaml(config_file), config_file)
    if opts:
        # yacs' merge_from_list refuses new keys even under new_allowed nodes; going through a
        # dict keeps one code path and one error format for files and overrides.
        _merge(cfg, _opts_to_dict(list(opts)), "command line")
    if freeze:
        cfg.freeze()
    return cfg
