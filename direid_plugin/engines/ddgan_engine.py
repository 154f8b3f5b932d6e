"""Stage 1: the DDGAN engine, a torchreid ``Engine`` that trains for a number of iterations.

It feeds pair batches (data/pairs.py) to a ``DDGANTrainer`` (engines/ddgan_trainer.py, where the
losses and the paper/official switches live), logs every loss to TensorBoard, shows a progress
bar, writes image grids (x_a, x_aa, x_b, x_bb, x_ab, x_ba) and checkpoints that continue exactly:
weights, both optimisers and schedulers, the AMP scaler, the iteration, every RNG and the pair
stream's position. Evaluation reuses torchreid's test loop: in eval mode the DDGAN returns f_inv.
"""
import os.path as osp
import time

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from torchreid.reid.engine import Engine

from direid_plugin.data.degradations import build_degradation
from direid_plugin.data.pairs import build_pair_loader
from direid_plugin.engines.base import EngineSettings, PluginEngine
from direid_plugin.engines.checkpointing import CHECKPOINT_PREFIX, find_resume_checkpoint, save_checkpoint
from direid_plugin.engines.ddgan_trainer import DDGANTrainer
from direid_plugin.engines.rng import capture_rng_state, preserved_rng, restore_rng_state
from direid_plugin.visualize.grids import save_grid
from direid_plugin.weights import load_checkpoint

CHECKPOINT_NAME = "ddgan"


def train_lr_camids(datamanager, configured):
    """LR cameras of the training data: configured, else what the source datasets declare, else none
    (then real pairs are unpaired: a random image from another camera)."""
    if configured:
        return tuple(configured)
    declared = set()
    for name in datamanager.sources:
        loader = datamanager.test_loader.get(name)
        dataset = loader["query"].dataset if loader else None
        declared |= set(getattr(dataset, "lr_camids", ()) or ())
    return tuple(sorted(declared))


