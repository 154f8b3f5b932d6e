"""The 20 corruptions of the corrupted Re-ID benchmarks (Market-1501-C, CUHK03-C, MSMT17-C of
"Benchmarks for Corruption Invariant Person Re-identification", Chen et al., NeurIPS 2021), 5
severities each: ``corrupt(img, name, severity, seed)``.

The 19 ImageNet-C corruptions come from ``imagecorruptions`` (the maintained ``imagecorruptions-imaug``
distribution, which runs on numpy 2; the ``corruptions`` extra installs it), called exactly as the
benchmark calls it. Rain is the benchmark's own 20th corruption, drawn here with OpenCV (``rain``).

Determinism: a corruption's randomness (noise fields, frost crop, snow, spatter, elastic fields,
glass-blur shuffles, rain drops) is fixed by ``seed``; the library draws from numpy's global
generator, which is seeded for the call and restored afterwards.

Small images: the library refuses images under 32 pixels a side; Re-ID crops (48x128, 64x128) are
above that and every corruption keeps their size (tests/test_corruptions.py runs all 100 at both).
Rain enlarges images of height <= 60 to height 65 before drawing, as the benchmark does; here the
result is resized back so that every corruption keeps the input size.
"""
import contextlib

import cv2
import numpy as np
from PIL import Image

# The benchmark's families, each in its table order.
FAMILIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"),
    "weather": ("snow", "frost", "fog", "brightness", "spatter", "rain"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate"),
}
CORRUPTIONS = tuple(name for names in FAMILIES.values() for name in names)
SEVERITIES = (1, 2, 3, 4, 5)
# Library functions that take their own seed instead of numpy's global generator.
_SEEDED_BY_ARGUMENT = ("glass_blur", "impulse_noise")
INSTALL_HINT = "pip install 'direid_plugin[corruptions]' (imagecorruptions-imaug)"


class CorruptionError(ValueError):
    """An unknown corruption name or severity."""


def check_corruption(name, severity=None):
    """Raise a one-line ``CorruptionError`` listing the valid values when ``name`` or ``severity`` is not one."""
    if name not in CORRUPTIONS:
        raise CorruptionError(f"unknown corruption {name!r}; valid names are {', '.join(CORRUPTIONS)}")
    if severity is not None:
        check_severity(severity)


def check_severity(severity):
    """Raise a one-line ``CorruptionError`` listing the valid levels when ``severity`` is not one."""
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise CorruptionError(f"corruption severity must be one of {list(SEVERITIES)}, got {severity!r}")


def _library():
    try:
        import imagecorruptions
    except ImportError:
        raise ImportError(f"the corruption benchmark needs imagecorruptions: {INSTALL_HINT}") from None
    return imagecorruptions


@contextlib.contextmanager
def _seeded_global_numpy(seed):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


# Rain as the benchmark defines it on top of albumentations 1.x's RandomRain (albumentations 2
# changed the drop counts, lengths and blur, so its current RandomRain is a different corruption):
# severity 1 drizzle, 2-3 heavy, 4-5 torrential; drops of grey (200, 200, 200), 1 pixel wide,
# slanted by an integer in [-10, 10]; the whole image box-blurred with size 2 + severity; then
# brightness shifted by -(0.05 + 0.05 * severity) of white.
RAIN_TYPES = {1: "drizzle", 2: "heavy", 3: "heavy", 4: "torrential", 5: "torrential"}
RAIN_DROPS = {"drizzle": (770, 10), "heavy": (600, 30), "torrential": (500, 60)}  # (pixels per drop, drop length)
RAIN_MIN_HEIGHT = 60  # images at most this high are enlarged to height 65 first
RAIN_SLANT = 10


def rain(image, severity, rng):
    """The benchmark's rain on an RGB uint8 array; returns an array of the same shape."""
    height, width = image.shape[:2]
    work = image
    if height <= RAIN_MIN_HEIGHT:
        scale = 65.0 / height
        work = np.asarray(Image.fromarray(image).resize((int(width * scale), 65), Image.BILINEAR))
    work = work.copy()
    h, w = work.shape[:2]
    pixels_per_drop, length = RAIN_DROPS[RAIN_TYPES[severity]]
    slant = int(rng.integers(-RAIN_SLANT, RAIN_SLANT + 1))
    for _ in range(h * w // pixels_per_drop):
        x = int(rng.integers(slant, w + 1)) if slant < 0 else int(rng.integers(0, w - slant + 1))
        y = int(rng.integers(0, max(h - length, 0) + 1))
        cv2.line(work, (x, y), (x + slant, y + length), (200, 200, 200), 1)
    blur = 2 + severity
    work = cv2.blur(work, (blur, blur))
    shift = -(0.05 + 0.05 * severity) * 255.0
    work = np.clip(work.astype(np.float64) + shift, 0, 255).astype(np.uint8)
    if work.shape[:2] != (height, width):
        work = np.asarray(Image.fromarray(work).resize((width, height), Image.BILINEAR))
    return work


def corrupt_array(image, name, severity, seed):
    """Corrupt an RGB uint8 array (H, W, 3); same shape and dtype out."""
    check_corruption(name, severity)
    seed = int(seed) % 2**32
    if name == "rain":
        return rain(image, severity, np.random.default_rng(seed))
    library = _library()
    kwargs = {"seed": seed} if name in _SEEDED_BY_ARGUMENT else {}
    with _seeded_global_numpy(seed):
        return library.corrupt(image, severity=severity, corruption_name=name, **kwargs)


def corrupt(img, name, severity, seed):
    """Corrupt a PIL image with corruption ``name`` at ``severity`` (1-5); an RGB PIL image of the same size."""
    return Image.fromarray(corrupt_array(np.asarray(img.convert("RGB")), name, severity, seed), mode="RGB")
