"""Degradation-swap pictures: decompose real images, decode contents with exchanged degradation codes.

Both codes come from the real head E_d, as in the official visualize.py (docs/method.md 7).
"""
import torch

from direid_plugin.data.pairs import IMAGENET_MEAN, IMAGENET_STD, pair_transform
from direid_plugin.visualize.dataset_images import load_batch
from direid_plugin.visualize.grids import BLUE, Tile, save_grid, save_sheet

COLUMNS = "HR | LR | rec(HR) | rec(LR) | HR content + LR degradation | LR content + HR degradation"
MATRIX_LAYOUT = ("row i = content of the image at its left, column j = degradation of the image on top; "
                 "blue frames: reconstructions (own content and degradation)")


@torch.no_grad()
def save_swap_picture(ddgan, hr_paths, lr_paths, path, height, width):
    """One row per (HR, LR) image pair, columns as in ``COLUMNS``."""
    device = next(ddgan.parameters()).device
    transform = pair_transform(height, width)
    x_hr, x_lr = load_batch(hr_paths, transform, device), load_batch(lr_paths, transform, device)
    was_training = ddgan.training
    ddgan.eval()
    rec_hr, rec_lr, hr_to_lr, lr_to_hr = ddgan.swap(x_hr, x_lr)
    ddgan.train(was_training)
    return save_grid(path, [x_hr, x_lr, rec_hr, rec_lr, hr_to_lr, lr_to_hr], max_rows=len(hr_paths))


@torch.no_grad()
def save_swap_matrix(ddgan, images, labels, path, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """The paper's Fig. 5/6 over N images (N, 3, H, W) of an eval-mode DDGAN: cell (i, j) = G(c_i, d_j).

    The top row shows the degradation sources and the left column the content sources, captioned
    with ``labels``; the picture has (N + 1) x (N + 1) tiles (``MATRIX_LAYOUT``).
    """
    content, code = ddgan.decompose(images)
    rows = [[Tile()] + [Tile(x, label) for x, label in zip(images, labels)]]
    for i, (x, label) in enumerate(zip(images, labels)):
        decoded = ddgan.generate(content[i:i + 1].expand(len(images), -1, -1, -1), code)
        rows.append([Tile(x, label)] + [Tile(g, frame=BLUE) if j == i else Tile(g) for j, g in enumerate(decoded)])
    return save_sheet(path, rows, *images.shape[-2:], mean, std)
