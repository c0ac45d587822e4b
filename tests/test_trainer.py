"""The one network trainer: batches from packed genotypes, early stopping, checkpoints, exact resume."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepprs.errors import InputError
from deepprs.io.packed import PackedGenotypes
from deepprs.models.base import to_dense
from deepprs.train import GenotypeBatcher, load_checkpoint, subset_variants, train_network, tune

torch.set_num_threads(1)


class TinyNet(nn.Module):
    """Linear → BatchNorm → Softplus → Dropout → Linear, plus covariates (exercises RNG + buffers)."""

    def __init__(self, n_inputs: int, n_side: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_inputs + n_side, 8), nn.BatchNorm1d(8), nn.Softplus(), nn.Dropout(0.3))
        self.out = nn.Linear(8, 1)

    def forward(self, x, side):
        return self.out(self.body(torch.cat([x, side], 1))).squeeze(-1)


def mse(module, x, side, y):
    return F.mse_loss(module(x, side), y)


@pytest.fixture(scope="module")
def data_fixture():
    rng = np.random.default_rng(3)
    n, m = 120, 24
    dosage = rng.binomial(2, 0.4, size=(n, m)).astype(float)
    dosage[rng.random((n, m)) < 0.03] = np.nan
    packed = PackedGenotypes.from_dosage(dosage)
    center, scale = packed.variant_stats()
    z = to_dense(packed, center=center, scale=scale).astype(np.float64)
    side = rng.normal(size=(n, 2))
    y = z[:, :4].sum(1) + side[:, 0] + rng.normal(size=n)
    y = (y - y.mean()) / y.std()
    return packed, dosage, center, scale, z, side, y


def run(data, *, seed=0, epochs=4, **kwargs):
    packed, _, center, scale, _, side, y = data
    torch.manual_seed(seed)
    module = TinyNet(packed.n_variants, side.shape[1])
    result = train_network(
        module,
        mse,
        kwargs.pop("genotypes", packed),
        y,
        covariates=side,
        train_index=np.arange(90),
        val_index=np.arange(90, 120),
        center=center,
        scale=scale,
        epochs=epochs,
        batch_size=16,
        lr=kwargs.pop("lr", 1e-2),
        patience=kwargs.pop("patience", None),
        device="cpu",
        seed=seed,
        **kwargs,
    )
    return module, result


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def test_batcher_matches_dense_standardisation(data_fixture):
    packed, dosage, center, scale, z, _, _ = data_fixture
    rows = np.array([5, 0, 77, 3])
    for genotypes in (packed, dosage):
        batch = GenotypeBatcher(genotypes, center, scale, device=torch.device("cpu"))(rows)
        np.testing.assert_allclose(batch.numpy(), z[rows], rtol=1e-6, atol=1e-6)
    columns = np.array([20, 2, 9])
    batch = GenotypeBatcher(packed, center[columns], scale[columns], device=torch.device("cpu"), variant_index=columns)(
        rows
    )
    np.testing.assert_allclose(batch.numpy(), z[np.ix_(rows, columns)], rtol=1e-6, atol=1e-6)


def test_subset_variants_repacks_exactly(data_fixture):
    packed, dosage, *_ = data_fixture
    columns = np.array([0, 5, 6, 7, 23, 11, 12])
    subset = subset_variants(packed, columns, batch_size=7)
    assert subset.n_variants == 7
    np.testing.assert_array_equal(subset.unpack().numpy(), np.asarray(dosage[:, columns], dtype=np.float32))


def test_trainer_recovers_least_squares_solution():
    """A bias-free linear module trained to convergence equals the closed-form OLS fit."""
    rng = np.random.default_rng(0)
    dosage = rng.binomial(2, 0.5, size=(200, 5)).astype(float)
    packed = PackedGenotypes.from_dosage(dosage)
    center, scale = packed.variant_stats()
    z = to_dense(packed, center=center, scale=scale).astype(np.float64)
    y = z @ np.array([1.0, -0.5, 0.0, 0.3, 0.8]) + rng.normal(size=200)
    ols = np.linalg.lstsq(np.column_stack([np.ones(200), z]), y, rcond=None)[0]

    class Linear(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(5, 1)

        def forward(self, x, side):
            return self.linear(x).squeeze(-1)

    torch.manual_seed(0)
    module = Linear()
    train_network(
        module,
        mse,
        packed,
        y,
        train_index=np.arange(200),
        center=center,
        scale=scale,
        epochs=300,
        batch_size=200,
        optimizer="sgd",
        lr=0.05,
        device="cpu",
        patience=None,
    )
    np.testing.assert_allclose(module.linear.weight.detach().numpy().ravel(), ols[1:], atol=2e-3)
    assert float(module.linear.bias.detach()) == pytest.approx(ols[0], abs=2e-3)


def test_same_seed_same_weights_and_packed_equals_dense(data_fixture):
    _, dosage, *_ = data_fixture
    a, result_a = run(data_fixture)
    b, _ = run(data_fixture)
    c, _ = run(data_fixture, genotypes=dosage)
    assert_same_weights(a, b)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, c.state_dict()[key], rtol=1e-5, atol=1e-6)
    d, _ = run(data_fixture, seed=1)
    assert not torch.equal(a.out.weight, d.out.weight)
    assert [h["epoch"] for h in result_a.history] == [0, 1, 2, 3]
    assert all(h["samples_per_s"] > 0 and np.isfinite(h["val_loss"]) for h in result_a.history)


def test_early_stopping_restores_best_state(data_fixture):
    packed, _, center, scale, _, side, y = data_fixture
    module, result = run(data_fixture, epochs=60, patience=3, lr=0.05)
    val_losses = [h["val_loss"] for h in result.history]
    assert result.stopped_early and len(val_losses) < 60
    assert result.best_epoch == int(np.argmin(val_losses))
    assert len(val_losses) == result.best_epoch + 1 + 3  # stopped exactly `patience` epochs after the best
    # the returned module holds the best weights: recomputing its validation loss gives the best value
    module.eval()
    batch = GenotypeBatcher(packed, center, scale, device=torch.device("cpu"))(np.arange(90, 120))
    with torch.no_grad():
        loss = float(
            mse(
                module,
                batch,
                torch.as_tensor(side[90:], dtype=torch.float32),
                torch.as_tensor(y[90:], dtype=torch.float32),
            )
        )
    assert loss == pytest.approx(min(val_losses), rel=1e-5)


class Kill(Exception):
    pass


def kill_at(epoch: int, step: int):
    def callback(info):
        if info["epoch"] == epoch and info["step"] == step:
            raise Kill

    return callback


@pytest.mark.parametrize("kill", [(1, 5), (2, 0), (0, 2)], ids=["mid-epoch", "after-epoch", "first-epoch"])
def test_resume_after_kill_equals_uninterrupted_run(data_fixture, tmp_path, kill):
    full, full_result = run(data_fixture, epochs=4, checkpoint_dir=tmp_path / "full", checkpoint_every_steps=2)
    with pytest.raises(Kill):
        run(
            data_fixture,
            epochs=4,
            checkpoint_dir=tmp_path / "killed",
            checkpoint_every_steps=2,
            callback=kill_at(*kill),
        )
    _, progress = load_checkpoint(tmp_path / "killed")
    assert progress["next_epoch"] == kill[0]  # the last checkpoint is inside / at the start of the kill epoch
    resumed, resumed_result = run(
        data_fixture, epochs=4, checkpoint_dir=tmp_path / "killed", checkpoint_every_steps=2, resume=True
    )
    assert_same_weights(full, resumed)
    assert [h["epoch"] for h in resumed_result.history] == [0, 1, 2, 3]
    for a, b in zip(full_result.history, resumed_result.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-12)
        assert a["val_loss"] == b["val_loss"]


def test_checkpoint_files_are_safetensors_and_json(data_fixture, tmp_path):
    from safetensors.torch import load_file

    run(data_fixture, epochs=2, checkpoint_dir=tmp_path)
    tensors = load_file(str(tmp_path / "checkpoint.safetensors"))
    assert {"model.out.weight", "model.body.1.running_mean", "best.out.weight"} <= tensors.keys()
    assert any(k.startswith("optim.") and k.endswith("exp_avg") for k in tensors)
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    assert record["next_epoch"] == 2 and record["next_step"] == 0 and record["global_step"] == 2 * 6
    assert len(record["history"]) == 2 and isinstance(record["torch_rng_state"], list)
    # resuming a finished run trains no further
    module, result = run(data_fixture, epochs=2, checkpoint_dir=tmp_path, resume=True)
    assert len(result.history) == 2


def test_resume_after_process_kill(data_fixture, tmp_path):
    """SIGKILL-like death (os._exit) of a training process, then resume in this process."""
    torch.set_num_threads(1)  # as in the child: the same float summation order (another test may have changed it)
    packed, _, center, scale, _, side, y = data_fixture
    np.savez(
        tmp_path / "data.npz",
        packed=packed.packed,
        n_variants=packed.n_variants,
        center=center,
        scale=scale,
        side=side,
        y=y,
    )
    script = textwrap.dedent(f"""
        import os, sys, numpy as np, torch
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        torch.set_num_threads(1)
        from test_trainer import TinyNet, mse
        from deepprs.io.packed import PackedGenotypes
        from deepprs.train import train_network
        d = np.load({str(tmp_path / "data.npz")!r})
        packed = PackedGenotypes(d['packed'], int(d['n_variants']))
        def die(info):
            if info['global_step'] == 15:
                os._exit(9)
        torch.manual_seed(0)
        module = TinyNet(packed.n_variants, 2)
        train_network(module, mse, packed, d['y'], covariates=d['side'], train_index=np.arange(90),
                      val_index=np.arange(90, 120), center=d['center'], scale=d['scale'], epochs=4,
                      batch_size=16, lr=1e-2, patience=None, device='cpu', seed=0,
                      checkpoint_dir={str(tmp_path / "ckpt")!r}, checkpoint_every_steps=2, callback=die)
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 9, completed.stderr
    _, progress = load_checkpoint(tmp_path / "ckpt")
    assert progress["global_step"] == 14 and progress["next_epoch"] == 2
    full, _ = run(data_fixture, epochs=4)
    resumed, result = run(
        data_fixture, epochs=4, checkpoint_dir=tmp_path / "ckpt", checkpoint_every_steps=2, resume=True
    )
    assert_same_weights(full, resumed)
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3]


