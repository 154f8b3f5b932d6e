"""corrupted_<name> datasets on real VIPeR images: torchreid's data manager, the three modes, fixed
corruptions by name, byte-identical seeded caches, errors; corruption kinds as degradations."""
import hashlib
import os

import numpy as np
import pytest
import torchreid
from PIL import Image

from direid_plugin.build import build_datamanager, check_dataset_names
from direid_plugin.config import ConfigError, get_default_config
from direid_plugin.data import degradations as D
from direid_plugin.data.corruptions import CORRUPTIONS
from direid_plugin.data.datasets.corrupted import CorruptedDataset, corrupted_name
from direid_plugin.data.manifest import cache_root
from direid_plugin.registry import dataset_registry


def _in_cache(path):
    return os.path.abspath(path).startswith(cache_root())


def _sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def test_torchreid_data_manager_tests_on_corrupted_viper(mlr_root):
    dm = torchreid.data.ImageDataManager(root=str(mlr_root), sources="viper", targets="corrupted_viper", height=64,
                                         width=32, use_gpu=False, workers=0, batch_size_test=8)
    query, gallery = dm.test_dataset["corrupted_viper"]["query"], dm.test_dataset["corrupted_viper"]["gallery"]
    assert len(query) == len(gallery) == 4
    assert all(_in_cache(item[0]) for item in query + gallery)
    assert not any(_in_cache(item[0]) for item in dm.train_loader.dataset.train)  # training stays clean
    batch = next(iter(dm.test_loader["corrupted_viper"]["query"]))
    assert batch["img"].shape == (4, 3, 64, 32)


@pytest.mark.parametrize("mode, corrupted", [("both", {"query", "gallery"}), ("query", {"query"}),
                                             ("gallery", {"gallery"})])
def test_each_mode_corrupts_exactly_the_sets_it_names(mlr_root, mode, corrupted):
    dataset = CorruptedDataset("viper", mode, root=str(mlr_root), verbose=False)
    for set_name in ("train", "query", "gallery"):
        items = getattr(dataset, set_name)
        assert all(_in_cache(item[0]) == (set_name in corrupted) for item in items), set_name
    clean = CorruptedDataset("viper", "gallery", root=str(mlr_root), verbose=False)
    assert [item[1:3] for item in dataset.query] == [item[1:3] for item in clean.query]  # same order and labels
    both = CorruptedDataset("viper", "both", root=str(mlr_root), verbose=False)
    for set_name in corrupted:  # one cache: an image is corrupted alike in every mode
        assert [i[0] for i in getattr(dataset, set_name)] == [i[0] for i in getattr(both, set_name)]


def test_random_protocol_draws_a_type_and_level_per_image_recorded_in_the_manifest(mlr_root):
    dataset = CorruptedDataset("viper", root=str(mlr_root), verbose=False)
    entries = list(dataset.manifest["corrupted"].values())
    assert len(entries) == 8
    assert all(e["corruption"] in CORRUPTIONS and 1 <= e["severity"] <= 5 for e in entries)
    assert len({(e["corruption"], e["severity"]) for e in entries}) > 1


def test_a_fixed_corruption_is_selected_by_name(mlr_root):
    cfg = get_default_config()
    cfg.merge_from_list(["data.root", str(mlr_root), "data.sources", "['viper']",
                         "data.targets", "['corrupted_query_fog_3_viper']", "data.height", "64", "data.width", "32",
                         "data.workers", "0"])
    dm = build_datamanager(cfg)
    dataset = dm.test_dataset["corrupted_query_fog_3_viper"]
    assert all(_in_cache(item[0]) for item in dataset["query"]) and not any(_in_cache(i[0]) for i in dataset["gallery"])
    name = corrupted_name("viper", "query", "fog", 3)
    assert name == "corrupted_query_fog_3_viper" and name in dataset_registry()
    built = dataset_registry()[name](root=str(mlr_root), verbose=False)
    assert {(e["corruption"], e["severity"]) for e in built.manifest["corrupted"].values()} == {("fog", 3)}


@pytest.mark.parametrize("target, expected", [("corrupted_fgo_3_viper", r"unknown corruption 'fgo'; valid names are "
                                                                        r"gaussian_noise, .*, saturate"),
                                              ("corrupted_fog_9_viper", r"corruption severity must be one of \[1, 2, 3, 4, 5\]")])
def test_a_bad_corruption_name_is_a_one_line_config_error(target, expected):
    cfg = get_default_config()
    cfg.data.targets = [target]
    with pytest.raises(ConfigError, match=rf"data\.targets: dataset '{target}': {expected}") as error:
        check_dataset_names(cfg)
    assert "\n" not in str(error.value)


