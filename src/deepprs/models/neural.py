"""Neural polygenic scores, each with a *linear twin*, and a hybrid linear + network model.

Registered models (``make_model(name, **params)``):

* ``mlp`` — Kelemen et al. (2025) "Knet": hidden 100 → 50 → 25, BatchNorm, Softplus, dropout 0.3;
* ``vae`` — VAE-PRS (Li et al. 2025): encoder M → 512 → 256 → 128, latent 64, decoder 64 → 128 →
  512 → M, regression head on the encoder output, loss (1 − α)(KL + recon MSE) + α·label loss;
* ``lcn`` — a locally-connected network over windows of adjacent variants (genome order);
* ``attention`` — a small transformer whose tokens are windows of adjacent variants;
* ``hybrid`` — out-of-fold ``ridge`` score as a skip path plus an MLP correction initialised
  at zero, so that it starts exactly at the linear model.

``linear_twin=True`` builds the *same* architecture with every non-linearity removed
(activations → Identity; for ``attention`` the softmax mixing becomes uniform mixing and
LayerNorm becomes Identity) and trains it from scratch: the test-set difference between a
network and its twin estimates the non-linear gain (Kelemen et al.). Dropout and BatchNorm are
kept (BatchNorm is affine at prediction time), so the twin is an affine function of its input.

All models standardise genotypes with training means/sds (missing → mean), optionally
pre-screen variants inside ``fit`` (``top_k`` / ``p_threshold`` via
:func:`deepprs.models.screening.screen_variants`), hold out ``val_fraction`` of the training
samples for early stopping, enter covariates both as extra network inputs and as a linear
offset, and average ``n_seeds`` independently initialised networks.  Quantitative traits are
fitted with MSE on the standardised trait; binary (0/1) traits with BCE-with-logits and
``pos_weight = n_controls / n_cases`` (class balancing; the logits' intercept is therefore the
balanced one); ``predict`` returns trait-scale values or logits.

Training recipe options shared by every network (and, unchanged, by its linear twin):
``optimizer`` ('adam' default, 'sgd' = SGD + momentum 0.9 as in Kelemen et al.), ``ema_decay``
(Polyak / exponential moving average of the weights, used for validation, early stopping and the
returned model), ``tune_grid`` (in-fold search over lr / weight_decay / optimizer / ema_decay /
dropout / batch_size on the validation split) and ``refit`` (retrain on the whole training set for
the early-stopped epoch count).  On additive simulated traits the twin trained with
``optimizer='sgd', ema_decay=0.999`` matches ridge far more closely than with Adam
(benchmarks/RESULTS_prs_acceptance.md): early-stopped gradient descent on a linear model follows
(approximately) the ridge path, Adam's per-coordinate rescaling does not, and averaging removes
the mini-batch noise of the last iterates.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepprs.errors import InputError
from deepprs.io.packed import PackedGenotypes
from deepprs.models.base import (
    GenotypeInput,
    PRSModel,
    is_binary_target,
    make_model,
    n_samples_of,
    n_variants_of,
    register_model,
    variant_stats,
)
from deepprs.train.trainer import GenotypeBatcher, _score, load_checkpoint, subset_variants, train_network
from deepprs.utils.device import resolve_device
from deepprs.utils.runlog import estimate_memory

NONLINEAR_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.Softplus,
    nn.GELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.ELU,
    nn.LeakyReLU,
    nn.SiLU,
    nn.Softmax,
    nn.LayerNorm,
    nn.MultiheadAttention,
    nn.PReLU,
    nn.SELU,
    nn.Mish,
)
"""Module types a linear twin must not contain (tests inspect ``module.modules()``)."""


def activation(kind: str, linear: bool) -> nn.Module:
    """The activation ``kind``, or Identity for a linear twin."""
    if linear:
        return nn.Identity()
    choices = {"softplus": nn.Softplus, "relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "tanh": nn.Tanh}
    if kind not in choices:
        raise InputError(f"activation must be one of {', '.join(choices)}, got {kind!r}")
    return choices[kind]()


def dense_stack(
    n_in: int,
    hidden: list[int] | tuple[int, ...],
    *,
    dropout: float,
    act: str,
    linear: bool,
    batchnorm: bool = True,
) -> tuple[nn.Sequential, int]:
    """Linear → [BatchNorm] → activation → Dropout blocks; returns (stack, output width)."""
    layers: list[nn.Module] = []
    width = n_in
    for size in hidden:
        layers.append(nn.Linear(width, int(size)))
        if batchnorm:
            layers.append(nn.BatchNorm1d(int(size)))
        layers.append(activation(act, linear))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    return nn.Sequential(*layers), width


def _join(x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, side], dim=1) if side.shape[1] else x


class CovariateOffset(nn.Module):
    """Linear covariate effect added to the network output (zero when there are no covariates)."""

    def __init__(self, n_covariates: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_covariates, 1, bias=False) if n_covariates else None
        if self.linear is not None:
            nn.init.zeros_(self.linear.weight)

    def forward(self, side: torch.Tensor) -> torch.Tensor | float:
        return 0.0 if self.linear is None else self.linear(side).squeeze(-1)


# -- networks ----------------------------------------------------------------------------------
class MLPNet(nn.Module):
    """Genotypes (+ covariates) → dense stack → 1 output, plus a linear covariate offset."""

    def __init__(
        self,
        n_inputs: int,
        n_covariates: int,
        *,
        hidden=(100, 50, 25),
        dropout: float = 0.3,
        act: str = "softplus",
        linear: bool = False,
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        self.body, width = dense_stack(
            n_inputs + n_covariates, hidden, dropout=dropout, act=act, linear=linear, batchnorm=batchnorm
        )
        self.out = nn.Linear(width, 1)
        self.offset = CovariateOffset(n_covariates)

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(_join(x, side))).squeeze(-1) + self.offset(side)


class LocallyConnected(nn.Module):
    """Unshared weights per window of ``window`` adjacent variants: (B, M) → (B, n_windows, channels).

    ``out[b, w, c] = sum_k x[b, w*window + k] * weight[w, k, c] + bias[w, c]`` (zero-padded at the end);
    a 1-D convolution with stride = kernel = ``window`` but with a separate kernel per window.
    """

    def __init__(self, n_inputs: int, window: int, channels: int) -> None:
        super().__init__()
        self.window = max(1, min(int(window), n_inputs))
        self.n_windows = math.ceil(n_inputs / self.window)
        self.pad = self.n_windows * self.window - n_inputs
        self.weight = nn.Parameter(torch.randn(self.n_windows, self.window, channels) / math.sqrt(self.window))
        self.bias = nn.Parameter(torch.zeros(self.n_windows, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (0, self.pad))
        x = x.reshape(x.shape[0], self.n_windows, self.window)
        return torch.einsum("bwk,wkc->bwc", x, self.weight) + self.bias


class LCNNet(nn.Module):
    """Locally-connected layer over variant windows → BatchNorm → activation → dense head."""

    def __init__(
        self,
        n_inputs: int,
        n_covariates: int,
        *,
        window: int = 20,
        channels: int = 4,
        hidden=(64,),
        dropout: float = 0.3,
        act: str = "softplus",
        linear: bool = False,
    ) -> None:
        super().__init__()
        self.local = LocallyConnected(n_inputs, window, channels)
        n_local = self.local.n_windows * channels
        self.local_norm = nn.BatchNorm1d(n_local)
        self.local_act = activation(act, linear)
        self.local_drop = nn.Dropout(dropout)
        self.head, width = dense_stack(n_local + n_covariates, hidden, dropout=dropout, act=act, linear=linear)
        self.out = nn.Linear(width, 1)
        self.offset = CovariateOffset(n_covariates)

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        h = self.local(x).flatten(1)
        h = self.local_drop(self.local_act(self.local_norm(h)))
        return self.out(self.head(_join(h, side))).squeeze(-1) + self.offset(side)


class SoftmaxMixing(nn.Module):
    """Scaled dot-product attention, ``softmax(q kᵀ / sqrt(d)) v`` (fused kernel)."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)


