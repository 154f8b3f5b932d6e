"""Crash-safe writes of the files a run leaves behind (checkpoints, manifests, results, configs).

Each write goes to a temporary ``.tmp-*`` file in the target's folder, is fsync'ed and then renamed
over the target, and the rename is fsync'ed too: a process killed at any moment leaves either the
old file or the new one, never half of one.
"""
import json
import os
import tempfile


def write_atomic(path, write, binary=True):
    """Call ``write(f)`` on a temporary file opened in the target's folder, then rename it to ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1] or ".tmp"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)
    return path


def write_text(path, text):
    return write_atomic(path, lambda f: f.write(text), binary=False)


def write_json(path, payload, **dump_kwargs):
    dump_kwargs.setdefault("indent", 1)
    return write_atomic(path, lambda f: json.dump(payload, f, **dump_kwargs), binary=False)


def _fsync_dir(folder):
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