class DDGANEngine(PluginEngine, Engine):
    """Alternating D/G training of a ``DDGAN`` model (models/ddgan.py); ``settings`` default to the config's."""

    def __init__(self, datamanager, model, cfg, use_gpu=True, settings=None):
        super().__init__(datamanager, use_gpu, settings=settings or EngineSettings.from_config(cfg))
        self.cfg = cfg
        self.model = model
        self.lr_camids = train_lr_camids(datamanager, list(cfg.ddgan.lr_camids))
        self.nonfinite_guard.where = lambda: f"iteration {self.iteration + 1}"
        self.trainer = DDGANTrainer(model, cfg, paired=bool(self.lr_camids), guard=self.nonfinite_guard)
        self.register_model(CHECKPOINT_NAME, model, self.trainer.optimizer, self.trainer.scheduler)
        self.pairs = build_pair_loader(
            datamanager.train_loader.dataset.train, build_degradation(cfg.degradation), self.lr_camids,
            height=cfg.data.height, width=cfg.data.width, batch_size=cfg.ddgan.batch_size,
            workers=cfg.data.workers, seed=cfg.train.seed, norm_mean=cfg.data.norm_mean, norm_std=cfg.data.norm_std,
            pin_memory=self.trainer.device.type == "cuda",
        )

    @classmethod
    def from_config(cls, cfg, datamanager, model, settings, inputs):
        """The registry's engine constructor (build.py); runs where the model is."""
        return cls(datamanager, model, cfg, use_gpu=next(model.parameters()).device.type == "cuda", settings=settings)

    @property
    def iteration(self):
        return self.trainer.iteration

    def forward_backward(self, data):
        return self.trainer.train_step(data)

    def checkpoint_path(self, save_dir, iteration):
        return osp.join(save_dir, CHECKPOINT_NAME, f"{CHECKPOINT_PREFIX}{iteration}")

    def save_checkpoint(self, save_dir, rank1=0.0):
        """Everything needed to continue exactly; torchreid's loaders read the file too."""
        self.nonfinite_guard.check_state({CHECKPOINT_NAME: self.model})  # never save a diverged state
        epoch, batch = self.pairs.position()
        state = {
            "state_dict": self.model.state_dict(),
            "epoch": self.iteration,  # torchreid's key; for this engine it counts iterations
            "rank1": float(rank1),
            "rng": capture_rng_state(),
            "pair_stream": {"epoch": epoch, "batch": batch},
            "train_seconds": self.clock.seconds(),
            **self.trainer.state_dict(),
        }
        path = save_checkpoint(state, self.checkpoint_path(save_dir, self.iteration), keep_last=self.settings.keep_last)
        self.last_checkpoint = path
        return path

    def resume(self, resume, save_dir):
        """Load ``resume`` ('auto' = newest valid checkpoint in save_dir); returns the iteration."""
        path = find_resume_checkpoint(resume, save_dir, CHECKPOINT_NAME)
        if path is None:
            print(f"=> model.resume=auto: no checkpoint in {osp.join(save_dir, CHECKPOINT_NAME)}; starting from scratch")
            return 0
        state = load_checkpoint(path, option="model.resume")
        self.model.load_state_dict(state["state_dict"])
        self.trainer.load_state_dict(state)
        restore_rng_state(state["rng"])
        self.pairs.set_position(state["pair_stream"]["epoch"], state["pair_stream"]["batch"])
        self.clock.resume_from(state, path)
        self.last_checkpoint = path
        print(f'=> Resumed stage 1 from "{path}" at iteration {self.iteration}')
        return self.iteration

    def _print_progress(self, summary, start, first):
        per_iteration = (time.time() - start) / max(1, self.iteration - first)
        remaining = (self.cfg.ddgan.max_iter - self.iteration) * per_iteration
        print(f"stage 1 iteration {self.iteration}/{self.cfg.ddgan.max_iter}  D {summary['D_total']:.3f}  "
              f"G {summary['G_total']:.3f}  {per_iteration:.2f} s/it  eta {remaining / 60:.0f} min", flush=True)

    def save_images(self, save_dir):
        x_a, x_b, out = self.trainer.last_outputs
        return save_grid(
            osp.join(save_dir, "images", f"ddgan_{self.iteration:08d}.jpg"),
            [x_a, out["x_aa"], x_b, out["x_bb"], out["x_ab"], out["x_ba"]],
        )

    def run(self, save_dir="log", max_epoch=0, start_epoch=0, test_only=False, **test_kwargs):
        """Train for ``ddgan.max_iter`` iterations (continuing from ``self.iteration``), then test.

        ``max_epoch``/``start_epoch`` are torchreid's epoch arguments; this engine counts iterations.
        """
        test_args = {k: test_kwargs[k] for k in ("dist_metric", "normalize_feature", "visrank", "visrank_topk",
                                                  "use_metric_cuhk03", "ranks", "rerank") if k in test_kwargs}
        if test_only:
            return self.test(save_dir=save_dir, **test_args)
        o = self.cfg.ddgan
        self.writer = self.writer or SummaryWriter(log_dir=save_dir)
        self.set_model_mode("train")
        stream = iter(self.pairs)
        bar = tqdm(total=o.max_iter, initial=self.iteration, desc="stage 1 (DDGAN)",
                   disable=not self.settings.progress, dynamic_ncols=True)
        start, first = time.time(), self.iteration
        while self.iteration < o.max_iter:
            summary = self.forward_backward(next(stream))
            bar.update(1)
            if self.iteration % o.log_freq == 0 or self.iteration == o.max_iter:
                for name, value in summary.items():
                    self.writer.add_scalar(f"Train/{name}", value, self.iteration)
                self.writer.add_scalar("Train/lr", self.trainer.optimizer.param_groups[0]["lr"], self.iteration)
                bar.set_postfix(G=f"{summary['G_total']:.3f}", D=f"{summary['D_total']:.3f}")
                if bar.disable:  # no bar (engine.progress False, e.g. a log file): one line instead
                    self._print_progress(summary, start, first)
            if o.image_freq > 0 and (self.iteration % o.image_freq == 0 or self.iteration == o.max_iter):
                self.save_images(save_dir)
            if o.checkpoint_freq > 0 and self.iteration % o.checkpoint_freq == 0:
                self.save_checkpoint(save_dir)
        bar.close()
        print(f"=> Stage 1 finished {self.iteration} iterations in {time.time() - start:.0f} s")
        with preserved_rng():  # evaluating must not change how a continued run trains
            rank1 = self.test(save_dir=save_dir, **test_args) if self.test_loader else 0.0
        self.save_checkpoint(save_dir, rank1)
        self.writer.close()
        return rank1
