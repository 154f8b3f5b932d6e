"""torchreid's compiled ranking, built outside the project: the reference that benchmarks and tests
measure the plugin's ranking against.

The source is upstream deep-person-reid's ``rank_cy.pyx`` with its ``setup.py``, unmodified, in
``../shared/reference/torchreid_rank_cy`` (see its SOURCE.md; the registry package torchreid 0.2.5
does not ship it). ``load()`` copies that folder into a build folder outside the repository
(``$DIREID_CACHE/rank_cy-<hash of source and Python>``), compiles it there with its own setup.py
once, and imports the extension, whose ``evaluate_cy(distmat, q_pids, g_pids, q_camids, g_camids,
max_rank, use_metric_cuhk03)`` returns ``(cmc, mAP)``. It needs Cython and a C compiler
(``pip install cython``; both are in the ``test`` extra's reach); ``ReferenceUnavailable`` says
which part is missing.
"""
import glob
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig

from direid_plugin.data.manifest import cache_root

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SOURCE = os.environ.get("DIREID_RANK_CY_SOURCE",
                                os.path.normpath(os.path.join(REPO, "..", "shared", "reference", "torchreid_rank_cy")))
SOURCE_FILES = ("rank_cy.pyx", "setup.py")


class ReferenceUnavailable(RuntimeError):
    """The compiled reference cannot be built here (no source, no Cython, or no compiler)."""


def _build_folder(source):
    digest = hashlib.sha1(sys.version.encode())
    for name in SOURCE_FILES:
        with open(os.path.join(source, name), "rb") as f:
            digest.update(f.read())
    return os.path.join(cache_root(), f"rank_cy-{digest.hexdigest()[:10]}")


def _compiled(folder):
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    found = glob.glob(os.path.join(folder, "rank_cy*" + suffix))
    return found[0] if found else None


def load(source=DEFAULT_SOURCE):
    """The compiled ``rank_cy`` module, building it first if this source was never built here."""
    missing = [name for name in SOURCE_FILES if not os.path.isfile(os.path.join(source, name))]
    if missing:
        raise ReferenceUnavailable(f"compiled reference: {missing} not found in {source} "
                                   "(set DIREID_RANK_CY_SOURCE to the torchreid_rank_cy folder)")
    folder = _build_folder(source)
    if _compiled(folder) is None:
        if importlib.util.find_spec("Cython") is None:
            raise ReferenceUnavailable("compiled reference: Cython is not installed (pip install cython)")
        building = folder + f".building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        os.makedirs(building)
        for name in SOURCE_FILES:
            shutil.copy(os.path.join(source, name), building)
        out = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=building,
                             capture_output=True, text=True)
        if out.returncode != 0 or _compiled(building) is None:
            shutil.rmtree(building, ignore_errors=True)
            raise ReferenceUnavailable("compiled reference: building rank_cy.pyx failed (a C compiler and the Python "
                                       f"headers are needed):\n{(out.stdout + out.stderr)[-2000:]}")
        if not os.path.exists(folder):
            os.replace(building, folder)
        else:  # another process built it meanwhile
            shutil.rmtree(building, ignore_errors=True)
    spec = importlib.util.spec_from_file_location("rank_cy", _compiled(folder))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
