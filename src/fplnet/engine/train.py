"""`fplnet train`: the paper's recipe (Section IV-B) for any registered model, plus the recipe
options our CamVid trials measure (docs/recipe.md).

The paper's recipe, the default: SGD (momentum 0.9, weight decay 5e-4), lr 4.5e-2 with poly decay
(power 0.9) stepped every iteration, cross-entropy with ENet class weights w = 1 / ln(1.02 + p)
ignoring 255, random flip / scale / crop. FPLNet trains in two stages: ``fplnet_encoder`` first,
then ``fplnet`` with ``init_from`` pointing at the encoder checkpoint (its encoder weights are
copied). Options beyond the paper, all off by default: ``optimizer`` adam / adamw, no weight decay
on normalisation, PReLU and bias parameters (``no_decay_norm``), photometric ``color_jitter``,
``label_smoothing``, a linear ``warmup_epochs``, the class weights' constant ``class_weight_c`` and
an exponential moving average of the weights (``ema_decay``).

Speed: the training split is decoded once and kept in memory as uint8 (on the GPU when it
fits), and each batch is augmented with a handful of tensor ops (``data.transforms``), so no
loader workers are involved and a CUDA step needs no host round trip.

Run folders and resume (``engine.run_folder``): a run owns its folder (lock file, refuses a folder
holding another run unless ``overwrite``). ``--resume`` takes the run's own resolved config from
its checkpoint and writes into the checkpoint's folder; flags that would change the optimisation
trajectory are refused, harmless ones (``RESUME_MAY_CHANGE``) are applied and logged.

Reproducibility: the sample order of epoch e comes from ``DistributedSampler`` (seed,
``set_epoch(e)``) and the augmentation draws from a generator seeded by (seed, epoch, rank) whose
state is saved in every checkpoint. Resuming restores the model, optimizer, scheduler, epoch,
step within the epoch and that generator state, so 2 epochs straight and 1 + 1 resumed give the
same weights on CPU.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data.distributed import DistributedSampler

from ..checkpoint import atomic_save, describe, load_checkpoint
from ..data import DATASETS, build_dataset
from ..data.class_weights import cached_class_weights
from ..data.transforms import AugmentConfig, augment_batch, host_to_device, normalize
from ..io import atomic_write_text
from ..models import create_model, list_models
from ..provenance import git_commit, hardware
from ..runtime import (Distributed, autocast, bf16_channels_last_hazard, compile_module, keep_freed_memory,
                       parse_size)
from .evaluate import evaluate
from .progress import progress_bar
from .run_folder import RunLock, RunLog, claim_for_new_run, default_run_folder


@dataclass
class TrainConfig:
    """Every knob of a run; YAML files set these, command-line flags override them."""
    model: str = "fplnet"
    dataset: str = "camvid"
    data_root: str = ""
    train_split: str = "train"
    val_split: Optional[str] = "val"            # None: no validation
    epochs: int = 100
    batch_size: int = 8                          # per process
    optimizer: str = "sgd"                       # sgd (the paper) | adam | adamw
    lr: float = 4.5e-2
    momentum: float = 0.9                        # SGD momentum; Adam's beta1 stays 0.9
    weight_decay: float = 5e-4
    no_decay_norm: bool = False                  # no weight decay on BN, PReLU and bias parameters
    poly_power: float = 0.9
    warmup_epochs: float = 0.0                   # linear warm-up, then the poly decay
    label_smoothing: float = 0.0
    ema_decay: float = 0.0                       # moving average of the weights, updated every step (0: off)
    crop_size: tuple = (360, 480)                # H, W of training crops
    scale_range: tuple = (0.75, 1.5)             # our choice: the paper names scaling but no range
    hflip: bool = True
    color_jitter: Optional[tuple] = None         # (brightness, contrast, saturation, hue); None: off
    train_size: Optional[tuple] = None           # resize originals first (Cityscapes: 512x1024)
    eval_size: Optional[tuple] = None            # network input size at evaluation (None: see eval_short_side)
    eval_short_side: Optional[int] = None        # else: inputs scaled, aspect kept, to this short side (None: native)
    class_weights: str = "enet"                  # "enet" | "none"
    class_weight_c: float = 1.02                 # c in w = 1 / ln(c + p): the paper's (ENet's) 1.02; the CamVid
                                                 # code of CGNet, DABNet and ESPNet uses 1.10 (docs/recipe.md)
    init_from: Optional[str] = None              # checkpoint whose encoder weights start this run
    val_every: int = 1                           # epochs between validations
    eval_batch_size: int = 4
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"                            # auto | none | bf16 | fp16
    channels_last: Optional[bool] = None         # None: auto (True on CUDA and CPU, see docs/benchmarks.md)
    compile: str = "none"                        # torch.compile mode for the training step: none | default | reduce-overhead | max-autotune
    output: Optional[str] = None                 # None: runs/<model>_<dataset>_<timestamp>
    save_every_minutes: float = 10.0             # mid-epoch checkpoints, so a killed run loses little
    save_every_epochs: int = 1                   # last.pt at the end of every N-th epoch (GPU epochs last a second)
    time_budget_minutes: Optional[float] = None  # shorten `epochs` to fit this wall time (measured on the run's own epochs)
    log_every: int = 10
    tensorboard: bool = True
    notes: str = ""

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


SIZE_FIELDS = ("crop_size", "train_size", "eval_size")
OPTIMIZERS = ("sgd", "adam", "adamw")
AMP_MODES = ("auto", "none", "bf16", "fp16")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# What a resumed run may change: none of these moves the optimisation trajectory (device, amp and
# channels_last change rounding only; data_root lets a run move between machines).
RESUME_MAY_CHANGE = ("data_root", "device", "amp", "channels_last", "compile", "output", "save_every_minutes",
                     "save_every_epochs",
                     "time_budget_minutes", "log_every", "tensorboard", "val_every", "eval_batch_size",
                     "notes", "init_from")


class ConfigError(ValueError):
    """A config value or flag that cannot work; the message names the flag and what is allowed."""


def flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def validate_config(cfg: TrainConfig) -> None:
    """Check every value before any work starts (ConfigError naming the flag)."""
    def require(ok: bool, key: str, allowed: str):
        if not ok:
            raise ConfigError(f"{flag(key)} {getattr(cfg, key)!r}: {allowed}")

    require(cfg.model in list_models(), "model", f"must be one of {', '.join(list_models())}")
    require(cfg.dataset in DATASETS, "dataset", f"must be one of {', '.join(DATASETS)}")
    for key in ("epochs", "batch_size", "val_every", "eval_batch_size", "log_every", "save_every_epochs"):
        value = getattr(cfg, key)
        require(isinstance(value, int) and not isinstance(value, bool) and value >= 1, key,
                "must be a positive integer")
    side = cfg.eval_short_side
    require(side is None or (isinstance(side, int) and not isinstance(side, bool) and side >= 1), "eval_short_side",
            "must be a positive integer (pixels) or null")
    require(side is None or cfg.eval_size is None, "eval_short_side",
            f"cannot go with --eval-size {cfg.eval_size!r}: the network runs at a fixed size or at a short side")
    require(cfg.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
    require(cfg.amp in AMP_MODES, "amp", f"must be one of {', '.join(AMP_MODES)}")
    require(cfg.compile in COMPILE_MODES, "compile", f"must be one of {', '.join(COMPILE_MODES)}")
    require(cfg.class_weights in ("enet", "none"), "class_weights", "must be enet or none")
    require(math.isfinite(cfg.class_weight_c) and cfg.class_weight_c > 1, "class_weight_c",
            "must be a number above 1 (every weight 1 / ln(c + p) finite and positive)")
    require(isinstance(cfg.device, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device) is not None,
            "device", "must be auto, cpu, cuda or cuda:N")
    for key in ("lr", "poly_power"):
        require(math.isfinite(getattr(cfg, key)) and getattr(cfg, key) > 0, key, "must be a positive number")
    for key in ("momentum", "label_smoothing", "ema_decay"):
        require(0 <= getattr(cfg, key) < 1, key, "must be in [0, 1)")
    for key in ("weight_decay", "warmup_epochs", "save_every_minutes"):
        require(math.isfinite(getattr(cfg, key)) and getattr(cfg, key) >= 0, key, "must be a number >= 0")
    require(cfg.time_budget_minutes is None or cfg.time_budget_minutes > 0, "time_budget_minutes",
            "must be a positive number of minutes")
    require(cfg.warmup_epochs <= cfg.epochs, "warmup_epochs", f"must not exceed --epochs ({cfg.epochs})")
    try:
        AugmentConfig(crop_size=cfg.crop_size, scale_range=cfg.scale_range, hflip=cfg.hflip,
                      color_jitter=cfg.color_jitter)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"augmentation: {err} (flags --crop-size, --scale-range, --color-jitter)") from None


def load_config(path: Optional[str], overrides: dict) -> TrainConfig:
    """YAML file, then non-None ``overrides`` on top; unknown keys and bad values are errors."""
    values: dict = {}
    if path:
        if not Path(path).exists():
            raise FileNotFoundError(f"config file {path} does not exist (see configs/ for examples)")
        with open(path) as fh:
            values = yaml.safe_load(fh) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must be a mapping of key: value")
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("val_split", "init_from", "color_jitter"):
        if str(values.get(key, "")).lower() in ("none", "null", "off"):
            values[key] = None
    unknown = sorted(set(values) - set(TrainConfig.fields()))
    if unknown:
        raise ConfigError(f"unknown config keys {unknown} in {path or 'flags'}; valid keys: {TrainConfig.fields()}")
    for key in SIZE_FIELDS:
        if values.get(key) is not None:
            try:
                values[key] = parse_size(values[key])
            except ValueError as err:
                raise ConfigError(f"{flag(key)}: {err}") from None
    for key, length in (("scale_range", 2), ("color_jitter", 4)):
        if values.get(key) is not None:
            values[key] = _float_tuple(values[key], key, length)
    cfg = TrainConfig(**values)
    validate_config(cfg)
    return cfg


def _float_tuple(value, key: str, length: int) -> tuple:
    """[0.5, 2.0] or "0.5,2.0" -> (0.5, 2.0)."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        numbers = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        numbers = ()
    if len(numbers) != length:
        raise ConfigError(f"{flag(key)} {value!r}: expected {length} comma-separated numbers")
    return numbers


