"""NaN/inf steps are skipped with a warning; persistent ones stop training and keep the last good checkpoint."""
import copy
import hashlib
import os
import re

import pytest
import torch
from torch import nn

from direid_plugin import build
from direid_plugin.config import load_config
from direid_plugin.build import build_engine
from direid_plugin.engines.guards import NonFiniteGuard, TrainingDiverged

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "baselines", "osnet_x0_25_pku_softmax.yaml")
NAN_STEPS = (2, 5)


def _tiny_problem():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    return model, torch.optim.Adam(model.parameters(), lr=0.1), torch.randn(8, 4), torch.randn(8, 3)


def _train(steps, nan_steps, guard=None):
    """Adam on a linear fit; the loss of ``nan_steps`` is NaN. Returns the weights after each step."""
    model, optimizer, x, y = _tiny_problem()
    if guard is not None:
        guard.attach(optimizer, "linear")
    history = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        if step in nan_steps:
            loss = loss * float("nan")
        loss.backward()
        optimizer.step()
        history.append(copy.deepcopy(model.state_dict()))
    return history


def test_nan_steps_are_skipped_with_a_warning_and_leave_the_weights_untouched(capsys):
    guard = NonFiniteGuard(max_consecutive=3)
    guarded = _train(8, NAN_STEPS, guard)
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("warning:")] == [
        "warning: skipped optimizer step of 'linear' at step 3: non-finite gradients (1 in a row; stops at 3)",
        "warning: skipped optimizer step of 'linear' at step 6: non-finite gradients (1 in a row; stops at 3)",
    ]
    assert (guard.steps, guard.skipped, guard.consecutive) == (8, 2, {"linear": 0})
    for step in NAN_STEPS:
        assert all(torch.equal(guarded[step][k], guarded[step - 1][k]) for k in guarded[step])
    assert all(torch.isfinite(v).all() for v in guarded[-1].values())
    # A skipped step leaves no trace in the optimiser either (Adam's moments and step count):
    # the run equals one in which those batches never happened.
    clean = _train(6, ())
    assert all(torch.equal(guarded[-1][k], clean[-1][k]) for k in clean[-1])


def test_check_loss_skips_before_backward_and_a_good_step_resets_the_count(capsys):
    guard = NonFiniteGuard(max_consecutive=3)
    model, optimizer, x, y = _tiny_problem()
    for loss_is_nan in (True, True, False, True, True):
        optimizer.zero_grad()
        loss = (model(x) - y).pow(2).mean() * (float("nan") if loss_is_nan else 1.0)
        if guard.check_loss(loss, "linear"):
            loss.backward()
            assert guard.step(optimizer, name="linear")
    assert (guard.steps, guard.skipped, guard.consecutive["linear"]) == (5, 4, 2)
    assert "a non-finite loss (nan)" in capsys.readouterr().out
    with pytest.raises(TrainingDiverged, match=r"3 consecutive steps of 'linear' had a non-finite loss \(inf\) "
                                               r"\(last at step 6\); last good checkpoint: none saved yet"):
        guard.check_loss(torch.tensor(float("inf")), "linear")


def test_grad_scaler_inf_skip_counts_once_and_attached_steps_are_not_double_counted():
    guard = NonFiniteGuard(max_consecutive=2, last_good_checkpoint=lambda: "/runs/x/model.pth.tar-4")
    model, optimizer, x, y = _tiny_problem()
    guard.attach(optimizer, "gen")
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    before = copy.deepcopy(model.state_dict())
    for scale_loss_by, expected_ok in ((1.0, True), (float("inf"), False)):
        optimizer.zero_grad()
        scaler.scale((model(x) - y).pow(2).mean() * scale_loss_by).backward()
        assert guard.step(optimizer, scaler) is expected_ok
        scaler.update()
    assert (guard.steps, guard.skipped, guard.consecutive["gen"]) == (2, 1, 1)
    assert scaler.get_scale() == 512.0  # GradScaler's own back-off on the inf step
    stepped = model.state_dict()
    assert not torch.equal(stepped["weight"], before["weight"]) and torch.isfinite(stepped["weight"]).all()
    optimizer.zero_grad()
    scaler.scale((model(x) - y).pow(2).mean() * float("nan")).backward()
    with pytest.raises(TrainingDiverged, match=r"GradScaler skipped the step\) \(last at step 3\); "
                                               r"last good checkpoint: /runs/x/model.pth.tar-4 \(not overwritten\)"):
        guard.step(optimizer, scaler)