class UniformMixing(nn.Module):
    """Attention weights 1/T for every token pair (the mean of the values): the linear twin of
    :class:`SoftmaxMixing`."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return v.mean(dim=-2, keepdim=True).expand_as(v)


NONLINEAR_MODULES = (*NONLINEAR_MODULES, SoftmaxMixing)


class WindowAttentionBlock(nn.Module):
    """Pre-norm transformer block (multi-head self-attention + feed-forward), twin-able."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, act: str, linear: bool) -> None:
        super().__init__()
        if d_model % n_heads:
            raise InputError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        self.n_heads = n_heads
        self.norm1 = nn.Identity() if linear else nn.LayerNorm(d_model)
        self.norm2 = nn.Identity() if linear else nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mix = UniformMixing() if linear else SoftmaxMixing()
        self.drop = nn.Dropout(dropout)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_ff), activation(act, linear), nn.Dropout(dropout), nn.Linear(d_ff, d_model)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, n_tokens, d_model = tokens.shape
        head_dim = d_model // self.n_heads
        q, k, v = self.qkv(self.norm1(tokens)).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, n_tokens, self.n_heads, head_dim).transpose(1, 2) for t in (q, k, v))
        attended = self.mix(q, k, v).transpose(1, 2).reshape(batch, n_tokens, d_model)
        tokens = tokens + self.drop(self.proj(attended))
        return tokens + self.drop(self.ff(self.norm2(tokens)))


class AttentionNet(nn.Module):
    """Tokens = windows of adjacent variants, each projected (own weights) to ``d_model``;
    transformer blocks; mean pooling over tokens; dense head with covariates."""

    def __init__(
        self,
        n_inputs: int,
        n_covariates: int,
        *,
        window: int = 50,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 2,
        d_ff: int = 64,
        hidden=(32,),
        dropout: float = 0.1,
        act: str = "gelu",
        linear: bool = False,
    ) -> None:
        super().__init__()
        self.tokens = LocallyConnected(n_inputs, window, d_model)
        self.blocks = nn.Sequential(
            *[WindowAttentionBlock(d_model, n_heads, d_ff, dropout, act, linear) for _ in range(n_layers)]
        )
        self.norm = nn.Identity() if linear else nn.LayerNorm(d_model)
        self.head, width = dense_stack(d_model + n_covariates, hidden, dropout=dropout, act=act, linear=linear)
        self.out = nn.Linear(width, 1)
        self.offset = CovariateOffset(n_covariates)

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        pooled = self.norm(self.blocks(self.tokens(x))).mean(dim=1)
        return self.out(self.head(_join(pooled, side))).squeeze(-1) + self.offset(side)


