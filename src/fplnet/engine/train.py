"""`fplnet train`: the paper's recipe (Section IV-B) for any registered model.

SGD (momentum 0.9, weight decay 5e-4), lr 4.5e-2 with poly decay (power 0.9) stepped every
iteration, cross-entropy with ENet class weights w = 1 / ln(1.02 + p) ignoring 255, random
flip / scale / crop. FPLNet trains in two stages: ``fplnet_encoder`` first, then ``fplnet``
with ``init_from`` pointing at the encoder checkpoint (its encoder weights are copied).

Speed: the training split is decoded once and kept in memory as uint8 (on the GPU when it
fits), and each batch is augmented with a handful of tensor ops (``data.transforms``), so no
loader workers are involved and a CUDA step needs no host round trip.

Reproducibility and resume: the sample order of epoch e comes from ``DistributedSampler``
(seed, ``set_epoch(e)``) and the augmentation draws from a generator seeded by (seed, epoch,
rank) whose state is saved in every checkpoint. Resuming restores the model, optimizer,
scheduler, epoch, step within the epoch and that generator state, so 2 epochs straight and
1 + 1 resumed give the same weights on CPU.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data.distributed import DistributedSampler

from ..checkpoint import atomic_save, describe, load_checkpoint
from ..data import build_dataset
from ..data.class_weights import cached_class_weights
from ..data.transforms import AugmentConfig, augment_batch, normalize
from ..models import create_model
from .evaluate import evaluate
from .runtime import Distributed, autocast, parse_size


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
    lr: float = 4.5e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    crop_size: tuple = (360, 480)                # H, W of training crops
    scale_range: tuple = (0.75, 1.5)             # our choice: the paper names scaling but no range
    hflip: bool = True
    train_size: Optional[tuple] = None           # resize originals first (Cityscapes: 512x1024)
    eval_size: Optional[tuple] = None            # network input size at evaluation (None: native)
    class_weights: str = "enet"                  # "enet" | "none"
    init_from: Optional[str] = None              # checkpoint whose encoder weights start this run
    val_every: int = 1                           # epochs between validations
    eval_batch_size: int = 4
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"                            # auto | none | bf16 | fp16
    channels_last: Optional[bool] = None         # None: auto (True on CUDA and CPU, see docs/benchmarks.md)
    output: str = "runs/train"
    save_every_minutes: float = 10.0             # mid-epoch checkpoints, so a killed run loses little
    time_budget_minutes: Optional[float] = None  # shorten `epochs` to fit this wall time (measured)
    log_every: int = 10
    tensorboard: bool = True
    notes: str = ""

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


SIZE_FIELDS = ("crop_size", "train_size", "eval_size")


def load_config(path: Optional[str], overrides: dict) -> TrainConfig:
    """YAML file, then non-None ``overrides`` on top; unknown keys are an error."""
    values: dict = {}
    if path:
        if not Path(path).exists():
            raise FileNotFoundError(f"config file {path} does not exist (see configs/ for examples)")
        with open(path) as fh:
            values = yaml.safe_load(fh) or {}
        if not isinstance(values, dict):
            raise ValueError(f"config file {path} must be a mapping of key: value")
    values.update({k: v for k, v in overrides.items() if v is not None})
    if str(values.get("val_split", "")).lower() in ("none", "null"):
        values["val_split"] = None
    if values.get("init_from") in ("none", "null", ""):
        values["init_from"] = None
    unknown = sorted(set(values) - set(TrainConfig.fields()))
    if unknown:
        raise ValueError(f"unknown config keys {unknown} in {path or 'flags'}; valid keys: {TrainConfig.fields()}")
    for key in SIZE_FIELDS:
        if values.get(key) is not None:
            values[key] = parse_size(values[key])
    if "scale_range" in values:
        values["scale_range"] = tuple(float(v) for v in values["scale_range"])
    return TrainConfig(**values)


class TrainingDiverged(RuntimeError):
    pass


def poly_lambda(total_iters: int, power: float):
    return lambda it: max(0.0, 1.0 - it / max(1, total_iters)) ** power


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


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


def default_amp(device: torch.device) -> str:
    # CUDA: bf16 autocast needs no loss scaling and is what H100/A100-class GPUs run fastest.
    # CPU: fp32 (bf16 autocast did not win on the 2-core development machine; docs/benchmarks.md).
    return "bf16" if device.type == "cuda" else "none"


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: Optional[str] = None):
        self.cfg = cfg
        self.dist = Distributed(cfg.device)
        self.device = self.dist.device
        self.out = Path(cfg.output)
        self.git_commit = git_commit()  # once per run, not at every checkpoint save
        self.amp = default_amp(self.device) if cfg.amp == "auto" else cfg.amp
        self.channels_last = True if cfg.channels_last is None else cfg.channels_last
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        else:
            # Reusing freed pages instead of faulting them in again made a CPU training step
            # about 20% faster (docs/benchmarks.md, CPU training step).
            from ..fast import keep_freed_memory
            keep_freed_memory()
        self._setup_data()
        self._setup_model(initialise=resume is None)  # a resumed run reloads everything from its checkpoint
        self.start_epoch, self.start_step, self.best_miou, self.saved_generator = 0, 0, -1.0, None
        self.history: list[dict] = []
        if resume:
            self._resume(resume)
        elif cfg.time_budget_minutes:
            self._fit_time_budget()
        self._stop_requested = False

    # --- set-up ---------------------------------------------------------------------------------
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
        if cfg.class_weights == "enet":
            cache = Path(os.environ.get("FPLNET_CACHE", Path.home() / ".cache" / "fplnet"))
            self.class_weights = cached_class_weights(train_ds, cache).float().to(self.device)
        elif cfg.class_weights == "none":
            self.class_weights = None
        else:
            raise ValueError(f"class_weights must be 'enet' or 'none', not {cfg.class_weights!r}")
        self.sampler = DistributedSampler(range(len(self.images)), num_replicas=self.dist.world_size,
                                          rank=self.dist.rank, shuffle=True, seed=cfg.seed, drop_last=True)
        self.steps_per_epoch = len(self.sampler) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch size {cfg.batch_size} x {self.dist.world_size} process(es) is larger than "
                             f"the {len(self.images)} training images; lower --batch-size")
        self.aug = AugmentConfig(crop_size=tuple(cfg.crop_size), scale_range=tuple(cfg.scale_range), hflip=cfg.hflip)

    def _setup_model(self, initialise: bool = True):
        cfg = self.cfg
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank and every run
        model = create_model(cfg.model, num_classes=self.info.num_classes)
        self.init_note = ""
        if cfg.init_from and initialise:
            n = copy_encoder_weights(model, cfg.init_from)
            self.init_note = f"{n} tensors from {cfg.init_from}"
        model.to(self.device)
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
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.total_iters = cfg.epochs * self.steps_per_epoch
        self.scheduler = self._poly_scheduler()
        self.criterion = nn.CrossEntropyLoss(weight=self.class_weights, ignore_index=self.info.ignore_index)

    def _poly_scheduler(self):
        """Poly decay over ``self.total_iters``, stepped every iteration."""
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, poly_lambda(self.total_iters, self.cfg.poly_power))

    def _fit_time_budget(self):
        """Shrink ``epochs`` so the run fits the time budget, from timed steps on a throwaway copy."""
        cfg = self.cfg
        model = copy.deepcopy(self.model)
        opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=cfg.momentum)
        gen = torch.Generator().manual_seed(12345)
        idx = torch.arange(cfg.batch_size) % len(self.images)
        times = []
        for i in range(8):
            t0 = time.perf_counter()
            loss = self._loss(model, *self._batch(idx, gen))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
            times.append(time.perf_counter() - t0)
        step = sorted(times[3:])[len(times[3:]) // 2]
        val_images = 0 if self.val_images is None else len(self.val_images) / self.dist.world_size
        # An evaluation image costs about a third of a training image (forward only).
        epoch_s = self.steps_per_epoch * step + val_images / cfg.batch_size * step / 3 / max(1, cfg.val_every)
        # 0.85: on the H100 run the probe underestimated the real epoch time (Python overhead, validation, a second process sharing the GPU) by about 20 %.
        fit = max(1, int(cfg.time_budget_minutes * 60 * 0.85 / epoch_s))
        if self.dist.enabled:  # every rank must agree on the schedule
            t = torch.tensor([fit], device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MIN)
            fit = int(t.item())
        if fit < cfg.epochs:
            self._log(f"time budget {cfg.time_budget_minutes:g} min at {step * 1000:.0f} ms/step: "
                      f"{fit} epochs instead of {cfg.epochs}")
            cfg.notes = (cfg.notes + f" epochs set to {fit} (from {cfg.epochs}) by time_budget_minutes="
                         f"{cfg.time_budget_minutes:g} at {step * 1000:.1f} ms/step").strip()
            cfg.epochs = fit
            self.total_iters = fit * self.steps_per_epoch
            self.scheduler = self._poly_scheduler()

    # --- one step -------------------------------------------------------------------------------
    def _batch(self, idx: torch.Tensor, gen: torch.Generator):
        idx = idx.to(self.images.device)
        images, masks = augment_batch(self.images[idx], self.masks[idx], self.aug, gen)
        images = normalize(images.to(self.device, non_blocking=True), self.info.mean, self.info.std)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, masks.to(self.device, non_blocking=True)

    def _loss(self, model, images, masks):
        with autocast(self.device, self.amp):
            logits = model(images)
        return self.criterion(logits.float(), masks)

    # --- checkpoints ----------------------------------------------------------------------------
    def _state(self, epoch: int, step: int, generator_state: Optional[torch.Tensor], metrics: dict) -> dict:
        ckpt = describe(self.model, self.cfg.model, self.info.to_dict())
        ckpt.update({
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "epoch": epoch, "step": step, "total_iters": self.total_iters,
            "generator": generator_state,
            "best_miou": self.best_miou, "metrics": metrics, "history": self.history,
            "run_config": self.cfg.to_dict(), "eval_size": None if self.cfg.eval_size is None else list(self.cfg.eval_size),
            "git_commit": self.git_commit, "torch_version": str(torch.__version__),
        })
        return ckpt

    def save(self, name: str, epoch: int, step: int, generator_state=None, metrics=None):
        if self.dist.is_main:
            atomic_save(self._state(epoch, step, generator_state, metrics or {}), self.out / f"{name}.pt")

    def _resume(self, path: str):
        ckpt = load_checkpoint(path, map_location="cpu")
        if ckpt["model_name"] != self.cfg.model:
            raise ValueError(f"--resume {path} holds model {ckpt['model_name']!r} but the config trains "
                             f"{self.cfg.model!r}; resume with the run's own config ({Path(path).parent}/config.yaml)")
        self.model.load_state_dict(ckpt["state_dict"])
        self.total_iters = ckpt["total_iters"]
        self.cfg.epochs = math.ceil(self.total_iters / self.steps_per_epoch)
        # The scheduler first: building a LambdaLR resets the optimizer's lr to lambda(0), and
        # loading the optimizer state afterwards puts back the lr of the interrupted iteration.
        self.scheduler = self._poly_scheduler()
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.start_epoch, self.start_step = ckpt["epoch"], ckpt["step"]
        self.saved_generator = ckpt["generator"]
        self.best_miou = ckpt.get("best_miou", -1.0)
        self.history = list(ckpt.get("history", []))
        self._log(f"resumed {path}: epoch {self.start_epoch}, step {self.start_step}, "
                  f"iteration {self.scheduler.last_epoch} of {self.total_iters}")

    # --- logging --------------------------------------------------------------------------------
    def _log(self, text: str):
        if self.dist.is_main:
            print(text, flush=True)

    def _write_csv(self, row: dict):
        path = self.out / "log.csv"
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    # --- the loop -------------------------------------------------------------------------------
    def _epoch_generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch * 1009 + self.dist.rank)

    def validate(self) -> dict:
        if self.val_images is None:
            return {}
        shard = range(self.dist.rank, len(self.val_images), self.dist.world_size)
        matrix = evaluate(self.model, self.val_images, self.val_masks, self.info.num_classes, self.info.mean,
                          self.info.std, self.device, self.cfg.eval_batch_size, eval_size=self.cfg.eval_size,
                          amp=self.amp, channels_last=self.channels_last, indices=shard,
                          ignore_index=self.info.ignore_index)
        matrix.reduce_from_all_processes()
        result = matrix.compute()
        return {"val_miou": float(result["miou"]) * 100, "val_pixel_acc": float(result["pixel_accuracy"]) * 100}

    def _request_stop(self, signum, frame):
        self._stop_requested = True

    def fit(self) -> dict:
        cfg = self.cfg
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "config.yaml", "w") as fh:
                yaml.safe_dump(cfg.to_dict(), fh, sort_keys=False)
        writer = None
        if cfg.tensorboard and self.dist.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
                writer = SummaryWriter(str(self.out / "tensorboard"))
            except ImportError:
                writer = None
        self._log(f"training {cfg.model} on {cfg.dataset}/{cfg.train_split}: {len(self.images)} images, "
                  f"{self.steps_per_epoch} steps x {cfg.epochs} epochs, batch {cfg.batch_size} x "
                  f"{self.dist.world_size}, device {self.device}, amp {self.amp}, channels_last {self.channels_last}"
                  + (f", init {self.init_note}" if self.init_note else ""))
        previous = signal.signal(signal.SIGTERM, self._request_stop) if self.dist.is_main else None
        last_save = time.monotonic()
        metrics: dict = {}
        epoch, step, gen = self.start_epoch, self.start_step, None
        resume_point = (self.start_epoch, self.start_step, self.saved_generator)
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                self.sampler.set_epoch(epoch)
                order = torch.tensor(list(self.sampler))
                gen = self._epoch_generator(epoch)
                first = 0
                if epoch == self.start_epoch and self.saved_generator is not None:
                    gen.set_state(self.saved_generator)
                    first = self.start_step
                running = torch.zeros((), device=self.device)
                t0, seen = time.perf_counter(), 0
                progress = self._progress(epoch, first)
                for step in range(first, self.steps_per_epoch):
                    # Where an interruption during this step resumes: before it, with the generator untouched.
                    resume_point = (epoch, step, gen.get_state())
                    idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                    loss = self._loss(self.ddp, *self._batch(idx, gen))
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    self.scheduler.step()
                    running += loss.detach()
                    resume_point = (epoch, step + 1, gen.get_state())
                    seen += len(idx) * self.dist.world_size
                    if (step + 1) % cfg.log_every == 0 or step + 1 == self.steps_per_epoch:
                        avg = running.item() / (step + 1 - first)  # the only host sync, every log_every steps
                        if not math.isfinite(avg):
                            raise TrainingDiverged(
                                f"loss became {avg} at epoch {epoch + 1}, step {step + 1}; the last good checkpoint "
                                f"{self.out / 'last.pt'} is untouched. Lower --lr or check the labels.")
                        if progress is not None:
                            rate = seen / (time.perf_counter() - t0)
                            progress.set_postfix(loss=f"{avg:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                                                 img_s=f"{rate:.1f}")
                    if progress is not None:
                        progress.update(1)
                    if self._stop_requested:
                        raise KeyboardInterrupt
                    if time.monotonic() - last_save > cfg.save_every_minutes * 60:
                        self.save("last", *resume_point, metrics)
                        last_save = time.monotonic()
                if progress is not None:
                    progress.close()
                epoch_time = time.perf_counter() - t0
                train_loss = running.item() / max(1, self.steps_per_epoch - first)
                metrics = {"epoch": epoch + 1, "iteration": self.scheduler.last_epoch,
                           "lr": self.scheduler.get_last_lr()[0], "train_loss": train_loss,
                           "epoch_seconds": round(epoch_time, 2), "img_per_s": round(seen / epoch_time, 2),
                           "val_miou": "", "val_pixel_acc": ""}
                if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                    metrics.update(self.validate())
                self.history.append(metrics)
                best = metrics["val_miou"] != "" and metrics["val_miou"] > self.best_miou
                if best:
                    self.best_miou = metrics["val_miou"]
                # Epoch done: resume starts the next epoch with a fresh generator.
                self.save("last", epoch + 1, 0, None, metrics)
                resume_point = (epoch + 1, 0, None)
                last_save = time.monotonic()
                if best:
                    self.save("best", epoch + 1, 0, None, metrics)
                if self.dist.is_main:
                    self._write_csv(metrics)
                    if writer is not None:
                        for key in ("train_loss", "lr", "val_miou", "img_per_s"):
                            if metrics[key] != "":
                                writer.add_scalar(key, metrics[key], epoch + 1)
                    val = f", val mIoU {metrics['val_miou']:.2f}" if metrics["val_miou"] != "" else ""
                    self._log(f"epoch {epoch + 1}/{cfg.epochs}: loss {train_loss:.4f}{val}, "
                              f"{metrics['img_per_s']:.1f} img/s")
        except KeyboardInterrupt:
            self.save("last", *resume_point, metrics)
            self._log(f"interrupted: state saved to {self.out / 'last.pt'}; continue with --resume {self.out / 'last.pt'}")
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if writer is not None:
                writer.close()
        summary = {"output": str(self.out), "epochs": cfg.epochs, "best_val_miou": self.best_miou,
                   "last": metrics}
        self._log(f"done: last checkpoint {self.out / 'last.pt'}"
                  + (f", best val mIoU {self.best_miou:.2f}" if self.best_miou >= 0 else ""))
        return summary

    def _progress(self, epoch: int, first: int):
        if not self.dist.is_main or not sys.stderr.isatty() and not os.environ.get("FPLNET_PROGRESS"):
            return None
        from tqdm import tqdm
        return tqdm(total=self.steps_per_epoch, initial=first, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                    leave=False, dynamic_ncols=True)


def train(cfg: TrainConfig, resume: Optional[str] = None) -> dict:
    trainer = Trainer(cfg, resume)
    try:
        return trainer.fit()
    finally:
        trainer.dist.close()


# --- CLI ------------------------------------------------------------------------------------------
def add_arguments(parser):
    parser.add_argument("--config", help="YAML recipe (configs/*.yaml); flags below override it")
    parser.add_argument("--data-root", dest="data_root")
    parser.add_argument("--model")
    parser.add_argument("--dataset")
    parser.add_argument("--train-split", dest="train_split")
    parser.add_argument("--val-split", dest="val_split")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", dest="batch_size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--crop-size", dest="crop_size")
    parser.add_argument("--train-size", dest="train_size")
    parser.add_argument("--eval-size", dest="eval_size")
    parser.add_argument("--init-from", dest="init_from", help="checkpoint whose encoder weights start the run")
    parser.add_argument("--val-every", dest="val_every", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help="auto | cpu | cuda")
    parser.add_argument("--amp", choices=["auto", "none", "bf16", "fp16"])
    parser.add_argument("--channels-last", dest="channels_last", action=argparse_bool(), default=None)
    parser.add_argument("--output", help="run folder for checkpoints and logs")
    parser.add_argument("--time-budget-minutes", dest="time_budget_minutes", type=float)
    parser.add_argument("--save-every-minutes", dest="save_every_minutes", type=float)
    parser.add_argument("--tensorboard", action=argparse_bool(), default=None)
    parser.add_argument("--resume", help="continue a run from its last.pt exactly")


def argparse_bool():
    import argparse
    return argparse.BooleanOptionalAction


def run(args):
    overrides = {k: getattr(args, k) for k in TrainConfig.fields() if hasattr(args, k)}
    cfg = load_config(args.config, overrides)
    if not cfg.data_root:
        raise ValueError("no data root: pass --data-root DIR (or set data_root in the config)")
    try:
        train(cfg, resume=args.resume)
    except TrainingDiverged as err:
        print(f"fplnet train: {err}", file=sys.stderr)
        return 3
    return 0
