"""The feature a test ranks with, optionally averaged with the mirrored image's (``test.flip``).

Flip averaging is part of the official DI-REID test protocol (docs/method.md 6.2). It lives here, in
the evaluation shared by every engine, so that a toolbox baseline and DI-REID evaluated from the
same config get the same test-time augmentation.
"""


def flip_averaged(extract, images, flip):
    """``extract(images)``, or with ``flip`` the mean of it and ``extract`` of the horizontally
    mirrored images (``images`` is (B, C, H, W))."""
    features = extract(images)
    return (features + extract(images.flip(3))) / 2 if flip else features
