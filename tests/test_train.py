"""Training on real CamVid frames: the loss falls, resume is exact (after Ctrl-C and after
SIGKILL), a diverging run stops cleanly, torchrun with two gloo processes works, and
`fplnet evaluate` reads what training wrote."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fplnet.checkpoint import load_checkpoint
from fplnet.cli import main as cli
from fplnet.engine import train as train_module
from fplnet.engine.train import Trainer, TrainingDiverged, load_config, train

SMALL = dict(model="fplnet_encoder", dataset="camvid", crop_size=(96, 128), batch_size=4, val_split="none",
             tensorboard=False, lr=0.02, save_every_minutes=1000.0)


def config(root, out, **kw):
    return load_config(None, {**SMALL, "data_root": str(root), "output": str(out), **kw})


def weights(path):
    return load_checkpoint(path)["state_dict"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def fixed_batch_loss(trainer: Trainer) -> float:
    """Weighted cross-entropy of the model on the 8 full training frames, no augmentation."""
    from fplnet.data.transforms import normalize
    images = trainer.images.float() / 255
    masks = trainer.masks[:, None]
    model = trainer.model.eval()
    with torch.no_grad():
        loss = trainer.criterion(model(normalize(images, trainer.info.mean, trainer.info.std)), masks[:, 0].long())
    model.train()
    return loss.item()


def test_loss_falls_in_30_iterations(tiny_camvid, tmp_path):
    # 8 images, batch 4: 2 steps per epoch, 15 epochs = 30 iterations.
    trainer = Trainer(config(tiny_camvid, tmp_path, epochs=15, crop_size=(180, 240), lr=0.045))
    before = fixed_batch_loss(trainer)
    summary = trainer.fit()
    after = fixed_batch_loss(trainer)
    assert summary["epochs"] == 15 and trainer.scheduler.last_epoch == 30
    assert after < 0.8 * before, (before, after)


def test_resume_after_interruption_is_exact(tiny_camvid, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    train(config(tiny_camvid, straight, epochs=2))

    # Interrupt in the middle of epoch 1 (the 2nd augmentation call is step 2 of epoch 1),
    # as Ctrl-C would, then resume.
    calls = {"n": 0}
    real_augment = train_module.augment_batch

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_augment(*args, **kwargs)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(train_module, "augment_batch", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(config(tiny_camvid, resumed, epochs=2))
    monkeypatch.setattr(train_module, "augment_batch", real_augment)
    saved = load_checkpoint(resumed / "last.pt")
    assert (saved["epoch"], saved["step"]) == (0, 1)
    train(config(tiny_camvid, resumed, epochs=2), resume=str(resumed / "last.pt"))
    assert_same_weights(weights(straight / "last.pt"), weights(resumed / "last.pt"))


def test_epoch_by_epoch_resume_is_exact(tiny_camvid, tmp_path):
    """2 epochs straight == 1 epoch, stop, resume for the 2nd (the schedule is fixed by the run)."""
    straight = tmp_path / "straight"
    train(config(tiny_camvid, straight, epochs=2))
    resumed = tmp_path / "resumed"
    trainer = Trainer(config(tiny_camvid, resumed, epochs=2))
    trainer.cfg.epochs = 1          # stop after the first epoch, keeping the 2-epoch poly schedule
    trainer.fit()
    assert load_checkpoint(resumed / "last.pt")["epoch"] == 1
    train(config(tiny_camvid, resumed, epochs=2), resume=str(resumed / "last.pt"))
    assert_same_weights(weights(straight / "last.pt"), weights(resumed / "last.pt"))


@pytest.fixture
def one_thread():
    # The killed run is a subprocess with one thread; CPU kernels sum in a thread-count dependent
    # order, so the in-process runs it is compared with use one thread too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_sigkill_mid_run_resumes_from_last_checkpoint(tiny_camvid, tmp_path, one_thread):
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "fplnet.cli", "train", "--model", "fplnet_encoder", "--dataset", "camvid",
           "--data-root", str(tiny_camvid), "--val-split", "none", "--crop-size", "96x128", "--batch-size", "4",
           "--lr", "0.02", "--epochs", "4", "--no-tensorboard", "--output", str(run), "--save-every-minutes", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if (run / "last.pt").exists():
                ckpt = load_checkpoint(run / "last.pt")
                if (ckpt["epoch"], ckpt["step"]) >= (1, 1):
                    break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = load_checkpoint(run / "last.pt")
    assert killed_at["epoch"] < 4
    train(config(tiny_camvid, run, epochs=4), resume=str(run / "last.pt"))
    straight = tmp_path / "straight"
    train(config(tiny_camvid, straight, epochs=4))
    assert_same_weights(weights(straight / "last.pt"), weights(run / "last.pt"))


def test_diverging_loss_stops_and_keeps_the_last_good_checkpoint(tiny_camvid, tmp_path, monkeypatch):
    train(config(tiny_camvid, tmp_path, epochs=1))
    good = weights(tmp_path / "last.pt")
    real_loss = Trainer._loss

    def nan_loss(self, model, images, masks):
        return real_loss(self, model, images, masks) * float("nan")

    monkeypatch.setattr(Trainer, "_loss", nan_loss)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(config(tiny_camvid, tmp_path, epochs=1, log_every=1))
    assert_same_weights(good, weights(tmp_path / "last.pt"))


def test_stage_two_starts_from_the_encoder(tiny_camvid, tmp_path):
    train(config(tiny_camvid, tmp_path / "enc", epochs=1))
    trainer = Trainer(config(tiny_camvid, tmp_path / "full", model="fplnet", epochs=1,
                             init_from=str(tmp_path / "enc" / "last.pt")))
    encoder = weights(tmp_path / "enc" / "last.pt")
    full = trainer.model.state_dict()
    copied = [k for k in encoder if k.startswith("encoder.")]
    assert copied and all(torch.equal(full[k], encoder[k]) for k in copied)


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(None, {"learning_rate": 0.1})
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(str(tmp_path / "missing.yaml"), {})
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        load_config(None, {"crop_size": "360-480"})


def test_repository_configs_load():
    from pathlib import Path
    for path in sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")):
        cfg = load_config(str(path), {})
        assert cfg.lr == 0.045 and cfg.momentum == 0.9 and cfg.weight_decay == 0.0005 and cfg.poly_power == 0.9


def test_torchrun_two_gloo_processes_then_evaluate(tiny_camvid, tmp_path, capsys):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "fplnet.cli", "train", "--model", "fplnet_encoder", "--dataset", "camvid",
           "--data-root", str(tiny_camvid), "--crop-size", "96x128", "--batch-size", "2", "--epochs", "2",
           "--device", "cpu", "--no-tensorboard", "--output", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    assert ckpt["history"][-1]["val_miou"] != ""
    report = tmp_path / "eval.json"
    assert cli(["evaluate", "--checkpoint", str(out / "last.pt"), "--dataset", "camvid", "--data-root",
                str(tiny_camvid), "--split", "val", "--json", str(report)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("mIoU: ")
    payload = json.loads(report.read_text())
    assert abs(payload["miou"] - float(lines[-1].split()[1])) < 0.006
    # Distributed validation (two shards, all-reduced) equals a single-process evaluation.
    assert abs(payload["miou"] - ckpt["history"][-1]["val_miou"]) < 1e-6 * 100 + 0.01
