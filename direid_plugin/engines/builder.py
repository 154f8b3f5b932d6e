"""Engines selected by name (``engine.name``), built from the config.

``softmax`` and ``triplet`` are torchreid's stock engines, so a toolbox baseline and a plugin
model share the data, schedule and evaluation of one config. Plugin engines add themselves to
``ENGINE_BUILDERS`` with the same signature.
"""
from torchreid.reid import engine as tr_engine
from torchreid.reid import optim as tr_optim

from direid_plugin.config import ConfigError

from direid_plugin.engines.checkpointing import find_resume_checkpoint
from direid_plugin.engines.evaluation import check_evaluation_settings
from direid_plugin.engines.guards import guard_engine


def optimizer_kwargs(cfg):
    return dict(
        optim=cfg.train.optim,
        lr=cfg.train.lr,
        weight_decay=cfg.train.weight_decay,
        momentum=cfg.sgd.momentum,
        sgd_dampening=cfg.sgd.dampening,
        sgd_nesterov=cfg.sgd.nesterov,
        rmsprop_alpha=cfg.rmsprop.alpha,
        adam_beta1=cfg.adam.beta1,
        adam_beta2=cfg.adam.beta2,
        staged_lr=cfg.train.staged_lr,
        new_layers=list(cfg.train.new_layers),
        base_lr_mult=cfg.train.base_lr_mult,
    )


def lr_scheduler_kwargs(cfg):
    stepsize = list(cfg.train.stepsize)
    return dict(
        lr_scheduler=cfg.train.lr_scheduler,
        # torchreid wants an int for single_step and a list for multi_step
        stepsize=stepsize[0] if cfg.train.lr_scheduler == "single_step" else stepsize,
        gamma=cfg.train.gamma,
        max_epoch=cfg.train.max_epoch,
    )


def build_optimizer_and_scheduler(cfg, model):
    optimizer = tr_optim.build_optimizer(model, **optimizer_kwargs(cfg))
    scheduler = tr_optim.build_lr_scheduler(optimizer, **lr_scheduler_kwargs(cfg))
    return optimizer, scheduler


def _softmax_engine(cfg, datamanager, model, use_gpu):
    optimizer, scheduler = build_optimizer_and_scheduler(cfg, model)
    return tr_engine.ImageSoftmaxEngine(
        datamanager, model, optimizer=optimizer, scheduler=scheduler, use_gpu=use_gpu,
        label_smooth=cfg.loss.softmax.label_smooth,
    )


def _triplet_engine(cfg, datamanager, model, use_gpu):
    optimizer, scheduler = build_optimizer_and_scheduler(cfg, model)
    return tr_engine.ImageTripletEngine(
        datamanager, model, optimizer=optimizer, scheduler=scheduler, use_gpu=use_gpu,
        margin=cfg.loss.triplet.margin, weight_t=cfg.loss.triplet.weight_t,
        weight_x=cfg.loss.triplet.weight_x, label_smooth=cfg.loss.softmax.label_smooth,
    )


def _ddgan_engine(cfg, datamanager, model, use_gpu):
    from direid_plugin.engines.ddgan_engine import DDGANEngine

    return DDGANEngine(datamanager, model, cfg, use_gpu)


def _dfen_engine(cfg, datamanager, model, use_gpu):
    from direid_plugin.engines.dfen_engine import DFENEngine

    return DFENEngine(datamanager, model, cfg)  # runs where the model is (use_gpu already placed it)


# name -> builder(cfg, datamanager, model, use_gpu) -> Engine
ENGINE_BUILDERS = {"softmax": _softmax_engine, "triplet": _triplet_engine, "ddgan": _ddgan_engine,
                   "dfen": _dfen_engine}


# Plugin models that train only with the engine of the same name; ``auto`` picks it for them.
OWN_ENGINE_MODELS = ("ddgan", "dfen")


def engine_name(cfg):
    """``engine.name``, with ``auto`` resolved: the model's own engine, else ``loss.name``'s."""
    if cfg.engine.name == "auto":
        return cfg.model.name if cfg.model.name in OWN_ENGINE_MODELS else cfg.loss.name
    return cfg.engine.name


def check_model_engine(model, engine):
    """A plugin model needs its own engine, and a plugin engine trains only its own model."""
    if model in OWN_ENGINE_MODELS and engine != model:
        raise ConfigError(f"engine.name: model.name '{model}' trains with engine '{model}', not '{engine}'; "
                          f"set engine.name {model} (or auto)")
    if engine in OWN_ENGINE_MODELS and model != engine:
        raise ConfigError(f"engine.name: engine '{engine}' trains model.name '{engine}', not '{model}'")


def build_engine(cfg, datamanager, model, use_gpu):
    """Build the engine named by the config and give it the plugin's evaluation settings."""
    name = engine_name(cfg)
    if name not in ENGINE_BUILDERS:
        raise ConfigError(f"engine.name: unknown engine '{name}'; choose one of {sorted(ENGINE_BUILDERS)}")
    check_model_engine(cfg.model.name, name)
    check_evaluation_settings(cfg.test.evaluator, cfg.test.protocol, ("test.evaluator", "test.protocol"), ConfigError)
    engine = ENGINE_BUILDERS[name](cfg, datamanager, model, use_gpu)
    engine.evaluator = cfg.test.evaluator
    engine.eval_protocol = cfg.test.protocol
    engine.single_shot_trials = cfg.test.single_shot_trials
    engine.eval_seed = cfg.test.seed
    engine.test_flip = cfg.test.flip
    engine.keep_last = cfg.engine.keep_last
    engine.progress = cfg.engine.progress
    # NaN/inf loss or gradients skip the step; a run that keeps producing them stops (guards.py).
    first_model = engine.get_model_names()[0]
    guard_engine(engine, cfg.engine.max_nonfinite_steps,
                 last_good_checkpoint=lambda: find_resume_checkpoint("auto", cfg.data.save_dir, first_model))
    return engine
