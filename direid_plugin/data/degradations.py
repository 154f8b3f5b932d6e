"""Image degradations for self-degradation pairs and degraded Re-ID protocols."""
from PIL import Image


def downsample(img, factor):
    """Down-sample ``img`` by ``factor`` and bring it back to its original size.

    Down-sampling is Pillow's bilinear resize (which antialiases when reducing) to
    (floor(W/f), floor(H/f)), as the official DI-REID code does; up-sampling is bicubic.
    """
    w, h = img.size
    small = img.resize((max(1, int(w / factor)), max(1, int(h / factor))), Image.BILINEAR)
    return small.resize((w, h), Image.BICUBIC)
