"""One trainer for every network: packed genotypes unpacked per batch on the device.

:func:`train_network` runs mini-batch training with a seeded shuffle, early stopping on a
validation split of the *training* samples (restoring the best weights), optional autocast on
CUDA, and per-epoch (and every-N-steps) checkpoints written with safetensors + JSON so that a
killed run resumes exactly where it stopped.  :func:`tune` wraps a model in an optuna search
(optuna is an optional dependency, imported lazily).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepprs.errors import InputError
from deepprs.io.packed import _SHIFTS, MISSING_CODE, PackedGenotypes, pack_dosage
from deepprs.utils.device import resolve_device
from deepprs.utils.runlog import current_run, track

LossFn = Callable[..., Any]
"""``loss_fn(module, x, side, y) -> loss`` or ``(loss, {component: tensor})``.

``x``: standardised genotypes (batch, n_variants); ``side``: per-sample side inputs
(covariates and the like; shape (batch, n_side), possibly 0 columns); ``y``: (batch,)."""

CHECKPOINT_WEIGHTS = "checkpoint.safetensors"
CHECKPOINT_STATE = "checkpoint.json"


@dataclass
class TrainResult:
    """Outcome of :func:`train_network`.

    Attributes
    ----------
    best_state : dict of str -> Tensor
        Module ``state_dict`` at the epoch with the lowest validation loss (the last epoch
        when there is no validation split); already loaded into the module.
    history : list of dict
        One record per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``seconds``,
        ``samples_per_s`` and ``train_<component>`` / ``val_<component>`` for every loss
        component the loss function reports.
    best_epoch : int
        0-based epoch of ``best_state`` (-1 when no epoch ran).
    best_val_loss : float
    stopped_early : bool
    """

    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False


# -- genotype batches --------------------------------------------------------------------------
class GenotypeBatcher:
    """Standardised genotype batches from packed or dense input, produced on ``device``.

    Packed input stays packed: the byte matrix moves to the device once (when it fits, see
    ``max_device_bytes``) and each batch is unpacked there.  Dense input (NaN = missing) is
    kept as one float32 tensor.

    Parameters
    ----------
    genotypes : PackedGenotypes or ndarray, shape (n_samples, n_variants)
    center, scale : ndarray, shape (n_variants,)
        Training mean and sd; missing genotypes become 0 after standardisation.
    variant_index : ndarray of int, optional
        Columns to use (applied after unpacking).
    """

    def __init__(
        self,
        genotypes: PackedGenotypes | np.ndarray,
        center: np.ndarray,
        scale: np.ndarray,
        *,
        device: torch.device,
        variant_index: np.ndarray | None = None,
        max_device_bytes: float | None = None,
        max_table_bytes: float = 2**30,
    ) -> None:
        self.device = device
        self.genotypes = genotypes
        self.columns = (
            None if variant_index is None else torch.as_tensor(np.asarray(variant_index, np.int64), device=device)
        )
        self.center = torch.as_tensor(np.asarray(center, np.float32), device=device)
        self.scale = torch.as_tensor(np.asarray(scale, np.float32), device=device)
        if isinstance(genotypes, PackedGenotypes):
            tensor = torch.from_numpy(genotypes.packed)
            if device.type != "cpu":
                limit = max_device_bytes if max_device_bytes is not None else _device_budget(device)
                if genotypes.nbytes <= limit:
                    tensor = tensor.to(device)
                else:
                    tensor = tensor.pin_memory()
            self.packed_tensor = tensor
            self.dense = None
            self.table = None
            n_bytes = genotypes.packed.shape[1]
            if variant_index is None and n_bytes * 256 * 4 * 4 <= max_table_bytes:
                self.table, self.byte_offsets = _byte_table(self.center, self.scale, n_bytes)
        else:
            self.packed_tensor = None
            dense = torch.as_tensor(np.asarray(genotypes, dtype=np.float32))
            if device.type != "cpu":
                limit = max_device_bytes if max_device_bytes is not None else _device_budget(device)
                if dense.numel() * 4 <= limit:
                    dense = dense.to(device)
            self.dense = dense

    @property
    def n_samples(self) -> int:
        if isinstance(self.genotypes, PackedGenotypes):
            return self.genotypes.n_samples
        return int(self.dense.shape[0])

    def __call__(self, rows: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Standardised batch, shape (len(rows), n_columns), float32 on the device."""
        if isinstance(self.genotypes, PackedGenotypes) and self.table is not None:
            index = torch.as_tensor(
                np.asarray(rows.cpu() if isinstance(rows, torch.Tensor) else rows, np.int64),
                device=self.packed_tensor.device,
            )
            batch = self.packed_tensor.index_select(0, index).to(self.device, non_blocking=True)
            lookup = batch.to(torch.int32) + self.byte_offsets
            values = self.table.index_select(0, lookup.view(-1)).view(len(index), -1)
            return values[:, : self.genotypes.n_variants]
        if isinstance(self.genotypes, PackedGenotypes):
            rows_cpu = np.asarray(rows.cpu() if isinstance(rows, torch.Tensor) else rows, dtype=np.int64)
            codes = self.genotypes.unpack_codes(rows_cpu, device=self.device, packed_tensor=self.packed_tensor)
            if self.columns is not None:
                codes = codes.index_select(1, self.columns)
            missing = codes == MISSING_CODE
            values = (codes.to(torch.float32) - self.center) / self.scale
            return values.masked_fill(missing, 0.0)
        index = torch.as_tensor(rows, dtype=torch.int64, device=self.dense.device)
        values = self.dense.index_select(0, index).to(self.device, non_blocking=True)
        if self.columns is not None:
            values = values.index_select(1, self.columns)
        values = (values - self.center) / self.scale
        return torch.nan_to_num(values, nan=0.0)


