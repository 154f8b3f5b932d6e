"""From a config to torchreid objects: the data manager, the model (with its weight files read once)
and the engine. ``run.train`` / ``run.test`` and the tools use these.

Engines are selected by name (``engine.name``): ``softmax`` and ``triplet`` are torchreid's stock
engines with the plugin's test step, checkpoints and NaN guard (engines/base.py), so a toolbox
baseline and a plugin model share the data, schedule and evaluation of one config; a plugin model
trains with the engine its registry entry names (registry.PluginModel), under the model's own name.
"""
import torch

import torchreid
from torchreid.reid.utils import set_random_seed

from direid_plugin import weights
from direid_plugin.config import ConfigError, close_matches
from direid_plugin.data.datamanager import build_checked_datamanager
from direid_plugin.data.corruptions import CorruptionError
from direid_plugin.data.datasets.corrupted import register_if_corrupted_name
from direid_plugin.data.degradations import TrainAugmentation, build_degradation
from direid_plugin.engines.base import EngineSettings, SoftmaxEngine, TripletEngine
from direid_plugin.engines.optimization import build_optimizer_and_scheduler
from direid_plugin.evaluation.test_step import check_evaluation_settings
from direid_plugin.registry import PLUGIN_MODELS, dataset_registry, model_factory


def use_gpu(cfg):
    return bool(cfg.use_gpu) and torch.cuda.is_available()


def imagedata_kwargs(cfg):
    return dict(
        root=cfg.data.root,
        sources=list(cfg.data.sources),
        targets=list(cfg.data.targets),
        height=cfg.data.height,
        width=cfg.data.width,
        transforms=list(cfg.data.transforms),
        k_tfm=cfg.data.k_tfm,
        norm_mean=list(cfg.data.norm_mean),
        norm_std=list(cfg.data.norm_std),
        use_gpu=use_gpu(cfg),
        split_id=cfg.data.split_id,
        combineall=cfg.data.combineall,
        load_train_targets=cfg.data.load_train_targets,
        batch_size_train=cfg.train.batch_size,
        batch_size_test=cfg.test.batch_size,
        workers=cfg.data.workers,
        num_instances=cfg.sampler.num_instances,
        num_cams=cfg.sampler.num_cams,
        num_datasets=cfg.sampler.num_datasets,
        train_sampler=cfg.sampler.train_sampler,
        train_sampler_t=cfg.sampler.train_sampler_t,
    )


def check_dataset_names(cfg):
    """A ConfigError naming the key, the unknown dataset and its nearest registered names (torchreid
    would raise a ValueError listing all of them)."""
    for key in ("sources", "targets"):
        for name in cfg.data[key]:
            try:
                register_if_corrupted_name(name)
            except CorruptionError as e:
                raise ConfigError(f"data.{key}: dataset '{name}': {e}") from None
            if name not in dataset_registry():
                known = sorted(dataset_registry())
                raise ConfigError(f"data.{key}: unknown dataset '{name}'{close_matches(name, known)}; the README's "
                                  "dataset table lists the plugin's, torchreid's docs the stock ones")


def build_datamanager(cfg):
    check_dataset_names(cfg)
    if cfg.data.skip_bad_images:
        datamanager = build_checked_datamanager(**imagedata_kwargs(cfg))
    else:
        datamanager = torchreid.reid.data.ImageDataManager(**imagedata_kwargs(cfg))
    if cfg.degradation.train_augment_p > 0:
        add_train_augmentation(datamanager, TrainAugmentation(build_degradation(cfg.degradation),
                                                              cfg.degradation.train_augment_p))
    return datamanager


def add_train_augmentation(datamanager, augmentation):
    """Put ``augmentation`` first in the training transform (torchreid's loaders share that object),
    so it sees the image at its stored size, as the corruption benchmarks corrupt it."""
    transform = datamanager.transform_tr
    if transform is None or not hasattr(transform, "transforms"):
        raise ConfigError("degradation.train_augment_p needs torchreid's composed training transform; "
                          f"this data manager has {transform!r}")
    transform.transforms.insert(0, augmentation)


def model_inputs(cfg):
    """The extra kwargs of ``model.name``'s factory: a plugin model's options from its config node,
    with every weight file it names read once into ``Weights``; none for a stock torchreid model."""
    entry = PLUGIN_MODELS.get(cfg.model.name)
    if entry is None:
        return {}
    kwargs = entry.config_kwargs(cfg)
    for kwarg, option in entry.weight_files.items():
        kwargs[kwarg] = weights.resolve(kwargs.get(kwarg), option)
    return kwargs


