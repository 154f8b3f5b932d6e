"""Stage 2: the DFEN engine, torchreid's ``ImageTripletEngine`` with DFEN's loss.

Epoch-based: torchreid's ``run``/``train`` loop, progress lines and TensorBoard scalars are used
unchanged; test and checkpoints are the plugin engines' (engines/base.py). Per batch (paper
Eq. 14, weights as in the official code, docs/method.md 5.3):

    L = w_inv (CE + Tri)(inv) + w_sen (CE + Tri)(sen) + w_fused (CE + Tri)(fused)
        + w_replay KL(softmax(p_inv(x)).detach() || softmax(p_inv(x_aug)))

with torchreid's CrossEntropyLoss (``dfen.label_smooth``) on each head's logits and its hard-mined
TripletLoss (``dfen.triplet_margin``) on the pre-head features. The last term is the IJCV memory
replay (engines/memory_replay.py); x_aug is made under no_grad, so the KL term trains E_c and
the inv head only through the augmented branch.
"""
import contextlib

import torch
from torchreid.reid import metrics
from torchreid.reid.engine import ImageTripletEngine

from direid_plugin import weights
from direid_plugin.data.degradations import build_degradation
from direid_plugin.engines.base import EngineSettings, PluginEngine
from direid_plugin.engines.memory_replay import MemoryReplay, ResampleReplay, check_mode
from direid_plugin.engines.optimization import build_optimizer_and_scheduler
from direid_plugin.losses import kl_detach
from direid_plugin.models.dfen import BRANCHES


class DFENEngine(PluginEngine, ImageTripletEngine):
    """Trains a ``DFEN`` model (models/dfen.py) from ``cfg.dfen``; optimiser and schedule from ``cfg.train``.

    The model's device decides where everything runs (torchreid's CrossEntropyLoss is told to
    match it); AMP runs only on CUDA (``engine.amp``). ``stage1``: the stage-1 checkpoint's
    ``Weights`` when the caller has read it already (memory replay needs it), else it is read from
    ``dfen.ddgan_checkpoint`` when needed. ``settings`` default to the config's.
    """

    def __init__(self, datamanager, model, cfg, settings=None, stage1=None):
        self.cfg = cfg
        self.opt = cfg.dfen
        self.device = next(model.parameters()).device
        check_mode(self.opt.memory_replay)
        self.branch_weights = {b: self.opt[f"w_{b}"] for b in BRANCHES}
        if not any(w > 0 for w in self.branch_weights.values()):
            raise ValueError("dfen.w_inv, dfen.w_sen and dfen.w_fused are all 0: at least one identity loss must be on")
        optimizer, scheduler = build_optimizer_and_scheduler(cfg, model)
        super().__init__(datamanager, model, optimizer, margin=self.opt.triplet_margin, scheduler=scheduler,
                         use_gpu=self.device.type == "cuda", label_smooth=self.opt.label_smooth,
                         settings=settings or EngineSettings.from_config(cfg))
        self.stage1 = stage1
        self.amp = bool(cfg.engine.amp) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        # resample needs no stage-1 model, so it exists from the start and a resume can restore its stream
        resample = self.opt.memory_replay == "resample"
        self.replay = ResampleReplay(build_degradation(cfg.degradation), cfg.train.seed) if resample else None
        self._prepared = False

    @classmethod
    def from_config(cls, cfg, datamanager, model, settings, inputs):
        """The registry's engine constructor (build.py): the stage-1 ``Weights`` the model
        was built from are reused for memory replay."""
        return cls(datamanager, model, cfg, settings=settings, stage1=inputs.get("ddgan_checkpoint"))

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()

    def prepare_training(self):
        """Once, before the first batch: check the stage-1 checkpoint is configured where needed,
        build the frozen replay copy and its memory bank (with a progress bar)."""
        if self._prepared:
            return
        o = self.opt
        needs = [reason for on, reason in ((o.use_dil, "dfen.use_dil True"),
                                           (o.attention == "guided", "dfen.attention 'guided'"),
                                           (o.memory_replay in ("bank", "shuffle"), f"dfen.memory_replay '{o.memory_replay}'")) if on]
        if needs and not o.ddgan_checkpoint:
            raise ValueError(f"dfen.ddgan_checkpoint is empty, but {', '.join(needs)} need(s) the stage-1 DDGAN "
                             "checkpoint (<stage-1 save_dir>/ddgan/model.pth.tar-<iteration>): train stage 1 first "
                             "(engine.name ddgan) or switch these off")
        if o.memory_replay in ("bank", "shuffle"):
            stage1 = self.stage1 or weights.read(o.ddgan_checkpoint, "dfen.ddgan_checkpoint")
            self.replay = MemoryReplay.from_config(self.cfg, stage1).to(self.device)
            self.stage1 = None  # the replay copy holds what it needs
            if o.memory_replay == "bank":
                dm = self.datamanager
                self.replay.build_bank(dm.train_loader.dataset.train, dm.transform_te, self.cfg.test.batch_size,
                                       self.cfg.data.workers, self.settings.progress)
        self._prepared = True

    def checkpoint_extras(self):
        """Training state beyond torchreid's layout (engines/base.py): exact resume."""
        extras = {"scaler": self.scaler.state_dict()}
        if isinstance(self.replay, ResampleReplay):
            extras["replay_rng"] = self.replay.rng_state()
        return extras

    def load_checkpoint_extras(self, state):
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if "replay_rng" in state and isinstance(self.replay, ResampleReplay):
            self.replay.set_rng_state(state["replay_rng"])

    def train(self, *args, **kwargs):
        self.prepare_training()
        return super().train(*args, **kwargs)

    def two_stepped_transfer_learning(self, epoch, fixbase_epoch, open_layers, model=None):
        # torchreid's open_all_layers sets requires_grad on every parameter; keep D_d and BN shifts fixed.
        super().two_stepped_transfer_learning(epoch, fixbase_epoch, open_layers, model)
        self.model.freeze_fixed_parameters()

    def identity_loss(self, out, pids):
        """Eq. 14: sum over branches of w_b * (CE(logits_b) + Tri(f_b)); returns (loss, summary)."""
        loss, summary = 0.0, {}
        for branch, weight in self.branch_weights.items():
            if weight <= 0:
                continue
            ce = self.criterion_x(out[f"logits_{branch}"].float(), pids)
            tri = self.criterion_t(out[f"f_{branch}"].float(), pids)
            loss = loss + weight * (ce + tri)
            summary[f"loss_{branch}_x"] = ce.item()
            summary[f"loss_{branch}_t"] = tri.item()
        return loss, summary

    def replay_loss(self, imgs, logits_inv):
        """KL(softmax(p_inv(x)).detach() || softmax(p_inv(x_aug))) (docs/method.md 5.3, ``kl_detach``).

        Only the inv head's logits of x_aug are computed: the official code runs the whole DFEN on
        x_aug but uses nothing else from it.
        """
        x_aug = self.replay.augment(imgs)
        return kl_detach(logits_inv.float(), self.model.invariant_logits(x_aug).float())

    def forward_backward(self, data):
        imgs, pids = self.parse_data_for_train(data)
        imgs, pids = imgs.to(self.device, non_blocking=True), pids.to(self.device, non_blocking=True)
        with self._autocast():
            out = self.model(imgs)
            loss, summary = self.identity_loss(out, pids)
            if self.replay is not None:
                replay = self.replay_loss(imgs, out["logits_inv"])
                loss = loss + self.opt.w_replay * replay
                summary["loss_replay"] = replay.item()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        summary["acc"] = metrics.accuracy(out["logits_fused"], pids)[0].item()
        return summary