def resumed_config(ckpt: dict, checkpoint_path: Path, requested: dict) -> tuple[TrainConfig, dict]:
    """The run's own config from its checkpoint, with the ``requested`` values (non-None) that
    may change applied; any other requested value that differs from the run's is refused.
    Returns the config and ``{key: (old, new)}`` for what changed."""
    stored = dict(ckpt.get("run_config") or {})
    if not stored:
        raise ConfigError(f"--resume {checkpoint_path}: the checkpoint holds no run config (not written by "
                          "`fplnet train`); start a new run with --init-from instead")
    stored["output"] = str(checkpoint_path.parent)   # the run's folder, wherever it lives now
    own = load_config(None, stored)
    merged = load_config(None, {**stored, **{k: v for k, v in requested.items() if v is not None}})
    before, after = own.to_dict(), merged.to_dict()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    refused = [k for k in changed if k not in RESUME_MAY_CHANGE or k == "output"]
    if refused:
        key = refused[0]
        raise ConfigError(f"{flag(key)} {after[key]!r} differs from the resumed run's {before[key]!r}; a resumed "
                          f"run keeps its settings ({checkpoint_path.parent}/config.yaml). Drop the flag, or "
                          "start a new run (with --init-from to start from these weights)")
    return merged, changed


class TrainingDiverged(RuntimeError):
    pass


def schedule_lambda(total_iters: int, power: float, warmup_iters: int = 0):
    """Poly decay over ``total_iters``, times a linear ramp over the first ``warmup_iters``."""
    def factor(it: int) -> float:
        ramp = min(1.0, (it + 1) / warmup_iters) if warmup_iters else 1.0
        return ramp * max(0.0, 1.0 - it / max(1, total_iters)) ** power
    return factor


