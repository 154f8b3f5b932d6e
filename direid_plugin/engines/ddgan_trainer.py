"""Stage 1: one DDGAN training iteration (the loss terms, the D step, the G step).

Each iteration draws one batch of pairs (data/pairs.py) and is either a *self-degradation*
iteration on (x_a = HR image, x_b = its self-degraded copy) or a *real cross-degradation*
iteration on (x_a = real HR image, x_b = real LR image): odd iterations are self, even are
real (``ddgan.sync_prob < 0``, the official schedule), or a random choice with that probability.

One iteration (docs/method.md 4.5): forward once, then a discriminator step on detached fakes,
then a generator step through the just-updated discriminators, then both LR schedulers step.
Every loss term has a weight in the ``ddgan`` config node; a zero weight switches it off (the
ablation switches). The paper's and the official code's formulations differ (docs/method.md 8);
the differences are switches, with one preset YAML for each:

| term (weight key)                  | paper (CVPR 2020)                 | official code                      |
|------------------------------------|-----------------------------------|------------------------------------|
| cross reconstruction (w_cross_rec) | off (Eq. 2 uses x_ii, x_ji only)   | x_ab -> x_b, x_ba -> x_a           |
| identity preserving (w_pre)        | frozen E_id on swapped images      | absent                             |
| real-pair degradation (real_deg)   | ranking, label from D_d (Eq. 10)   | binary LR=0 / HR=1 when LR is known|
| cycle reconstruction (w_cycle)     | absent                            | swap back, weight 10               |
| adversarial form (gan_type)        | log-likelihood (nsgan)            | least squares + gradient penalty   |

The torchreid ``Engine`` around it (data, loop, checkpoints, logging) is engines/ddgan_engine.py;
tools/benchmark_ddgan.py times this class alone.
"""
import contextlib

import numpy as np
import torch

from direid_plugin import losses as L
from direid_plugin.engines.guards import NonFiniteGuard
from direid_plugin.profiling import section


