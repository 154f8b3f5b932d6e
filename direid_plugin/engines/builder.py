"""Engines selected by name (``engine.name``), built from the config.

``softmax`` and ``triplet`` are torchreid's stock engines with the plugin's test step, checkpoints
and NaN guard (engines/base.py), so a toolbox baseline and a plugin model share the data,
schedule and evaluation of one config. A plugin model trains with the engine its registry entry
names (registry.PluginModel), under the model's own name.
"""
from direid_plugin.config import ConfigError
from direid_plugin.engines.base import EngineSettings, SoftmaxEngine, TripletEngine
from direid_plugin.engines.optimization import build_optimizer_and_scheduler
from direid_plugin.evaluation.test_step import check_evaluation_settings
from direid_plugin.registry import PLUGIN_MODELS


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