class VAENet(nn.Module):
    """VAE-PRS: encoder → (μ, log σ²) → decoder reconstructs the genotypes; the trait head reads
    the encoder output (and the covariates)."""

    def __init__(
        self,
        n_inputs: int,
        n_covariates: int,
        *,
        widths=(512, 256, 128),
        latent: int = 64,
        dropout: float = 0.0,
        act: str = "relu",
        linear: bool = False,
    ) -> None:
        super().__init__()
        w1, w2, w3 = (int(w) for w in widths)
        self.encoder, _ = dense_stack(n_inputs, (w1, w2, w3), dropout=dropout, act=act, linear=linear, batchnorm=False)
        self.mu = nn.Linear(w3, latent)
        self.logvar = nn.Linear(w3, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, w3),
            activation(act, linear),
            nn.Linear(w3, w1),
            activation(act, linear),
            nn.Linear(w1, n_inputs),
        )
        self.head = nn.Linear(w3 + n_covariates, 1)
        self.offset = CovariateOffset(n_covariates)

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return self.head(_join(self.encoder(x), side)).squeeze(-1) + self.offset(side)

    def full(
        self, x: torch.Tensor, side: torch.Tensor, sample: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prediction, reconstruction, μ, log σ²); ``sample`` draws z by reparameterisation."""
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h).clamp(-20.0, 20.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        prediction = self.head(_join(h, side)).squeeze(-1) + self.offset(side)
        return prediction, self.decoder(z), mu, logvar


class HybridNet(nn.Module):
    """``scale · skip + shift + correction(x, covariates)``; the correction's last layer starts at 0.

    ``side[:, 0]`` is the linear (skip) score on the training scale, ``side[:, 1:]`` the covariates.
    """

    def __init__(
        self,
        n_inputs: int,
        n_side: int,
        *,
        hidden=(64, 32),
        dropout: float = 0.3,
        act: str = "softplus",
        linear: bool = False,
    ) -> None:
        super().__init__()
        self.skip_scale = nn.Parameter(torch.ones(()))
        self.skip_shift = nn.Parameter(torch.zeros(()))
        self.correction = MLPNet(n_inputs, n_side - 1, hidden=hidden, dropout=dropout, act=act, linear=linear)
        nn.init.zeros_(self.correction.out.weight)
        nn.init.zeros_(self.correction.out.bias)

    def delta(self, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """Output minus the skip score: exactly 0 at initialisation."""
        skip = side[:, 0]
        return (self.skip_scale - 1.0) * skip + self.skip_shift + self.correction(x, side[:, 1:])

    def forward(self, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return side[:, 0] + self.delta(x, side)


# -- the estimators ----------------------------------------------------------------------------
class NeuralPRS(PRSModel):
    """Shared ``fit`` / ``predict`` / persistence for every network model (see module docstring).

    Common parameters
    -----------------
    linear_twin : bool
        Same architecture with all non-linearities removed, trained from scratch.
    top_k, p_threshold : optional
        In-fold pre-screening by marginal association (``screen_variants``), on the
        gradient-step samples only (not the validation split).
    epochs, batch_size, lr, weight_decay, optimizer ('adam' | 'adamw' | 'sgd'), patience
        Training; early stopping on a validation split of ``val_fraction`` of the training samples.
    n_seeds : int
        Ensemble size (networks with seeds ``random_state + i``; predictions averaged).
    device : str
        'auto' (CUDA when available), 'cpu' or 'cuda'; ``amp`` ('bf16'/'fp16'/True) autocasts on CUDA.
    checkpoint_dir, resume
        Per-member checkpoints in ``checkpoint_dir/member<i>`` (refit phase:
        ``member<i>/refit``); ``resume=True`` continues them.
    ema_decay : float, optional
        Polyak averaging: validation, early stopping and the returned weights use an exponential
        moving average of the weights over optimizer steps (``train_network(ema_decay=...)``;
        0.999 with the warm-up ``min(d, (1 + t) / (10 + t))`` averages roughly the last 10 % of
        the steps).  It removes most of the iterate noise that separates an SGD-trained linear
        twin from the exact ridge solution.
    tune_grid : dict, optional
        In-fold tuning of the training recipe, e.g. ``{"weight_decay": [1e-4, 0.01, 0.1]}``
        (keys from ``NeuralPRS.TUNABLE``: lr, weight_decay, optimizer, ema_decay, dropout,
        batch_size; the product grid is searched).  Member 0 is trained with early stopping
        once per grid point on the gradient-step samples; the point with the lowest validation
        loss is used for every member and the refit (``best_params_``, ``tuning_``).  A linear
        twin tunes over the same grid, so it keeps the network's recipe.
    refit : bool
        After early stopping picks each member's best epoch count on the validation split,
        retrain it from scratch (same seed) on *all* training samples for that many epochs, so no
        training sample is left out of the final fit (``val_score_`` and the hybrid's
        ``hybrid_gain_`` stay those of the early-stopping networks on the validation split).
    task : 'auto' | 'regression' | 'binary'

    Fitted attributes
    -----------------
    networks_ : list of nn.Module
    selected_variants_ : ndarray of int, the input columns used (positions in the training X)
    center_, scale_ : ndarray, shape (n_variants_in_,)
        Training mean / sd of every input variant (missing dosages are imputed at ``center_``);
        the network sees ``(dosage - center_) / scale_`` of ``selected_variants_``.
    history_ : list of dict, per member and epoch (``member``, ``epoch``, losses, components)
        of the early-stopping (selection) phase
    refit_history_ : list of dict, the same for the ``refit`` phase (no validation losses)
    best_epochs_ : list of int
    best_params_ : dict, the ``tune_grid`` point chosen (empty without a grid)
    tuning_ : list of dict, every grid point with its ``best_val_loss`` and ``best_epoch``
    val_score_ : float, R² (squared correlation) or AUC of the ensemble on the validation split
    task_ : 'regression' or 'binary'
    """

    is_linear = False
    keep_initial_state = False
    """Whether early stopping may return the untrained network (see ``train_network(keep_initial=...)``)."""

    # subclasses: build the network for n_inputs genotype columns and n_side side inputs
    def _build_network(self, n_inputs: int, n_side: int) -> nn.Module:
        raise NotImplementedError

    def _set_params(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            if key not in ("self", "__class__"):
                setattr(self, key, value)

    # -- losses --------------------------------------------------------------------------------
    def _label_loss(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task_ == "binary":
            pos_weight = torch.as_tensor(self.pos_weight_, dtype=prediction.dtype, device=prediction.device)
            return F.binary_cross_entropy_with_logits(prediction.float(), y, pos_weight=pos_weight)
        return F.mse_loss(prediction.float(), y)

    def _loss_fn(self):
        def loss(module: nn.Module, x: torch.Tensor, side: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self._label_loss(module(x, side), y)

        return loss

    def _val_loss_fn(self):
        return None

    # -- fit -----------------------------------------------------------------------------------
    def _check_inputs(
        self, X: GenotypeInput, y: np.ndarray | None, covariates: np.ndarray | None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        n = n_samples_of(X)
        if y is not None:
            y = np.asarray(y, dtype=np.float64).ravel()
            if y.shape[0] != n:
                raise InputError(f"{self.name}: y has {y.shape[0]} values but the genotypes have {n} samples")
        if covariates is not None:
            covariates = np.asarray(covariates, dtype=np.float64)
            if covariates.shape[0] != n:
                raise InputError(
                    f"{self.name}: covariates have {covariates.shape[0]} rows; the genotypes have {n} samples"
                )
            covariates = covariates.reshape(n, -1)
            if not np.isfinite(covariates).all():
                raise InputError(f"{self.name}: covariates contain missing values; drop or impute those samples")
        return y, covariates

    def _split(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Seeded (stratified for binary traits) validation split of the training samples."""
        n = len(y)
        rng = np.random.default_rng(self.random_state)
        if not self.val_fraction or self.val_fraction <= 0:
            return np.arange(n), np.array([], dtype=np.int64)
        groups = [np.flatnonzero(y == 0), np.flatnonzero(y == 1)] if self.task_ == "binary" else [np.arange(n)]
        val = []
        for group in groups:
            n_val = int(round(self.val_fraction * len(group)))
            val.append(rng.permutation(group)[:n_val])
        val_index = np.sort(np.concatenate(val)).astype(np.int64)
        train_index = np.setdiff1d(np.arange(n), val_index)
        if len(train_index) < 2:
            raise InputError(f"{self.name}: too few training samples ({n}) for val_fraction {self.val_fraction}")
        return train_index, val_index

    def _side_inputs(self, covariates: np.ndarray | None, n: int) -> np.ndarray:
        if covariates is None or self.n_covariates_ == 0:
            return np.zeros((n, 0), dtype=np.float32)
        return ((covariates - self.covariate_mean_) / self.covariate_sd_).astype(np.float32)

    def _prepare_side(self, X: GenotypeInput, y: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
        """Side inputs during training (the hybrid adds its out-of-fold skip score)."""
        return self._side_inputs(covariates, len(y))

    def fit(self, X: GenotypeInput, y: np.ndarray, *, covariates: np.ndarray | None = None) -> NeuralPRS:
        """Fit on training samples only (screening, standardisation and the validation split inside).

        Parameters
        ----------
        X : PackedGenotypes or ndarray, shape (n_samples, n_variants)
        y : ndarray, shape (n_samples,); NaN samples are dropped
        covariates : ndarray, shape (n_samples, n_covariates), optional
        """
        y, covariates = self._check_inputs(X, y, covariates)
        observed = np.isfinite(y)
        if not observed.all():
            rows = np.flatnonzero(observed)
            X = X.subset_samples(rows) if isinstance(X, PackedGenotypes) else np.asarray(X)[rows]
            y = y[rows]
            covariates = None if covariates is None else covariates[rows]
        if len(y) < 4:
            raise InputError(f"{self.name}: need at least 4 samples with a phenotype, got {len(y)}")
        if self.task not in ("auto", "regression", "binary"):
            raise InputError(f"task must be 'auto', 'regression' or 'binary', got {self.task!r}")
        binary = is_binary_target(y)
        if self.task == "binary" and not binary:
            raise InputError(f"{self.name}: task='binary' needs a 0/1 phenotype")
        self.task_ = "binary" if (self.task == "binary" or (self.task == "auto" and binary)) else "regression"
        self.n_variants_in_ = n_variants_of(X)
        self.n_covariates_ = 0 if covariates is None else covariates.shape[1]
        if covariates is not None:
            self.covariate_mean_ = covariates.mean(0)
            sd = covariates.std(0)
            self.covariate_sd_ = np.where(sd > 1e-12, sd, 1.0)
        else:
            self.covariate_mean_ = np.zeros(0)
            self.covariate_sd_ = np.ones(0)

        train_index, val_index = self._split(y)
        if self.top_k is not None or self.p_threshold is not None:
            from deepprs.models.screening import screen_variants

            # screen on the gradient-step samples only: variants chosen with the validation labels
            # would make the early-stopping loss optimistic (selection leakage)
            rows = train_index
            X_screen = X.subset_samples(rows) if isinstance(X, PackedGenotypes) else np.asarray(X)[rows]
            self.selected_variants_ = np.asarray(
                screen_variants(
                    X_screen,
                    y[rows],
                    covariates=None if covariates is None else covariates[rows],
                    top_k=self.top_k,
                    p_threshold=self.p_threshold,
                ),
                dtype=np.int64,
            )
        else:
            self.selected_variants_ = np.arange(self.n_variants_in_, dtype=np.int64)
        X_used = (
            X if len(self.selected_variants_) == self.n_variants_in_ else subset_variants(X, self.selected_variants_)
        )
        self.center_, self.scale_ = variant_stats(X)

        if self.task_ == "binary":
            n_pos = float(y[train_index].sum())
            self.pos_weight_ = (len(train_index) - n_pos) / max(n_pos, 1.0)
            self.y_mean_, self.y_sd_ = 0.0, 1.0
            target = y
        else:
            self.pos_weight_ = 1.0
            self.y_mean_ = float(y.mean())
            self.y_sd_ = float(y.std()) or 1.0
            target = (y - self.y_mean_) / self.y_sd_
        side = self._prepare_side(X, y, covariates)
        device = resolve_device(self.device)
        n_inputs = len(self.selected_variants_)
        genotype_bytes = X_used.nbytes if isinstance(X_used, PackedGenotypes) else X_used.size * 4
        estimate_memory(
            f"{self.name} training on {device} (genotypes + lookup table + 4 batch copies)",
            genotype_bytes + n_inputs * 1024 + 16 * int(self.batch_size) * n_inputs,
        )

        self.networks_, self.history_, self.best_epochs_ = [], [], []
        self.refit_history_: list[dict[str, float]] = []
        seed0 = 0 if self.random_state is None else int(self.random_state)
        grid = self._tuning_grid()
        if grid and not len(val_index):
            raise InputError(f"{self.name}: tune_grid needs a validation split (val_fraction > 0)")
        self.tuning_: list[dict[str, Any]] = []
        first: tuple[nn.Module, Any] | None = None
        self.best_params_: dict[str, Any] = {}
        if grid and len(val_index):
            # in-fold tuning: member 0 trained once per grid point, the lowest validation loss wins
            best_loss = math.inf
            for point in grid:
                with self._overridden(point):
                    network, result = self._train_member(0, seed0, X_used, target, side, train_index, val_index, device)
                record = dict(point, best_val_loss=float(result.best_val_loss), best_epoch=int(result.best_epoch))
                self.tuning_.append(record)
                if result.best_val_loss < best_loss:
                    best_loss, first, self.best_params_ = result.best_val_loss, (network, result), dict(point)
        with self._overridden(self.best_params_):
            for member in range(int(self.n_seeds)):
                if member == 0 and first is not None:
                    network, result = first
                else:
                    network, result = self._train_member(
                        member, seed0, X_used, target, side, train_index, val_index, device
                    )
                self.networks_.append(network)
                self.history_.extend(dict(record, member=member) for record in result.history)
                self.best_epochs_.append(result.best_epoch)
            self.val_score_ = float("nan")
            if len(val_index) > 1:
                val_output = self._ensemble_output(X_used, side, val_index, None)
                self.val_score_ = _score(y[val_index], val_output, self.task_ == "binary")
            # scored with the early-stopping networks: after the refit the validation samples are seen
            self._after_fit(X_used, y, side, val_index)
            if getattr(self, "refit", False) and len(val_index):
                self._refit_all(X_used, target, side, seed0, device)
        return self

    TUNABLE = ("lr", "weight_decay", "optimizer", "ema_decay", "dropout", "batch_size")
    """Parameters ``tune_grid`` may search (training recipe only: the architecture stays fixed)."""

    def _tuning_grid(self) -> list[dict[str, Any]]:
        """The product grid of ``tune_grid`` (empty without one)."""
        import itertools

        spec = self.tune_grid or {}
        if not spec:
            return []
        unknown = sorted(set(spec) - set(self.TUNABLE))
        if unknown:
            raise InputError(
                f"{self.name}: tune_grid cannot search {', '.join(unknown)}; choose from {', '.join(self.TUNABLE)}"
            )
        names = sorted(spec)
        values = [list(spec[name]) if isinstance(spec[name], (list, tuple)) else [spec[name]] for name in names]
        if any(len(v) == 0 for v in values):
            raise InputError(f"{self.name}: tune_grid has an empty list of values")
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]

    @contextlib.contextmanager
    def _overridden(self, params: dict[str, Any]):
        """Temporarily set hyper-parameters (the tuned values) on the estimator."""
        saved = {key: getattr(self, key) for key in params}
        try:
            for key, value in params.items():
                setattr(self, key, value)
            yield
        finally:
            for key, value in saved.items():
                setattr(self, key, value)

    def _train_member(
        self,
        member: int,
        seed0: int,
        X_used: GenotypeInput,
        target: np.ndarray,
        side: np.ndarray,
        train_index: np.ndarray,
        val_index: np.ndarray,
        device,
    ):
        """Build member ``member`` (seed ``seed0 + member``) and train it with early stopping."""
        seed = seed0 + member
        torch.manual_seed(seed)
        network = self._build_network(len(self.selected_variants_), side.shape[1])
        checkpoint = None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / f"member{member}"
        if checkpoint is not None and self.tune_grid:
            checkpoint = checkpoint / "_".join(f"{k}{v}" for k, v in sorted(self._current_tuned().items()))
        result = train_network(
            network,
            self._loss_fn(),
            X_used,
            target,
            covariates=side,
            train_index=train_index,
            val_index=val_index,
            epochs=int(self.epochs),
            patience=self.patience,
            seed=seed,
            checkpoint_dir=checkpoint,
            resume=self.resume,
            keep_initial=self.keep_initial_state,
            **self._recipe(device),
        )
        return network, result

    def _recipe(self, device) -> dict[str, Any]:
        """``train_network`` arguments shared by the early-stopping and the refit phase."""
        return {
            "center": self.center_[self.selected_variants_],
            "scale": self.scale_[self.selected_variants_],
            "batch_size": int(self.batch_size),
            "optimizer": self.optimizer,
            "lr": float(self.lr),
            "weight_decay": float(self.weight_decay),
            "device": device,
            "amp": self.amp,
            "val_loss_fn": self._val_loss_fn(),
            "ema_decay": self.ema_decay,
        }

    def _current_tuned(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in (self.tune_grid or {})}

    def _refit_all(self, X_used: GenotypeInput, target: np.ndarray, side: np.ndarray, seed0: int, device) -> None:
        """Retrain every member from scratch on all training samples for its best epoch count.

        A member whose best state was its initial one (``best_epochs_ == -1``, the hybrid's
        exact linear path) is kept as it is.  With ``checkpoint_dir`` this phase checkpoints to
        ``checkpoint_dir/member<i>/refit`` and ``resume=True`` continues it too.
        """
        all_index = np.arange(len(target), dtype=np.int64)
        for member, best_epoch in enumerate(self.best_epochs_):
            if best_epoch < 0:
                continue
            seed = seed0 + member
            torch.manual_seed(seed)
            network = self._build_network(len(self.selected_variants_), side.shape[1])
            checkpoint = (
                None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / f"member{member}" / "refit"
            )
            resume = bool(self.resume) and checkpoint is not None
            if resume:
                # a refit checkpoint for another epoch count (the selection phase changed) is stale
                loaded = load_checkpoint(checkpoint)
                resume = loaded is not None and int(loaded[1].get("epochs", -1)) == int(best_epoch) + 1
            result = train_network(
                network,
                self._loss_fn(),
                X_used,
                target,
                covariates=side,
                train_index=all_index,
                val_index=None,
                epochs=int(best_epoch) + 1,
                patience=None,
                seed=seed,
                checkpoint_dir=checkpoint,
                resume=resume,
                **self._recipe(device),
            )
            self.networks_[member] = network
            self.refit_history_.extend(dict(record, member=member) for record in result.history)

    def _after_fit(self, X_used: GenotypeInput, y: np.ndarray, side: np.ndarray, val_index: np.ndarray) -> None:
        pass

    # -- predict -------------------------------------------------------------------------------
    def _member_output(self, network: nn.Module, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return network(x, side)

    def _ensemble_output(
        self,
        X: GenotypeInput,
        side: np.ndarray,
        rows: np.ndarray | None,
        variant_index: np.ndarray | None,
        batch_size: int = 2048,
    ) -> np.ndarray:
        """Mean network output (standardised trait scale / logits) over members, float64."""
        device = next(self.networks_[0].parameters()).device
        selected = self.selected_variants_
        batcher = GenotypeBatcher(
            X, self.center_[selected], self.scale_[selected], device=device, variant_index=variant_index
        )
        rows = np.arange(n_samples_of(X)) if rows is None else np.asarray(rows)
        side_t = torch.as_tensor(side, dtype=torch.float32)
        out = np.zeros(len(rows))
        for network in self.networks_:
            network.eval()
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                x = batcher(batch)
                side_batch = side_t[torch.as_tensor(batch)].to(device)
                total = sum(self._member_output(net, x, side_batch).double() for net in self.networks_)
                out[start : start + len(batch)] = (total / len(self.networks_)).cpu().numpy()
        return out

    def _predict_side(self, X: GenotypeInput, covariates: np.ndarray | None) -> np.ndarray:
        return self._side_inputs(covariates, n_samples_of(X))

    def predict(self, X: GenotypeInput, *, covariates: np.ndarray | None = None) -> np.ndarray:
        """Trait-scale prediction (quantitative) or log-odds (binary), shape (n_samples,)."""
        self.check_is_fitted()
        _, covariates = self._check_inputs(X, None, covariates)
        if n_variants_of(X) != self.n_variants_in_:
            raise InputError(
                f"{self.name}: genotypes have {n_variants_of(X)} variants; the model was fitted "
                f"on {self.n_variants_in_}"
            )
        if self.n_covariates_ and (covariates is None or covariates.shape[1] != self.n_covariates_):
            raise InputError(
                f"{self.name}: the model was fitted with {self.n_covariates_} covariates; pass the same "
                "covariate columns to predict"
            )
        side = self._predict_side(X, covariates)
        variant_index = None if len(self.selected_variants_) == self.n_variants_in_ else self.selected_variants_
        output = self._ensemble_output(X, side, None, variant_index)
        return self.y_mean_ + self.y_sd_ * output

    # -- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        self.check_is_fitted()
        state = {
            "center": torch.as_tensor(np.asarray(self.center_, np.float64)),
            "scale": torch.as_tensor(np.asarray(self.scale_, np.float64)),
            "selected_variants": torch.as_tensor(np.asarray(self.selected_variants_, np.int64)),
            "covariate_mean": torch.as_tensor(np.asarray(self.covariate_mean_, np.float64)),
            "covariate_sd": torch.as_tensor(np.asarray(self.covariate_sd_, np.float64)),
        }
        for member, network in enumerate(self.networks_):
            for key, value in network.state_dict().items():
                state[f"member{member}.{key}"] = value.detach().cpu().contiguous()
        return state

    def extra_metadata(self) -> dict[str, Any]:
        return {
            "task": self.task_,
            "n_variants_in": int(self.n_variants_in_),
            "n_covariates": int(self.n_covariates_),
            "n_side": int(self._n_side()),
            "y_mean": float(self.y_mean_),
            "y_sd": float(self.y_sd_),
            "pos_weight": float(self.pos_weight_),
            "n_members": len(self.networks_),
            "best_epochs": [int(e) for e in self.best_epochs_],
            "val_score": float(self.val_score_),
            "history": self.history_,
            "refit_history": getattr(self, "refit_history_", []),
            "best_params": getattr(self, "best_params_", {}),
            "tuning": getattr(self, "tuning_", []),
        }

    def _n_side(self) -> int:
        return int(self.n_covariates_)

    def load_state_dict(self, state: dict[str, torch.Tensor], metadata: dict[str, Any]) -> NeuralPRS:
        self.task_ = metadata["task"]
        self.n_variants_in_ = int(metadata["n_variants_in"])
        self.n_covariates_ = int(metadata["n_covariates"])
        self.y_mean_, self.y_sd_ = float(metadata["y_mean"]), float(metadata["y_sd"])
        self.pos_weight_ = float(metadata.get("pos_weight", 1.0))
        self.best_epochs_ = list(metadata.get("best_epochs", []))
        self.val_score_ = float(metadata.get("val_score", float("nan")))
        self.history_ = list(metadata.get("history", []))
        self.refit_history_ = list(metadata.get("refit_history", []))
        self.best_params_ = dict(metadata.get("best_params", {}))
        self.tuning_ = list(metadata.get("tuning", []))
        self.center_ = state["center"].numpy().astype(np.float64)
        self.scale_ = state["scale"].numpy().astype(np.float64)
        self.selected_variants_ = state["selected_variants"].numpy().astype(np.int64)
        self.covariate_mean_ = state["covariate_mean"].numpy().astype(np.float64)
        self.covariate_sd_ = state["covariate_sd"].numpy().astype(np.float64)
        device = resolve_device(self.device)
        self.networks_ = []
        for member in range(int(metadata["n_members"])):
            network = self._build_network(len(self.selected_variants_), int(metadata["n_side"]))
            prefix = f"member{member}."
            network.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
            self.networks_.append(network.to(device).eval())
        return self


def _common_doc(cls):
    cls.__doc__ = (cls.__doc__ or "") + "\n    Common parameters: see :class:`NeuralPRS`.\n"
    return cls


@register_model("mlp")
@_common_doc
class MLPPRS(NeuralPRS):
    """Knet-style MLP (Kelemen et al. 2025): hidden 100 → 50 → 25, BatchNorm, Softplus, dropout 0.3.

    Kelemen et al. trained with SGD + momentum (``optimizer='sgd'``); the default here is Adam,
    which needs less learning-rate tuning.  For a linear twin that matches ridge on additive
    traits use ``optimizer='sgd', ema_decay=0.999`` with lr about 1e-2 at M of a few hundred and
    3e-4 at M of a few thousand (or ``tune_grid={"lr": [...]}``); see the module docstring.
    """

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] | list[int] = (100, 50, 25),
        dropout: float = 0.3,
        activation: str = "softplus",
        batchnorm: bool = True,
        linear_twin: bool = False,
        top_k: int | None = None,
        p_threshold: float | None = None,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        optimizer: str = "adam",
        patience: int | None = 12,
        val_fraction: float = 0.2,
        n_seeds: int = 1,
        device: str = "auto",
        amp: bool | str = False,
        random_state: int | None = 0,
        checkpoint_dir: str | None = None,
        resume: bool = False,
        refit: bool = True,
        ema_decay: float | None = None,
        tune_grid: dict[str, list[Any]] | None = None,
        task: str = "auto",
    ) -> None:
        self._set_params(locals())

    def _build_network(self, n_inputs: int, n_side: int) -> nn.Module:
        return MLPNet(
            n_inputs,
            n_side,
            hidden=tuple(self.hidden),
            dropout=self.dropout,
            act=self.activation,
            linear=self.linear_twin,
            batchnorm=self.batchnorm,
        )


