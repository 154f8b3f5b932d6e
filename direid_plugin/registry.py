"""The bridge into torchreid's model factory and dataset registry.

torchreid 0.2.5 has a public ``register_image_dataset`` but no public model registration: its
factory is the module-level dict ``__model_factory`` in ``torchreid.reid.models``. The dict is
fetched with ``vars()`` because spelling ``models.__model_factory`` inside a class body would be
name-mangled. Every registration here is idempotent: re-registering the same object is a no-op,
so importing or reloading the plugin twice never raises.
"""
import torchreid.reid.data.datasets as _trd
import torchreid.reid.models as _trm


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


def register_all():
    """Register every plugin model and dataset. Called by ``import direid_plugin``."""
    from direid_plugin.models import MODEL_FACTORIES
    from direid_plugin.data.datasets import DATASETS

    for name, factory in MODEL_FACTORIES.items():
        register_model(name, factory)
    for name, cls in DATASETS.items():
        register_dataset(name, cls)
