"""The degradation-swap picture: decompose HR and LR images, decode with exchanged codes."""
import torch

from direid_plugin.data.image_io import read_image
from direid_plugin.data.pairs import pair_transform
from direid_plugin.visualize.grids import save_grid

COLUMNS = "HR | LR | rec(HR) | rec(LR) | HR content + LR degradation | LR content + HR degradation"


@torch.no_grad()
def save_swap_picture(ddgan, hr_paths, lr_paths, path, height, width):
    """One row per (HR, LR) image pair, columns as in ``COLUMNS``; both codes from the real head E_d."""
    transform = pair_transform(height, width)
    device = next(ddgan.parameters()).device
    load = lambda paths: torch.stack([transform(read_image(p)) for p in paths]).to(device)
    x_hr, x_lr = load(hr_paths), load(lr_paths)
    was_training = ddgan.training
    ddgan.eval()
    rec_hr, rec_lr, hr_to_lr, lr_to_hr = ddgan.swap(x_hr, x_lr)
    ddgan.train(was_training)
    return save_grid(path, [x_hr, x_lr, rec_hr, rec_lr, hr_to_lr, lr_to_hr], max_rows=len(hr_paths))