@register_model("lcn")
@_common_doc
class LCNPRS(NeuralPRS):
    """Locally-connected network over windows of ``window`` adjacent variants (genome order):
    per-window weights to ``channels`` features, BatchNorm, activation, then a dense head."""

    def __init__(
        self,
        *,
        window: int = 20,
        channels: int = 4,
        hidden: tuple[int, ...] | list[int] = (64,),
        dropout: float = 0.3,
        activation: str = "softplus",
        linear_twin: bool = False,
        top_k: int | None = None,
        p_threshold: float | None = None,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        optimizer: str = "adam",
        patience: int | None = 10,
        val_fraction: float = 0.2,
        n_seeds: int = 1,
        device: str = "auto",
        amp: bool | str = False,
        random_state: int | None = 0,
        checkpoint_dir: str | None = None,
        resume: bool = False,
        refit: bool = True,
        ema_decay: float | None = None,
        tune_grid: dict[str, list[Any]] | None = None,
        task: str = "auto",
    ) -> None:
        self._set_params(locals())

    def _build_network(self, n_inputs: int, n_side: int) -> nn.Module:
        return LCNNet(
            n_inputs,
            n_side,
            window=self.window,
            channels=self.channels,
            hidden=tuple(self.hidden),
            dropout=self.dropout,
            act=self.activation,
            linear=self.linear_twin,
        )


