"""What every plugin engine adds to a torchreid engine: its test step, atomic checkpoints, a NaN guard.

``PluginEngine`` is a mixin placed before a torchreid engine class in the bases (torchreid's own
extension pattern: a subclass that overrides what it changes). It is configured by one
``EngineSettings`` object given to the constructor; torchreid's classes stay untouched, so a
user's stock ``ImageSoftmaxEngine`` behaves exactly as torchreid ships it.

Overrides of torchreid's ``Engine`` (same signatures, so torchreid's ``run`` / ``train`` /
``test`` drive them unchanged):

* ``_evaluate``: evaluation/test_step.py (the plugin's ranking, mINP, the single-shot protocol,
  flip-averaged features, features kept on the device); results go to ``eval_results``;
* ``save_model``: atomic files (engines/checkpointing.py), float ``rank1``, None-safe optimiser and
  scheduler, the RNG states and the training clock for exact resume, the newest ``keep_last``
  kept; refuses to write a model holding NaN/inf;
* ``register_model``: every registered optimiser's ``step`` goes through the non-finite guard
  (engines/guards.py), which skips steps with NaN/inf gradients and stops a diverged run.

``resume(resume, save_dir)`` restores models, optimisers, schedulers, RNG and clock and returns
the epoch to start from. Engines with more state override ``checkpoint_extras`` /
``load_checkpoint_extras`` (or ``resume`` itself, as the iteration-based DDGAN engine does).
"""
import os
import os.path as osp
import shutil
from dataclasses import dataclass, field
from typing import Optional

import torch

from torchreid.reid import engine as tr_engine
from torchreid.reid.utils import visualize_ranked_results

from direid_plugin.engines.checkpointing import (
    CHECKPOINT_PREFIX, TrainingClock, find_resume_checkpoint, save_checkpoint,
)
from direid_plugin.engines.guards import NonFiniteGuard
from direid_plugin.engines.rng import capture_rng_state, restore_rng_state
from direid_plugin.evaluation import test_step
from direid_plugin.weights import Weights, load_checkpoint, load_strict, model_state


@dataclass(frozen=True)
class EngineSettings:
    """Everything a plugin engine needs beyond torchreid's arguments (config keys in brackets).

    ``evaluator`` (test.evaluator), ``protocol`` (test.protocol), ``single_shot_trials``
    (test.single_shot_trials), ``seed`` (test.seed), ``flip`` (test.flip), ``keep_last``
    (engine.keep_last), ``progress`` (engine.progress), ``max_nonfinite_steps``
    (engine.max_nonfinite_steps); ``clock``: the run's ``TrainingClock`` (a fresh one when None).
    """

    evaluator: str = "plugin"
    protocol: str = "standard"
    single_shot_trials: int = 10
    seed: int = 0
    flip: bool = False
    keep_last: int = 0
    progress: bool = True
    max_nonfinite_steps: int = 10
    clock: Optional[TrainingClock] = field(default=None, compare=False)

    def __post_init__(self):
        test_step.check_evaluation_settings(self.evaluator, self.protocol)
        if self.max_nonfinite_steps < 1:
            raise ValueError(f"engine.max_nonfinite_steps must be >= 1, got {self.max_nonfinite_steps}")

    @classmethod
    def from_config(cls, cfg, clock=None):
        return cls(evaluator=cfg.test.evaluator, protocol=cfg.test.protocol,
                   single_shot_trials=cfg.test.single_shot_trials, seed=cfg.test.seed, flip=cfg.test.flip,
                   keep_last=cfg.engine.keep_last, progress=cfg.engine.progress,
                   max_nonfinite_steps=cfg.engine.max_nonfinite_steps, clock=clock)