def test_errors(data_fixture, monkeypatch):
    packed, _, center, scale, _, side, y = data_fixture
    with pytest.raises(InputError, match="optimizer"):
        run(data_fixture, optimizer="rmsprop")
    with pytest.raises(InputError, match="samples"):
        train_network(
            TinyNet(24, 0),
            mse,
            packed,
            y[:50],
            train_index=np.arange(10),
            center=center,
            scale=scale,
            device="cpu",
        )
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(InputError, match="pip install optuna"):
        tune("mlp", packed, y, search_space={"lr": (1e-4, 1e-1)})


def test_tune_finds_a_sensible_learning_rate(data_fixture):
    pytest.importorskip("optuna")
    _, dosage, *_, y = data_fixture
    best, study = tune(
        "mlp",
        dosage,
        y,
        search_space={"lr": (1e-4, 3e-2), "dropout": [0.0, 0.3]},
        n_trials=3,
        fixed_params={"hidden": [8], "epochs": 3, "device": "cpu"},
    )
    assert len(study.trials) == 3 and 1e-4 <= best["lr"] <= 3e-2 and best["hidden"] == [8]
    assert best["dropout"] in (0.0, 0.3) and np.isfinite(study.best_value)


def test_ema_weights_equal_the_averaging_recursion_by_hand(data_fixture):
    """ema_decay: the returned weights are avg_t = d_t avg_{t-1} + (1 - d_t) w_t over optimizer steps,
    d_t = min(decay, (1 + t) / (10 + t)), avg_{-1} = the initial weights (recomputed here from the
    raw iterates recorded after every step)."""
    packed, _, center, scale, _, side, y = data_fixture
    torch.manual_seed(0)
    module = TinyNet(packed.n_variants, side.shape[1])
    average = {k: v.detach().clone().double() for k, v in module.state_dict().items()}
    steps = []

    def record(info):
        steps.append({k: v.detach().clone() for k, v in module.state_dict().items()})

    result = train_network(
        module,
        mse,
        packed,
        y,
        covariates=side,
        train_index=np.arange(120),
        center=center,
        scale=scale,
        epochs=3,
        batch_size=16,
        lr=0.05,
        device="cpu",
        seed=0,
        callback=record,
        ema_decay=0.9,
    )
    assert len(steps) == 3 * 8
    for t, state in enumerate(steps):
        decay = min(0.9, (1 + t) / (10 + t))
        for key, value in state.items():
            if value.is_floating_point():
                average[key] = decay * average[key] + (1 - decay) * value.double()
            else:
                average[key] = value.double()
    for key, value in result.best_state.items():
        torch.testing.assert_close(value.double(), average[key], rtol=1e-5, atol=1e-6)
    # the raw last iterate differs from the average (the averaging did something)
    assert not torch.allclose(steps[-1]["out.weight"], result.best_state["out.weight"])


