"""Image degradations: the only place a degradation is defined.

Every degradation maps a PIL RGB image to a PIL RGB image of the same size, draws its random
parameters from an explicit ``numpy.random.Generator`` (never the global RNG), and reports them
together with a ``severity`` in [0, 1): 0 is the clean image, larger is more degraded. Severities
are absolute (they depend on the parameter, not on the configured range), so images degraded
under different configs stay comparable as ranking labels.

Users of them:

* the self-degradation prior of stage-1 pairs and of pictures: ``build_degradation(cfg.degradation)``
  gives a ``Compose`` over the configured kinds; the number of kinds applied to one image is
  Binomial(n, p) conditioned on >= 1, in random order (docs/method.md 2.2, "Self-degradation");
* memory replay ``resample`` re-degrades normalised image batches on their device through the
  tensor path (``Compose.apply_to_batch``), which a kind provides where speed needs it
  (``Resolution``: within ``TENSOR_PATH_TOLERANCE`` of the PIL path, tests/test_degradations.py);
* the degraded Re-ID protocols' caches (datasets/protocol_cache.py): ``PROTOCOL_DEGRADATIONS``;
* training-time augmentation of any model (``degradation.train_augment_p``, ``TrainAugmentation``).

The 20 benchmark corruptions (data/corruptions.py) are kinds too: ``corruption.<name>`` applies
that corruption, ``corruption.random`` one drawn uniformly from the 20 (the benchmark's "random
type" protocol), each at a severity level drawn from ``degradation.corruption_severity_range``.
"""
import io
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from direid_plugin.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt


def _reduced(size, factor):
    return max(1, int(size / factor))


def downsample(img, factor):
    """Down-sample ``img`` by ``factor`` and bring it back to its original size.

    Down-sampling is Pillow's bilinear resize (which antialiases when reducing) to
    (floor(W/f), floor(H/f)), as the official DI-REID code does; up-sampling is bicubic.
    """
    w, h = img.size
    small = img.resize((_reduced(w, factor), _reduced(h, factor)), Image.BILINEAR)
    return small.resize((w, h), Image.BICUBIC)


def downsample_tensor(x, factor):
    """``downsample`` of one image tensor (C, H, W) on its device: torch's antialiased bilinear
    reduction (built to match Pillow's) and bicubic up-sampling, without Pillow's rounding to 8 bits
    and clamping. Any per-channel affine normalisation commutes with it."""
    height, width = x.shape[-2:]
    small = F.interpolate(x[None], size=(_reduced(height, factor), _reduced(width, factor)), mode="bilinear",
                          antialias=True, align_corners=False)
    return F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False)[0]


# How far the tensor path of a degradation may be from its PIL path, on 0-255 images (mean, max of
# the absolute difference). Measured on 20 real VIPeR images at factors 1.5-5: mean 1.09-1.31, max 11-15
# (tests/test_degradations.py): Pillow rounds the small image to 8 bits before up-sampling.
TENSOR_PATH_TOLERANCE = {"mean": 1.5, "max": 16.0}


def _saturate(x, half):
    """Map a non-negative degradation amount to [0, 1): 0 -> 0, ``half`` -> 0.5."""
    x = max(0.0, float(x))
    return x / (x + half)


def _to_uint8_image(arr):
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="RGB")


def _as_float(img):
    return np.asarray(img.convert("RGB"), dtype=np.float64)