@register_model("attention")
@_common_doc
class AttentionPRS(NeuralPRS):
    """Small transformer over variant windows: tokens = windows of ``window`` adjacent variants
    projected to ``d_model``; ``n_layers`` pre-norm blocks; mean pooling; dense head."""

    def __init__(
        self,
        *,
        window: int = 50,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 2,
        d_ff: int = 64,
        hidden: tuple[int, ...] | list[int] = (32,),
        dropout: float = 0.1,
        activation: str = "gelu",
        linear_twin: bool = False,
        top_k: int | None = None,
        p_threshold: float | None = None,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        optimizer: str = "adam",
        patience: int | None = 10,
        val_fraction: float = 0.2,
        n_seeds: int = 1,
        device: str = "auto",
        amp: bool | str = False,
        random_state: int | None = 0,
        checkpoint_dir: str | None = None,
        resume: bool = False,
        refit: bool = True,
        ema_decay: float | None = None,
        tune_grid: dict[str, list[Any]] | None = None,
        task: str = "auto",
    ) -> None:
        self._set_params(locals())

    def _build_network(self, n_inputs: int, n_side: int) -> nn.Module:
        return AttentionNet(
            n_inputs,
            n_side,
            window=self.window,
            d_model=self.d_model,
            n_heads=self.n_heads,
            n_layers=self.n_layers,
            d_ff=self.d_ff,
            hidden=tuple(self.hidden),
            dropout=self.dropout,
            act=self.activation,
            linear=self.linear_twin,
        )