class PluginEngine:
    """Mixin for a torchreid ``Engine`` subclass; see the module docstring."""

    def __init__(self, *args, settings=None, **kwargs):
        # Set before torchreid's __init__, which registers the model (and so reaches register_model).
        self.settings = settings or EngineSettings()
        self.clock = self.settings.clock or TrainingClock()
        self.eval_results = {}
        self.last_checkpoint = None
        self.nonfinite_guard = NonFiniteGuard(
            self.settings.max_nonfinite_steps, last_good_checkpoint=lambda: self.last_checkpoint,
            where=lambda: f"epoch {getattr(self, 'epoch', 0) + 1}, batch {getattr(self, 'batch_idx', 0) + 1}")
        super().__init__(*args, **kwargs)

    # -- training ----------------------------------------------------------------------------
    def register_model(self, name="model", model=None, optim=None, sched=None):
        super().register_model(name, model, optim, sched)
        if optim is not None:
            self.nonfinite_guard.attach(optim, name)

    def checkpoint_extras(self):
        """Training state beyond torchreid's layout (none here); engines add theirs."""
        return {}

    def load_checkpoint_extras(self, state):
        """Take back what ``checkpoint_extras`` saved."""

    def save_model(self, epoch, rank1, save_dir, is_best=False):
        """torchreid's ``save_model``, written atomically, None-safe, with float rank1, RNG and clock."""
        self.nonfinite_guard.check_state(self._models)
        rng = capture_rng_state()
        for name in self.get_model_names():
            state = {"state_dict": self._models[name].state_dict(), "epoch": epoch + 1, "rank1": float(rank1),
                     "rng": rng, "train_seconds": self.clock.seconds()}
            if self._optims.get(name) is not None:
                state["optimizer"] = self._optims[name].state_dict()
            if self._scheds.get(name) is not None:
                state["scheduler"] = self._scheds[name].state_dict()
            state.update(self.checkpoint_extras())
            path = osp.join(save_dir, name, f"{CHECKPOINT_PREFIX}{epoch + 1}")
            save_checkpoint(state, path, keep_last=self.settings.keep_last)
            self.last_checkpoint = path
            print(f'Checkpoint saved to "{path}"')
            if is_best:
                best = osp.join(save_dir, name, "model-best.pth.tar")
                shutil.copyfile(path, best + ".tmp")
                os.replace(best + ".tmp", best)

    def resume(self, resume, save_dir):
        """Restore every registered model, optimiser, scheduler, the RNG and the clock from ``resume``
        ('auto': the newest valid checkpoint in ``save_dir``); return the epoch to start from."""
        start_epoch = 0
        for name in self.get_model_names():
            path = find_resume_checkpoint(resume, save_dir, name)
            if path is None:
                print(f"=> model.resume=auto: no checkpoint for '{name}' in {save_dir}; starting from scratch")
                return 0
            state = load_checkpoint(path, option="model.resume")
            load_strict(self._models[name], Weights(model_state(state, path), f"model.resume {path}"))
            if self._optims.get(name) is not None and "optimizer" in state:
                self._optims[name].load_state_dict(state["optimizer"])
            if self._scheds.get(name) is not None and "scheduler" in state:
                self._scheds[name].load_state_dict(state["scheduler"])
            if "rng" in state:
                restore_rng_state(state["rng"])
            self.load_checkpoint_extras(state)
            self.clock.resume_from(state, path)
            self.last_checkpoint = path
            start_epoch = state["epoch"]
            print(f'=> Resumed "{name}" from "{path}" (next epoch {start_epoch + 1})')
        return start_epoch

    # -- testing -----------------------------------------------------------------------------
    def _device(self):
        for model in self._models.values():
            for param in model.parameters():
                return param.device
        return torch.device("cuda" if self.use_gpu else "cpu")

    @torch.no_grad()
    def _evaluate(self, dataset_name="", query_loader=None, gallery_loader=None, dist_metric="euclidean",
                  normalize_feature=False, visrank=False, visrank_topk=10, save_dir="", use_metric_cuhk03=False,
                  ranks=(1, 5, 10, 20), rerank=False):
        s = self.settings
        extract = dict(extract=self.extract_features, parse=self.parse_data_for_eval, device=self._device(),
                       flip=s.flip, progress=s.progress)
        qf, q_pids, q_camids = test_step.extract_features(loader=query_loader, desc=f"{dataset_name} query", **extract)
        gf, g_pids, g_camids = test_step.extract_features(loader=gallery_loader, desc=f"{dataset_name} gallery", **extract)
        print(f"Features: query {tuple(qf.shape)}, gallery {tuple(gf.shape)}")
        test_step.require_finite(qf, query_loader, f"{dataset_name} query")
        test_step.require_finite(gf, gallery_loader, f"{dataset_name} gallery")
        qf, gf = test_step.normalised(qf, gf, normalize_feature)
        distances = test_step.distances(qf, gf, dist_metric, rerank, s.evaluator)
        cmc, mAP, mINP, spread = test_step.rank_metrics(distances, (q_pids, g_pids, q_camids, g_camids), s,
                                                        use_metric_cuhk03)
        self.eval_results[dataset_name] = test_step.report(dataset_name, s, cmc, mAP, mINP, ranks, spread)
        if visrank:
            visualize_ranked_results(
                test_step.as_matrix(distances), self.datamanager.fetch_test_loaders(dataset_name),
                self.datamanager.data_type, width=self.datamanager.width, height=self.datamanager.height,
                save_dir=osp.join(save_dir, "visrank_" + dataset_name), topk=visrank_topk,
            )
        return cmc[0], mAP


class SoftmaxEngine(PluginEngine, tr_engine.ImageSoftmaxEngine):
    """torchreid's ``ImageSoftmaxEngine`` with the plugin's test step, checkpoints and guard."""


class TripletEngine(PluginEngine, tr_engine.ImageTripletEngine):
    """torchreid's ``ImageTripletEngine`` with the plugin's test step, checkpoints and guard."""