def _byte_table(center: torch.Tensor, scale: torch.Tensor, n_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised values of the 4 genotypes in every possible byte at every byte column.

    ``table[col * 256 + byte] = ((code_k(byte) - center) / scale)`` for the 4 variants of byte
    column ``col`` (missing code -> 0), shape (n_bytes * 256, 4): one gather per batch replaces
    shift, mask, convert, centre, scale and fill (about 2x faster on the CPU).
    """
    device = center.device
    m = center.shape[0]
    center_pad = torch.zeros(n_bytes * 4, device=device)
    scale_pad = torch.ones(n_bytes * 4, device=device)
    center_pad[:m], scale_pad[:m] = center, scale
    byte = torch.arange(256, device=device)
    codes = torch.stack([(byte >> shift) & 3 for shift in _SHIFTS], dim=1).view(1, 256, 4)
    table = (codes.to(torch.float32) - center_pad.view(n_bytes, 1, 4)) / scale_pad.view(n_bytes, 1, 4)
    table = table.masked_fill(codes == MISSING_CODE, 0.0).reshape(n_bytes * 256, 4).contiguous()
    offsets = torch.arange(n_bytes, dtype=torch.int32, device=device) * 256
    return table, offsets


def _device_budget(device: torch.device) -> float:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return 0.5 * free
    return math.inf


def subset_variants(
    genotypes: PackedGenotypes | np.ndarray, variant_index: np.ndarray, *, batch_size: int = 2048
) -> PackedGenotypes | np.ndarray:
    """Keep the columns ``variant_index``; packed input is re-packed in sample batches.

    Memory: the new packed matrix plus one (batch_size × n_variants) uint8 block.
    """
    variant_index = np.asarray(variant_index, dtype=np.int64)
    if not isinstance(genotypes, PackedGenotypes):
        return np.asarray(genotypes)[:, variant_index]
    packed = np.empty((genotypes.n_samples, (len(variant_index) + 3) // 4), dtype=np.uint8)
    columns = torch.as_tensor(variant_index)
    for start in range(0, genotypes.n_samples, batch_size):
        rows = np.arange(start, min(start + batch_size, genotypes.n_samples))
        codes = genotypes.unpack_codes(rows).index_select(1, columns).numpy().astype(np.int8)
        codes[codes == MISSING_CODE] = -1
        packed[rows] = pack_dosage(codes)
    return PackedGenotypes(packed=packed, n_variants=len(variant_index))


# -- checkpoints -------------------------------------------------------------------------------
def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            name = f"optim.{param_id}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        if not name.startswith("optim."):
            continue
        _, param_id, key = name.split(".", 2)
        state.setdefault(int(param_id), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: str | os.PathLike[str],
    *,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    best_state: dict[str, torch.Tensor] | None,
    progress: dict[str, Any],
    averaged_state: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write ``checkpoint.safetensors`` (model, best model, weight average, optimizer tensors) + ``checkpoint.json``.

    Both files are written under temporary names and renamed (weights first). The weights
    carry the global step in their metadata and the JSON stores it too, so a kill between the
    two renames is detected by :func:`load_checkpoint` instead of silently mixing steps.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    if averaged_state is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in averaged_state.items()})
    optim_tensors, optim_meta = _flatten_optimizer(optimizer)
    tensors.update(optim_tensors)
    step = str(progress["global_step"])
    tmp_weights = directory / f".{CHECKPOINT_WEIGHTS}.tmp{os.getpid()}"
    save_file(tensors, str(tmp_weights), metadata={"global_step": step})
    os.replace(tmp_weights, directory / CHECKPOINT_WEIGHTS)
    record = dict(progress, optimizer=optim_meta, has_best=best_state is not None)
    tmp_json = directory / f".{CHECKPOINT_STATE}.tmp{os.getpid()}"
    tmp_json.write_text(json.dumps(record))
    os.replace(tmp_json, directory / CHECKPOINT_STATE)


def load_checkpoint(
    directory: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Read the last checkpoint in ``directory``; ``None`` when there is none."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    directory = Path(directory)
    weights, state = directory / CHECKPOINT_WEIGHTS, directory / CHECKPOINT_STATE
    if not (weights.exists() and state.exists()):
        return None
    progress = json.loads(state.read_text())
    with safe_open(str(weights), framework="pt") as handle:
        step = (handle.metadata() or {}).get("global_step")
    if step != str(progress["global_step"]):
        raise InputError(
            f"checkpoint in {directory} is inconsistent (weights at step {step}, state at step "
            f"{progress['global_step']}); delete the directory or resume=False"
        )
    return load_file(str(weights)), progress


def _rng_to_list(state: torch.Tensor) -> list[int]:
    return state.cpu().tolist()


def _rng_from_list(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8)


# -- the trainer -------------------------------------------------------------------------------
def _call_loss(
    loss_fn: LossFn, module: nn.Module, x: torch.Tensor, side: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    out = loss_fn(module, x, side, y)
    if isinstance(out, tuple):
        return out[0], dict(out[1])
    return out, {}


def _make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        # Kelemen et al.: SGD with momentum
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise InputError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {name!r}")


def _update_average(averaged: dict[str, torch.Tensor], module: nn.Module, decay: float) -> None:
    """``averaged <- decay averaged + (1 - decay) state`` for floating tensors; others copied."""
    with torch.no_grad():
        for key, value in module.state_dict().items():
            target = averaged[key]
            if target.is_floating_point():
                target.mul_(decay).add_(value.detach(), alpha=1.0 - decay)
            else:
                target.copy_(value)


def _autocast(device: torch.device, amp: bool | str):
    if not amp or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast(device_type="cuda", dtype=dtype)


def evaluate_loss(
    module: nn.Module,
    loss_fn: LossFn,
    batcher: GenotypeBatcher,
    side: torch.Tensor,
    y: torch.Tensor,
    index: np.ndarray,
    *,
    batch_size: int,
    device: torch.device,
    amp: bool | str = False,
) -> tuple[float, dict[str, float]]:
    """Sample-weighted mean loss (and components) over ``index`` in eval mode."""
    module.eval()
    total, count = 0.0, 0
    components: dict[str, float] = {}
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            rows = index[start : start + batch_size]
            rows_t = torch.as_tensor(rows, device=side.device)
            with _autocast(device, amp):
                loss, parts = _call_loss(
                    loss_fn,
                    module,
                    batcher(rows),
                    side.index_select(0, rows_t).to(device),
                    y.index_select(0, rows_t).to(device),
                )
            total += float(loss) * len(rows)
            for key, value in parts.items():
                components[key] = components.get(key, 0.0) + float(value) * len(rows)
            count += len(rows)
    count = max(count, 1)
    return total / count, {k: v / count for k, v in components.items()}


def train_network(
    module: nn.Module,
    loss_fn: LossFn,
    packed: PackedGenotypes | np.ndarray,
    y: np.ndarray,
    *,
    covariates: np.ndarray | None = None,
    train_index: np.ndarray,
    val_index: np.ndarray | None = None,
    center: np.ndarray,
    scale: np.ndarray,
    variant_index: np.ndarray | None = None,
    epochs: int = 50,
    batch_size: int = 128,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int | None = 10,
    device: str | torch.device | None = "cpu",
    amp: bool | str = False,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    log_every: int = 1,
    checkpoint_every_steps: int | None = None,
    val_loss_fn: LossFn | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    max_device_bytes: float | None = None,
    keep_initial: bool = False,
    ema_decay: float | None = None,
) -> TrainResult:
    """Train ``module`` by mini-batch gradient descent on packed genotypes.

    Parameters
    ----------
    module
        The network; called only through ``loss_fn``.
    loss_fn
        ``loss_fn(module, x, side, y)`` returning the batch loss or ``(loss, components)``
        (components are logged per epoch as ``train_<name>`` / ``val_<name>``).
    packed : PackedGenotypes or ndarray, shape (n_samples, n_variants)
        Genotypes of all samples (rows addressed by ``train_index`` / ``val_index``).
    y : ndarray, shape (n_samples,)
        Training target (already standardised / 0-1 as the loss expects).
    covariates : ndarray, shape (n_samples, n_side), optional
        Per-sample side inputs passed to ``loss_fn`` as ``side`` (standardised covariates,
        a skip score ...).
    train_index, val_index : ndarray of int
        Rows for gradient steps and for early stopping. Without ``val_index`` (or when empty)
        the last epoch is kept.
    center, scale : ndarray, shape (n_variants,)
        Standardisation (training-sample mean and sd); missing genotypes become 0.
    variant_index : ndarray of int, optional
        Columns of ``packed`` to feed the network (``center``/``scale`` refer to them).
    epochs, batch_size, optimizer, lr, weight_decay
        ``optimizer`` is ``'adam'``, ``'adamw'`` or ``'sgd'`` (momentum 0.9).
    patience
        Stop after this many epochs without a lower validation loss; ``None``/0 never stops.
    device
        ``'cpu'``, ``'cuda'`` or ``'auto'``. The packed matrix moves to the GPU once when it
        fits in half the free memory; otherwise batches are copied from pinned host memory.
    amp
        ``True``/``'bf16'`` or ``'fp16'``: autocast on CUDA (ignored on the CPU).
    seed
        Seeds ``torch.manual_seed`` (dropout) and the shuffling generator. The module's
        initial weights are the caller's: build it under ``torch.manual_seed(seed)`` too.
    checkpoint_dir, resume
        Write a checkpoint after every epoch (and every ``checkpoint_every_steps`` optimizer
        steps); ``resume=True`` restarts from the last checkpoint found there, continuing the
        same shuffle, dropout stream, optimizer moments and early-stopping counters, so the
        final weights equal those of an uninterrupted run.
    log_every
        Log a line every this many epochs to the active run log (0: never).
    val_loss_fn
        Loss used for early stopping (default ``loss_fn``), e.g. the label loss of a VAE.
    callback
        Called after every optimizer step with ``{"epoch", "step", "global_step", "loss"}``;
        an exception raised there stops training (the last checkpoint stays).
    keep_initial
        Score the untrained module on the validation split first and keep it as the best state
        (``best_epoch = -1``) unless an epoch beats it: a network that starts at a known-good
        function (the hybrid starts exactly at its linear path) can then never end worse than
        its start on the validation split.
    ema_decay
        Keep an exponential moving average of the weights (and BatchNorm buffers) over optimizer
        steps, ``avg <- d avg + (1 - d) w`` with ``d = min(ema_decay, (1 + t) / (10 + t))`` at
        step t (the usual warm-up, so the average does not stay anchored at the initial
        weights).  Validation, early stopping and the returned weights use the *averaged*
        network (Polyak averaging): it removes most of the step-to-step noise of the last
        iterates, which a network with a small validation split otherwise keeps.  ``None``/0:
        the raw iterates (the previous behaviour).

    Returns
    -------
    TrainResult
    """
    device = resolve_device(device)
    train_index = np.asarray(train_index, dtype=np.int64)
    val_index = np.asarray([] if val_index is None else val_index, dtype=np.int64)
    if len(train_index) == 0:
        raise InputError("no training samples")
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float32))
    n_total = y_t.shape[0]
    side = (
        torch.zeros((n_total, 0))
        if covariates is None
        else torch.as_tensor(np.asarray(covariates, dtype=np.float32)).reshape(n_total, -1)
    )
    batcher = GenotypeBatcher(
        packed, center, scale, device=device, variant_index=variant_index, max_device_bytes=max_device_bytes
    )
    if batcher.n_samples != n_total:
        raise InputError(f"genotypes have {batcher.n_samples} samples but y has {n_total}")
    if device.type != "cpu":
        y_t, side = y_t.to(device), side.to(device)
    module.to(device)
    opt = _make_optimizer(optimizer, module.parameters(), lr, weight_decay)
    scaler = torch.amp.GradScaler("cuda") if (amp == "fp16" and device.type == "cuda") else None
    val_loss_fn = val_loss_fn or loss_fn
    patience = patience or 0

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_val, best_epoch, bad_epochs = math.inf, -1, 0
    start_epoch, start_step, global_step = 0, 0, 0
    partial = {"loss": 0.0, "count": 0, "components": {}, "seconds": 0.0}
    epoch_generator_state = generator.get_state()
    stopped_early = False
    averaging = bool(ema_decay) and float(ema_decay) > 0
    averaged: dict[str, torch.Tensor] | None = (
        {k: v.detach().clone() for k, v in module.state_dict().items()} if averaging else None
    )
    n_averaged = 0

    if resume and checkpoint_dir is not None:
        loaded = load_checkpoint(checkpoint_dir)
        if loaded is not None:
            tensors, progress = loaded
            module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            if progress["has_best"]:
                best_state = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
            opt.load_state_dict(_unflatten_optimizer(tensors, progress["optimizer"]))
            if averaged is not None and any(k.startswith("ema.") for k in tensors):
                averaged = {k[4:]: v.to(device) for k, v in tensors.items() if k.startswith("ema.")}
                n_averaged = int(progress.get("n_averaged", 0))
            history = progress["history"]
            best_val, best_epoch = progress["best_val"], progress["best_epoch"]
            bad_epochs, global_step = progress["bad_epochs"], progress["global_step"]
            start_epoch, start_step = progress["next_epoch"], progress["next_step"]
            partial = progress["partial"]
            stopped_early = progress.get("stopped_early", False)
            epoch_generator_state = _rng_from_list(progress["epoch_generator_state"])
            torch.set_rng_state(_rng_from_list(progress["torch_rng_state"]))
            if device.type == "cuda" and progress.get("cuda_rng_state") is not None:
                torch.cuda.set_rng_state(_rng_from_list(progress["cuda_rng_state"]), device)
            run = current_run()
            if run is not None:
                run.info(f"resumed training from {checkpoint_dir} at epoch {start_epoch}, step {start_step}")

    fresh_start = start_epoch == 0 and start_step == 0 and not history and best_state is None
    if keep_initial and len(val_index) and fresh_start and not stopped_early:
        initial_val, _ = evaluate_loss(
            module, val_loss_fn, batcher, side, y_t, val_index, batch_size=max(batch_size, 1024), device=device, amp=amp
        )
        best_val, best_epoch = initial_val, -1
        best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def progress_record(next_epoch: int, next_step: int, gen_state: torch.Tensor) -> dict[str, Any]:
        return {
            "next_epoch": next_epoch,
            "next_step": next_step,
            "global_step": global_step,
            "best_val": best_val if math.isfinite(best_val) else 1e308,
            "best_epoch": best_epoch,
            "bad_epochs": bad_epochs,
            "history": history,
            "partial": partial,
            "stopped_early": stopped_early,
            "epoch_generator_state": _rng_to_list(gen_state),
            "torch_rng_state": _rng_to_list(torch.get_rng_state()),
            "cuda_rng_state": (_rng_to_list(torch.cuda.get_rng_state(device)) if device.type == "cuda" else None),
            "seed": seed,
            "n_averaged": n_averaged,
            "epochs": epochs,
            "batch_size": batch_size,
        }

    n_batches = max(1, math.ceil(len(train_index) / batch_size))
    train_index_t = torch.as_tensor(train_index)
    epoch_numbers = range(start_epoch, epochs) if not stopped_early else range(0)
    for epoch in track(epoch_numbers, f"training {type(module).__name__}"):
        generator.set_state(epoch_generator_state)
        order = train_index_t[torch.randperm(len(train_index), generator=generator)].numpy()
        next_epoch_generator_state = generator.get_state()
        module.train()
        t0 = time.perf_counter()
        for step in range(start_step, n_batches):
            rows = order[step * batch_size : (step + 1) * batch_size]
            if len(rows) < 2 and len(order) > 1:
                continue  # BatchNorm needs > 1 sample; the leftover sample is reshuffled next epoch
            rows_t = torch.as_tensor(rows, device=side.device)
            x = batcher(rows)
            with _autocast(device, amp):
                loss, parts = _call_loss(loss_fn, module, x, side.index_select(0, rows_t), y_t.index_select(0, rows_t))
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            if averaged is not None:
                decay = min(float(ema_decay), (1.0 + n_averaged) / (10.0 + n_averaged))
                _update_average(averaged, module, decay)
                n_averaged += 1
            global_step += 1
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise InputError(f"training diverged (loss {loss_value}) at epoch {epoch}; lower lr")
            partial["loss"] += loss_value * len(rows)
            partial["count"] += len(rows)
            for key, value in parts.items():
                partial["components"][key] = partial["components"].get(key, 0.0) + float(value) * len(rows)
            step_checkpoint = (
                checkpoint_dir is not None
                and checkpoint_every_steps
                and global_step % checkpoint_every_steps == 0
                and step + 1 < n_batches
            )
            if step_checkpoint:
                partial["seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                save_checkpoint(
                    checkpoint_dir,
                    module=module,
                    optimizer=opt,
                    best_state=best_state,
                    progress=progress_record(epoch, step + 1, epoch_generator_state),
                    averaged_state=averaged,
                )
            if callback is not None:
                callback({"epoch": epoch, "step": step, "global_step": global_step, "loss": loss_value})
        seconds = partial["seconds"] + time.perf_counter() - t0
        count = max(partial["count"], 1)
        record: dict[str, float] = {
            "epoch": epoch,
            "train_loss": partial["loss"] / count,
            "seconds": seconds,
            "samples_per_s": partial["count"] / max(seconds, 1e-9),
        }
        for key, value in partial["components"].items():
            record[f"train_{key}"] = value / count
        live_state = None
        if averaged is not None and len(val_index):
            live_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            module.load_state_dict(averaged)
        if len(val_index):
            val_loss, val_parts = evaluate_loss(
                module,
                val_loss_fn,
                batcher,
                side,
                y_t,
                val_index,
                batch_size=max(batch_size, 1024),
                device=device,
                amp=amp,
            )
            record["val_loss"] = val_loss
            for key, value in val_parts.items():
                record[f"val_{key}"] = value
            if val_loss < best_val - 1e-12:
                best_val, best_epoch, bad_epochs = val_loss, epoch, 0
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            else:
                bad_epochs += 1
                if patience and bad_epochs >= patience:
                    stopped_early = True
        if live_state is not None:
            module.load_state_dict(live_state)
        history.append(record)
        run = current_run()
        if run is not None and log_every and (epoch % log_every == 0 or epoch == epochs - 1):
            run.info("epoch " + ", ".join(f"{k} {v:.4g}" for k, v in record.items()))
        partial = {"loss": 0.0, "count": 0, "components": {}, "seconds": 0.0}
        epoch_generator_state = next_epoch_generator_state
        start_step = 0
        if checkpoint_dir is not None:
            save_checkpoint(
                checkpoint_dir,
                module=module,
                optimizer=opt,
                best_state=best_state,
                progress=progress_record(epoch + 1, 0, epoch_generator_state),
                averaged_state=averaged,
            )
        if stopped_early:
            break

    if best_state is None:
        final = averaged if averaged is not None else module.state_dict()
        best_state = {k: v.detach().clone() for k, v in final.items()}
        best_epoch = len(history) - 1
    module.load_state_dict(best_state)
    module.eval()
    return TrainResult(
        best_state=best_state,
        history=history,
        best_epoch=best_epoch,
        best_val_loss=best_val,
        stopped_early=stopped_early,
    )


# -- hyper-parameter search --------------------------------------------------------------------
def tune(
    model_name: str,
    X: PackedGenotypes | np.ndarray,
    y: np.ndarray,
    *,
    search_space: dict[str, Any],
    covariates: np.ndarray | None = None,
    n_trials: int = 20,
    timeout: float | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    fixed_params: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Optuna search over a registered model's hyper-parameters on a validation split.

    Parameters
    ----------
    model_name
        Registered model name (``'mlp'``, ``'lcn'`` ...).
    X, y, covariates
        *Training* samples only; a ``val_fraction`` split of them scores each trial
        (R² = squared correlation for quantitative traits, AUC for binary ones).
    search_space
        ``{param: (low, high)}`` floats -> log-uniform when both > 0 and high/low >= 100,
        else uniform; int pairs -> integer range; a list -> categorical choice.
    n_trials, timeout
        Trial budget and optional wall-clock limit (seconds).

    Returns
    -------
    best_params, study
        The best parameters (merged with ``fixed_params``) and the optuna study.

    Raises
    ------
    InputError
        When optuna is not installed.
    """
    try:
        import optuna
    except ImportError as error:
        raise InputError("tune() needs optuna, an optional dependency: pip install optuna") from error
    from deepprs.models.base import is_binary_target, make_model, n_samples_of

    y = np.asarray(y, dtype=np.float64)
    n = n_samples_of(X)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_val = max(2, int(round(val_fraction * n)))
    val_index, fit_index = np.sort(order[:n_val]), np.sort(order[n_val:])
    X_fit = X.subset_samples(fit_index) if isinstance(X, PackedGenotypes) else np.asarray(X)[fit_index]
    X_val = X.subset_samples(val_index) if isinstance(X, PackedGenotypes) else np.asarray(X)[val_index]
    cov_fit = None if covariates is None else np.asarray(covariates)[fit_index]
    cov_val = None if covariates is None else np.asarray(covariates)[val_index]
    binary = is_binary_target(y)

    def suggest(trial, name: str, spec: Any) -> Any:
        if isinstance(spec, list):
            return trial.suggest_categorical(name, spec)
        low, high = spec
        if isinstance(low, int) and isinstance(high, int):
            return trial.suggest_int(name, low, high)
        log = low > 0 and high / low >= 100
        return trial.suggest_float(name, float(low), float(high), log=log)

    def objective(trial) -> float:
        params = dict(fixed_params or {})
        params.update({name: suggest(trial, name, spec) for name, spec in search_space.items()})
        model = make_model(model_name, **params).fit(X_fit, y[fit_index], covariates=cov_fit)
        score = model.predict(X_val, covariates=cov_val)
        return _score(y[val_index], score, binary)

    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=n_trials, timeout=timeout)
    best = dict(fixed_params or {})
    best.update(study.best_params)
    return best, study


def _score(y: np.ndarray, prediction: np.ndarray, binary: bool) -> float:
    """R² (squared correlation) for quantitative traits, AUC for binary ones."""
    if binary:
        from scipy.stats import rankdata

        ranks = rankdata(prediction)
        n_pos = float((y == 1).sum())
        n_neg = float(len(y) - n_pos)
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    if np.std(prediction) == 0 or np.std(y) == 0:
        return 0.0
    return float(np.corrcoef(y, prediction)[0, 1] ** 2)