@register_model("vae")
@_common_doc
class VAEPRS(NeuralPRS):
    """VAE-PRS (Li et al. 2025; METHODS §4).

    Loss = (1 − α)(KL + reconstruction MSE) + α · label loss, α = ``alpha`` (0.7). KL is the mean
    over latent dimensions (and samples) of the Gaussian KL to N(0, 1), the reconstruction MSE
    the mean over standardised genotypes, so the two are on comparable per-unit scales.  Early
    stopping uses the label loss on the validation split. ``history_`` holds ``train_kl``,
    ``train_recon``, ``train_label`` (and ``val_*``) per epoch.

    ``scale_widths=True`` shrinks (512, 256, 128) and the latent size 64 proportionally when there
    are fewer than 1,024 input variants (factor M / 1,024, at least 8 units per layer).
    The paper's second head (trait log-variance) is not implemented.
    """

    def __init__(
        self,
        *,
        widths: tuple[int, ...] | list[int] = (512, 256, 128),
        latent_dim: int = 64,
        alpha: float = 0.7,
        scale_widths: bool = True,
        dropout: float = 0.0,
        activation: str = "relu",
        linear_twin: bool = False,
        top_k: int | None = None,
        p_threshold: float | None = None,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        optimizer: str = "adam",
        patience: int | None = 10,
        val_fraction: float = 0.2,
        n_seeds: int = 1,
        device: str = "auto",
        amp: bool | str = False,
        random_state: int | None = 0,
        checkpoint_dir: str | None = None,
        resume: bool = False,
        refit: bool = True,
        ema_decay: float | None = None,
        tune_grid: dict[str, list[Any]] | None = None,
        task: str = "auto",
    ) -> None:
        self._set_params(locals())

    def resolved_widths(self, n_inputs: int) -> tuple[tuple[int, int, int], int]:
        """Encoder widths and latent size used for ``n_inputs`` variants."""
        widths = tuple(int(w) for w in self.widths)
        latent = int(self.latent_dim)
        if self.scale_widths and n_inputs < 1024:
            factor = n_inputs / 1024
            widths = tuple(max(8, int(round(w * factor))) for w in widths)
            latent = max(4, int(round(latent * factor)))
        return widths, latent  # type: ignore[return-value]

    def _build_network(self, n_inputs: int, n_side: int) -> nn.Module:
        widths, latent = self.resolved_widths(n_inputs)
        return VAENet(
            n_inputs,
            n_side,
            widths=widths,
            latent=latent,
            dropout=self.dropout,
            act=self.activation,
            linear=self.linear_twin,
        )

    def _vae_terms(
        self, module: VAENet, x: torch.Tensor, side: torch.Tensor, y: torch.Tensor, sample: bool
    ) -> dict[str, torch.Tensor]:
        prediction, reconstruction, mu, logvar = module.full(x, side, sample)
        kl = (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())).mean()
        recon = F.mse_loss(reconstruction.float(), x.float())
        label = self._label_loss(prediction, y)
        total = (1.0 - self.alpha) * (kl + recon) + self.alpha * label
        return {"total": total, "kl": kl, "recon": recon, "label": label}

    def _loss_fn(self):
        def loss(module, x, side, y):
            terms = self._vae_terms(module, x, side, y, sample=True)
            return terms["total"], {k: v.detach() for k, v in terms.items() if k != "total"}

        return loss

    def _val_loss_fn(self):
        def loss(module, x, side, y):
            terms = self._vae_terms(module, x, side, y, sample=False)
            return terms["label"], {k: v.detach() for k, v in terms.items()}

        return loss


