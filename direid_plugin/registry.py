"""The plugin's model registry, and the bridge into torchreid's model factory and dataset registry.

A plugin model is one entry, made by the ``plugin_model`` decorator on its torchreid factory
(the timm / fast-reid pattern): everything the rest of the plugin needs to build, train, test,
recognise and reload it lives there, so adding a model touches one place::

    @plugin_model("mymodel", options=("width",), config_kwargs=lambda cfg: {"width": cfg.mymodel.width},
                  engine="direid_plugin.engines.my_engine:MyEngine",
                  signature=Signature("my_unique_module.", "head.classifier.weight"),
                  written_by="engine.name mymodel, writes <save_dir>/model/model.pth.tar-<epoch>",
                  export="direid_plugin.export.onnx:export_mymodel")
    def mymodel(num_classes, loss="softmax", pretrained=True, use_gpu=True, **kwargs): ...

The engine and the exporter are named by their import path ("module:attribute") and imported when
needed, so models never import engines (engines import models). torchreid 0.2.5 has a public
``register_image_dataset`` but no public model registration: its factory is the module-level dict
``__model_factory`` in ``torchreid.reid.models``, fetched with ``vars()`` (spelling
``models.__model_factory`` inside a class body would be name-mangled). Every registration is
idempotent: re-registering the same object (or its reloaded twin) is a no-op.
"""
import functools
import importlib
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import torchreid.reid.data.datasets as _trd
import torchreid.reid.models as _trm

from direid_plugin import weights


class Signature(NamedTuple):
    """How a state dict is recognised as this model's: a key ``prefix`` only its state has, and the
    ``classifier`` weight whose rows count the training identities."""

    prefix: str
    classifier: str


@dataclass(frozen=True)
class PluginModel:
    """One registered plugin model.

    * ``factory``: torchreid's factory signature ``(num_classes, loss, pretrained, use_gpu, **kwargs)``;
    * ``options``: the factory's extra kwargs (architecture options); any other kwarg is refused by name;
    * ``config_kwargs(cfg)``: their values from the plugin config;
    * ``engine``: "module:Class" of the engine that trains it (``engine.name`` = the model's name);
      the class provides ``from_config(cfg, datamanager, model, settings, inputs)``;
    * ``signature``: see ``Signature``; ``written_by``: which run writes its checkpoints (for errors);
    * ``weight_files``: factory kwargs that name weight files -> their config keys; a run reads each
      once (direid_plugin.weights) and passes the ``Weights`` to the factory and the engine;
    * ``training_only``: (state-dict prefix, factory kwargs that leave it out) of a part only
      training needs, dropped when a trained checkpoint is rebuilt for pictures or export;
    * ``export``: "module:function" writing the model's ONNX graphs, ``(model, output_dir, cfg)`` ->
      ``{graph name: path}``;
    * ``tiny_opts``: config overrides (``KEY VALUE`` list) that make a small instance that trains
      without any other run's output, for the tests the registry generates (tests/test_plugin_models.py).
    """

    name: str
    factory: Callable
    options: tuple
    config_kwargs: Callable
    engine: str
    signature: Signature
    written_by: str
    export: str
    tiny_opts: tuple = ()
    weight_files: dict = field(default_factory=dict)
    training_only: Optional[tuple] = None

    def engine_class(self):
        return _imported(self.engine)

    def exporter(self):
        return _imported(self.export)


def _imported(target):
    """The object named by "module:attribute" (imported when needed: models never import engines)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


PLUGIN_MODELS = {}


def plugin_model(name, **entry):
    """Decorator: register the decorated torchreid factory as plugin model ``name`` (see ``PluginModel``).

    The registered factory reads the files named by ``weight_files`` kwargs (a path, as torchreid's
    ``build_model`` passes it) into ``Weights``, so the model's constructor never sees a path, and
    refuses kwargs that are not among its ``options``.
    """
    files = entry.get("weight_files", {})
    options = tuple(entry.get("options", ()))

    def register(factory):
        @functools.wraps(factory)
        def read_files_then_build(num_classes, loss="softmax", pretrained=True, use_gpu=True, **kwargs):
            unknown = sorted(set(kwargs) - set(options))
            if unknown:
                raise TypeError(f"unknown {name} option(s) {unknown}; valid options: {list(options)}")
            for kwarg, option in files.items():
                if kwarg in kwargs:
                    kwargs[kwarg] = weights.resolve(kwargs[kwarg], option)
            return factory(num_classes, loss=loss, pretrained=pretrained, use_gpu=use_gpu, **kwargs)

        PLUGIN_MODELS[name] = PluginModel(name=name, factory=read_files_then_build, **{**entry, "options": options})
        return read_files_then_build

    return register


def model_factory():
    """torchreid's model factory dict (name -> callable)."""
    return vars(_trm)["__model_factory"]


def dataset_registry():
    """torchreid's image dataset registry dict (name -> class)."""
    return vars(_trd)["__image_datasets"]


def _same(a, b):
    """True when ``a`` and ``b`` are the same registration, also across a module reload."""
    if a is b:
        return True
    key = lambda f: (getattr(f, "__module__", None), getattr(f, "__qualname__", repr(f)))
    return key(a) == key(b)


def register_model(name, factory):
    """Register ``factory(num_classes, loss, pretrained, use_gpu, **kw)`` as torchreid model ``name``.

    Re-registering the same factory (or its reloaded twin) replaces it silently; a different
    object under an existing name is refused, so a plugin can never shadow a stock model.
    """
    factory_dict = model_factory()
    existing = factory_dict.get(name)
    if existing is not None and not _same(existing, factory):
        raise KeyError(
            f"torchreid model name '{name}' is already taken by {existing!r}; "
            "choose another name for the plugin model"
        )
    factory_dict[name] = factory


def register_dataset(name, dataset_cls):
    """Register an ``ImageDataset`` class (or a ``functools.partial`` of one) under ``name``."""
    registry = dataset_registry()
    existing = registry.get(name)
    if existing is None:
        _trd.register_image_dataset(name, dataset_cls)
    elif _same(existing, dataset_cls) or _same(getattr(existing, "func", None), getattr(dataset_cls, "func", 0)):
        registry[name] = dataset_cls
    else:
        raise KeyError(
            f"torchreid dataset name '{name}' is already taken by {existing!r}; "
            "choose another name for the plugin dataset"
        )
