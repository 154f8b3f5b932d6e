"""Cache folders for degraded Re-ID datasets: raw-data checks, build-once, degraded-image writing.

A cache lives in ``<cache_root()>/<name>-<params_key(params)>`` and is built once by
``manifest.build_once``. The folder key covers the build parameters (raw root, seed, ...) but not
the raw-data fingerprint, which is stored in the manifest instead: so a raw dataset that changed
after the cache was built is reported as such, rather than silently getting a second cache.
"""
import hashlib
import json
import os

import numpy as np

from direid_plugin.data.image_io import read_image
from direid_plugin.data.manifest import MANIFEST, ManifestError, build_once, cache_root, params_key, read_manifest

# The degradation draws' stream of a protocol seed (datasets/splits.py draws streams 0 and 2), so
# e.g. changing the number of splits keeps the factors.
DEGRADE_STREAM = 1


class RawDataError(FileNotFoundError):
    """Raw data is missing or not laid out as the dataset expects."""


def require_path(path, layout):
    """Raise ``RawDataError`` naming ``path`` and the expected ``layout`` when it does not exist."""
    if not os.path.exists(path):
        raise RawDataError(f"{path} not found; expected layout: {layout}")
    return path


def raw_fingerprint(paths):
    """A cheap fingerprint of raw files: their count and a SHA-1 over (path, size, mtime)."""
    digest = hashlib.sha1()
    for path in sorted(paths):
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"count": len(paths), "stat_sha1": digest.hexdigest()}


def cache_folder(name, params):
    return os.path.join(cache_root(), f"{name}-{params_key(params)}")


def load_or_build(name, params, raw_paths, build_fn, allow_build=True):
    """Return ``(folder, manifest)`` of the verified cache for ``params``, building it if absent.

    ``build_fn(tmpdir)`` returns the manifest payload (see ``manifest.build_once``). Raises
    ``ManifestError`` when the cache is damaged, when the raw files changed since it was built,
    or, with ``allow_build=False``, when it does not exist yet.
    """
    folder = cache_folder(name, params)
    full_params = dict(params, raw=raw_fingerprint(raw_paths))
    if os.path.isdir(folder):
        recorded = read_manifest(folder).get("params", {}).get("raw")
        if recorded != full_params["raw"]:
            raise ManifestError(
                f"the raw data of {folder} changed since the cache was built "
                f"({recorded and recorded.get('count')} raw files then, {len(raw_paths)} now, or their sizes/times differ); "
                f"delete {folder} and rebuild"
            )
    elif not allow_build:
        raise ManifestError(f"no cache at {folder}; build it first (tools/prepare_data.py without --verify-only)")
    record = build_once(folder, full_params, lambda tmp: _sealed(build_fn(tmp)))
    if record.get("content_sha1") != _content_sha1(record):
        raise ManifestError(f"{os.path.join(folder, MANIFEST)} was edited after the build (its content checksum differs); "
                            f"delete {folder} and rebuild")
    return folder, record


# manifest.verify_manifest checks the files and params but not the rest of the record (splits,
# images, factors), so the payload carries its own checksum.
_UNSEALED = ("params", "files", "content_sha1")


def _content_sha1(record):
    content = {key: value for key, value in record.items() if key not in _UNSEALED}
    return hashlib.sha1(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _sealed(payload):
    return dict(payload, content_sha1=_content_sha1(payload))


def image_jobs(subfolder, paths):
    """``write_degraded`` jobs for raw image ``paths`` in that order: ``<subfolder>/<index>_<stem>.png``."""
    return [(f"{subfolder}/{i:06d}_{os.path.splitext(os.path.basename(path))[0]}.png", path,
             lambda path=path: read_image(path))
            for i, path in enumerate(paths)]


def write_degraded(folder, jobs, seed, degrade):
    """Degrade and save images as PNG under ``folder``; return the manifest's ``degraded`` record.

    ``jobs`` is a sequence of ``(rel_out, source, load)`` in a fixed order (``load()`` returns
    the clean PIL image, ``source`` names it in the manifest); ``degrade(img, rng)`` (one of
    ``degradations.PROTOCOL_DEGRADATIONS``) returns the degraded image and its parameters. One generator seeded by ``seed`` serves all jobs in
    order, so the same jobs and seed give byte-identical files.
    """
    rng = np.random.default_rng([seed, DEGRADE_STREAM])
    record = {}
    for rel_out, source, load in jobs:
        img, params = degrade(load(), rng)
        save_png(img, os.path.join(folder, rel_out))
        record[rel_out] = dict(params, source=source)
    return record


def save_png(img, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, format="PNG")