def _stock_engine(pku_root, save_dir):
    cfg = load_config(CONFIG, ["data.root", os.path.dirname(pku_root), "data.save_dir", str(save_dir),
                               "data.height", "64", "data.width", "32", "data.workers", "0", "use_gpu", "False",
                               "engine.progress", "False", "engine.max_nonfinite_steps", "3"])
    torch.manual_seed(0)
    datamanager = build.build_datamanager(cfg)
    model = build.build_model(cfg, datamanager.num_train_pids)
    return build_engine(cfg, datamanager, model), model


def _nan_output_hook(bad_batches, seen):
    def hook(module, inputs, output):
        seen.append(copy.deepcopy(dict(module.named_parameters())))
        return output * float("nan") if len(seen) - 1 in bad_batches else output
    return hook


def test_stock_softmax_engine_skips_nan_batches_then_stops_and_keeps_the_last_good_checkpoint(
        pku_root, tmp_path, capsys):
    engine, model = _stock_engine(pku_root, tmp_path)
    assert type(engine).__name__ == "SoftmaxEngine"  # torchreid's ImageSoftmaxEngine with the plugin mixin
    seen = []
    handle = model.register_forward_hook(_nan_output_hook({1, 3}, seen))
    batches = iter(engine.train_loader)
    engine.set_model_mode("train")
    for _ in range(5):
        engine.forward_backward(next(batches))  # torchreid's own step: it calls optimizer.step() itself
    model(next(batches)["img"])  # parameters after the fifth step
    handle.remove()
    assert engine.nonfinite_guard.skipped == 2 and capsys.readouterr().out.count("warning: skipped optimizer step") == 2
    for step in range(5):
        unchanged = all(torch.equal(seen[step][k], seen[step + 1][k]) for k in seen[step])
        assert unchanged == (step in (1, 3)), step
    assert all(torch.isfinite(p).all() for p in model.parameters())

    engine.save_model(0, 0.0, str(tmp_path))  # checkpoint 1, the last good one
    good = tmp_path / "model" / "model.pth.tar-1"
    digest = hashlib.sha1(good.read_bytes()).hexdigest()
    model.register_forward_hook(lambda module, inputs, output: output * float("nan"))
    engine.epoch = 1
    with pytest.raises(TrainingDiverged, match=r"3 consecutive steps of 'model' had non-finite gradients "
                                               r"\(last at step 8, epoch 2, batch 3\); last good checkpoint: "
                                               + re.escape(str(good))):
        engine.train(print_freq=10**6)
    assert sorted(os.listdir(good.parent)) == ["model.pth.tar-1"]
    assert hashlib.sha1(good.read_bytes()).hexdigest() == digest
    assert torch.load(good, weights_only=True)["epoch"] == 1


def test_a_non_finite_model_state_is_never_saved(pku_root, tmp_path):
    engine, model = _stock_engine(pku_root, tmp_path)
    engine.save_model(0, 0.0, str(tmp_path))
    with torch.no_grad():
        model.conv1.bn.running_var.fill_(float("nan"))  # BatchNorm statistics poisoned by a NaN forward
    with pytest.raises(TrainingDiverged, match=r"model 'model' holds NaN/inf in 1 tensors \(e\.g\. \['conv1\.bn\."
                                               r"running_var'\]\).*not saved, last good checkpoint: .*model\.pth\.tar-1"):
        engine.save_model(1, 0.0, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "model")) == ["model.pth.tar-1"]
