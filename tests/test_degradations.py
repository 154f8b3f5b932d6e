"""Degradation library: seeding, parameter ranges, what each kind does to a real image, mixtures."""
import math
import os

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from direid_plugin.config import get_default_config
from direid_plugin.data import degradations as D


@pytest.fixture
def viper_image(viper_root):
    path = os.path.join(viper_root, "VIPeR", "cam_a", "000_45.bmp")
    return Image.open(path).convert("RGB")


def _default(kind):
    node = get_default_config().degradation
    cls = D.DEGRADATIONS[kind]
    return cls(*[node[key] for key in cls.cfg_keys])


def _arr(img):
    return np.asarray(img, dtype=np.float64)


def _high_band_energy(img):
    """Share of spectral energy above half the Nyquist frequency (grey image, mean removed)."""
    grey = _arr(img.convert("L"))
    spectrum = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(grey.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(grey.shape[1]))[None, :]
    return spectrum[np.maximum(fy, fx) > 0.25].sum() / spectrum.sum()


@pytest.mark.parametrize("kind", sorted(D.DEGRADATIONS))
def test_seeded_same_size_and_params_in_range(kind, viper_image):
    degradation = _default(kind)
    out_a, params_a = degradation(viper_image, np.random.default_rng(7))
    out_b, params_b = degradation(viper_image, np.random.default_rng(7))
    out_c, params_c = degradation(viper_image, np.random.default_rng(8))
    assert out_a.size == viper_image.size and out_a.mode == "RGB"
    assert np.array_equal(_arr(out_a), _arr(out_b)) and params_a == params_b
    assert not np.array_equal(_arr(out_a), _arr(out_c)) and params_a != params_c
    assert not np.array_equal(_arr(out_a), _arr(viper_image))
    for (lo, hi), name in zip(degradation.ranges, degradation.param_names):
        assert lo <= params_a[name] <= hi, (name, params_a[name], (lo, hi))
    assert 0.0 < params_a["severity"] < 1.0


@pytest.mark.parametrize("kind", sorted(D.DEGRADATIONS))
def test_severity_grows_with_the_parameter(kind):
    degradation = _default(kind)
    lo = {name: r[0] for name, r in zip(degradation.param_names, degradation.ranges)}
    hi = {name: r[1] for name, r in zip(degradation.param_names, degradation.ranges)}
    if kind in ("jpeg", "poisson_noise"):  # lower quality / fewer photons is worse
        lo, hi = hi, lo
    if kind == "motion_blur":
        lo["angle"] = hi["angle"] = 0.0
    assert degradation.severity(**lo) < degradation.severity(**hi)


def test_resolution_removes_high_frequencies(viper_image):
    out, params = D.Resolution([3.0, 4.0])(viper_image, np.random.default_rng(0))
    assert 3.0 <= params["factor"] <= 4.0
    assert params["severity"] == pytest.approx(1 - 1 / params["factor"])
    # Down-sampling by f >= 3 keeps almost nothing above half the Nyquist frequency.
    assert _high_band_energy(out) < 0.2 * _high_band_energy(viper_image)
    assert np.array_equal(_arr(out), _arr(D.downsample(viper_image, params["factor"])))


def test_illumination_follows_the_gamma_formula(viper_image):
    out, params = D.Illumination([2.0, 3.5], [0.75, 1.0])(viper_image, np.random.default_rng(3))
    gamma, gain = params["gamma"], params["gain"]
    assert 2.0 <= gamma <= 3.5 and 0.75 <= gain <= 1.0
    expected = 255.0 * gain * (_arr(viper_image) / 255.0) ** gamma
    assert np.abs(_arr(out) - expected).max() <= 0.5 + 1e-9
    assert _arr(out).mean() < 0.6 * _arr(viper_image).mean()
    assert params["severity"] == pytest.approx(1 - gain * 0.5 ** (gamma - 1))


def test_jpeg_quality_is_an_integer_and_lower_quality_loses_more(viper_image):
    jpeg = D.Jpeg([5, 95])
    params = jpeg.sample(np.random.default_rng(0))
    assert isinstance(params["quality"], int)
    err = lambda q: np.abs(_arr(jpeg.apply(viper_image, quality=q)) - _arr(viper_image)).mean()  # noqa: E731
    assert err(5) > 2 * err(95)


