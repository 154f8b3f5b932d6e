"""Reading Re-ID images: any Pillow mode in, RGB out, and one clear error for a bad file.

torchreid's ``read_image`` retries forever on an unreadable file; this one fails at once with an
``ImageReadError`` that names the file and says what to do.
"""
import os

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageReadError(IOError):
    """An image file is missing, empty, truncated, or not an image."""


def _to_rgb(img):
    """Convert any Pillow mode to 8-bit RGB; 16/32-bit images are rescaled, not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels become white rather than whatever colour they happen to store.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def read_image(path):
    """Read ``path`` as an RGB PIL image or raise ``ImageReadError`` naming it."""
    if not os.path.exists(path):
        raise ImageReadError(f"{path}: image file does not exist; check data.root and the dataset layout")
    if os.path.getsize(path) == 0:
        raise ImageReadError(f"{path}: image file is empty (0 bytes); replace or remove it")
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so truncation is caught here and not in a worker later
            return _to_rgb(img)
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image Pillow can read; replace or remove it") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{path}: corrupt or truncated image ({e}); replace or remove it") from None