def milestones(step):
    """The official multistep milestones: s, s + s/2, s + s/2 + s/4 (docs/method.md 4.1)."""
    return [step, step + step // 2, step + step // 2 + step // 4]


class DDGANTrainer:
    """Optimisers, schedulers, AMP scaler and the per-iteration losses of a ``DDGAN`` model.

    ``paired``: the real pairs have a known LR camera (x_b is LR, x_a HR), which the official
    binary real-pair degradation loss needs; unpaired data always uses the ranking form.
    """

    def __init__(self, model, cfg, paired=True, guard=None):
        self.cfg, self.opt, self.model, self.paired = cfg, cfg.ddgan, model, bool(paired)
        self.device = next(model.parameters()).device
        adam = dict(lr=self.opt.lr, betas=(float(self.opt.betas[0]), float(self.opt.betas[1])),
                    weight_decay=self.opt.weight_decay)
        self.optimizer = torch.optim.Adam(model.generator_parameters(), **adam)
        self.optimizer_d = torch.optim.Adam(model.discriminator_parameters(), **adam)
        steps = milestones(self.opt.lr_step)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, steps, gamma=self.opt.lr_gamma)
        self.scheduler_d = torch.optim.lr_scheduler.MultiStepLR(self.optimizer_d, steps, gamma=self.opt.lr_gamma)
        # Mixed precision only where the device supports it; one scaler for both steps (official code).
        self.amp = bool(cfg.engine.amp) and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.channels_last = bool(cfg.engine.channels_last)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.iteration = 0  # completed iterations
        self.d_steps = {"self": 0, "real": 0}  # D steps per iteration kind, for the lazy gradient penalty
        self.rng = np.random.default_rng(cfg.train.seed)  # self/real choice and the random D fake
        self.last_outputs = None
        # A NaN/inf loss or gradient skips that optimiser's step; too many in a row stop training.
        # An engine passes its own guard (one per engine); alone (benchmarks) the trainer makes one.
        self.guard = guard or NonFiniteGuard(cfg.engine.max_nonfinite_steps, where=lambda: f"iteration {self.iteration + 1}")

    def _input(self, tensor):
        tensor = tensor.to(self.device, non_blocking=True)
        return tensor.contiguous(memory_format=torch.channels_last) if self.channels_last else tensor

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()

    def _encode_contents(self, images, with_identity):
        """E_c of each image batch: [(f_inv or None, content map)]. f_inv's branch runs only where a loss
        uses it; the (frozen) trunk batches the images together where that is exact."""
        encoder = self.model.content_encoder
        with section("E_c head"):
            out = []
            for levels in encoder.levels_of(*images):
                out.append(encoder.head(levels) if with_identity else (None, encoder.head.content(levels)))
            return out

    def _encode_degradations(self, *images_and_heads):
        with section("E_d"):
            return self.model.degradation_encoder.codes_of(*images_and_heads)

    def _forward(self, x_a, x_b, synthetic_b):
        """Content maps, degradation codes, the identity features where a loss needs them, and the four
        decodings x_aa, x_bb, x_ab, x_ba."""
        o = self.opt
        with_identity = o.w_kl > 0 if synthetic_b else o.w_id > 0
        (f_a, c_a), (f_b, c_b) = self._encode_contents([x_a, x_b], with_identity)
        d_a, d_b = self._encode_degradations((x_a, False), (x_b, synthetic_b))
        out = dict(c_a=c_a, c_b=c_b, f_a=f_a, f_b=f_b, d_a=d_a, d_b=d_b)
        with section("G reconstructions and swaps"):
            out.update(zip(("x_aa", "x_bb", "x_ab", "x_ba"), self._decode((c_a, d_a), (c_b, d_b), (c_a, d_b), (c_b, d_a))))
        return out

    def _decode(self, *contents_and_codes):
        """G(c, d) of each pair, from one batched call: G's norms (AdaIN, LayerNorm) are per sample, so
        batching is exact, and on a CPU much of G's cost is per call."""
        contents, codes = zip(*contents_and_codes)
        return self.model.generate(torch.cat(contents), torch.cat(codes)).split([len(c) for c in contents])

    def _gp_weight(self, self_iteration):
        """The penalty weight of this D step: lazy, every ``grad_penalty_every``-th step of its kind."""
        every = max(1, int(self.opt.grad_penalty_every))
        kind = "self" if self_iteration else "real"
        self.d_steps[kind] += 1
        return self.opt.grad_penalty * every if self.d_steps[kind] % every == 0 else 0.0

    def _d_loss(self, x_a, x_b, out, self_iteration, rank_label, gp):
        o, m = self.opt, self.model
        terms = {}
        if o.w_real > 0:
            dr = m.real_discriminator
            with section("D_r"):
                if self_iteration and o.self_d_fake == "random":
                    fake = out["x_ab"] if self.rng.random() < 0.5 else out["x_ba"]
                    terms["D_real"] = L.discriminator_loss(dr, fake, x_a, o.gan_type, gp)
                else:
                    terms["D_real"] = (L.discriminator_loss(dr, out["x_ab"], x_a, o.gan_type, gp)
                                       + L.discriminator_loss(dr, out["x_ba"], x_b, o.gan_type, gp))
        if o.w_deg > 0:
            dd = m.degradation_discriminator
            with section("D_d"):
                if self_iteration:  # x_b = degrade(x_a): x_a is the higher-quality image
                    terms["D_deg"] = L.ranking_d_loss(dd, x_b, x_a, o.rank_margin, gp)
                elif self._binary_real_deg():  # known LR camera: LR = 0, HR = 1
                    terms["D_deg"] = 2 * L.discriminator_loss(dd, x_b, x_a, o.gan_type, gp)
                else:  # Eq. 10: the order comes from D_d's own prediction
                    lower, higher = L.order_pair(x_a, x_b, rank_label)
                    terms["D_deg"] = L.ranking_d_loss(dd, lower, higher, o.rank_margin, gp)
        weights = {"D_real": o.w_real, "D_deg": o.w_deg}
        return sum(weights[k] * v for k, v in terms.items()), terms

    def _binary_real_deg(self):
        return self.opt.real_deg == "binary" and self.paired

    def _cycle(self, x_ab, x_ba):
        """Swap back: (G(E_c(x_ab), E_d(x_ba)), G(E_c(x_ba), E_d(x_ab))), which should give x_a and x_b."""
        (_, c_ab), (_, c_ba) = self._encode_contents([x_ab, x_ba], False)
        d_ab, d_ba = self._encode_degradations((x_ab, False), (x_ba, False))
        with section("G cycle"):
            return self._decode((c_ab, d_ba), (c_ba, d_ab))

    def _g_loss(self, x_a, x_b, out, self_iteration, rank_label, pids):
        o, m = self.opt, self.model
        pixel = lambda a, b: L.pixel_loss(a, b, o.pixel_loss)
        terms = {}
        if o.w_real > 0:
            with section("D_r"):
                terms["G_real"] = L.generator_loss(m.real_discriminator, [out["x_ab"], out["x_ba"]], [1.0, 1.0], o.gan_type)
        if o.w_deg > 0:
            dd = m.degradation_discriminator
            with section("D_d"):
                if self_iteration:  # content a with b's (worse) degradation must rank below content b with a's
                    terms["G_deg"] = L.ranking_g_loss(dd, out["x_ab"], out["x_ba"], o.rank_margin)
                elif self._binary_real_deg():
                    terms["G_deg"] = L.generator_loss(dd, [out["x_ab"], out["x_ba"]], [0.0, 1.0], o.gan_type)
                else:  # x_ab carries x_b's degradation: it takes x_b's place in the predicted order
                    lower, higher = L.order_pair(out["x_ab"], out["x_ba"], -rank_label)
                    terms["G_deg"] = L.ranking_g_loss(dd, lower, higher, o.rank_margin)
        if o.w_rec > 0:
            terms["G_rec"] = pixel(out["x_aa"], x_a) + pixel(out["x_bb"], x_b)
        if self_iteration:
            if o.w_cross_rec > 0:  # valid only for aligned pairs: x_ab should equal x_b, x_ba equal x_a
                terms["G_cross_rec"] = pixel(out["x_ab"], x_b) + pixel(out["x_ba"], x_a)
            if o.w_inv > 0:
                terms["G_inv"] = L.content_invariance_loss(out["c_a"], out["c_b"])
            if o.w_kl > 0:
                cls = m.content_encoder.classifier
                terms["G_kl"] = L.kl_detach(cls(out["f_a"]), cls(out["f_b"]))
        else:
            if o.w_cycle > 0:
                back_a, back_b = self._cycle(out["x_ab"], out["x_ba"])
                terms["G_cycle"] = pixel(back_a, x_a) + pixel(back_b, x_b)
            if o.w_id > 0:
                cls = m.content_encoder.classifier
                terms["G_id"] = L.identification_loss(cls(out["f_a"]), pids[0]) + L.identification_loss(cls(out["f_b"]), pids[1])
        if o.w_pre > 0:
            if m.identity_encoder is None:
                raise ValueError("ddgan.w_pre > 0 needs a frozen identity encoder: set ddgan.eid_name (and ddgan.eid_weights)")
            with section("E_id"):
                terms["G_pre"] = (L.identity_preserving_loss(m.identity_encoder, out["x_ab"], x_a, o.eid_distance)
                                  + L.identity_preserving_loss(m.identity_encoder, out["x_ba"], x_b, o.eid_distance))
        weights = {"G_real": o.w_real, "G_deg": o.w_deg, "G_rec": o.w_rec, "G_cross_rec": o.w_cross_rec,
                   "G_inv": o.w_inv, "G_kl": o.w_kl, "G_cycle": o.w_cycle, "G_id": o.w_id, "G_pre": o.w_pre}
        return sum(weights[k] * v for k, v in terms.items()), terms

    def _step(self, loss, optimizer, name):
        optimizer.zero_grad(set_to_none=True)
        if self.guard.check_loss(loss, name):
            with section(f"backward ({name})"):
                self.scaler.scale(loss).backward()
            with section("optimiser steps"):
                self.guard.step(optimizer, self.scaler, name)
                self.scaler.update()

    def is_self_iteration(self, iteration):
        """Iteration numbers start at 1: odd = self-degradation, even = real (official schedule)."""
        if self.opt.sync_prob < 0:
            return iteration % 2 == 1
        return bool(self.rng.random() < self.opt.sync_prob)

    def train_step(self, data):
        """One stage-1 iteration on a pair batch; returns the loss terms as floats."""
        self_iteration = self.is_self_iteration(self.iteration + 1)
        x_a = self._input(data["hr"])
        x_b = self._input(data["deg"] if self_iteration else data["lr"])
        pids = (data["hr_pid"].to(self.device), data["lr_pid"].to(self.device))
        rank_label = None
        if not self_iteration and self.opt.w_deg > 0 and not self._binary_real_deg():
            with section("D_d"):
                rank_label = L.rank_label(self.model.degradation_discriminator, x_a, x_b)

        with self._autocast():
            out = self._forward(x_a, x_b, synthetic_b=self_iteration)
            d_loss, d_terms = self._d_loss(x_a, x_b, out, self_iteration, rank_label, self._gp_weight(self_iteration))
        self._step(d_loss, self.optimizer_d, "discriminator")
        with self._autocast():
            g_loss, g_terms = self._g_loss(x_a, x_b, out, self_iteration, rank_label, pids)
        self._step(g_loss, self.optimizer, "generator")
        self.scheduler.step()
        self.scheduler_d.step()
        self.iteration += 1
        self.last_outputs = (x_a, x_b, out)
        summary = {k: float(v.detach()) for k, v in {**d_terms, **g_terms}.items()}
        summary.update(D_total=float(d_loss.detach()), G_total=float(g_loss.detach()))
        return summary

    def state_dict(self):
        """Optimisers, schedulers, scaler, iteration and the trainer's own RNG (weights-only loadable)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "scheduler_d": self.scheduler_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "d_steps": dict(self.d_steps),
            # PCG64's 128-bit integers as strings: plain values for the weights-only loader.
            "engine_rng": {k: str(v) for k, v in self.rng.bit_generator.state["state"].items()},
        }

    def load_state_dict(self, state):
        for name in ("optimizer", "scheduler", "optimizer_d", "scheduler_d", "scaler"):
            getattr(self, name).load_state_dict(state[name])
        self.iteration = state["iteration"]
        self.d_steps = dict(state["d_steps"])
        bit_state = self.rng.bit_generator.state
        bit_state["state"] = {k: int(v) for k, v in state["engine_rng"].items()}
        self.rng.bit_generator.state = bit_state