def build_model(cfg, num_classes, inputs=None):
    """Build ``model.name`` through torchreid's factory, then load ``model.pretrained_path`` and
    ``model.load_weights`` if given. ``inputs``: ``model_inputs(cfg)`` when the caller has them."""
    factory = model_factory().get(cfg.model.name)
    if factory is None:
        raise ConfigError(f"model.name: unknown model '{cfg.model.name}'; run torchreid.models.show_avai_models()")
    inputs = model_inputs(cfg) if inputs is None else inputs
    model = factory(num_classes=num_classes, loss=cfg.loss.name, pretrained=cfg.model.pretrained,
                    use_gpu=use_gpu(cfg), **inputs)
    for option in ("model.pretrained_path", "model.load_weights"):
        path = cfg.model[option.split(".")[1]]
        if path:
            load_reported(model, weights.read(path, option))
    return model


def load_reported(model, model_weights):
    """``weights.load_partial`` with a printed report of what was set and what was left at init."""
    report = weights.load_partial(model, model_weights)
    current = model.state_dict()
    unchanged = [k for k in current if k not in report.loaded and current[k].dtype.is_floating_point]
    mismatch = weights.state_dict_mismatch(current, model_weights.state)
    print(f'=> Loaded "{model_weights.source}": {len(report.loaded)} tensors set, {len(unchanged)} float tensors '
          f"left at init" + (f" ({mismatch})" if unchanged else ""))
    return report


def _softmax_engine(cfg, datamanager, model, settings):
    optimizer, scheduler = build_optimizer_and_scheduler(cfg, model)
    return SoftmaxEngine(datamanager, model, optimizer=optimizer, scheduler=scheduler, use_gpu=_on_gpu(model),
                         label_smooth=cfg.loss.softmax.label_smooth, settings=settings)


def _triplet_engine(cfg, datamanager, model, settings):
    optimizer, scheduler = build_optimizer_and_scheduler(cfg, model)
    return TripletEngine(datamanager, model, optimizer=optimizer, scheduler=scheduler, use_gpu=_on_gpu(model),
                         margin=cfg.loss.triplet.margin, weight_t=cfg.loss.triplet.weight_t,
                         weight_x=cfg.loss.triplet.weight_x, label_smooth=cfg.loss.softmax.label_smooth,
                         settings=settings)


def _on_gpu(model):
    return next(model.parameters()).device.type == "cuda"


# engine.name -> builder(cfg, datamanager, model, settings), for models without an engine of their own
LOSS_ENGINES = {"softmax": _softmax_engine, "triplet": _triplet_engine}


def engine_names():
    return sorted([*LOSS_ENGINES, *PLUGIN_MODELS])


def engine_name(cfg):
    """``engine.name``, with ``auto`` resolved: the model's own engine, else ``loss.name``'s."""
    if cfg.engine.name == "auto":
        return cfg.model.name if cfg.model.name in PLUGIN_MODELS else cfg.loss.name
    return cfg.engine.name


def check_model_engine(model, engine):
    """A plugin model needs its own engine, and a plugin engine trains only its own model."""
    if engine not in engine_names():
        raise ConfigError(f"engine.name: unknown engine '{engine}'; choose one of {engine_names()}")
    if model in PLUGIN_MODELS and engine != model:
        raise ConfigError(f"engine.name: model.name '{model}' trains with engine '{model}', not '{engine}'; "
                          f"set engine.name {model} (or auto)")
    if engine in PLUGIN_MODELS and model != engine:
        raise ConfigError(f"engine.name: engine '{engine}' trains model.name '{engine}', not '{model}'")


def build_engine(cfg, datamanager, model, clock=None, inputs=None):
    """The engine ``engine.name`` names, configured by the config's ``EngineSettings``.

    ``clock``: the run's ``TrainingClock``; ``inputs``: the kwargs the model was built with (a
    plugin engine takes the ``Weights`` it needs from there instead of reading a file again).
    """
    name = engine_name(cfg)
    check_model_engine(cfg.model.name, name)
    check_evaluation_settings(cfg.test.evaluator, cfg.test.protocol, error=ConfigError)
    settings = EngineSettings.from_config(cfg, clock)
    if name in PLUGIN_MODELS:
        return PLUGIN_MODELS[name].engine_class().from_config(cfg, datamanager, model, settings, inputs or {})
    return LOSS_ENGINES[name](cfg, datamanager, model, settings)


def build_run(cfg, clock=None):
    """Data manager, model (on the GPU when ``use_gpu``) and engine of one run; returns the engine."""
    set_random_seed(cfg.train.seed)
    if cfg.engine.flush_denormal:
        torch.set_flush_denormal(True)  # process-wide; left as the user set it otherwise
    datamanager = build_datamanager(cfg)
    inputs = model_inputs(cfg)
    model = build_model(cfg, datamanager.num_train_pids, inputs)
    if use_gpu(cfg):
        model = model.cuda()
    return build_engine(cfg, datamanager, model, clock=clock, inputs=inputs)
