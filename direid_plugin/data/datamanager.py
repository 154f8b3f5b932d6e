"""torchreid's ImageDataManager over readable images only (``data.skip_bad_images``).

Every train / query / gallery image is opened and decoded once before the run; unreadable ones
(missing, empty, truncated, not an image) are dropped from the dataset lists and reported at the
end of the run and in ``<save_dir>/skipped_images.txt``, so one bad file costs its sample rather
than the run. torchreid builds its datasets inside ``ImageDataManager.__init__`` through the
module-level ``init_image_dataset``; that name is wrapped for the construction only, so the
loaders, samplers and the lists kept for ranking all see the filtered lists.
"""
import os

import torchreid.reid.data.datamanager as tr_datamanager

from direid_plugin.data.image_io import ImageReadError, read_image
from direid_plugin.files import write_text

SKIPPED_FILE = "skipped_images.txt"


def readable_items(items, skipped):
    """Items whose image decodes; the error line of every other one is appended to ``skipped``."""
    kept = []
    for item in items:
        try:
            read_image(item[0])
        except ImageReadError as e:
            skipped.append(str(e))
        else:
            kept.append(item)
    return kept


def _relabel_train(dataset):
    """Keep training labels contiguous when every image of an identity was dropped."""
    pids = sorted({item[1] for item in dataset.train})
    if pids != list(range(len(pids))):
        label = {pid: i for i, pid in enumerate(pids)}
        dataset.train[:] = [(item[0], label[item[1]], *item[2:]) for item in dataset.train]
    dataset.num_train_pids = dataset.get_num_pids(dataset.train)
    dataset.num_train_cams = dataset.get_num_cams(dataset.train)


def drop_unreadable(dataset, name, skipped):
    """Filter the list of ``dataset``'s mode in place (it is also ``dataset.train``/``query``/``gallery``)."""
    before = len(skipped)
    kept = readable_items(dataset.data, skipped)
    if not kept:
        raise ImageReadError(f"{name} {dataset.mode}: none of its {len(dataset.data)} images is readable "
                             f"(e.g. {skipped[before]}); check data.root")
    dataset.data[:] = kept
    if dataset.mode == "train":
        _relabel_train(dataset)


def build_checked_datamanager(**kwargs):
    """``ImageDataManager(**kwargs)`` without unreadable images; their error lines in ``.skipped_images``."""
    skipped = []
    original = tr_datamanager.init_image_dataset

    def init_readable_dataset(name, **dataset_kwargs):
        dataset = original(name, **dataset_kwargs)
        drop_unreadable(dataset, name, skipped)
        return dataset

    tr_datamanager.init_image_dataset = init_readable_dataset
    try:
        datamanager = tr_datamanager.ImageDataManager(**kwargs)
    finally:
        tr_datamanager.init_image_dataset = original
    datamanager.skipped_images = skipped
    return datamanager


def report_skipped_images(datamanager, save_dir, name=SKIPPED_FILE):
    """Print the skipped images and write them to ``<save_dir>/<name>`` (no-op when not checked)."""
    skipped = getattr(datamanager, "skipped_images", None)
    if skipped is None:
        return None
    path = os.path.join(save_dir, name)
    write_text(path, "".join(line + "\n" for line in skipped))
    print(f"=> data.skip_bad_images: {len(skipped)} unreadable images skipped (listed in {path})"
          + "".join(f"\n  {line}" for line in skipped))
    return path
