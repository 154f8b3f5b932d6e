"""Bad input gives one clear error naming the file or key; odd but valid images are converted to RGB.

Table-driven: each case makes its bad input under ``tmp_path``, triggers the plugin code path a run
would take, and states the exact error type and what the message must name.
"""
import io
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
import torchreid
from PIL import Image
from torchreid.reid.data.datasets.dataset import ImageDataset
from torchreid.reid.data.transforms import build_transforms
from direid_plugin import run, weights
from direid_plugin.build import load_reported
from direid_plugin.cli import train as cli_train
from direid_plugin.config import ConfigError, load_config
from direid_plugin.data.datamanager import SKIPPED_FILE
from direid_plugin.data.datasets import DATASETS
from direid_plugin.data.datasets.protocol_cache import RawDataError
from direid_plugin.data.image_io import ImageReadError, read_image
from direid_plugin.engines.base import SoftmaxEngine
from direid_plugin.engines.checkpointing import save_checkpoint
from direid_plugin.weights import CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "baselines", "osnet_x0_25_pku_softmax.yaml")
TRAIN_IDS = 8  # identities copied into the small PKU-Reid root


# -- makers of bad input -------------------------------------------------------------------------
def _png_bytes(mode="RGB", size=(16, 32), color=(10, 20, 30)):
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg_bytes():
    buffer = io.BytesIO()
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 32, 3), np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _osnet(num_classes):
    return torchreid.models.build_model("osnet_x0_25", num_classes, pretrained=False, use_gpu=False)


def _image(tmp, name, data):
    path = _write(tmp / name, data)
    return path, lambda: read_image(path)


def _dataset(tmp, name, make_layout=None):
    root = tmp / "root"
    os.makedirs(root)
    if make_layout:
        make_layout(root)
    return str(root), lambda: DATASETS[name](root=str(root), verbose=False)


def _pku_without_query(root):
    _write(root / "pku_reid" / "train" / "001" / "01_1.png", _png_bytes())
    _write(root / "pku_reid" / "val" / "gallery" / "002" / "01_1.png", _png_bytes())
    os.makedirs(root / "pku_reid" / "val" / "query")


def _pku_flat(root):
    _write(root / "pku_reid" / "train" / "01_1.png", _png_bytes())  # no <pid>/ folder


def _viper_with_jpgs(root):
    for cam in ("cam_a", "cam_b"):
        _write(root / "viper" / "VIPeR" / cam / "000_45.jpg", _jpeg_bytes())


def _config(tmp, *opts):
    return opts[0], lambda: load_config(None, list(opts))


def _config_file(tmp, text):
    path = _write(tmp / "bad.yaml", text.encode())
    return path, lambda: load_config(path)


def _weights_of_another_model(tmp):
    path = str(tmp / "resnet18.pth")
    torch.save(torchreid.models.build_model("resnet18", 5, pretrained=False, use_gpu=False).state_dict(), path)
    return path, lambda: _load_weights(path)


def _load_weights(path):
    """What a run does with model.load_weights."""
    return load_reported(_osnet(10), weights.read(path, "model.load_weights"))


def _resume_with_other_class_count(tmp):
    path = str(tmp / "model" / "model.pth.tar-1")
    save_checkpoint({"state_dict": _osnet(751).state_dict(), "epoch": 1}, path)
    datamanager = types.SimpleNamespace(train_loader=None, test_loader=None, num_train_pids=10)
    engine = SoftmaxEngine(datamanager, _osnet(10), optimizer=None, use_gpu=False)
    return path, lambda: engine.resume("auto", str(tmp))


def _checkpoint_file(tmp, data):
    path = _write(tmp / "model.pth.tar-3", data)
    return path, lambda: _load_weights(path)


def _truncated_checkpoint(tmp):
    buffer = io.BytesIO()
    torch.save(_osnet(10).state_dict(), buffer)
    return _checkpoint_file(tmp, buffer.getvalue()[:5000])


def _save_dir_under_a_file(tmp):
    blocker = _write(tmp / "a_file", b"x")
    cfg = load_config(None, ["data.save_dir", os.path.join(blocker, "sub")])
    return os.path.join(blocker, "sub"), lambda: run._output_folder(cfg, "train").__enter__()