class Degradation:
    """Base class: ``sample`` draws parameters, ``apply`` is deterministic given them.

    Subclasses set ``name`` (the config name), ``cfg_keys`` (the ``cfg.degradation`` range keys
    their constructor takes, in order) and ``param_names`` (what ``sample`` returns).
    """

    name = ""
    cfg_keys = ()
    param_names = ()
    integer_ranges = False

    def __init__(self, *ranges):
        if len(ranges) != len(self.cfg_keys):
            raise TypeError(f"{type(self).__name__} takes ranges for {self.cfg_keys}, got {len(ranges)} values")
        self.ranges = tuple(self._check_range(key, r) for key, r in zip(self.cfg_keys, ranges))

    def _check_range(self, key, value):
        try:
            lo, hi = value
        except (TypeError, ValueError):
            raise ValueError(f"degradation.{key} must be a [low, high] pair, got {value!r}") from None
        if not lo <= hi:
            raise ValueError(f"degradation.{key} must have low <= high, got {value!r}")
        return (int(lo), int(hi)) if self.integer_ranges else (float(lo), float(hi))

    def sample(self, rng):
        """Draw parameters uniformly from the configured ranges (integers inclusive)."""
        if self.integer_ranges:
            values = [int(rng.integers(lo, hi + 1)) for lo, hi in self.ranges]
        else:
            values = [float(rng.uniform(lo, hi)) for lo, hi in self.ranges]
        return dict(zip(self.param_names, values))

    def apply(self, img, **params):
        raise NotImplementedError

    has_tensor_path = False

    def apply_tensor(self, x, **params):
        """``apply`` on one image tensor (C, H, W), for kinds with ``has_tensor_path``."""
        raise NotImplementedError(f"degradation '{self.name}' has no tensor path")

    def severity(self, **params):
        raise NotImplementedError

    def __call__(self, img, rng):
        params = self.sample(rng)
        out = self.apply(img, **params)
        params["severity"] = self.severity(**params)
        return out, params

    def __repr__(self):
        ranges = ", ".join(f"{k}={list(r)}" for k, r in zip(self.cfg_keys, self.ranges))
        return f"{type(self).__name__}({ranges})"


class Resolution(Degradation):
    """Down-sample by ``factor`` and up-sample back (``downsample``)."""

    name = "resolution"
    cfg_keys = ("resolution_range",)
    param_names = ("factor",)

    def _check_range(self, key, value):
        lo, hi = super()._check_range(key, value)
        if lo < 1.0:
            raise ValueError(f"degradation.{key} must be >= 1 (a down-sampling factor), got {value!r}")
        return lo, hi

    def apply(self, img, factor):
        return downsample(img, factor)

    has_tensor_path = True

    def apply_tensor(self, x, factor):
        return downsample_tensor(x, factor)

    def severity(self, factor):
        return 1.0 - 1.0 / factor  # the fraction of linear resolution lost


class Illumination(Degradation):
    """Gamma darkening: out = 255 * gain * (in / 255) ** gamma."""

    name = "illumination"
    cfg_keys = ("gamma_range", "gain_range")
    param_names = ("gamma", "gain")

    def apply(self, img, gamma, gain):
        return _to_uint8_image(255.0 * gain * (_as_float(img) / 255.0) ** gamma)

    def severity(self, gamma, gain):
        # How much darker mid-grey becomes, relative to mid-grey; brightening counts as 0.
        return min(1.0, max(0.0, 1.0 - gain * 0.5 ** (gamma - 1.0)))


class Jpeg(Degradation):
    """JPEG compression at ``quality`` (Pillow encode and decode, in memory)."""

    name = "jpeg"
    cfg_keys = ("jpeg_quality_range",)
    param_names = ("quality",)
    integer_ranges = True

    def _check_range(self, key, value):
        lo, hi = super()._check_range(key, value)
        if lo < 1 or hi > 100:
            raise ValueError(f"degradation.{key} must lie within [1, 100] (JPEG quality), got {value!r}")
        return lo, hi

    def apply(self, img, quality):
        buffer = io.BytesIO()
        img.convert("RGB").save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")

    def severity(self, quality):
        return 1.0 - quality / 100.0