def test_gaussian_blur_and_motion_blur_lower_high_frequencies(viper_image):
    blurred = D.GaussianBlur([2.0, 2.0]).apply(viper_image, sigma=2.0)
    moved = D.MotionBlur([9, 9]).apply(viper_image, size=9, angle=0.0)
    base = _high_band_energy(viper_image)
    assert _high_band_energy(blurred) < 0.2 * base
    assert _high_band_energy(moved) < 0.5 * base


def test_motion_kernel_is_a_normalised_line():
    horizontal = D.motion_kernel(7, 0.0)
    assert horizontal.sum() == pytest.approx(1.0)
    assert np.allclose(horizontal[3], 1 / 7) and np.allclose(np.delete(horizontal, 3, axis=0), 0)
    vertical = D.motion_kernel(7, 90.0)
    assert vertical[:, 3].sum() == pytest.approx(1.0, abs=1e-5)


def test_horizontal_motion_blur_leaves_columns_of_a_vertical_edge_image_unchanged():
    # Rows are constant, so blurring along a row changes nothing; along a column it does.
    rows = np.repeat(np.linspace(0, 255, 32)[:, None], 16, axis=1)
    img = Image.fromarray(np.repeat(rows[..., None], 3, axis=2).astype(np.uint8))
    assert np.array_equal(_arr(D.MotionBlur([9, 9]).apply(img, size=9, angle=0.0)), _arr(img))
    assert not np.array_equal(_arr(D.MotionBlur([9, 9]).apply(img, size=9, angle=90.0)), _arr(img))


def test_gaussian_noise_has_the_reported_std():
    flat = Image.new("RGB", (64, 128), (128, 128, 128))
    out, params = D.GaussianNoise([5.0, 20.0])(flat, np.random.default_rng(1))
    residual = _arr(out) - 128.0
    assert residual.std() == pytest.approx(params["std"], rel=0.05)
    assert abs(residual.mean()) < 0.5


def test_poisson_noise_is_signal_dependent():
    # Shot noise std in 0..255 units is 255 * sqrt(v / peak) for a pixel of value v/255 * 255.
    img = Image.fromarray(np.concatenate([np.full((64, 64, 3), 32), np.full((64, 64, 3), 128)]).astype(np.uint8))
    out, params = D.PoissonNoise([50.0, 50.0])(img, np.random.default_rng(2))
    dark, bright = _arr(out)[:64], _arr(out)[64:]
    for region, value in ((dark, 32.0), (bright, 128.0)):
        assert region.mean() == pytest.approx(value, rel=0.05)
        assert region.std() == pytest.approx(255.0 * math.sqrt(value / 255.0 / params["peak"]), rel=0.1)


