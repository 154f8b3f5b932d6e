"""Shared test fixtures: where the real data lives, and tiny scratch roots."""
import glob
import os
import shutil

import pytest

import direid_plugin  # noqa: F401  (registers the plugin with torchreid)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("DIREID_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))


# Fixtures that read ../shared/data: a test using one is marked real_data (pytest.ini).
REAL_DATA_FIXTURES = ("viper_root", "mlr_root", "pku_root", "pku_datamanager", "caviar_root", "shared_root", "osnet_msmt17_weights",
                      "osnet_market_weights")


def pytest_collection_modifyitems(items):
    for item in items:
        if set(REAL_DATA_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_data)


def shared_path(*parts):
    """Path under ../shared/data; missing data skips locally but fails in CI (CI=true)."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        message = f"real test data missing: {path} (set DIREID_SHARED_DATA to the shared data folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def viper_root():
    """A torchreid data root holding viper/VIPeR/{cam_a,cam_b}."""
    shared_path("viper", "VIPeR", "cam_a")
    return os.path.join(SHARED_DATA, "viper")


TINY_VIPER_IDENTITIES = 8  # MLR-VIPeR halves them: 4 train, 4 test identities (4 LR queries, 4 HR gallery images)


@pytest.fixture
def mlr_root(viper_root, tmp_path, monkeypatch):
    """A data root with the first TINY_VIPER_IDENTITIES real VIPeR identities, in torchreid's layout,
    and a private dataset cache."""
    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    for camera in ("cam_a", "cam_b"):
        target = tmp_path / "data" / "viper" / "VIPeR" / camera
        target.mkdir(parents=True)
        for path in sorted(glob.glob(os.path.join(viper_root, "VIPeR", camera, "*.bmp")))[:TINY_VIPER_IDENTITIES]:
            shutil.copy(path, target)
    return tmp_path / "data"


@pytest.fixture
def pku_root():
    return shared_path("pku_reid")


@pytest.fixture(scope="module")
def pku_datamanager():
    """torchreid's ImageDataManager on the real PKU-Reid subset (64x32, CPU, no workers)."""
    import torchreid

    shared_path("pku_reid")
    return torchreid.data.ImageDataManager(
        root=SHARED_DATA, sources="pku_reid", height=64, width=32, use_gpu=False, workers=0, batch_size_train=16,
        batch_size_test=64,
    )


@pytest.fixture
def caviar_root():
    return shared_path("caviar_sample")


@pytest.fixture
def osnet_msmt17_weights():
    return shared_path("weights", "osnet_x0_25_msmt17.pth")


@pytest.fixture
def osnet_market_weights():
    return shared_path("weights", "osnet_x0_25_market1501.pth")
