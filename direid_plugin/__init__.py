"""direid_plugin: degradation-invariant person Re-ID (DI-REID) for torchreid.

``import direid_plugin`` is the single activation step: it applies the compatibility fixes for
torchreid 0.2.5 on current torch/numpy and registers the plugin's models and datasets with
torchreid, so that ``torchreid.models.build_model('ddgan', ...)`` and
``ImageDataManager(sources='mlr_viper', ...)`` work. Both steps are idempotent.
"""
import warnings

# torchreid warns at import that its Cython ranking is missing; the plugin installs its own
# vectorised evaluator in its place (compat.py), so the warning is noise.
warnings.filterwarnings("ignore", message="Cython evaluation", category=UserWarning)

from direid_plugin import compat as _compat  # noqa: E402
from direid_plugin import registry as _registry  # noqa: E402

__version__ = "0.1.0"

_compat.apply()
_registry.register_all()
