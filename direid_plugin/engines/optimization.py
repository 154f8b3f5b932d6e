"""torchreid's optimiser and LR scheduler, built from the plugin config's ``train.*`` keys."""
from torchreid.reid import optim as tr_optim


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
