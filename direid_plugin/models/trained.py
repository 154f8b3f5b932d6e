"""A trained plugin model rebuilt from its checkpoint alone, for pictures and export.

The architecture comes from the config's model nodes (``ddgan`` / ``dfen``), as in training; the
number of training identities from the checkpoint, so a model trained on one dataset can be shown
or exported with another dataset configured. Which model a checkpoint holds, and what rebuilding
it needs, comes from the model's registry entry (registry.PluginModel).
"""
from direid_plugin import weights
from direid_plugin.registry import PLUGIN_MODELS


def checkpoint_model_name(state):
    """The registered plugin model whose signature ``state`` carries, or None (another model's state)."""
    for name, entry in PLUGIN_MODELS.items():
        if any(key.startswith(entry.signature.prefix) for key in state):
            return name
    return None


def load_trained_model(cfg, path, accepted, option="--weights"):
    """``(model in eval mode, its name)`` from checkpoint ``path``, whose model must be in ``accepted``.

    Errors are ``CheckpointError``s naming ``option`` and the file: another model's checkpoint, or
    one whose shapes do not fit the configured architecture.
    """
    trained = weights.read(path, option)
    name = checkpoint_model_name(trained.state)
    if name not in accepted:
        found = f"a {name.upper()} checkpoint" if name else f"not a checkpoint of a plugin model ({', '.join(sorted(PLUGIN_MODELS))})"
        wanted = " or ".join(f"a {n.upper()} checkpoint ({PLUGIN_MODELS[n].written_by})" for n in accepted)
        raise weights.CheckpointError(f"{option} {path} is {found}, but this command needs {wanted}")
    entry = PLUGIN_MODELS[name]
    kwargs = entry.config_kwargs(cfg)
    # The checkpoint overwrites all that the weight files would give, so they are not read (nor need to exist).
    kwargs.update({kwarg: None for kwarg in entry.weight_files})
    if entry.training_only:
        prefix, switched_off = entry.training_only
        kwargs.update(switched_off)
        trained = trained.without(prefix)
    num_classes = trained.state[entry.signature.classifier].shape[0]
    model = entry.factory(num_classes, pretrained=False, **kwargs)
    nodes = " and ".join(sorted({key.split(".")[0] + ".*" for key in entry.weight_files.values()}))
    weights.load_strict(model, trained, fix=f"give the config it was trained with (its {nodes} architecture keys)")
    return model.eval(), name
