"""Fixes of torchreid 0.2.5 bugs on torch >= 2.6 and numpy 2, applied on ``import direid_plugin``.

Only genuine bugs are fixed here, each by replacing one torchreid attribute; the original is kept
in ``ORIGINALS`` so the regression tests (tests/test_compat.py) reproduce the failure before
checking the fix. ``apply()`` is idempotent. torchreid's engines are not touched: the plugin's
test step and checkpoints are methods of its own engines (engines/base.py).

| torchreid problem                                                     | fix                                   |
|-----------------------------------------------------------------------|---------------------------------------|
| own checkpoints fail to load (numpy rank1 vs weights-only torch.load) | weights.load_checkpoint               |
| ``read_image`` loops forever on a corrupt file                         | data.image_io.read_image              |
| ``pretrained=True`` downloads (hangs/crashes offline)                  | cache check with a clear message      |

``install_fast_ranking()`` (an explicit call, not an import side effect) also puts the plugin's
ranking (evaluation.ranking.evaluate_cy) in the place of torchreid's compiled ``evaluate_cy``, so
``metrics.evaluate_rank`` in a user's own engine gets it: torchreid's python fallback is slow and
raises ValueError on galleries smaller than its max rank (50) with numpy >= 1.24.
"""
import os
import types

import torch.utils.model_zoo

import torchreid.reid.data.datasets.dataset as _dataset_mod
import torchreid.reid.metrics.rank as _rank_mod
import torchreid.reid.models as _models_pkg
import torchreid.reid.utils as _utils_pkg
import torchreid.reid.utils.tools as _tools_mod
import torchreid.reid.utils.torchtools as _torchtools_mod

ORIGINALS = {}
ALLOW_DOWNLOAD_ENV = "DIREID_ALLOW_DOWNLOAD"


class PretrainedWeightsMissing(FileNotFoundError):
    """ImageNet weights for a torchreid backbone are not in the local cache."""


def _replace(owner, name, new, key):
    ORIGINALS.setdefault(key, getattr(owner, name, None))
    setattr(owner, name, new)


def _load_checkpoint(fpath):
    from direid_plugin.weights import load_checkpoint

    return load_checkpoint(fpath)


def _downloads_allowed():
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "") == "1"


def _missing(model_hint, path, url):
    return PretrainedWeightsMissing(
        f"pretrained weights for {model_hint} are not cached: put the file at {path} "
        f"(it is downloaded from {url}), or set model.pretrained False and give a local file in "
        f"model.pretrained_path; set {ALLOW_DOWNLOAD_ENV}=1 to let torchreid download it"
    )


def _cached_load_url(url, model_dir=None, *args, **kwargs):
    """``model_zoo.load_url`` that fails fast when the file is not already in torch's hub cache."""
    import torch.hub

    folder = model_dir or os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(folder, os.path.basename(url.split("?")[0]))
    if not os.path.exists(path) and not _downloads_allowed():
        raise _missing("this torchreid model", path, url)
    return torch.utils.model_zoo.load_url(url, model_dir, *args, **kwargs)


# Stands in for ``torch.utils.model_zoo`` inside torchreid's model modules.
_CACHED_ZOO = types.SimpleNamespace(load_url=_cached_load_url)


def _guard_osnet_init(original, module):
    """Wrap OSNet's ``init_pretrained_weights`` (gdown into $TORCH_HOME/checkpoints)."""

    def init_pretrained_weights(model, key=""):
        torch_home = os.path.expanduser(
            os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
        )
        path = os.path.join(torch_home, "checkpoints", key + "_imagenet.pth")
        if not os.path.exists(path) and not _downloads_allowed():
            raise _missing(f"'{key}'", path, module.pretrained_urls.get(key, "Google Drive"))
        return original(model, key=key)

    return init_pretrained_weights


def _guard_pretrained_downloads():
    """Route every torchreid model module's download through a local-cache check."""
    for module_name in dir(_models_pkg):
        module = getattr(_models_pkg, module_name)
        if not isinstance(module, types.ModuleType):
            continue
        if hasattr(module, "model_zoo"):
            _replace(module, "model_zoo", _CACHED_ZOO, f"{module_name}.model_zoo")
        if hasattr(module, "pretrained_urls") and hasattr(module, "init_pretrained_weights"):
            key = f"{module_name}.init_pretrained_weights"
            original = ORIGINALS.get(key, module.init_pretrained_weights)
            _replace(module, "init_pretrained_weights", _guard_osnet_init(original, module), key)


def apply():
    """Install every bug fix (idempotent: originals are recorded once)."""
    from direid_plugin.data.image_io import read_image

    _replace(_torchtools_mod, "load_checkpoint", _load_checkpoint, "load_checkpoint")
    _replace(_utils_pkg, "load_checkpoint", _load_checkpoint, "utils.load_checkpoint")
    _replace(_tools_mod, "read_image", read_image, "read_image")
    _replace(_utils_pkg, "read_image", read_image, "utils.read_image")
    _replace(_dataset_mod, "read_image", read_image, "dataset.read_image")
    _guard_pretrained_downloads()


def install_fast_ranking():
    """Make torchreid's ``metrics.evaluate_rank`` rank with the plugin's evaluator (idempotent).

    torchreid uses its compiled ``evaluate_cy`` when ``IS_CYTHON_AVAI``; the registry package ships
    no compiled ranking, so it falls back to its python loop. This installs the plugin's ranking in
    the compiled one's place (same arguments, same numbers; README "Fast evaluation"). The
    plugin's own engines do not need it.
    """
    from direid_plugin.evaluation.ranking import evaluate_cy

    _replace(_rank_mod, "evaluate_cy", evaluate_cy, "evaluate_cy")
    _replace(_rank_mod, "IS_CYTHON_AVAI", True, "IS_CYTHON_AVAI")
