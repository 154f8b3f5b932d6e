"""A trained DDGAN or DFEN rebuilt from its checkpoint alone, for pictures and export.

The architecture comes from the config's ``ddgan`` / ``dfen`` nodes, as in training; the number
of training identities from the checkpoint, so a model trained on one dataset can be shown or
exported with another dataset configured.
"""
from direid_plugin.checkpoint import CheckpointError, load_checkpoint, model_state, state_dict_mismatch
from direid_plugin.models import MODEL_CONFIG_KWARGS, MODEL_FACTORIES

# Per model: a key prefix only its state has, and the classifier weight whose rows count identities.
SIGNATURES = {
    "ddgan": ("decoder.", "content_encoder.classifier.classifier.weight"),
    "dfen": ("sensitive_encoder.", "heads.inv.classifier.weight"),
}
WRITTEN_BY = {
    "ddgan": "stage 1, engine.name ddgan, writes <save_dir>/ddgan/model.pth.tar-<iteration>",
    "dfen": "stage 2, engine.name dfen, writes <save_dir>/model/model.pth.tar-<epoch>",
}
# Files the factories would read at construction: the checkpoint overwrites all they hold, so they
# are not needed (nor have to exist) here.
INIT_FILES = {"ddgan": ("backbone_weights", "eid_weights"), "dfen": ("backbone_weights", "ddgan_checkpoint", "sen_weights")}
# Stage 1's frozen E_id only serves a training loss; it is left out (and its weights file with it).
TRAINING_ONLY = {"ddgan": "identity_encoder.", "dfen": None}


def checkpoint_model_name(state):
    """'ddgan', 'dfen' or None (another model's state dict)."""
    for name, (prefix, _) in SIGNATURES.items():
        if any(key.startswith(prefix) for key in state):
            return name
    return None


def load_trained_model(cfg, path, accepted, option="--weights"):
    """``(model in eval mode, its name)`` from checkpoint ``path``, whose model must be in ``accepted``.

    Errors are ``CheckpointError``s naming ``option`` and the file: another model's checkpoint, or
    one whose shapes do not fit the configured architecture.
    """
    try:
        state = model_state(load_checkpoint(path), path)
    except CheckpointError as e:
        raise CheckpointError(f"{option}: {e}") from None
    name = checkpoint_model_name(state)
    if name not in accepted:
        found = f"a {name.upper()} checkpoint" if name else "neither a DDGAN nor a DFEN checkpoint"
        wanted = " or ".join(f"a {n.upper()} checkpoint ({WRITTEN_BY[n]})" for n in accepted)
        raise CheckpointError(f"{option} {path} is {found}, but this command needs {wanted}")
    kwargs = MODEL_CONFIG_KWARGS[name](cfg)
    kwargs.update({key: "" for key in INIT_FILES[name]})
    if TRAINING_ONLY[name]:
        kwargs["eid_name"] = ""
        state = {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY[name])}
    num_classes = state[SIGNATURES[name][1]].shape[0]
    model = MODEL_FACTORIES[name](num_classes, pretrained=False, **kwargs)
    mismatch = state_dict_mismatch(model.state_dict(), state)
    if mismatch:
        keys = "ddgan.*" if name == "ddgan" else "ddgan.* and dfen.*"
        raise CheckpointError(f"{option} {path} does not fit the {name.upper()} the config describes ({mismatch}); give "
                              f"the config it was trained with (its {keys} architecture keys)")
    model.load_state_dict(state)
    return model.eval(), name