class GaussianBlur(Degradation):
    """Gaussian blur with standard deviation ``sigma`` pixels."""

    name = "gaussian_blur"
    cfg_keys = ("gaussian_blur_sigma_range",)
    param_names = ("sigma",)

    def apply(self, img, sigma):
        if sigma <= 0:
            return img.copy()
        out = cv2.GaussianBlur(np.asarray(img.convert("RGB")), (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)
        return Image.fromarray(out, mode="RGB")

    def severity(self, sigma):
        return _saturate(sigma, 1.0)


def motion_kernel(size, angle):
    """A normalised line kernel of length ``size`` pixels rotated by ``angle`` degrees."""
    kernel = np.zeros((size, size), dtype=np.float32)
    kernel[size // 2, :] = 1.0
    centre = ((size - 1) / 2.0, (size - 1) / 2.0)
    rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (size, size), flags=cv2.INTER_LINEAR)
    return kernel / kernel.sum()


class MotionBlur(Degradation):
    """Linear motion blur: a ``size``-pixel line kernel at ``angle`` degrees (cv2.filter2D).

    The official code min-max rescales the result; a kernel that sums to 1 already keeps the
    range, so this one does not.
    """

    name = "motion_blur"
    cfg_keys = ("motion_blur_size_range",)
    param_names = ("size", "angle")
    integer_ranges = True

    def _check_range(self, key, value):
        lo, hi = super()._check_range(key, value)
        if lo < 1:
            raise ValueError(f"degradation.{key} must be kernel sizes >= 1, got {value!r}")
        return lo, hi

    def sample(self, rng):
        params = super().sample(rng)  # the size; the direction is uniform over all lines
        params["angle"] = float(rng.uniform(0.0, 180.0))
        return params

    def apply(self, img, size, angle):
        arr = np.asarray(img.convert("RGB"))
        out = cv2.filter2D(arr, -1, motion_kernel(size, angle), borderType=cv2.BORDER_REFLECT_101)
        return Image.fromarray(out, mode="RGB")

    def severity(self, size, angle):
        # The standard deviation of a uniform line of length ``size``, scored like gaussian_blur.
        return _saturate((size - 1) / math.sqrt(12.0), 1.0)


class GaussianNoise(Degradation):
    """Additive Gaussian noise with standard deviation ``std`` (0..255 scale), clipped."""

    name = "gaussian_noise"
    cfg_keys = ("gaussian_noise_std_range",)
    param_names = ("std",)
    # The noise std whose severity is 0.5; poisson_noise is scored on the same scale.
    HALF_SEVERITY_STD = 10.0

    def sample(self, rng):
        params = super().sample(rng)
        # The noise field is drawn here so that ``apply`` stays deterministic given params.
        params["noise_seed"] = int(rng.integers(0, 2**31 - 1))
        return params

    def apply(self, img, std, noise_seed=0):
        arr = _as_float(img)
        noise = np.random.default_rng(noise_seed).normal(0.0, std, arr.shape)
        return _to_uint8_image(arr + noise)

    def severity(self, std, noise_seed=0):
        return _saturate(std, self.HALF_SEVERITY_STD)


class PoissonNoise(Degradation):
    """Shot noise at ``peak`` photons for a white pixel: out = Poisson(in/255*peak)/peak*255."""

    name = "poisson_noise"
    cfg_keys = ("poisson_peak_range",)
    param_names = ("peak",)

    def _check_range(self, key, value):
        lo, hi = super()._check_range(key, value)
        if lo <= 0:
            raise ValueError(f"degradation.{key} must be > 0 (photons at white), got {value!r}")
        return lo, hi

    def sample(self, rng):
        params = super().sample(rng)
        params["noise_seed"] = int(rng.integers(0, 2**31 - 1))
        return params

    def apply(self, img, peak, noise_seed=0):
        photons = np.random.default_rng(noise_seed).poisson(_as_float(img) / 255.0 * peak)
        return _to_uint8_image(photons / peak * 255.0)

    def severity(self, peak, noise_seed=0):
        # Noise std at mid-grey, 255 * sqrt(0.5 / peak), scored like gaussian_noise.
        return _saturate(255.0 * math.sqrt(0.5 / peak), GaussianNoise.HALF_SEVERITY_STD)


def fog_depth(height, width):
    """Depth proxy in [0, 1] for a pedestrian crop.

    The person stands centred with their feet near the bottom, so the bottom-centre is the
    nearest point; the scene recedes upwards (towards the horizon) and sideways (background
    behind the person). d = (vertical distance from the bottom + horizontal distance from the
    centre line) / 2, each normalised to [0, 1]: 0 at the bottom-centre, 1 at the top corners.
    """
    rows = np.linspace(1.0, 0.0, height)[:, None] if height > 1 else np.zeros((1, 1))
    cols = np.abs(np.linspace(-1.0, 1.0, width))[None, :] if width > 1 else np.zeros((1, 1))
    return (rows + cols) / 2.0


class Fog(Degradation):
    """Atmospheric scattering: I = J * t + 255 * A * (1 - t), t = exp(-beta * d) (``fog_depth``)."""

    name = "fog"
    cfg_keys = ("fog_beta_range", "fog_airlight_range")
    param_names = ("beta", "airlight")
    # Severity is the haze at mid depth, where the person's torso mostly lies.
    SEVERITY_DEPTH = 0.5

    def _check_range(self, key, value):
        lo, hi = super()._check_range(key, value)
        if lo < 0 or (key == "fog_airlight_range" and hi > 1):
            bounds = "[0, 1] (a fraction of white)" if key == "fog_airlight_range" else ">= 0"
            raise ValueError(f"degradation.{key} must lie within {bounds}, got {value!r}")
        return lo, hi

    def apply(self, img, beta, airlight):
        arr = _as_float(img)
        t = np.exp(-beta * fog_depth(*arr.shape[:2]))[..., None]
        return _to_uint8_image(arr * t + 255.0 * airlight * (1.0 - t))

    def severity(self, beta, airlight):
        return 1.0 - math.exp(-beta * self.SEVERITY_DEPTH)


class Corruption(Degradation):
    """A benchmark corruption (data/corruptions.py) drawn uniformly from ``corruptions``, at a level
    drawn from ``corruption_severity_range`` (integers in 1-5). Severity = level / 6, so the five
    levels spread over (0, 1) like the other kinds' severities."""

    cfg_keys = ("corruption_severity_range",)
    param_names = ("level", "index", "seed")
    integer_ranges = True
    corruptions = ()

    def _check_range(self, key, value):
        lo, hi = super()._check_range(key, value)
        if lo < SEVERITIES[0] or hi > SEVERITIES[-1]:
            raise ValueError(f"degradation.{key} must lie within [{SEVERITIES[0]}, {SEVERITIES[-1]}] "
                             f"(corruption severity levels), got {value!r}")
        return lo, hi

    def sample(self, rng):
        (lo, hi), = self.ranges
        return {"level": int(rng.integers(lo, hi + 1)), "index": int(rng.integers(len(self.corruptions))),
                "seed": int(rng.integers(0, 2**31 - 1))}

    def apply(self, img, level, index, seed):
        return corrupt(img, self.corruptions[index], level, seed)

    def severity(self, level, index=0, seed=0):
        return level / (SEVERITIES[-1] + 1.0)


def _corruption_kind(name, corruptions):
    return type(f"Corruption_{name.split('.')[1]}", (Corruption,), {"name": name, "corruptions": corruptions})


CORRUPTION_KINDS = [_corruption_kind(f"corruption.{name}", (name,)) for name in CORRUPTIONS]
CORRUPTION_KINDS.append(_corruption_kind("corruption.random", CORRUPTIONS))

DEGRADATIONS = {
    cls.name: cls
    for cls in (Resolution, Illumination, Jpeg, GaussianBlur, MotionBlur, GaussianNoise, PoissonNoise, Fog,
                *CORRUPTION_KINDS)
}


class Compose:
    """Apply a random subset of ``degradations`` in random order.

    The number applied is K ~ Binomial(n, p) conditioned on K >= 1 (so one kind with any p is
    always applied). The combined severity is 1 - prod(1 - s_k): the chance that at least one
    of independent degradations of severities s_k "hits".
    """

    def __init__(self, degradations, p=0.5):
        self.degradations = list(degradations)
        if not self.degradations:
            raise ValueError(f"degradation.kinds must name at least one of {sorted(DEGRADATIONS)}")
        names = [d.name for d in self.degradations]
        if len(set(names)) != len(names):
            raise ValueError(f"degradation.kinds lists a kind twice: {names}")
        if not 0.0 < p <= 1.0:
            raise ValueError(f"degradation.compose_p must lie in (0, 1], got {p!r}")
        self.p = float(p)

    @property
    def names(self):
        return [d.name for d in self.degradations]

    def sample_count(self, rng):
        while True:  # rejection keeps the Binomial shape exactly; P(K = 0) <= (1 - p)^n < 1
            k = int(rng.binomial(len(self.degradations), self.p))
            if k >= 1:
                return k

    def _chosen(self, rng):
        k = self.sample_count(rng)
        return [self.degradations[i] for i in rng.permutation(len(self.degradations))[:k]]

    def __call__(self, img, rng):
        params = {"applied": []}
        clean = 1.0
        for degradation in self._chosen(rng):
            img, kind_params = degradation(img, rng)
            params[degradation.name] = kind_params
            params["applied"].append(degradation.name)
            clean *= 1.0 - kind_params["severity"]
        params["severity"] = 1.0 - clean
        return img, params

    def check_tensor_path(self, option):
        """Raise ``ValueError`` naming ``option`` when a configured kind has no tensor path."""
        missing = [d.name for d in self.degradations if not d.has_tensor_path]
        if missing:
            raise ValueError(f"{option} re-degrades image tensors, but degradation.kinds {missing} have no tensor path; "
                             f"kinds with one: {sorted(n for n, c in DEGRADATIONS.items() if c.has_tensor_path)}")

    @torch.no_grad()
    def apply_to_batch(self, x, rng):
        """Each image of a batch (B, C, H, W) degraded by its own draw, through the tensor paths."""
        out = torch.empty_like(x)
        for i in range(len(x)):
            image = x[i]
            for degradation in self._chosen(rng):
                image = degradation.apply_tensor(image, **degradation.sample(rng))
            out[i] = image
        return out

    def flat_params(self, params):
        """A fixed-schema ``{"kind.param": float}`` view of ``params``.

        Every call gives the same keys, so items collate with torch's default collate. A kind
        that was not applied has severity 0 (clean) and NaN parameters.
        """
        flat = {"severity": float(params["severity"])}
        for d in self.degradations:
            kind = params.get(d.name, {"severity": 0.0})
            for key in d.param_names + ("severity",):
                flat[f"{d.name}.{key}"] = float(kind.get(key, math.nan))
        return flat

    def __repr__(self):
        return f"Compose({self.degradations}, p={self.p})"


# The degraded Re-ID protocols (datasets/protocol_cache.py, wrappers.py): ``degrade(img, rng)`` ->
# (image, parameters recorded in the cache manifest).
MLR_FACTORS = (2, 3, 4)  # the MLR protocols down-sample each LR-camera image by one of these


def mlr_downsample(img, rng):
    """The MLR degradation: down-sample by a factor drawn from ``MLR_FACTORS`` and resize back."""
    factor = int(rng.choice(MLR_FACTORS))
    return downsample(img, factor), {"factor": factor}


# The DI-REID low-light degradation: gamma ~ U[2, 3.5], gain ~ U[0.75, 1].
PROTOCOL_DEGRADATIONS = {"mlr": mlr_downsample, "lowlight": Illumination((2.0, 3.5), (0.75, 1.0))}


def build_degradation(node):
    """Build a ``Compose`` from the ``cfg.degradation`` node (see ``config._degradation_node``)."""
    kinds = list(node.kinds)
    unknown = [k for k in kinds if k not in DEGRADATIONS]
    if unknown:
        raise ValueError(f"degradation.kinds: unknown kind(s) {unknown}; valid names are {sorted(DEGRADATIONS)}")
    degradations = []
    for kind in kinds:
        cls = DEGRADATIONS[kind]
        degradations.append(cls(*[node[key] for key in cls.cfg_keys]))
    return Compose(degradations, p=node.compose_p)


class TrainAugmentation:
    """A PIL training transform: with probability ``p`` the image is degraded by ``degradation`` (a
    ``Compose``), else returned as it is. Each call draws its stream from torch's generator, which
    torchreid seeds (``train.seed``) and DataLoader workers derive, so runs repeat."""

    def __init__(self, degradation, p):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"degradation.train_augment_p must lie in [0, 1], got {p!r}")
        self.degradation = degradation
        self.p = float(p)

    def __call__(self, img):
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        if rng.random() >= self.p:
            return img
        return self.degradation(img, rng)[0]

    def __repr__(self):
        return f"TrainAugmentation({self.degradation}, p={self.p})"