def test_caches_are_byte_identical_across_builds_and_change_with_the_seed(mlr_root, tmp_path, monkeypatch):
    def files(seed, cache):
        monkeypatch.setenv("DIREID_CACHE", str(tmp_path / cache))
        dataset = CorruptedDataset("viper", root=str(mlr_root), seed=seed, verbose=False)
        return {os.path.basename(item[0]): _sha1(item[0]) for item in dataset.query + dataset.gallery}

    first = files(0, "a")
    assert first == files(0, "b")
    assert first != files(1, "c")


def test_a_built_cache_is_verified_not_rebuilt(mlr_root):
    first = CorruptedDataset("viper", corruption="rain", severity=2, root=str(mlr_root), verbose=False)
    stamps = {item[0]: os.stat(item[0]).st_mtime_ns for item in first.query}
    again = CorruptedDataset("viper", corruption="rain", severity=2, root=str(mlr_root), build_cache=False, verbose=False)
    assert {item[0]: os.stat(item[0]).st_mtime_ns for item in again.query} == stamps


def test_corruption_kinds_degrade_like_the_corruption_they_name(viper_root):
    image = Image.open(os.path.join(viper_root, "VIPeR", "cam_a", "000_45.bmp")).convert("RGB")
    node = get_default_config().degradation
    node.kinds = ["corruption.rain"]
    node.corruption_severity_range = [4, 4]
    out, params = D.build_degradation(node)(image, np.random.default_rng(0))
    kind = params["corruption.rain"]
    assert kind["level"] == 4 and kind["severity"] == pytest.approx(4 / 6)
    from direid_plugin.data.corruptions import corrupt
    assert np.array_equal(np.asarray(out), np.asarray(corrupt(image, "rain", 4, kind["seed"])))
    node.kinds = ["corruption.random"]
    node.corruption_severity_range = [1, 5]
    drawn = {D.build_degradation(node)(image, np.random.default_rng(s))[1]["corruption.random"]["index"]
             for s in range(40)}
    assert len(drawn) > 10  # one of the 20 per image


def test_bad_corruption_kinds_and_levels_name_the_key():
    node = get_default_config().degradation
    node.kinds = ["corruption.fgo"]
    with pytest.raises(ValueError, match=r"degradation\.kinds.*'corruption\.fgo'.*corruption\.fog"):
        D.build_degradation(node)
    node.kinds = ["corruption.fog"]
    node.corruption_severity_range = [0, 5]
    with pytest.raises(ValueError, match=r"degradation\.corruption_severity_range must lie within \[1, 5\]"):
        D.build_degradation(node)


def test_train_augmentation_corrupts_training_images_only_when_asked(mlr_root):
    cfg = get_default_config()
    cfg.merge_from_list(["data.root", str(mlr_root), "data.sources", "['viper']", "data.targets", "['viper']",
                         "data.height", "64", "data.width", "32", "data.workers", "0",
                         "degradation.kinds", "['corruption.random']"])
    assert not any(isinstance(t, D.TrainAugmentation) for t in build_datamanager(cfg).transform_tr.transforms)
    cfg.degradation.train_augment_p = 1.0
    dm = build_datamanager(cfg)
    augmentation = dm.transform_tr.transforms[0]
    assert isinstance(augmentation, D.TrainAugmentation) and dm.train_loader.dataset.transform is dm.transform_tr
    assert dm.transform_te.transforms[0].__class__ is not D.TrainAugmentation  # the test transform is untouched
    image = Image.open(dm.train_loader.dataset.train[0][0]).convert("RGB")
    assert all(not np.array_equal(np.asarray(augmentation(image)), np.asarray(image)) for _ in range(5))
    augmentation.p = 0.0
    assert np.array_equal(np.asarray(augmentation(image)), np.asarray(image))


def test_prepare_data_builds_a_fixed_corruption_by_name(mlr_root, capsys):
    from direid_plugin.cli import prepare_data

    assert prepare_data.main(["corrupted_gallery_fog_3_viper", "--root", str(mlr_root)]) == 0
    out = capsys.readouterr().out
    assert "corrupted_gallery_fog_3_viper: cache" in out and "corrupted images: 8, fog 3: 8" in out
    with pytest.raises(SystemExit) as exit_info:
        prepare_data.main(["corrupted_haze_3_viper", "--root", str(mlr_root)])
    assert exit_info.value.code == 2
    assert "unknown corruption 'haze'; valid names are" in capsys.readouterr().err


def test_any_registered_dataset_gets_the_random_protocol_when_named():
    cfg = get_default_config()
    cfg.data.targets = ["corrupted_gallery_mlr_market1501"]  # a wrapper: not registered in advance
    assert "corrupted_gallery_mlr_market1501" not in dataset_registry()
    check_dataset_names(cfg)
    assert "corrupted_gallery_mlr_market1501" in dataset_registry()

