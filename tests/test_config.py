"""yacs config: torchreid's node names, _BASE_ inheritance, clear errors naming the key."""
import pytest

from direid_plugin.config import ConfigError, get_default_config, load_config


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_default_has_torchreid_nodes_and_plugin_nodes():
    cfg = get_default_config()
    for node in ("model", "data", "sampler", "train", "sgd", "adam", "rmsprop", "loss", "test",
                 "engine", "degradation", "ddgan", "dfen"):
        assert node in cfg
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.data.sources == ["synthetic_mlr"]
    assert cfg.model.pretrained is False  # no downloads by default


def test_base_inheritance_merges_parent_first(tmp_path):
    _write(tmp_path / "base.yaml", "train:\n  lr: 0.01\n  max_epoch: 5\ndata:\n  height: 64\n")
    (tmp_path / "sub").mkdir()
    child = _write(tmp_path / "sub" / "child.yaml", "_BASE_: ../base.yaml\ntrain:\n  max_epoch: 7\n")
    cfg = load_config(child, ["data.width", "32", "train.lr", "1e-4"])
    assert cfg.train.max_epoch == 7 and cfg.data.height == 64 and cfg.data.width == 32
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.is_frozen()


def test_unknown_key_names_the_key(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"train\.lrr"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"ddgan\.typo"):
        load_config(None, ["ddgan.typo", "1"])


def test_an_option_after_the_overrides_is_named_not_read_as_a_key():
    with pytest.raises(ConfigError, match=r"--validation comes after the KEY VALUE overrides.*before the first"):
        load_config(None, ["train.max_epoch", "2", "--validation"])
    with pytest.raises(ConfigError, match=r"--splits comes after"):
        load_config(None, ["train.max_epoch", "2", "--splits", "0"])
    assert load_config(None, ["train.lr", "-1e-3"]).train.lr == pytest.approx(-1e-3)  # a negative value is no option


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"train\.max_epoch"):
        load_config(None, ["train.max_epoch", "ten"])
    with pytest.raises(ConfigError, match=r"data\.sources"):
        load_config(None, ["data.sources", "3"])


def test_int_is_accepted_for_float():
    cfg = load_config(None, ["train.lr", "1"])
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 1.0


def test_base_cycle_and_missing_file_are_reported(tmp_path):
    a = _write(tmp_path / "a.yaml", "_BASE_: b.yaml\n")
    _write(tmp_path / "b.yaml", "_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(a)
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_extra_node_accepts_new_keys_from_files(tmp_path):
    cfg = load_config(_write(tmp_path / "x.yaml", "extra:\n  my_flag: 3\n"))
    assert cfg.extra.my_flag == 3


def test_every_shipped_config_loads():
    import glob
    import os

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    files = glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True)
    assert files
    for path in files:
        load_config(path)


def test_several_bases_merge_in_order(tmp_path):
    _write(tmp_path / "a.yaml", "train:\n  max_epoch: 3\n  lr: 0.1\nddgan:\n  dis_dim: 8\n")
    _write(tmp_path / "b.yaml", "train:\n  max_epoch: 5\n")
    child = _write(tmp_path / "child.yaml", "_BASE_: [a.yaml, b.yaml]\ntrain:\n  lr: 0.2\n")
    cfg = load_config(str(child))
    assert (cfg.train.max_epoch, cfg.train.lr, cfg.ddgan.dis_dim) == (5, 0.2, 8)  # b over a, the file over both


def test_engine_flush_denormal_turns_cpu_denormals_to_zero(tmp_path, monkeypatch):
    import torch

    from direid_plugin.build import build_run

    monkeypatch.setenv("DIREID_CACHE", str(tmp_path / "cache"))
    cfg = get_default_config()
    cfg.merge_from_list(["data.sources", "['synthetic_mlr_tiny']", "data.targets", "['synthetic_mlr_tiny']",
                         "data.height", "64", "data.width", "32", "data.workers", "0", "model.name", "osnet_x0_25",
                         "model.pretrained", "False", "use_gpu", "False", "data.save_dir", str(tmp_path / "run")])
    denormal = torch.tensor([1e-39], dtype=torch.float32)
    try:
        build_run(cfg)
        assert (denormal * 1.0).item() != 0.0  # off by default
        cfg.engine.flush_denormal = True
        build_run(cfg)
        assert (denormal * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)
