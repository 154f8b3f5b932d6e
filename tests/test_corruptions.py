"""The 20 benchmark corruptions on real VIPeR images: size, dtype, change, severity order, seeding, errors."""
import glob
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from direid_plugin.data.corruptions import CORRUPTIONS, FAMILIES, SEVERITIES, CorruptionError, corrupt


@pytest.fixture
def viper_images(viper_root):
    paths = sorted(glob.glob(os.path.join(viper_root, "VIPeR", "cam_a", "*.bmp")))[:8]
    return [Image.open(path).convert("RGB") for path in paths]


def test_the_benchmark_set_is_twenty_corruptions_in_four_families():
    assert len(CORRUPTIONS) == len(set(CORRUPTIONS)) == 20
    assert set(FAMILIES) == {"noise", "blur", "weather", "digital"}
    assert {"rain", "speckle_noise", "gaussian_blur", "spatter", "saturate"} <= set(CORRUPTIONS)


@pytest.mark.parametrize("size", [(48, 128), (64, 128)])
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_severity_changes_the_image_and_keeps_its_size_and_dtype(name, size, viper_images):
    clean = viper_images[0].resize(size, Image.BILINEAR)
    for severity in SEVERITIES:
        out = corrupt(clean, name, severity, seed=3)
        array = np.asarray(out)
        assert out.size == size and out.mode == "RGB" and array.dtype == np.uint8
        assert np.abs(array.astype(int) - np.asarray(clean, dtype=int)).mean() > 0.1, (name, severity)  # spatter 1: 0.44


def test_rain_keeps_the_size_of_an_image_under_its_minimum_height(viper_images):
    small = viper_images[0].resize((24, 48), Image.BILINEAR)  # enlarged to height 65 for the drops, then back
    out = corrupt(small, "rain", 5, seed=0)
    assert out.size == small.size and not np.array_equal(np.asarray(out), np.asarray(small))


def _grey(image):
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY).astype(np.float64)


def _noise_energy(image, clean):
    return (np.asarray(image, dtype=np.float64) - np.asarray(clean, dtype=np.float64)).std()


def _sharpness(image, clean):
    return -cv2.Laplacian(_grey(image), cv2.CV_64F).var()  # negated: blur lowers it


def _contrast_loss(image, clean):
    return -_grey(image).std()


def _brightness(image, clean):
    return _grey(image).mean()


def _distance(image, clean):
    return np.abs(np.asarray(image, dtype=np.float64) - np.asarray(clean, dtype=np.float64)).mean()


# One simple measure per corruption that its severity must raise (averaged over 8 real images):
# noise energy for noise, loss of Laplacian variance for blur, loss of contrast for contrast and
# frost (frost's distance to the clean image is not monotone: its crops of frost pictures differ),
# brightness for brightness, the distance to the clean image for the rest.
MEASURES = {**{name: _noise_energy for name in FAMILIES["noise"]},
            **{name: _sharpness for name in FAMILIES["blur"]},
            "contrast": _contrast_loss, "frost": _contrast_loss, "brightness": _brightness}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_is_monotone_in_a_simple_measure(name, viper_images):
    measure = MEASURES.get(name, _distance)
    means = [np.mean([measure(corrupt(img, name, severity, seed=i), img) for i, img in enumerate(viper_images)])
             for severity in SEVERITIES]
    assert all(a < b for a, b in zip(means, means[1:])), (name, measure.__name__, np.round(means, 2))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_the_seed_fixes_the_result_and_leaves_numpys_global_generator_alone(name, viper_images):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = np.asarray(corrupt(viper_images[1], name, 3, seed=5))
    assert np.array_equal(np.random.get_state()[1], before)
    assert np.array_equal(a, np.asarray(corrupt(viper_images[1], name, 3, seed=5)))


@pytest.mark.parametrize("name", ["gaussian_noise", "impulse_noise", "glass_blur", "frost", "snow", "spatter",
                                  "elastic_transform", "rain"])
def test_random_corruptions_differ_across_seeds(name, viper_images):
    a, b = (np.asarray(corrupt(viper_images[1], name, 3, seed=s)) for s in (5, 6))
    assert not np.array_equal(a, b)


def test_a_bad_name_or_severity_is_a_one_line_error_listing_the_valid_values(viper_images):
    with pytest.raises(CorruptionError) as error:
        corrupt(viper_images[0], "fgo", 3, seed=0)
    message = str(error.value)
    assert "\n" not in message and "'fgo'" in message and all(name in message for name in CORRUPTIONS)
    for severity in (0, 6, 2.5, True):
        with pytest.raises(CorruptionError, match=r"severity must be one of \[1, 2, 3, 4, 5\]"):
            corrupt(viper_images[0], "fog", severity, seed=0)
