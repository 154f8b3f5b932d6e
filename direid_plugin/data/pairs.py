"""Stage-1 pair data for the DDGAN engine (docs/method.md 2.3).

Item i gives a self-degradation pair (``hr``, ``deg``): an HR training image and its
pixel-aligned self-degraded copy; and a real cross-degradation partner ``lr``:

* paired datasets (the LR cameras are known): if image i is LR, ``lr`` is image i and ``hr`` a
  uniformly random HR training image; otherwise ``hr`` is image i and ``lr`` a uniformly random
  LR training image (``SemiTripletFolder``). The real pair is neither identity-matched nor aligned.
* unpaired datasets (``lr_camids`` empty): ``hr`` is image i and ``lr`` a uniformly random image
  from another camera (``UnTripletFolder``).

Randomness comes from ``numpy.random.default_rng([seed, epoch, index])`` per item, so a batch
does not depend on the number of loader workers, and ``set_epoch`` gives each epoch new draws.
"""
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
import torchvision.transforms as T

from direid_plugin.data.image_io import read_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pair_transform(height, width, norm_mean=IMAGENET_MEAN, norm_std=IMAGENET_STD):
    """Stage 1 uses the test transform: bicubic resize, ToTensor, Normalize (docs/method.md 2.1)."""
    return T.Compose([
        T.Resize((height, width), interpolation=T.InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(mean=list(norm_mean), std=list(norm_std)),
    ])


class DegradationPairs(Dataset):
    """(hr, deg, lr) triplets from a torchreid train list of ``(path, pid, camid[, dsetid])``.

    ``degrade`` is a ``degradations.Compose`` (``build_degradation(cfg.degradation)``); it runs on
    the image at its stored size, before the resize, as in the official code. ``lr_camids``
    names the real low-quality cameras; empty means an unpaired dataset.
    """

    def __init__(self, train, degrade, lr_camids=(), height=256, width=128,
                 norm_mean=IMAGENET_MEAN, norm_std=IMAGENET_STD, seed=0):
        if not train:
            raise ValueError("DegradationPairs: the train list is empty; check data.sources")
        self.paths = [item[0] for item in train]
        self.pids = np.array([item[1] for item in train], dtype=np.int64)
        self.camids = np.array([item[2] for item in train], dtype=np.int64)
        self.degrade = degrade
        self.transform = pair_transform(height, width, norm_mean, norm_std)
        self.seed = int(seed)
        self.epoch = 0
        self.lr_camids = tuple(int(c) for c in lr_camids)
        if self.lr_camids:
            is_lr = np.isin(self.camids, self.lr_camids)
            self.is_lr = is_lr
            self.lr_indices, self.hr_indices = np.flatnonzero(is_lr), np.flatnonzero(~is_lr)
            if not len(self.lr_indices) or not len(self.hr_indices):
                raise ValueError(
                    f"DegradationPairs: lr_camids={list(self.lr_camids)} leave no "
                    f"{'LR' if not len(self.lr_indices) else 'HR'} training image (cameras present: "
                    f"{sorted(set(self.camids.tolist()))}); name the LR cameras, or pass lr_camids=() for unpaired data"
                )
        else:
            cameras = np.unique(self.camids)
            if len(cameras) < 2:
                raise ValueError(
                    f"DegradationPairs: unpaired mode needs training images from at least two cameras, "
                    f"found only camera(s) {cameras.tolist()}"
                )
            self.other_camera = {int(c): np.flatnonzero(self.camids != c) for c in cameras}

    def __len__(self):
        return len(self.paths)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def _partners(self, index, rng):
        """Indices of (hr, lr) for item ``index``."""
        if not self.lr_camids:
            return index, int(rng.choice(self.other_camera[int(self.camids[index])]))
        if self.is_lr[index]:
            return int(rng.choice(self.hr_indices)), index
        return index, int(rng.choice(self.lr_indices))

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        hr_index, lr_index = self._partners(int(index), rng)
        hr = read_image(self.paths[hr_index])
        deg, params = self.degrade(hr, rng)
        return {
            "hr": self.transform(hr),
            "deg": self.transform(deg),
            "lr": self.transform(read_image(self.paths[lr_index])),
            "hr_pid": int(self.pids[hr_index]),
            "lr_pid": int(self.pids[lr_index]),
            "deg_severity": float(params["severity"]),
            "deg_params": self.degrade.flat_params(params),
            "hr_path": self.paths[hr_index],
            "lr_path": self.paths[lr_index],
        }


class _EpochBatches(Sampler):
    """Batches of one epoch's seeded permutation, from batch ``start`` on (exact mid-epoch resume)."""

    def __init__(self, size, batch_size, shuffle, drop_last, seed):
        self.size, self.batch_size, self.shuffle, self.drop_last, self.seed = size, batch_size, shuffle, drop_last, seed
        self.epoch = self.start = 0

    def __len__(self):
        full, rest = divmod(self.size, self.batch_size)
        return full + (0 if self.drop_last or not rest else 1)

    def __iter__(self):
        if self.shuffle:
            # One integer from (seed, epoch): torch generators take a single seed.
            generator = torch.Generator().manual_seed(
                int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        for b in range(self.start, len(self)):
            yield order[b * self.batch_size:(b + 1) * self.batch_size]


class PairLoader:
    """An endless stream of pair batches: iterating restarts the loader at each epoch's end.

    Each epoch reseeds the shuffling from ``(seed, epoch)`` and calls ``set_epoch`` on the
    dataset, so the stream is reproducible. ``position()`` / ``set_position(epoch, batch)`` let a
    resumed run continue with exactly the batch that would have come next. ``len()`` is the
    number of batches in one epoch.
    """

    def __init__(self, dataset, batch_size=8, shuffle=True, drop_last=True, workers=0, seed=0, pin_memory=False):
        if drop_last and len(dataset) < batch_size:
            raise ValueError(
                f"PairLoader: {len(dataset)} training images cannot fill one batch of {batch_size} with "
                "drop_last=True; lower the batch size"
            )
        self.dataset = dataset
        self.batches = _EpochBatches(len(dataset), batch_size, shuffle, drop_last, int(seed))
        # Its own generator: creating an iterator draws a worker base seed, which must not consume
        # the global torch RNG (a resumed run would then diverge from an uninterrupted one).
        self.loader = DataLoader(dataset, batch_sampler=self.batches, num_workers=workers, pin_memory=pin_memory,
                                 generator=torch.Generator().manual_seed(int(seed)))
        self.epoch, self.batch = 0, 0  # the next batch to deliver

    def __len__(self):
        return len(self.batches)

    def set_epoch(self, epoch):
        self.set_position(epoch, 0)

    def position(self):
        return self.epoch, self.batch

    def set_position(self, epoch, batch):
        self.epoch, self.batch = int(epoch), int(batch)

    def __iter__(self):
        while True:
            self.dataset.set_epoch(self.epoch)
            self.batches.epoch, self.batches.start = self.epoch, self.batch
            for data in self.loader:
                self.batch += 1
                yield data
            self.epoch, self.batch = self.epoch + 1, 0


def build_pair_loader(train, degrade, lr_camids=(), height=256, width=128, batch_size=8, shuffle=True,
                      drop_last=True, workers=0, seed=0, norm_mean=IMAGENET_MEAN, norm_std=IMAGENET_STD,
                      pin_memory=False):
    """A ``PairLoader`` over ``DegradationPairs(train, degrade, lr_camids, ...)``."""
    dataset = DegradationPairs(train, degrade, lr_camids, height, width, norm_mean, norm_std, seed)
    return PairLoader(dataset, batch_size, shuffle, drop_last, workers, seed, pin_memory)