# id -> (make(tmp) -> (text the message must name, action), error type, other phrases in the message)
CASES = {
    "corrupt_bytes": (lambda t: _image(t, "c.jpg", os.urandom(2048)), ImageReadError, ["not an image"]),
    "truncated_jpeg": (lambda t: _image(t, "t.jpg", _jpeg_bytes()[:600]), ImageReadError, ["truncated"]),
    "truncated_png": (lambda t: _image(t, "t.png", _png_bytes(size=(64, 128))[:60]), ImageReadError, ["truncated"]),
    "zero_byte": (lambda t: _image(t, "z.png", b""), ImageReadError, ["empty (0 bytes)"]),
    "text_file": (lambda t: _image(t, "notes.png", b"identity,camera\n1,2\n"), ImageReadError, ["not an image"]),
    "missing_image": (lambda t: (str(t / "gone.png"), lambda: read_image(str(t / "gone.png"))), ImageReadError,
                      ["does not exist"]),
    "pku_missing_root": (lambda t: _dataset(t, "pku_reid"), FileNotFoundError,
                         ["pku_reid/train", "expected layout <root>/pku_reid/train/<pid>/<cam>_<view>.png"]),
    "pku_wrong_layout": (lambda t: _dataset(t, "pku_reid", _pku_flat), FileNotFoundError,
                         ["no PKU-Reid images under", "expected layout"]),
    "pku_empty_split": (lambda t: _dataset(t, "pku_reid", _pku_without_query), FileNotFoundError,
                        ["val/query", "no PKU-Reid images"]),
    "mlr_viper_missing_root": (lambda t: _dataset(t, "mlr_viper"), RawDataError,
                               ["viper/VIPeR/cam_a not found", "expected layout: <root>/viper/VIPeR/{cam_a,cam_b}"]),
    "mlr_viper_wrong_layout": (lambda t: _dataset(t, "mlr_viper", _viper_with_jpgs), RawDataError,
                               ["has no .bmp images", "expected layout"]),
    "mlr_cuhk03_missing_root": (lambda t: _dataset(t, "mlr_cuhk03"), RawDataError,
                                ["cuhk03/cuhk03_release/cuhk-03.mat not found", "expected layout"]),
    "mlr_cuhk03_folder_missing_root": (lambda t: _dataset(t, "mlr_cuhk03_folder"), RawDataError,
                                       ["MLR_CUHK03/train not found", "expected layout"]),
    "caviar_missing_root": (lambda t: _dataset(t, "caviar"), RawDataError,
                            ["caviar4reid not found", "expected layout: <root>/caviar4reid/PPPPIII.jpg"]),
    "mlr_wrapper_missing_root": (lambda t: _dataset(t, "mlr_market1501"), RawDataError,
                                 ["market1501 not found", "expected layout"]),
    "lowlight_wrapper_missing_root": (lambda t: _dataset(t, "lowlight_dukemtmcreid"), RawDataError,
                                      ["dukemtmc-reid not found", "expected layout"]),
    "unknown_config_key": (lambda t: _config(t, "train.lrr", "0.1"), ConfigError, ["train.lrr", "unknown config key"]),
    "unknown_key_near_a_known_one": (lambda t: _config(t, "train.max_epochs", "3"), ConfigError,
                                     ["unknown config key 'train.max_epochs' (did you mean 'train.max_epoch'"]),
    "wrong_value_type": (lambda t: _config(t, "engine.max_nonfinite_steps", "2.5"), ConfigError,
                         ["engine.max_nonfinite_steps must be an int (default 10), got 2.5"]),
    "bare_string_for_a_list": (lambda t: _config(t, "data.sources", "pku_reid"), ConfigError,
                               ["data.sources is a list: write data.sources \"['pku_reid']\" on the command line"]),
    "unknown_key_in_yaml": (lambda t: _config_file(t, "train:\n  max_epochs: 3\n"), ConfigError,
                            ["train.max_epochs", "unknown config key"]),
    "weights_of_another_model": (_weights_of_another_model, CheckpointError,
                                 ["no tensor fits OSNet", "565 model keys absent from the file (e.g. ['conv1.conv.weight'",
                                  "120 file keys unknown to the model (e.g. ['conv1.weight'"]),
    "resume_other_class_count": (_resume_with_other_class_count, CheckpointError,
                                 ["does not fit OSNet: 2 shape mismatches (classifier.weight: file (751, 512) vs model (10, 512);"]),
    "missing_weights_file": (lambda t: (str(t / "nope.pth"), lambda: _load_weights(str(t / "nope.pth"))),
                             CheckpointError, ["model.load_weights", "checkpoint not found"]),
    "truncated_checkpoint": (_truncated_checkpoint, CheckpointError, ["cannot load checkpoint", "truncated"]),
    "empty_checkpoint": (lambda t: _checkpoint_file(t, b""), CheckpointError, ["empty (0 bytes)"]),
    "save_dir_under_a_file": (_save_dir_under_a_file, PermissionError, ["data.save_dir: cannot write to"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_raises_one_clear_error_naming_it(case, tmp_path):
    make, error, phrases = CASES[case]
    named, action = make(tmp_path)
    with pytest.raises(Exception) as excinfo:
        action()
    assert type(excinfo.value) is error, repr(excinfo.value)
    message = str(excinfo.value)
    assert "\n" not in message
    for phrase in [named, *phrases]:
        assert phrase in message, (phrase, message)


# -- images that are not 8-bit RGB are converted ----------------------------------------------
def _palette(transparent):
    img = Image.new("P", (2, 1))
    img.putpalette([200, 100, 50, 0, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    if transparent:
        img.info["transparency"] = 1
    return img


def _sixteen_bit():
    return Image.fromarray(np.array([[0, 1000, 4000]], dtype=np.uint16))  # mode I;16


CONVERSIONS = {  # id -> (image, file format, expected RGB pixels left to right)
    "grayscale": (Image.new("L", (2, 1), 77), "PNG", [(77, 77, 77)] * 2),
    "bilevel": (Image.new("1", (2, 1), 1), "PNG", [(255, 255, 255)] * 2),
    "gray_alpha": (Image.new("LA", (2, 1), (77, 0)), "PNG", [(255, 255, 255)] * 2),
    "rgba_opaque_and_clear": (Image.fromarray(np.array([[[10, 20, 30, 255], [10, 20, 30, 0]]], np.uint8), "RGBA"),
                              "PNG", [(10, 20, 30), (255, 255, 255)]),
    "palette": (_palette(transparent=False), "PNG", [(200, 100, 50), (0, 0, 0)]),
    "palette_with_transparency": (_palette(transparent=True), "PNG", [(200, 100, 50), (255, 255, 255)]),
    "cmyk": (Image.new("CMYK", (2, 1), (0, 255, 255, 0)), "TIFF", [(255, 0, 0)] * 2),
    "sixteen_bit_rescaled": (_sixteen_bit(), "PNG", [(0, 0, 0), (64, 64, 64), (255, 255, 255)]),
}


@pytest.mark.parametrize("case", sorted(CONVERSIONS))
def test_non_rgb_images_are_converted_to_the_right_rgb(case, tmp_path):
    image, fmt, expected = CONVERSIONS[case]
    path = str(tmp_path / f"img.{fmt.lower()}")
    image.save(path, fmt)
    rgb = read_image(path)
    assert rgb.mode == "RGB"
    assert [rgb.getpixel((x, 0)) for x in range(rgb.width)] == expected


@pytest.mark.parametrize("size", [(1, 1), (6000, 4000)], ids=["1x1", "6000x4000"])
def test_tiny_and_huge_images_go_through_torchreids_data_pipeline(size, tmp_path):
    path = str(tmp_path / "img.png")
    Image.new("RGB", size, (255, 0, 0)).save(path)
    _, transform_te = build_transforms(64, 32, transforms=None)
    item = [(path, 0, 0)]
    sample = ImageDataset(item, item, item, transform=transform_te, mode="query", verbose=False)[0]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert sample["img"].shape == (3, 64, 32)
    expected = (torch.tensor([1.0, 0.0, 0.0]) - mean) / std  # pure red everywhere after resizing
    assert torch.allclose(sample["img"], expected[:, None, None].expand(3, 64, 32), atol=1e-5)


# -- the run: skip-and-report, and the CLI's one-line errors ----------------------------------
@pytest.fixture
def small_pku(pku_root, tmp_path):
    """A copy of PKU-Reid with its first few training identities (so a training epoch is 4 batches)."""
    root = tmp_path / "data"
    for pid in sorted(os.listdir(os.path.join(pku_root, "train")))[:TRAIN_IDS]:
        shutil.copytree(os.path.join(pku_root, "train", pid), root / "pku_reid" / "train" / pid)
    shutil.copytree(os.path.join(pku_root, "val"), root / "pku_reid" / "val", ignore=shutil.ignore_patterns("all_imgs"))
    return root / "pku_reid"


def _tiny_run(data_root, save_dir, *extra):
    return ["--config-file", CONFIG, "data.root", str(data_root), "data.save_dir", str(save_dir), "data.height", "64",
            "data.width", "32", "data.workers", "0", "train.max_epoch", "1", "engine.progress", "False",
            "use_gpu", "False", *extra]


def _damage(small_pku):
    """One bad file per split, plus every image of the third training identity; returns them all."""
    first = {split: sorted(small_pku.glob(f"{split}/*/*.png"))[0] for split in ("train", "val/query", "val/gallery")}
    bad = [_write(first["train"], b""), _write(first["val/query"], b"not a png"), str(first["val/gallery"])]
    with open(bad[2], "r+b") as f:
        f.truncate(100)
    third_identity = sorted((small_pku / "train").iterdir())[2]
    for path in sorted(third_identity.glob("*.png")):
        bad.append(_write(path, _jpeg_bytes()[:300]))
    return bad


def test_skip_bad_images_drops_and_reports_every_unreadable_file(small_pku, tmp_path, capsys):
    counts = {split: len(list(small_pku.glob(f"{split}/*/*.png"))) for split in ("train", "val/query", "val/gallery")}
    bad = _damage(small_pku)
    save_dir = tmp_path / "run"
    cli_train.main(_tiny_run(small_pku.parent, save_dir, "data.skip_bad_images", "True"))
    out = capsys.readouterr().out
    listed = (save_dir / SKIPPED_FILE).read_text().splitlines()
    assert sorted(line.split(": ")[0] for line in listed) == sorted(bad)
    assert f"=> data.skip_bad_images: {len(bad)} unreadable images skipped" in out
    assert out.rstrip().endswith(listed[-1])  # the list closes the run's output
    state = torch.load(save_dir / "model" / "model.pth.tar-1", weights_only=True)
    # The identity whose images all failed is gone and the labels stay contiguous: 7 classes.
    assert state["state_dict"]["classifier.weight"].shape[0] == TRAIN_IDS - 1
    assert f"# source images   : {counts['train'] - (len(bad) - 2)}" in out
    assert f"Features: query ({counts['val/query'] - 1}, 512), gallery ({counts['val/gallery'] - 1}, 512)" in out


CLI_ERRORS = {  # id -> (extra overrides given tmp, small_pku; phrase the error line must name)
    "bad_images_without_skip": (lambda t, d: [], "image file is empty (0 bytes)"),
    "bad_images_name_the_skip_option": (lambda t, d: [], "; data.skip_bad_images True skips unreadable images"),
    "bad_images_in_a_loader_worker": (lambda t, d: ["data.workers", "1"], "image file is empty (0 bytes)"),
    "dataset_name_typo": (lambda t, d: ["data.sources", "['pku_reidd']"],
                          "data.sources: unknown dataset 'pku_reidd' (did you mean 'pku_reid'?)"),
    "text_file_as_weights": (lambda t, d: ["model.load_weights", _write(t / "notes.txt", b"hello\n")],
                             "notes.txt: not a torch checkpoint (torch writes a zip archive or a pickle"),
    "every_query_image_bad": (lambda t, d: ["data.skip_bad_images", "True"], "pku_reid query: none of its"),
    "missing_data_root": (lambda t, d: ["data.root", str(t / "nowhere")], "expected layout"),
    "save_dir_under_a_file": (lambda t, d: ["data.save_dir", _write(t / "f", b"x") + "/sub"], "data.save_dir: cannot"),
    "missing_weights": (lambda t, d: ["model.load_weights", str(t / "w.pth")], "w.pth: checkpoint not found; check the path"),
    # a mean of 1e39 (inf in float32) makes every input -inf: every step's gradients are NaN
    "diverging_run": (lambda t, d: ["data.norm_mean", "[1e39, 1e39, 1e39]", "engine.max_nonfinite_steps", "2"],
                      "training diverged: 2 consecutive steps of 'model' had non-finite gradients"),
}


@pytest.mark.parametrize("case", sorted(CLI_ERRORS))
def test_cli_reports_known_errors_in_one_line(case, small_pku, tmp_path):
    if case == "every_query_image_bad":
        for path in small_pku.glob("val/query/*/*.png"):
            _write(path, b"")
    elif case.startswith("bad_images"):
        for path in sorted((small_pku / "train").iterdir())[0].glob("*.png"):
            _write(path, b"")
    extra, phrase = CLI_ERRORS[case]
    with pytest.raises(SystemExit) as excinfo:
        cli_train.main(_tiny_run(small_pku.parent, tmp_path / "run", *extra(tmp_path, small_pku)))
    message = excinfo.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message
    assert phrase in message, message


@pytest.mark.slow
def test_cli_error_is_one_stderr_line_and_debug_env_keeps_the_traceback(tmp_path):
    command = [sys.executable, os.path.join(REPO, "tools", "train.py"), "data.root", str(tmp_path),
               "data.sources", "['pku_reid']", "data.targets", "['pku_reid']", "data.save_dir", str(tmp_path / "run")]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 1
    assert quiet.stderr.strip().splitlines() == [
        f"error: PKU-Reid folder missing: {tmp_path}/pku_reid/train; expected layout <root>/pku_reid/train/<pid>/"
        "<cam>_<view>.png, <root>/pku_reid/val/{query,gallery}/<pid>/<cam>_<view>.png"]
    debug = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ, DIREID_DEBUG="1"))
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "FileNotFoundError" in debug.stderr
