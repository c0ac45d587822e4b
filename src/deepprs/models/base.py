"""The one contract every polygenic-score model follows, and the name -> class registry.

Contract (scikit-learn style):

* ``__init__`` stores keyword hyper-parameters only (plus ``random_state``);
* ``fit(X, y, *, covariates=None)`` learns from *training samples only* — any variant
  pre-screening, standardisation and tuning happen inside ``fit`` — sets attributes ending
  in ``_`` and returns ``self``;
* ``predict(X, *, covariates=None)`` returns an ndarray of shape (n_samples,): the trait
  scale for quantitative traits, the log-odds (linear predictor) for binary traits;
* ``X`` is :class:`~deepprs.io.packed.PackedGenotypes` (preferred; rows = samples) or a dense
  samples × variants dosage array (NaN = missing). Dosages count the counted allele ``a1``.
* Linear models expose ``coef_`` (n_variants,), per counted allele on the *raw dosage*
  scale, ``center_`` (n_variants,) training means used to impute missing dosages, and
  ``intercept_``, so that ``predict = (dosage - center_) @ coef_ + intercept_ (+ covariates @ covariate_coef_)``
  and the weights export to plink2 / PGS Catalog.
* Persistence: ``state_dict()`` -> {name: tensor} (saved with safetensors) and
  ``get_params()`` / ``extra_metadata()`` -> JSON; never pickle.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
import torch

from deepprs.errors import InputError
from deepprs.io.packed import PackedGenotypes

GenotypeInput = PackedGenotypes | np.ndarray

MODEL_REGISTRY: dict[str, type[PRSModel]] = {}


def register_model(name: str):
    """Class decorator: make a model available by ``name`` (``--model NAME``)."""

    def decorate(cls: type[PRSModel]) -> type[PRSModel]:
        cls.name = name
        MODEL_REGISTRY[name] = cls
        return cls

    return decorate


def make_model(name: str, **params: Any) -> PRSModel:
    """Instantiate a registered model by name (importing the model modules on first use)."""
    import deepprs.models.linear  # noqa: F401  (registers ct, ridge, enet, lasso, bayesr)

    try:
        import deepprs.models.neural  # noqa: F401  (registers mlp, vae, lcn, attention, hybrid)
    except ImportError:
        pass
    if name not in MODEL_REGISTRY:
        raise InputError(f"unknown model {name!r}; choose from {', '.join(sorted(MODEL_REGISTRY))}")
    return MODEL_REGISTRY[name](**params)


def to_dense(X: GenotypeInput, sample_index: np.ndarray | None = None, *, center: np.ndarray | None = None,
             scale: np.ndarray | None = None, dtype: type = np.float32) -> np.ndarray:
    """Dense samples × variants float matrix from either input type.

    With ``center`` (and ``scale``) returns the standardised matrix with missing set to 0
    (imputed at the centre); otherwise raw dosages with NaN for missing.
    """
    if isinstance(X, PackedGenotypes):
        out = X.unpack(sample_index, center=None if center is None else torch.as_tensor(center),
                       scale=None if scale is None else torch.as_tensor(scale)).numpy()
        return out.astype(dtype, copy=False)
    dense = np.asarray(X, dtype=dtype)
    if sample_index is not None:
        dense = dense[sample_index]
    if center is not None:
        dense = dense - center.astype(dtype)
        if scale is not None:
            dense = dense / scale.astype(dtype)
        dense = np.where(np.isnan(dense), 0.0, dense).astype(dtype, copy=False)
    return dense


def n_samples_of(X: GenotypeInput) -> int:
    return X.n_samples if isinstance(X, PackedGenotypes) else int(np.asarray(X).shape[0])


def n_variants_of(X: GenotypeInput) -> int:
    return X.n_variants if isinstance(X, PackedGenotypes) else int(np.asarray(X).shape[1])


def variant_stats(X: GenotypeInput) -> tuple[np.ndarray, np.ndarray]:
    """Per-variant mean and sd over the (training) samples in ``X``; sd = 1 where monomorphic."""
    if isinstance(X, PackedGenotypes):
        return X.variant_stats()
    dense = np.asarray(X, dtype=np.float64)
    mean = np.nan_to_num(np.nanmean(dense, axis=0))
    sd = np.nan_to_num(np.nanstd(dense, axis=0, ddof=1))
    sd[sd < 1e-8] = 1.0
    return mean, sd


def is_binary_target(y: np.ndarray) -> bool:
    values = np.unique(y[~np.isnan(y)])
    return len(values) == 2 and set(values.tolist()) <= {0.0, 1.0}


class PRSModel:
    """Base class. Subclasses set ``is_linear`` and implement ``fit``/``predict``."""

    name: ClassVar[str] = "base"
    is_linear: ClassVar[bool] = True

    def get_params(self) -> dict[str, Any]:
        """Constructor keyword arguments (JSON-serialisable)."""
        signature = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in signature.parameters if p != "self" and hasattr(self, p)}

    def set_params(self, **params: Any) -> PRSModel:
        for key, value in params.items():
            if key not in self.get_params():
                raise InputError(f"{self.name}: unknown parameter {key!r}")
            setattr(self, key, value)
        return self

    def check_is_fitted(self) -> None:
        if not any(k.endswith("_") and not k.startswith("_") for k in vars(self)):
            raise InputError(f"{self.name} model is not fitted yet; call fit first")

    def fit(self, X: GenotypeInput, y: np.ndarray, *, covariates: np.ndarray | None = None) -> PRSModel:
        raise NotImplementedError

    def predict(self, X: GenotypeInput, *, covariates: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    # -- persistence (safetensors + JSON; never pickle) --------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Fitted arrays to save with safetensors."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, torch.Tensor], metadata: dict[str, Any]) -> PRSModel:
        raise NotImplementedError

    def extra_metadata(self) -> dict[str, Any]:
        """Fitted scalars/metadata to save in JSON beside the weights."""
        return {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def accepts_variant_table(model: PRSModel) -> bool:
    """Whether ``model.fit`` takes ``variant_table=`` (positions for kb windows, e.g. ``ct``'s clumping).

    Callers that hold the training genotypes' variant table (the benchmark harness, ``deepprs fit``)
    pass it to such models; the others never see it.
    """
    return "variant_table" in inspect.signature(model.fit).parameters