def load_split_in_memory(dataset, size: Optional[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a split once into stacked uint8 tensors (N,3,H,W) and (N,H,W)."""
    images, masks = dataset.load_all_uint8(size)
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) > 1:
        raise ValueError(f"images of split {dataset.split!r} under {dataset.root} have different sizes "
                         f"({sorted(shapes)[:3]} ...); set train_size (e.g. --train-size 512x1024) so they "
                         "are resized to one size before training")
    return torch.stack(images), torch.stack(masks)


def copy_encoder_weights(model: nn.Module, path: str) -> int:
    """Stage 2: load every tensor of the checkpoint whose name and shape match (the encoder)."""
    ckpt = load_checkpoint(path)
    own = model.state_dict()
    matched = {k: v for k, v in ckpt["state_dict"].items() if k in own and own[k].shape == v.shape}
    encoder_keys = [k for k in own if k.startswith("encoder.")]
    missing = [k for k in encoder_keys if k not in matched]
    if encoder_keys and missing:
        raise ValueError(f"init_from {path}: {len(missing)} encoder tensors of {ckpt['model_name']!r} do not "
                         f"fit this model (first: {missing[0]}); train the encoder with the same config")
    model.load_state_dict(matched, strict=False)
    return len(matched)


def check_init_source(cfg: TrainConfig, path: str) -> None:
    """Refuse an ``init_from`` checkpoint that trained on frames of this run's validation split
    (an encoder of the trainval run starting a held-out run, say): the validation would score
    frames the weights have already fitted. Frames are matched by file name, so the check holds
    when the data sit under another root on another machine."""
    source = load_checkpoint(path).get("run_config") or {}
    split = source.get("train_split")
    if not cfg.val_split or source.get("dataset") != cfg.dataset or not split or split == cfg.train_split:
        return
    seen = {Path(image).name for image, _ in build_dataset(cfg.dataset, cfg.data_root, split).files}
    validation = [Path(image).name for image, _ in build_dataset(cfg.dataset, cfg.data_root, cfg.val_split).files]
    leaked = [name for name in validation if name in seen]
    if leaked:
        raise ConfigError(f"--init-from {path} was trained on {cfg.dataset} split {split!r}, which holds "
                          f"{len(leaked)} of the {len(validation)} frames of this run's validation split "
                          f"{cfg.val_split!r} (first: {leaked[0]}); start from a checkpoint trained on "
                          f"{cfg.train_split!r}")


def default_amp(device: torch.device, compile_mode: str = "none") -> str:
    """What ``amp: auto`` runs. CUDA: bf16 autocast, which needs no loss scaling and is what
    H100/A100-class GPUs run fastest. CPU: bf16 only when the training step is compiled and the
    CPU has native bf16 (avx512_bf16 or AMX). On the 2-core development CPU a compiled bf16 step of
    the full model took 861 ms against 1475 ms in fp32 (1.71x; docs/benchmarks.md, "CPU training
    step"), while eager bf16 gained only 4-7 %, within the spread of the timing, so eager CPU runs
    (the tests, quick trials) stay fp32 and bit-comparable with earlier runs. Exact enough: the
    long CamVid runs trained in bf16 on the GPU for 409 of their epochs and then in bf16 on the CPU
    without a step in their loss (docs/recipe.md, "The long run"). A CPU without native bf16
    emulates it slowly, so it keeps fp32."""
    if device.type == "cuda":
        return "bf16"
    if compile_mode != "none" and cpu_has_native_bf16():
        return "bf16"
    return "none"


def cpu_has_native_bf16() -> bool:
    """bf16 instructions on this CPU: avx512_bf16 or AMX. (oneDNN's ``_is_mkldnn_bf16_supported``
    says yes on any avx512_core CPU, which only emulates bf16.)"""
    return bool(torch.backends.mkldnn.is_available()
                and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()))


class WeightAverage:
    """An exponential moving average of a model's weights, updated after every optimizer step:
    avg <- decay * avg + (1 - decay) * current, for every parameter and floating-point buffer (the
    BatchNorm statistics too, so the average is a model that can be run as it is); integer buffers
    are copied. It starts from the model's weights at set-up (after ``init_from``). The average
    smooths the last stretch of the trajectory (about 1 / (1 - decay) steps), which often
    generalizes better than its last point; ``ema_decay`` makes that a recipe trial."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        # Tensors of both models, paired once; load_state_dict copies in place, so the pairs stay valid.
        own, current = self.model.state_dict(), model.state_dict()
        floats = [k for k in own if own[k].is_floating_point()]
        self.floats = ([own[k] for k in floats], [current[k] for k in floats])
        self.others = [(own[k], current[k]) for k in own if not own[k].is_floating_point()]

    @torch.no_grad()
    def update(self):
        torch._foreach_lerp_(self.floats[0], self.floats[1], 1.0 - self.decay)
        for average, current in self.others:
            average.copy_(current)


def parameter_groups(model: nn.Module, weight_decay: float, no_decay_norm: bool) -> list[dict]:
    """One group, or two when ``no_decay_norm``: parameters with at most one dimension (BN scale and
    shift, PReLU slopes, biases) get no weight decay. Decay pulls a BN scale or a PReLU slope
    towards 0, which changes what the layer computes rather than regularising it."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not no_decay_norm:
        return [{"params": params, "weight_decay": weight_decay}]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam's ``weight_decay`` is the L2 penalty of the public ENet-class CamVid recipes; AdamW's
    is decoupled (Loshchilov and Hutter 2019)."""
    groups = parameter_groups(model, cfg.weight_decay, cfg.no_decay_norm)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    optimizer_class = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return optimizer_class(groups, lr=cfg.lr)


@dataclass
class ResumePoint:
    """Where an interruption resumes: before the step that did not finish, generator untouched.
    Captured together at that moment (a Ctrl-C inside a step saves the point before it):
    ``loss_sum``, the sum of the epoch's step losses before ``step`` (a tensor in a running run, a
    float read from a checkpoint; None when this process did not count the epoch from its first
    step), so that an epoch split by a resume still logs the mean over all its steps; and
    ``rng``, the global generators' states, from which dropout (ENet, ERFNet, CGNet) draws."""
    epoch: int = 0
    step: int = 0
    generator: Optional[torch.Tensor] = None
    loss_sum: Union[None, float, torch.Tensor] = None
    rng: Optional[dict] = None


def global_rng_state(device: torch.device) -> dict:
    """The CPU generator's state and, on CUDA, the device's (no host sync: the state is host-side)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_global_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: Optional[Union[str, Path]] = None, overwrite: bool = False,
                 resume_changes: Optional[dict] = None):
        validate_config(cfg)
        self.started = time.monotonic()   # the time budget counts set-up too
        self.prior_seconds = 0.0          # wall time of the processes before a resume (budget)
        self.prior_sessions: list[dict] = []   # what those processes ran on, and for how long
        self.epoch_started: Optional[float] = None   # monotonic start of the epoch in progress
        self.session_from = 0.0           # where this process took the run up (epochs, fractional)
        self.validation_seconds, self.validations = 0.0, 0
        self.resume_changes = resume_changes or {}
        self.cfg = cfg
        self.dist = Distributed(cfg.device)
        self.device = self.dist.device
        self.out = self._run_folder(cfg)
        cfg.output = str(self.out)
        self.log = RunLog(self.out, self.dist.is_main, cfg.tensorboard)
        self.lock = RunLock(self.out).acquire() if self.dist.is_main else None
        try:
            if resume is None and cfg.init_from:
                check_init_source(cfg, cfg.init_from)   # before --overwrite clears the folder
            if self.dist.is_main and resume is None:
                claim_for_new_run(self.out, overwrite)
            self.git_commit = git_commit()  # once per run, not at every checkpoint save
            self.hardware = hardware(self.device)
            self.amp = default_amp(self.device, cfg.compile) if cfg.amp == "auto" else cfg.amp
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = True
            self._setup_data()
            self._setup_model(initialise=resume is None)  # a resumed run reloads everything from its checkpoint
            self.resume_point = ResumePoint()
            self.best_miou, self.wall_seconds, self.last_val_iou = -1.0, 0.0, None
            self.history: list[dict] = []
            self.budget_planned = False
            if resume is not None:
                self._resume(Path(resume))
        except BaseException:
            self.close()
            raise
        self._stop_requested = False

    def close(self):
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        self.log.close()

    # --- set-up ---------------------------------------------------------------------------------
    def _run_folder(self, cfg: TrainConfig) -> Path:
        """``cfg.output``, or a new ``runs/<model>_<dataset>_<timestamp>`` (the same on every rank)."""
        if cfg.output:
            return Path(cfg.output)
        name = [str(default_run_folder(cfg.model, cfg.dataset))]
        if self.dist.enabled:
            dist.broadcast_object_list(name, src=0)
        return Path(name[0])

    def _setup_data(self):
        cfg = self.cfg
        train_ds = build_dataset(cfg.dataset, cfg.data_root, cfg.train_split)
        self.info = train_ds.info
        self.images, self.masks = load_split_in_memory(train_ds, cfg.train_size)
        # Keep the split on the GPU when it takes under a third of free memory: no copies per step.
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if (self.images.numel() + self.masks.numel()) * 1.0 < free / 3:
                self.images, self.masks = self.images.to(self.device), self.masks.to(self.device)
        self.val_images = self.val_masks = None
        if cfg.val_split:
            val_ds = build_dataset(cfg.dataset, cfg.data_root, cfg.val_split)
            self.val_images, self.val_masks = val_ds.load_all_uint8()
        self.class_weights = None
        if cfg.class_weights == "enet":
            cache = Path(os.environ.get("FPLNET_CACHE", Path.home() / ".cache" / "fplnet"))
            self.class_weights = cached_class_weights(train_ds, cache, c=cfg.class_weight_c).float().to(self.device)
        self.sampler = DistributedSampler(range(len(self.images)), num_replicas=self.dist.world_size,
                                          rank=self.dist.rank, shuffle=True, seed=cfg.seed, drop_last=True)
        self.steps_per_epoch = len(self.sampler) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"--batch-size {cfg.batch_size} x {self.dist.world_size} process(es) is larger than "
                              f"the {len(self.images)} training images; lower --batch-size")
        self.aug = AugmentConfig(crop_size=tuple(cfg.crop_size), scale_range=tuple(cfg.scale_range), hflip=cfg.hflip,
                                 color_jitter=cfg.color_jitter)

    def _memory_layout(self, model: nn.Module) -> bool:
        """channels_last unless asked otherwise (15-19 % faster CPU steps, docs/benchmarks.md),
        but never where the bf16 CPU kernels get this model's gradients wrong
        (``bf16_channels_last_hazard``): ``auto`` falls back to the contiguous layout, which is
        exact there, and an explicit ``channels_last: true`` is refused. A compiled step of such a
        model then keeps that layout too (``compile_module``'s ``keep_layout``); sets ``layout_hazard``."""
        hazard = self.layout_hazard = bf16_channels_last_hazard(model, self.device, self.amp)
        if hazard is None:
            return True if self.cfg.channels_last is None else self.cfg.channels_last
        if self.cfg.channels_last:
            raise ConfigError(f"--channels-last with bf16 on the CPU gives wrong gradients for {self.cfg.model}'s "
                              f"layer {hazard} (a convolution dilated along both axes); use --no-channels-last "
                              "or --amp none")
        return False

    def _setup_model(self, initialise: bool = True):
        cfg = self.cfg
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank and every run
        model = create_model(cfg.model, num_classes=self.info.num_classes)
        self.init_note = ""
        if cfg.init_from and initialise:
            n = copy_encoder_weights(model, cfg.init_from)
            self.init_note = f"{n} tensors from {cfg.init_from}"
        model.to(self.device)
        self.channels_last = self._memory_layout(model)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        if self.dist.enabled:
            # SyncBatchNorm runs on CUDA only; CPU (gloo) runs keep per-process BN statistics.
            if self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
                self.model = model
            self.ddp = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        else:
            self.ddp = model
        # The network the training step runs: compiled when asked (forward and, through
        # AOTAutograd, backward); it shares its parameters with self.model, which is what is
        # saved and validated (eagerly, in eval mode).
        self.step_model = (self.ddp if cfg.compile == "none" else
                           compile_module(self.ddp, cfg.compile, keep_layout=self.layout_hazard is not None))
        self.optimizer = build_optimizer(self.model, cfg)
        # fp16 autocast needs loss scaling (its gradients underflow); bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.total_iters = cfg.epochs * self.steps_per_epoch
        self.scheduler = self._lr_scheduler()
        self.criterion = nn.CrossEntropyLoss(weight=self.class_weights, ignore_index=self.info.ignore_index,
                                             label_smoothing=cfg.label_smoothing)
        self.ema = WeightAverage(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None

    def _lr_scheduler(self):
        """Warm-up then poly decay over ``self.total_iters``, stepped every iteration."""
        warmup = round(self.cfg.warmup_epochs * self.steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, schedule_lambda(self.total_iters, self.cfg.poly_power, warmup))

    # Epochs timed before the budget is planned: the first holds torch.compile's compilation and
    # cuDNN's algorithm search, the second is a steady one.
    BUDGET_PROBE_EPOCHS = 2
    BUDGET_SAFETY = 0.9   # the plan aims at 90 % of the remaining budget

    def _plan_time_budget(self, epoch_seconds: float):
        """Shrink ``epochs`` so the run ends inside ``time_budget_minutes``, from the wall time of
        the run's own steady epoch (validation included at its share). Timing the real epochs,
        not a probe of a few steps, counts everything an epoch costs: the compiled step, the
        per-epoch overheads, and other runs sharing the GPU at the time. Planned once, after
        ``BUDGET_PROBE_EPOCHS`` epochs; the poly decay is then stretched over the new total from
        the current iteration on (the epochs before ran at the lr of the longer schedule, which
        differs by a fraction of a percent this early)."""
        cfg = self.cfg
        self.budget_planned = True
        done = self.resume_point.epoch
        per_val = self.validation_seconds / max(1, self.validations)
        epoch_cost = epoch_seconds + (per_val / cfg.val_every if self.val_images is not None else 0.0)
        remaining = cfg.time_budget_minutes * 60 - self.prior_seconds - (time.monotonic() - self.started)
        fit = done + max(0, int(remaining * self.BUDGET_SAFETY / epoch_cost))
        fit = max(done, min(cfg.epochs, fit))
        if self.dist.enabled:  # every rank must agree on the schedule
            t = torch.tensor([fit], device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MIN)
            fit = int(t.item())
        if fit >= cfg.epochs:
            self.log.print(f"time budget {cfg.time_budget_minutes:g} min: {epoch_cost:.2f} s/epoch, the "
                           f"{cfg.epochs} epochs fit")
            return
        self.log.print(f"time budget {cfg.time_budget_minutes:g} min at {epoch_cost:.2f} s/epoch: "
                       f"{fit} epochs instead of {cfg.epochs}")
        cfg.notes = (cfg.notes + f" epochs set to {fit} (from {cfg.epochs}) by time_budget_minutes="
                     f"{cfg.time_budget_minutes:g} at {epoch_cost:.2f} s/epoch").strip()
        cfg.epochs = fit
        self.total_iters = fit * self.steps_per_epoch
        iteration = self.scheduler.last_epoch
        self.scheduler = self._lr_scheduler()
        for _ in range(iteration):  # LambdaLR has no setter for its position; stepping is exact
            self.scheduler.step()

    # --- one step -------------------------------------------------------------------------------
    def _batch(self, idx: torch.Tensor, gen: torch.Generator):
        images, masks = augment_batch(self.images[idx], self.masks[idx], self.aug, gen)
        images = normalize(images.to(self.device, non_blocking=True), self.info.mean, self.info.std)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, masks.to(self.device, non_blocking=True)

    def _loss(self, model, images, masks):
        with autocast(self.device, self.amp):
            logits = model(images)
        return self.criterion(logits.float(), masks)

    def train_step(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        loss = self._loss(self.step_model, *self._batch(idx, gen))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update()
        return loss.detach()

    @property
    def eval_model(self) -> nn.Module:
        """What validation scores and the checkpoint ships: the weight average when there is one."""
        return self.model if self.ema is None else self.ema.model

    # --- checkpoints ----------------------------------------------------------------------------
    def _state(self, point: ResumePoint, metrics: dict) -> dict:
        ckpt = describe(self.model, self.cfg.model, self.info.to_dict())
        ckpt.update({
            # The weights to use (evaluate, predict, export, --init-from): the average when there is one.
            "state_dict": {k: v.detach().cpu() for k, v in self.eval_model.state_dict().items()},
            # The weights the optimizer works on, which a resume continues from.
            "train_state_dict": (None if self.ema is None else
                                 {k: v.detach().cpu() for k, v in self.model.state_dict().items()}),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": point.epoch, "step": point.step, "total_iters": self.total_iters,
            "generator": point.generator,
            # Mid-epoch, the loss summed over the epoch's steps before `step` (see ResumePoint).
            "epoch_loss_sum": (None if point.step == 0 or point.loss_sum is None else
                               float(point.loss_sum) if isinstance(point.loss_sum, float) else point.loss_sum.item()),
            # The global generators at the resume point. One process's: ranks of a DDP run would
            # otherwise all draw the same dropout masks after a resume.
            "torch_rng": None if self.dist.enabled else point.rng,
            "amp": self.amp,   # the precision the steps ran in, which `amp: auto` chose on this machine
            "best_miou": self.best_miou, "metrics": metrics, "history": self.history,
            "wall_seconds": round(self._wall_now(), 1), "sessions": self._sessions(point),
            "budget_planned": self.budget_planned,
            "run_config": self.cfg.to_dict(), "eval_size": None if self.cfg.eval_size is None else list(self.cfg.eval_size),
            "eval_short_side": self.cfg.eval_short_side,
            "git_commit": self.git_commit, "torch_version": str(torch.__version__),
        })
        return ckpt

    def _wall_now(self) -> float:
        """Training wall time so far, the epoch in progress included: an interrupted epoch's steps
        are not run again after a resume, so their time must be in the checkpoint."""
        running = 0.0 if self.epoch_started is None else time.monotonic() - self.epoch_started
        return self.wall_seconds + running

    def _epochs_at(self, point: ResumePoint) -> float:
        return round(point.epoch + point.step / self.steps_per_epoch, 2)

    def _sessions(self, point: ResumePoint) -> list[dict]:
        """One record per process that trained this run: its hardware, the precision its steps ran
        in, the epochs it covered and its wall time. A run may start on a GPU and end on a CPU;
        the tables that quote a run's hardware and time read them from here."""
        return self.prior_sessions + [{
            "hardware": self.hardware, "amp": self.amp, "from_epoch": self.session_from,
            "to_epoch": self._epochs_at(point), "seconds": round(self._wall_now() - self.prior_seconds, 1)}]

    def save(self, name: str, point: ResumePoint, metrics: Optional[dict] = None):
        if self.dist.is_main:
            atomic_save(self._state(point, metrics or {}), self.out / f"{name}.pt")
        if name == "last":
            self.last_save = time.monotonic()

    def _resume(self, path: Path):
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt["model_name"] != self.cfg.model:
            raise ConfigError(f"--resume {path} holds model {ckpt['model_name']!r} but the config trains "
                              f"{self.cfg.model!r}; resume with the run's own config ({path.parent}/config.yaml)")
        if int(ckpt["num_classes"]) != self.info.num_classes:
            raise ConfigError(f"--resume {path} has {ckpt['num_classes']} classes but {self.cfg.dataset} under "
                              f"{self.cfg.data_root} has {self.info.num_classes}; point --data-root at the data "
                              "the run was trained on")
        self.model.load_state_dict(ckpt.get("train_state_dict") or ckpt["state_dict"])
        if self.ema is not None:
            self.ema.model.load_state_dict(ckpt["state_dict"])
        self.total_iters = ckpt["total_iters"]
        self.cfg.epochs = math.ceil(self.total_iters / self.steps_per_epoch)
        # The scheduler first: building a LambdaLR resets the optimizer's lr to lambda(0), and
        # loading the optimizer state afterwards puts back the lr of the interrupted iteration.
        self.scheduler = self._lr_scheduler()
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        rng = ckpt.get("torch_rng")
        rng = {"cpu": rng} if isinstance(rng, torch.Tensor) else rng   # the first format: the CPU's alone
        self.resume_point = ResumePoint(ckpt["epoch"], ckpt["step"], ckpt["generator"], ckpt.get("epoch_loss_sum"), rng)
        if rng is not None and not self.dist.enabled:
            set_global_rng_state(rng, self.device)
        self.best_miou = ckpt.get("best_miou", -1.0)
        self.wall_seconds = self.prior_seconds = float(ckpt.get("wall_seconds", 0.0))
        self.session_from = self._epochs_at(self.resume_point)
        self.prior_sessions = list(ckpt.get("sessions") or [])
        if not self.prior_sessions and self.prior_seconds:   # a checkpoint from before sessions were recorded
            self.prior_sessions = [{"hardware": "not recorded", "amp": ckpt.get("amp"), "from_epoch": 0.0,
                                    "to_epoch": self.session_from, "seconds": round(self.prior_seconds, 1)}]
        self.budget_planned = bool(ckpt.get("budget_planned", False))
        self.history = list(ckpt.get("history", []))
        self.log.restart_csv(self.history)
        self.log.print(f"resumed {path}: epoch {ckpt['epoch']}, step {ckpt['step']}, "
                       f"iteration {self.scheduler.last_epoch} of {self.total_iters}")
        for key, (old, new) in self.resume_changes.items():
            self.log.print(f"resume: {flag(key)} changed from {old!r} to {new!r}")
        if ckpt.get("amp") not in (None, self.amp):
            self.log.print(f"resume: the steps ran in amp {ckpt['amp']!r} before and run in {self.amp!r} now")

    # --- the loop -------------------------------------------------------------------------------
    def _epoch_generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch * 1009 + self.dist.rank)

    def validate(self) -> dict:
        if self.val_images is None:
            return {}
        started = time.monotonic()
        shard = range(self.dist.rank, len(self.val_images), self.dist.world_size)
        # In fp32 whatever the training step runs in: bf16 logits tie or swap the top two classes on
        # about 0.1-0.2 % of pixels, always towards the lower class index, so a bf16 validation
        # would differ from `fplnet evaluate` and between machines that pick a different amp.
        matrix = evaluate(self.eval_model, self.val_images, self.val_masks, self.info.num_classes, self.info.mean,
                          self.info.std, self.device, self.cfg.eval_batch_size, eval_size=self.cfg.eval_size,
                          short_side=self.cfg.eval_short_side,
                          amp="none", channels_last=self.channels_last, indices=shard,
                          ignore_index=self.info.ignore_index)
        matrix.reduce_from_all_processes()
        result = matrix.compute()
        # Per class (NaN: class in neither ground truth nor prediction) for the run's summary.
        self.last_val_iou = {name: round(float(iou) * 100, 2) if iou == iou else None
                             for name, iou in zip(self.info.class_names, result["iou"])}
        self.validation_seconds += time.monotonic() - started
        self.validations += 1
        return {"val_miou": float(result["miou"]) * 100, "val_pixel_acc": float(result["pixel_accuracy"]) * 100}

    def _check_finite(self, value: float, epoch: int, step: int):
        if math.isfinite(value):
            return
        last = self.out / "last.pt"
        kept = (f"the last good checkpoint {last} (epoch {load_checkpoint(last)['epoch']}) is untouched"
                if last.exists() else "no checkpoint had been written yet")
        raise TrainingDiverged(f"loss became {value} at epoch {epoch + 1}, step {step + 1}; {kept}. "
                               "Lower --lr or check the labels.")

    @contextlib.contextmanager
    def _stop_on_sigterm(self):
        """SIGTERM finishes the current step, saves, and stops (main process only). So does a first
        Ctrl-C in a single-process run: interrupted mid-step, the step's forward pass would
        already have moved the BatchNorm statistics, and the resumed run would replay it on top
        of that. A second Ctrl-C stops at once (a DDP run keeps Ctrl-C's default: every rank
        stops at once, none waits in a collective for a rank that has gone)."""
        def request_stop(signum, frame):
            self._stop_requested = True

        def request_stop_or_interrupt(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            self.log.print("Ctrl-C: stopping after this step and saving; Ctrl-C again to stop at once")
        previous = {}
        if self.dist.is_main:
            previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, request_stop)
        if not self.dist.enabled:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, request_stop_or_interrupt)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def train_one_epoch(self, epoch: int) -> dict:
        """Steps of one epoch from the resume point; returns the epoch's training figures."""
        cfg = self.cfg
        self.sampler.set_epoch(epoch)
        # On the training data's device once per epoch: indexing it then needs no copy per step.
        order = host_to_device(torch.tensor(list(self.sampler)), self.images.device)
        gen = self._epoch_generator(epoch)
        first = counted_from = 0   # the first step to run; the first step in the loss sum
        running = torch.zeros((), device=self.device)
        if epoch == self.resume_point.epoch and self.resume_point.generator is not None:
            gen.set_state(self.resume_point.generator)
            first = counted_from = self.resume_point.step
            if self.resume_point.loss_sum is not None:
                running += self.resume_point.loss_sum
                counted_from = 0
        # The loss sum a checkpoint may record: only one counted from the epoch's first step.
        loss_sum = (lambda: running.clone()) if counted_from == 0 else (lambda: None)
        t0, seen = time.perf_counter(), 0
        progress = progress_bar(self.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                                enabled=self.dist.is_main)
        progress.update(first)
        # The point before a step is the one after the step before it (nothing draws in between):
        # captured once per step, after it, and once here for the first.
        self.resume_point = ResumePoint(epoch, first, gen.get_state(), loss_sum(), global_rng_state(self.device))
        for step in range(first, self.steps_per_epoch):
            running += self.train_step(order[step * cfg.batch_size:(step + 1) * cfg.batch_size], gen)
            self.resume_point = ResumePoint(epoch, step + 1, gen.get_state(), loss_sum(),
                                            global_rng_state(self.device))
            seen += cfg.batch_size * self.dist.world_size
            if (step + 1) % cfg.log_every == 0 or step + 1 == self.steps_per_epoch:
                average = running.item() / (step + 1 - counted_from)  # the only host sync, every log_every steps
                self._check_finite(average, epoch, step)
                progress.set_postfix(loss=f"{average:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                                     img_s=f"{seen / (time.perf_counter() - t0):.1f}")
            progress.update(1)
            if self._stop_requested:
                raise KeyboardInterrupt
            if self._save_overdue():
                self._check_finite(running.item(), epoch, step)  # never save weights that went NaN
                self.save("last", self.resume_point)
        progress.close()
        seconds = time.perf_counter() - t0
        counted = self.steps_per_epoch - counted_from
        # A resume from a checkpoint written after the epoch's last step runs no step: "" as in
        # the CSV's other missing figures, not a loss of 0.
        return {"train_loss": running.item() / counted if counted else "", "seconds": seconds,
                "img_per_s": seen / seconds if seen else ""}

    def _save_overdue(self) -> bool:
        """``save_every_minutes`` have passed since ``last.pt`` was written."""
        return time.monotonic() - self.last_save > self.cfg.save_every_minutes * 60

    def end_epoch(self, epoch: int, stats: dict, final: bool = False) -> dict:
        """Validate when due, save ``last`` when due (every ``save_every_epochs`` epochs, at a
        validation, at the ``final`` epoch of this call, or when ``save_every_minutes`` have passed)
        and ``best``, log; returns the epoch's metrics."""
        cfg = self.cfg
        metrics = {"epoch": epoch + 1, "iteration": self.scheduler.last_epoch,
                   "lr": self.scheduler.get_last_lr()[0], "train_loss": stats["train_loss"],
                   "epoch_seconds": round(stats["seconds"], 2),
                   "img_per_s": stats["img_per_s"] if stats["img_per_s"] == "" else round(stats["img_per_s"], 2),
                   "val_miou": "", "val_pixel_acc": ""}
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
            metrics.update(self.validate())
        self.history.append(metrics)
        best = metrics["val_miou"] != "" and metrics["val_miou"] > self.best_miou
        if best:
            self.best_miou = metrics["val_miou"]
        # The next epoch starts with a fresh generator.
        self.resume_point = ResumePoint(epoch + 1, 0, None, None, global_rng_state(self.device))
        if (final or metrics["val_miou"] != "" or (epoch + 1) % cfg.save_every_epochs == 0
                or self._save_overdue()):
            self.save("last", self.resume_point, metrics)
        if best:
            self.save("best", self.resume_point, metrics)
        self.log.epoch(metrics)
        val = f", val mIoU {metrics['val_miou']:.2f}" if metrics["val_miou"] != "" else ""
        loss = "-" if stats["train_loss"] == "" else f"{stats['train_loss']:.4f}"
        speed = "" if metrics["img_per_s"] == "" else f", {metrics['img_per_s']:.1f} img/s"
        self.log.print(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss}{val}{speed}")
        return metrics

    def _write_config(self):
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))

    def fit(self, stop_after_epoch: Optional[int] = None) -> dict:
        """Train to the end of the schedule, or until ``stop_after_epoch`` epochs are done (the
        schedule stays that of ``cfg.epochs``; a later ``--resume`` continues it)."""
        cfg = self.cfg
        self._write_config()
        self.log.print(f"training {cfg.model} on {cfg.dataset}/{cfg.train_split} into {self.out}: "
                       f"{len(self.images)} images, {self.steps_per_epoch} steps x {cfg.epochs} epochs, batch "
                       f"{cfg.batch_size} x {self.dist.world_size}, {cfg.optimizer} lr {cfg.lr:g}, device "
                       f"{self.device}, amp {self.amp}, channels_last {self.channels_last}"
                       + (f", init {self.init_note}" if self.init_note else ""))
        end = cfg.epochs if stop_after_epoch is None else min(cfg.epochs, stop_after_epoch)
        metrics = dict(self.history[-1]) if self.history else {}
        with self._stop_on_sigterm():
            try:
                self.last_save = time.monotonic()
                epoch = self.resume_point.epoch
                while epoch < end:
                    started, validating = time.monotonic(), self.validation_seconds
                    self.epoch_started = started
                    stats = self.train_one_epoch(epoch)
                    metrics = self.end_epoch(epoch, stats, final=epoch + 1 == end)
                    seconds = time.monotonic() - started
                    self.wall_seconds += seconds
                    self.epoch_started = None
                    epoch += 1
                    if (cfg.time_budget_minutes and not self.budget_planned
                            and epoch >= self.BUDGET_PROBE_EPOCHS and epoch < end):
                        self._plan_time_budget(seconds - (self.validation_seconds - validating))
                        end = min(end, cfg.epochs)
                        if epoch >= end:   # the budget ends the run here: validate and save what the loop skipped
                            if metrics.get("val_miou", "") == "":
                                metrics.update(self.validate())
                                self.history[-1] = metrics
                                self.log.restart_csv(self.history)
                                if metrics.get("val_miou", "") != "" and metrics["val_miou"] > self.best_miou:
                                    self.best_miou = metrics["val_miou"]
                                    self.save("best", self.resume_point, metrics)
                            self.save("last", self.resume_point, metrics)
            except KeyboardInterrupt:
                self.save("last", self.resume_point, metrics)
                self.log.print(f"interrupted: state saved to {self.out / 'last.pt'}; continue with "
                               f"--resume {self.out}")
                raise
        summary = {"output": str(self.out), "epochs": cfg.epochs, "epochs_done": self.resume_point.epoch,
                   "complete": self.resume_point.epoch >= cfg.epochs, "best_val_miou": self.best_miou,
                   "wall_seconds": round(self.wall_seconds, 1), "last": metrics,
                   "last_val_iou": self.last_val_iou, "config": cfg.to_dict(), "amp": self.amp,
                   "git_commit": self.git_commit, "hardware": self.hardware,
                   "sessions": self._sessions(self.resume_point)}
        if summary["complete"]:
            self.log.summary(summary)
        self.log.print(f"{'done' if summary['complete'] else 'stopped'}: last checkpoint {self.out / 'last.pt'}"
                       + (f", best val mIoU {self.best_miou:.2f}" if self.best_miou >= 0 else ""))
        return summary


def resume_path(target: Union[str, Path]) -> Path:
    """``--resume`` accepts a run folder (its ``last.pt``) or a checkpoint file."""
    path = Path(target)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"--resume {target}: no checkpoint at {path}; pass a run folder written by "
                                "`fplnet train` or its last.pt")
    return path


def train(cfg: Optional[TrainConfig] = None, resume: Optional[Union[str, Path]] = None, overwrite: bool = False,
          stop_after_epoch: Optional[int] = None, requested: Optional[dict] = None) -> dict:
    """Run (or resume) a training run. With ``resume``, the config comes from the checkpoint;
    ``cfg`` (or ``requested``, flag values) may only differ in ``RESUME_MAY_CHANGE``."""
    changes: dict = {}
    if resume is not None:
        path = resume_path(resume)
        if requested is None and cfg is not None:
            # A whole config from Python: its folder is the checkpoint's, and the time budget's
            # note on the schedule belongs to the run.
            requested = {k: v for k, v in cfg.to_dict().items() if k not in ("output", "notes")}
        cfg, changes = resumed_config(load_checkpoint(path), path, requested or {})
        resume = path
    if cfg is None:
        raise ValueError("train() needs a config or a run to resume")
    trainer = Trainer(cfg, resume, overwrite=overwrite, resume_changes=changes)
    try:
        return trainer.fit(stop_after_epoch)
    finally:
        trainer.close()
        trainer.dist.close()


# --- CLI ------------------------------------------------------------------------------------------
def add_arguments(parser):
    import argparse
    parser.add_argument("--config", help="YAML recipe (configs/*.yaml); flags below override it")
    parser.add_argument("--data-root", dest="data_root")
    parser.add_argument("--model")
    parser.add_argument("--dataset")
    parser.add_argument("--train-split", dest="train_split",
                        help="CamVid: train, trainval, heldout_train (trainval without sequence 0006R0), "
                             "trainval_minus_SEQ")
    parser.add_argument("--val-split", dest="val_split",
                        help="none, val, heldout_val (sequence 0006R0), sequence_SEQ")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", dest="batch_size", type=int)
    parser.add_argument("--optimizer", help=f"{' | '.join(OPTIMIZERS)} (default sgd, the paper's)")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--weight-decay", dest="weight_decay", type=float)
    parser.add_argument("--no-decay-norm", dest="no_decay_norm", action=argparse.BooleanOptionalAction, default=None,
                        help="no weight decay on BN, PReLU and bias parameters")
    parser.add_argument("--warmup-epochs", dest="warmup_epochs", type=float)
    parser.add_argument("--label-smoothing", dest="label_smoothing", type=float)
    parser.add_argument("--ema-decay", dest="ema_decay", type=float,
                        help="keep an exponential moving average of the weights (e.g. 0.999; default 0, off): "
                             "it is what validation scores and what the checkpoint's weights are")
    parser.add_argument("--class-weight-c", dest="class_weight_c", type=float,
                        help="c of the ENet class weights 1 / ln(c + p) (default 1.02, the paper's)")
    parser.add_argument("--crop-size", dest="crop_size")
    parser.add_argument("--scale-range", dest="scale_range", help="LOW,HIGH, e.g. 0.5,2.0")
    parser.add_argument("--color-jitter", dest="color_jitter",
                        help="BRIGHTNESS,CONTRAST,SATURATION,HUE strengths, e.g. 0.3,0.3,0.3,0.05, or none")
    parser.add_argument("--train-size", dest="train_size")
    parser.add_argument("--eval-size", dest="eval_size")
    parser.add_argument("--eval-short-side", dest="eval_short_side", type=int,
                        help="without --eval-size: run the network on inputs scaled, aspect ratio kept, so that "
                             "their shorter side is this many pixels (recorded for predict; e.g. 360 for CamVid)")
    parser.add_argument("--init-from", dest="init_from", help="checkpoint whose encoder weights start the run")
    parser.add_argument("--val-every", dest="val_every", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--amp", help=f"{' | '.join(AMP_MODES)}")
    parser.add_argument("--channels-last", dest="channels_last", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--compile", help=f"torch.compile the training step: {' | '.join(COMPILE_MODES)} (default none)")
    parser.add_argument("--output", help="run folder (default: runs/<model>_<dataset>_<timestamp>)")
    parser.add_argument("--overwrite", action="store_true", help="replace the run already in --output")
    parser.add_argument("--time-budget-minutes", dest="time_budget_minutes", type=float)
    parser.add_argument("--save-every-minutes", dest="save_every_minutes", type=float)
    parser.add_argument("--save-every-epochs", dest="save_every_epochs", type=int,
                        help="last.pt at the end of every N-th epoch (default 1; validated and final epochs always)")
    parser.add_argument("--log-every", dest="log_every", type=int)
    parser.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--notes")
    parser.add_argument("--resume", help="continue a run (its folder or last.pt) with its own settings")
    parser.add_argument("--stop-after-epoch", dest="stop_after_epoch", type=int,
                        help="stop (resumably) once this many epochs of the schedule are done")


def run(args):
    flags = {k: getattr(args, k) for k in TrainConfig.fields() if hasattr(args, k)}
    if args.stop_after_epoch is not None and args.stop_after_epoch < 1:
        raise ConfigError(f"--stop-after-epoch {args.stop_after_epoch}: must be a positive integer")
    if args.resume:
        if args.config or args.overwrite:
            raise ConfigError(f"--resume continues a run with its own settings; drop "
                              f"{'--config' if args.config else '--overwrite'}")
        cfg, requested = None, flags
    else:
        cfg, requested = load_config(args.config, flags), None
        if not cfg.data_root:
            raise ConfigError("no data root: pass --data-root DIR (or set data_root in the config)")
    # The trainer allocates and frees large activation buffers every step; keeping freed pages
    # made a CPU training step about 20 % faster (docs/benchmarks.md). A process-wide malloc
    # setting, so it is switched on here, for the `fplnet train` process, not by the library.
    keep_freed_memory()
    try:
        train(cfg, resume=args.resume, overwrite=args.overwrite, stop_after_epoch=args.stop_after_epoch,
              requested=requested)
    except TrainingDiverged as err:
        print(f"fplnet train: {err}", file=sys.stderr)
        return 3
    return 0