@register_model("hybrid")
@_common_doc
class HybridPRS(NeuralPRS):
    """Linear score as a skip path plus a zero-initialised MLP correction.

    Inside ``fit``: the linear model (``linear_model``, default ``ridge``, with ``linear_params``)
    is fitted in ``linear_folds`` inner folds of the training samples to give *out-of-fold*
    scores (an in-sample fitted score is overfit), which feed the network as its skip input;
    it is then refitted on all training samples, and that fit gives the skip score at
    ``predict``.  The network outputs ``scale · skip + shift + correction`` with scale 1,
    shift 0 and the correction's last layer 0 at initialisation, so an untrained hybrid
    (``epochs=0``) predicts exactly the linear model.  Early stopping also scores this untrained
    state (``keep_initial_state``): when no epoch lowers the validation loss below it, the fitted
    hybrid is exactly the linear model (``best_epochs_`` holds -1).

    Keeping the linear path unless the network helps: after early stopping, the network's
    output is added with a weight ``delta_weight_`` in [0, 1] chosen on the validation split
    (grid of 21 values, lowest mean validation loss of ``skip + w · delta``), and ``w`` is set
    to 0 — the fitted hybrid *is* the linear model, bit for bit, and no refit runs — unless the
    mean per-sample loss reduction exceeds ``min_gain_se`` standard errors (a one-standard-error
    rule; the validation split also picked the epoch, so a gain within noise is not trusted).
    ``predict`` returns ``linear score + y_sd · w · delta``.  Without a validation split
    (``val_fraction=0``) there is nothing to decide on and ``w`` is 1.

    Fitted attributes (besides :class:`NeuralPRS`'s): ``linear_model_`` (the full-training
    linear model), ``linear_path_r2_`` (R², squared correlation, of the out-of-fold linear score
    on the validation split) and ``hybrid_gain_`` (the hybrid's R² minus ``linear_path_r2_`` on
    the same samples, with ``delta_weight_`` applied), ``delta_weight_`` and ``delta_gain_``
    (mean per-sample validation loss reduction of the unshrunk choice and its standard error).
    """

    keep_initial_state = True  # early stopping may keep the exact linear path (best_epochs_ = -1)

    def __init__(
        self,
        *,
        linear_model: str = "ridge",
        linear_params: dict[str, Any] | None = None,
        linear_folds: int = 5,
        min_gain_se: float = 2.0,
        hidden: tuple[int, ...] | list[int] = (64, 32),
        dropout: float = 0.3,
        activation: str = "softplus",
        linear_twin: bool = False,
        top_k: int | None = None,
        p_threshold: float | None = None,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        optimizer: str = "adam",
        patience: int | None = 10,
        val_fraction: float = 0.2,
        n_seeds: int = 1,
        device: str = "auto",
        amp: bool | str = False,
        random_state: int | None = 0,
        checkpoint_dir: str | None = None,
        resume: bool = False,
        refit: bool = True,
        ema_decay: float | None = None,
        tune_grid: dict[str, list[Any]] | None = None,
        task: str = "auto",
    ) -> None:
        self._set_params(locals())

    def _build_network(self, n_inputs: int, n_side: int) -> nn.Module:
        return HybridNet(
            n_inputs,
            n_side,
            hidden=tuple(self.hidden),
            dropout=self.dropout,
            act=self.activation,
            linear=self.linear_twin,
        )

    def _new_linear(self) -> PRSModel:
        params = dict(self.linear_params or {})
        model = make_model(self.linear_model, **params)
        if hasattr(model, "random_state") and "random_state" not in params:
            model.random_state = self.random_state
        return model

    def _skip_scale(self, score: np.ndarray) -> np.ndarray:
        return (score - self.y_mean_) / self.y_sd_

    def _prepare_side(self, X: GenotypeInput, y: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
        n = len(y)
        folds = max(2, int(self.linear_folds))
        rng = np.random.default_rng(None if self.random_state is None else int(self.random_state) + 7919)
        fold_of = rng.permutation(np.arange(n) % folds)
        oof = np.zeros(n)
        for fold in range(folds):
            held, kept = np.flatnonzero(fold_of == fold), np.flatnonzero(fold_of != fold)
            X_kept = X.subset_samples(kept) if isinstance(X, PackedGenotypes) else np.asarray(X)[kept]
            X_held = X.subset_samples(held) if isinstance(X, PackedGenotypes) else np.asarray(X)[held]
            model = self._new_linear().fit(X_kept, y[kept], covariates=None if covariates is None else covariates[kept])
            oof[held] = model.predict(X_held, covariates=None if covariates is None else covariates[held])
        self.linear_model_ = self._new_linear().fit(X, y, covariates=covariates)
        self.oof_linear_score_ = oof
        return np.column_stack([self._skip_scale(oof), self._side_inputs(covariates, n)]).astype(np.float32)

    def _n_side(self) -> int:
        return int(self.n_covariates_) + 1

    def _member_output(self, network: nn.Module, x: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        return network.delta(x, side)

    def _per_sample_loss(self, target: np.ndarray, output: np.ndarray) -> np.ndarray:
        """The training loss per sample: squared error (standardised trait) or weighted BCE on logits."""
        if self.task_ == "binary":
            log_p = -np.logaddexp(0.0, -output)
            log_q = -np.logaddexp(0.0, output)
            return -(self.pos_weight_ * target * log_p + (1.0 - target) * log_q)
        return (target - output) ** 2

    def _choose_delta_weight(
        self, target: np.ndarray, skip: np.ndarray, delta: np.ndarray
    ) -> tuple[float, float, float]:
        """Weight w in [0, 1] of the network delta on the validation split, and the loss gain.

        ``w`` minimises the mean validation loss of ``skip + w · delta`` over a grid of 21
        values; it is then set to 0 (the exact linear path) unless the mean per-sample loss
        reduction exceeds ``min_gain_se`` standard errors of that mean (a one-standard-error
        rule: the validation split also chose the epoch, so a small gain is mostly noise).
        Returns (w, mean gain, its standard error) for the chosen w before the rule.
        """
        base = self._per_sample_loss(target, skip)
        best_w, best_loss = 0.0, float(base.mean())
        for w in np.linspace(0.0, 1.0, 21)[1:]:
            loss = float(self._per_sample_loss(target, skip + w * delta).mean())
            if loss < best_loss - 1e-15:
                best_w, best_loss = float(w), loss
        gain = base - self._per_sample_loss(target, skip + best_w * delta)
        mean_gain = float(gain.mean())
        se = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else math.inf
        if best_w > 0 and not mean_gain > float(self.min_gain_se) * se:
            best_w = 0.0
        return best_w, mean_gain, se

    def _after_fit(self, X_used: GenotypeInput, y: np.ndarray, side: np.ndarray, val_index: np.ndarray) -> None:
        self.linear_path_r2_ = float("nan")
        self.hybrid_gain_ = float("nan")
        self.delta_weight_ = 1.0
        self.delta_gain_ = (float("nan"), float("nan"))
        if len(val_index) > 1:
            skip = self.oof_linear_score_[val_index]
            delta = self._ensemble_output(X_used, side, val_index, None)
            target = (y[val_index] - self.y_mean_) / self.y_sd_
            weight, mean_gain, se = self._choose_delta_weight(target, self._skip_scale(skip), delta)
            self.delta_weight_, self.delta_gain_ = weight, (mean_gain, se)
            hybrid = skip + self.y_sd_ * weight * delta
            self.linear_path_r2_ = _score(y[val_index], skip, self.task_ == "binary")
            self.hybrid_gain_ = _score(y[val_index], hybrid, self.task_ == "binary") - self.linear_path_r2_
        # the base class scored the delta alone; score the full hybrid output instead
        self.val_score_ = self.linear_path_r2_ + self.hybrid_gain_ if len(val_index) > 1 else float("nan")

    def _refit_all(self, X_used: GenotypeInput, target: np.ndarray, side: np.ndarray, seed0: int, device) -> None:
        if self.delta_weight_ == 0.0:
            return  # the linear path is kept exactly: no network to refit
        super()._refit_all(X_used, target, side, seed0, device)

    def predict(self, X: GenotypeInput, *, covariates: np.ndarray | None = None) -> np.ndarray:
        """``linear score + y_sd · delta``: exactly the linear model's prediction when delta = 0."""
        self.check_is_fitted()
        _, covariates = self._check_inputs(X, None, covariates)
        if n_variants_of(X) != self.n_variants_in_:
            raise InputError(
                f"{self.name}: genotypes have {n_variants_of(X)} variants; the model was fitted "
                f"on {self.n_variants_in_}"
            )
        linear_score = np.asarray(self.linear_model_.predict(X, covariates=covariates), dtype=np.float64)
        side = np.column_stack([self._skip_scale(linear_score), self._side_inputs(covariates, n_samples_of(X))]).astype(
            np.float32
        )
        variant_index = None if len(self.selected_variants_) == self.n_variants_in_ else self.selected_variants_
        weight = float(getattr(self, "delta_weight_", 1.0))
        if weight == 0.0:
            return linear_score  # exactly the linear path
        delta = self._ensemble_output(X, side, None, variant_index)
        return linear_score + self.y_sd_ * weight * delta

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        for key, value in self.linear_model_.state_dict().items():
            state[f"linear.{key}"] = torch.as_tensor(value)
        return state

    def extra_metadata(self) -> dict[str, Any]:
        meta = super().extra_metadata()
        meta.update(
            {
                "linear_name": self.linear_model_.name,
                "linear_params": self.linear_model_.get_params(),
                "linear_metadata": self.linear_model_.extra_metadata(),
                "linear_path_r2": float(self.linear_path_r2_),
                "hybrid_gain": float(self.hybrid_gain_),
                "delta_weight": float(self.delta_weight_),
            }
        )
        return meta

    def load_state_dict(self, state: dict[str, torch.Tensor], metadata: dict[str, Any]) -> HybridPRS:
        super().load_state_dict({k: v for k, v in state.items() if not k.startswith("linear.")}, metadata)
        linear = make_model(metadata["linear_name"], **metadata["linear_params"])
        self.linear_model_ = linear.load_state_dict(
            {k[7:]: v for k, v in state.items() if k.startswith("linear.")}, metadata["linear_metadata"]
        )
        self.linear_path_r2_ = float(metadata.get("linear_path_r2", float("nan")))
        self.hybrid_gain_ = float(metadata.get("hybrid_gain", float("nan")))
        self.delta_weight_ = float(metadata.get("delta_weight", 1.0))
        return self