def test_ema_early_stopping_scores_the_averaged_network(data_fixture):
    packed, _, center, scale, _, side, y = data_fixture
    module, result = run(data_fixture, epochs=30, patience=3, lr=0.05, ema_decay=0.95)
    val_losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(val_losses))
    module.eval()
    batch = GenotypeBatcher(packed, center, scale, device=torch.device("cpu"))(np.arange(90, 120))
    with torch.no_grad():
        loss = float(
            mse(module, batch, torch.as_tensor(side[90:], dtype=torch.float32), torch.as_tensor(y[90:]).float())
        )
    assert loss == pytest.approx(min(val_losses), rel=1e-5)


def test_ema_resume_after_kill_equals_uninterrupted_run(data_fixture, tmp_path):
    full, full_result = run(
        data_fixture, epochs=4, checkpoint_dir=tmp_path / "full", checkpoint_every_steps=2, ema_decay=0.9
    )
    with pytest.raises(Kill):
        run(
            data_fixture,
            epochs=4,
            checkpoint_dir=tmp_path / "killed",
            checkpoint_every_steps=2,
            callback=kill_at(2, 3),
            ema_decay=0.9,
        )
    tensors, progress = load_checkpoint(tmp_path / "killed")
    assert any(k.startswith("ema.") for k in tensors) and progress["n_averaged"] > 0
    resumed, resumed_result = run(
        data_fixture, epochs=4, checkpoint_dir=tmp_path / "killed", checkpoint_every_steps=2, resume=True, ema_decay=0.9
    )
    assert_same_weights(full, resumed)
    assert [a["val_loss"] for a in full_result.history] == [b["val_loss"] for b in resumed_result.history]
