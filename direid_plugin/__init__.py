"""direid_plugin: degradation-invariant person Re-ID (DI-REID) for torchreid.

``import direid_plugin`` is the single activation step: it applies the fixes of genuine torchreid
0.2.5 bugs on current torch/numpy (compat.py) and registers the plugin's models and datasets with
torchreid, so that ``torchreid.models.build_model('ddgan', ...)`` and
``ImageDataManager(sources='mlr_viper', ...)`` work. Both steps are idempotent. torchreid's engines
are left as torchreid ships them: the plugin's test step, checkpoints and NaN guard belong to the
plugin's own engines (direid_plugin.engines). To make torchreid's ``evaluate_rank`` use the
plugin's fast ranking in your own engines too, call ``direid_plugin.install_fast_ranking()``.
"""
import warnings

# torchreid warns at import that its compiled ranking is missing; the plugin's engines rank with the
# plugin's own evaluator, and install_fast_ranking() gives users' engines the same, so it is noise.
warnings.filterwarnings("ignore", message="Cython evaluation", category=UserWarning)

from direid_plugin import compat as _compat  # noqa: E402
from direid_plugin import registry as _registry  # noqa: E402
from direid_plugin.compat import install_fast_ranking  # noqa: E402,F401  (public)

__version__ = "0.1.0"


def register_all():
    """Register every plugin model and dataset with torchreid."""
    from direid_plugin.data.datasets import DATASETS
    import direid_plugin.models  # noqa: F401  (importing the models fills PLUGIN_MODELS)

    for name, entry in _registry.PLUGIN_MODELS.items():
        _registry.register_model(name, entry.factory)
    for name, cls in DATASETS.items():
        _registry.register_dataset(name, cls)


_compat.apply()
register_all()
