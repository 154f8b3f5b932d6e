"""On-disk caches of built datasets, each with a manifest that is verified before reuse.

torchreid constructs a dataset three times per target (train, query, gallery), so anything
derived from raw files (splits, down-sampled LR images, synthetic images) is built once into a
cache folder and recorded in ``manifest.json``: the build parameters, the split identities, the
per-image degradation factors and a SHA-1 per file. A cache whose files are missing, extra or
changed, or whose parameters differ from the request, is reported, never silently reused.
"""
import hashlib
import json
import os
import shutil
import tempfile

from direid_plugin.files import write_json

MANIFEST = "manifest.json"


class ManifestError(RuntimeError):
    """A dataset cache is damaged or was built from other parameters."""


def cache_root():
    """Where built datasets live: ``$DIREID_CACHE`` or ``~/.cache/direid_plugin``."""
    return os.path.abspath(os.path.expanduser(os.environ.get("DIREID_CACHE", "~/.cache/direid_plugin")))


def params_key(params):
    """A short stable hash of build parameters, used to name cache folders."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:10]


def file_sha1(path, chunk=1 << 20):
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _list_files(folder):
    files = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), folder)
            if rel != MANIFEST:
                files.append(rel)
    return sorted(files)


def write_manifest(folder, payload):
    """Record ``payload`` plus the SHA-1 of every file now under ``folder``."""
    record = dict(payload)
    record["files"] = {rel: file_sha1(os.path.join(folder, rel)) for rel in _list_files(folder)}
    write_json(os.path.join(folder, MANIFEST), record, sort_keys=True)
    return record


def read_manifest(folder):
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ManifestError(f"{path} is missing: the cache at {folder} is incomplete; delete it and rebuild") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path} is not valid JSON ({e}); delete {folder} and rebuild") from None


def verify_manifest(folder, expected_params=None, check_hashes=True):
    """Return the manifest of ``folder`` after checking files (and build parameters if given).

    Raises ``ManifestError`` naming the first problem: a missing, extra or changed file, or
    parameters that differ from ``expected_params``.
    """
    record = read_manifest(folder)
    if expected_params is not None and record.get("params") != json.loads(json.dumps(expected_params, default=str)):
        raise ManifestError(
            f"{folder} was built with parameters {record.get('params')}, not the requested {expected_params}; "
            "delete it and rebuild"
        )
    recorded = record.get("files", {})
    present = set(_list_files(folder))
    for rel in sorted(set(recorded) - present):
        raise ManifestError(f"{os.path.join(folder, rel)} is listed in the manifest but missing; delete {folder} and rebuild")
    for rel in sorted(present - set(recorded)):
        raise ManifestError(f"{os.path.join(folder, rel)} is not in the manifest (a stray or changed cache); delete {folder} and rebuild")
    if check_hashes:
        for rel, sha in sorted(recorded.items()):
            if file_sha1(os.path.join(folder, rel)) != sha:
                raise ManifestError(f"{os.path.join(folder, rel)} does not match its manifest hash (damaged cache); delete {folder} and rebuild")
    return record


def build_once(folder, params, build_fn, check_hashes=True):
    """Return the verified manifest of ``folder``, building it first with ``build_fn(tmpdir)`` if absent.

    ``build_fn`` fills a temporary sibling folder and returns the manifest payload (a dict, which
    gets ``params`` added); the folder is renamed into place only when complete, so an
    interrupted build leaves nothing that looks like a cache. An existing but damaged cache is
    an error, not a rebuild: the user should see that something changed it.
    """
    if os.path.isdir(folder):
        return verify_manifest(folder, params, check_hashes=check_hashes)
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".build-" + os.path.basename(folder) + "-")
    try:
        payload = dict(build_fn(tmp) or {})
        payload["params"] = json.loads(json.dumps(params, default=str))
        write_manifest(tmp, payload)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not os.path.isdir(folder):  # another process did not win the race: a real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return verify_manifest(folder, params, check_hashes=check_hashes)