def test_fog_moves_towards_airlight_and_lowers_contrast(viper_image):
    out, params = D.Fog([1.0, 1.5], [0.8, 0.95])(viper_image, np.random.default_rng(4))
    airlight = 255.0 * params["airlight"]
    src, dst = _arr(viper_image), _arr(out)
    assert abs(dst.mean() - airlight) < abs(src.mean() - airlight)
    # Local contrast (mean absolute horizontal difference) shrinks by the transmission t < 1.
    local_contrast = lambda a: np.abs(np.diff(a, axis=1)).mean()  # noqa: E731
    assert local_contrast(dst) < 0.8 * local_contrast(src)
    # The depth proxy: the bottom-centre pixel (nearest) is untouched, the top corners hazed most.
    depth = D.fog_depth(*src.shape[:2])
    h, w = depth.shape
    assert depth[-1, w // 2] < 0.02 and depth[0, 0] == 1.0 and depth[0, -1] == 1.0
    t = math.exp(-params["beta"])
    assert np.abs(dst[0, 0] - (src[0, 0] * t + airlight * (1 - t))).max() <= 0.5 + 1e-9


def test_compose_count_is_binomial_conditioned_on_at_least_one(viper_image):
    node = get_default_config().degradation
    node.kinds = ["resolution", "illumination", "jpeg", "gaussian_noise"]
    node.compose_p = 0.3
    compose = D.build_degradation(node)
    rng = np.random.default_rng(0)
    draws = 4000
    counts = np.bincount([compose.sample_count(rng) for _ in range(draws)], minlength=5)
    pmf = stats.binom.pmf(np.arange(5), 4, 0.3)
    expected = pmf / (1 - pmf[0]) * draws
    assert counts[0] == 0
    assert stats.chisquare(counts[1:], expected[1:]).pvalue > 0.001
    # Applying: each kind reports its parameters once; combined severity is 1 - prod(1 - s).
    img = viper_image.resize((24, 64))
    _, params = compose(img, np.random.default_rng(5))
    assert len(set(params["applied"])) == len(params["applied"]) >= 1
    combined = 1 - np.prod([1 - params[k]["severity"] for k in params["applied"]])
    assert params["severity"] == pytest.approx(combined)
    flat = compose.flat_params(params)
    for kind in node.kinds:
        if kind in params["applied"]:
            assert flat[f"{kind}.severity"] == params[kind]["severity"]
        else:
            assert flat[f"{kind}.severity"] == 0.0
    assert set(flat) == set(compose.flat_params(compose(img, np.random.default_rng(6))[1]))


def test_compose_applies_in_random_order():
    node = get_default_config().degradation
    node.kinds = ["resolution", "illumination"]
    node.compose_p = 1.0
    compose = D.build_degradation(node)
    img = Image.new("RGB", (16, 32), (100, 150, 200))
    orders = {tuple(compose(img, np.random.default_rng(s))[1]["applied"]) for s in range(20)}
    assert orders == {("resolution", "illumination"), ("illumination", "resolution")}


def test_single_kind_is_always_applied():
    compose = D.build_degradation(get_default_config().degradation)
    img = Image.new("RGB", (16, 32), (100, 150, 200))
    assert all(compose(img, np.random.default_rng(s))[1]["applied"] == ["resolution"] for s in range(10))


def test_unknown_kind_names_the_key_and_the_valid_names():
    node = get_default_config().degradation
    node.kinds = ["resolution", "haze"]
    with pytest.raises(ValueError, match=r"degradation\.kinds.*'haze'.*fog.*resolution"):
        D.build_degradation(node)


def test_bad_ranges_name_the_key():
    node = get_default_config().degradation
    node.kinds = ["jpeg"]
    node.jpeg_quality_range = [20, 10]
    with pytest.raises(ValueError, match=r"degradation\.jpeg_quality_range"):
        D.build_degradation(node)
    node.jpeg_quality_range = [10, 20]
    node.compose_p = 0.0
    with pytest.raises(ValueError, match=r"degradation\.compose_p"):
        D.build_degradation(node)


def _viper_images(viper_root, count=20):
    folder = os.path.join(viper_root, "VIPeR", "cam_a")
    return [Image.open(os.path.join(folder, name)).convert("RGB") for name in sorted(os.listdir(folder))[:count]]


@pytest.mark.parametrize("factor", [1.5, 2.0, 3.0, 4.0, 5.0])
def test_resolution_tensor_path_matches_the_pil_path(viper_root, factor):
    """Memory replay's tensor path of the resolution degradation, against the PIL path on real VIPeR
    images (0-255): within TENSOR_PATH_TOLERANCE, the PIL path rounding and clamping to 8 bits."""
    import torch

    differences = []
    for img in _viper_images(viper_root):
        pil = _arr(D.downsample(img, factor))
        x = torch.from_numpy(_arr(img)).permute(2, 0, 1).float()
        tensor = D.Resolution((1.0, 8.0)).apply_tensor(x, factor=factor).permute(1, 2, 0).double().numpy()
        differences.append(np.abs(np.clip(np.rint(tensor), 0, 255) - pil))
    differences = np.stack(differences)
    assert differences.mean() <= D.TENSOR_PATH_TOLERANCE["mean"], differences.mean()
    assert differences.max() <= D.TENSOR_PATH_TOLERANCE["max"], differences.max()


def test_the_mlr_protocol_draws_its_factors_from_the_mlr_set(viper_image):
    rng = np.random.default_rng(0)
    factors = []
    for _ in range(60):
        img, params = D.mlr_downsample(viper_image, rng)
        factors.append(params["factor"])
        assert img.size == viper_image.size
    assert set(factors) == set(D.MLR_FACTORS)
    img, params = D.PROTOCOL_DEGRADATIONS["lowlight"](viper_image, np.random.default_rng(0))
    assert 2.0 <= params["gamma"] <= 3.5 and _arr(img).mean() < _arr(viper_image).mean()
