"""Training on real CamVid frames: the loss falls, resume is exact (after Ctrl-C and after
SIGKILL), a diverging run stops cleanly, torchrun with two gloo processes works, and
`fplnet evaluate` reads what training wrote."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fplnet.checkpoint import load_checkpoint
from fplnet.cli import main as cli
from fplnet.engine import train as train_module
from fplnet.engine.train import ConfigError, TrainConfig, Trainer, TrainingDiverged, load_config, train

SMALL = dict(model="fplnet_encoder", dataset="camvid", crop_size=(96, 128), batch_size=4, val_split="none",
             tensorboard=False, lr=0.02, save_every_minutes=1000.0)


def config(root, out, **kw):
    return load_config(None, {**SMALL, "data_root": str(root), "output": None if out is None else str(out), **kw})


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


def csv_column(path: Path, name: str) -> list[str]:
    rows = path.read_text().strip().splitlines()
    index = rows[0].split(",").index(name)
    return [row.split(",")[index] for row in rows[1:]]


# ENet draws dropout masks from the global generator, which the checkpoint carries too; with a
# weight average the checkpoint holds both the average and the trained weights.
@pytest.mark.parametrize("model, extra", [("fplnet_encoder", {}), ("enet", {}), ("fplnet_encoder", {"ema_decay": 0.9})],
                         ids=["fplnet_encoder", "enet", "ema"])
def test_resume_after_interruption_is_exact(tiny_camvid, tmp_path, monkeypatch, model, extra):
    straight = tmp_path / "straight"
    train(config(tiny_camvid, straight, epochs=2, model=model, **extra))

    # Interrupt in the middle of epoch 1 (step 2 of epoch 1), as Ctrl-C would, then resume: before
    # the step's augmentation draws, and (ENet) after its forward pass has drawn dropout masks.
    calls = {"n": 0}
    real_augment, real_loss = train_module.augment_batch, Trainer._loss

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_augment(*args, **kwargs)

    def interrupting_after_forward(self, *args, **kwargs):
        loss = real_loss(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C mid-step: the step finishes, then it saves
        return loss

    resumed = tmp_path / "resumed"
    if model == "enet":
        monkeypatch.setattr(Trainer, "_loss", interrupting_after_forward)
    else:
        monkeypatch.setattr(train_module, "augment_batch", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(config(tiny_camvid, resumed, epochs=2, model=model, **extra))
    monkeypatch.setattr(train_module, "augment_batch", real_augment)
    monkeypatch.setattr(Trainer, "_loss", real_loss)
    saved = load_checkpoint(resumed / "last.pt")
    assert (saved["epoch"], saved["step"]) == ((0, 2) if model == "enet" else (0, 1))
    train(config(tiny_camvid, resumed, epochs=2, model=model, **extra), resume=str(resumed / "last.pt"))
    assert_same_weights(weights(straight / "last.pt"), weights(resumed / "last.pt"))
    if extra:
        trained = load_checkpoint(resumed / "last.pt")["train_state_dict"]
        assert_same_weights(load_checkpoint(straight / "last.pt")["train_state_dict"], trained)
    # The epoch split by the interruption logs the mean loss of all its steps, as the straight run.
    assert [float(v) for v in csv_column(resumed / "log.csv", "train_loss")] == pytest.approx(
        [float(v) for v in csv_column(straight / "log.csv", "train_loss")], rel=1e-6)


def test_interrupted_epoch_keeps_its_time_and_each_process_is_a_session(tiny_camvid, tmp_path, monkeypatch):
    """An epoch cut by Ctrl-C is not run again after the resume, so its time must be in the
    checkpoint (it was dropped: only whole epochs were counted); each process that trained the run
    is one session record, which the ablation tables read for hardware and time."""
    real_augment, calls = train_module.augment_batch, {"n": 0}

    def slow_then_interrupt(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        time.sleep(0.3)
        return real_augment(*args, **kwargs)

    folder = tmp_path / "run"
    monkeypatch.setattr(train_module, "augment_batch", slow_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(config(tiny_camvid, folder, epochs=2))
    monkeypatch.setattr(train_module, "augment_batch", real_augment)
    saved = load_checkpoint(folder / "last.pt")
    assert (saved["epoch"], saved["step"]) == (0, 1) and saved["wall_seconds"] >= 0.3
    [first] = saved["sessions"]
    assert (first["from_epoch"], first["to_epoch"]) == (0.0, 0.5) and first["seconds"] == saved["wall_seconds"]
    assert first["hardware"] and first["amp"] == saved["amp"]

    summary = train(resume=folder)
    assert [(s["from_epoch"], s["to_epoch"]) for s in summary["sessions"]] == [(0.0, 0.5), (0.5, 2.0)]
    assert summary["sessions"][0] == first
    assert summary["wall_seconds"] == pytest.approx(sum(s["seconds"] for s in summary["sessions"]), abs=0.2)
    assert json.loads((folder / "summary.json").read_text())["sessions"] == summary["sessions"]


def test_epoch_by_epoch_resume_is_exact(tiny_camvid, tmp_path):
    """2 epochs straight == 1 epoch, stop, resume for the 2nd (the schedule is fixed by the run)."""
    straight = tmp_path / "straight"
    train(config(tiny_camvid, straight, epochs=2))
    resumed = tmp_path / "resumed"
    summary = train(config(tiny_camvid, resumed, epochs=2), stop_after_epoch=1)  # keeps the 2-epoch schedule
    assert load_checkpoint(resumed / "last.pt")["epoch"] == 1 and not summary["complete"]
    assert not (resumed / "summary.json").exists()
    train(resume=resumed)           # the run's own settings, from its checkpoint
    assert_same_weights(weights(straight / "last.pt"), weights(resumed / "last.pt"))
    assert (resumed / "summary.json").exists()
    rows = (resumed / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 3           # header + one row per epoch, none twice
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
    train(config(tiny_camvid, tmp_path, epochs=2), stop_after_epoch=1)
    good = weights(tmp_path / "last.pt")
    real_loss = Trainer._loss

    def nan_loss(self, model, images, masks):
        return real_loss(self, model, images, masks) * float("nan")

    monkeypatch.setattr(Trainer, "_loss", nan_loss)
    with pytest.raises(TrainingDiverged, match=r"last good checkpoint .*last.pt \(epoch 1\) is untouched"):
        train(resume=tmp_path, requested={"log_every": 1})
    assert_same_weights(good, weights(tmp_path / "last.pt"))
    # Diverging before any checkpoint exists says so instead of naming a file that is not there.
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written yet"):
        train(config(tiny_camvid, tmp_path / "fresh", epochs=1, log_every=1))


def test_stage_two_starts_from_the_encoder(tiny_camvid, tmp_path):
    train(config(tiny_camvid, tmp_path / "enc", epochs=1))
    trainer = Trainer(config(tiny_camvid, tmp_path / "full", model="fplnet", epochs=1,
                             init_from=str(tmp_path / "enc" / "last.pt")))
    encoder = weights(tmp_path / "enc" / "last.pt")
    full = trainer.model.state_dict()
    copied = [k for k in encoder if k.startswith("encoder.")]
    assert copied and all(torch.equal(full[k], encoder[k]) for k in copied)
    trainer.close()


def test_an_encoder_that_saw_the_validation_frames_cannot_start_a_run(tiny_camvid, tmp_path):
    train(config(tiny_camvid, tmp_path / "enc", epochs=1, train_split="trainval"))
    with pytest.raises(ConfigError, match=r"--init-from .* split 'trainval', which holds 4 of the 4 frames of "
                                          r"this run's validation split 'val'"):
        Trainer(config(tiny_camvid, tmp_path / "full", model="fplnet", epochs=1, val_split="val",
                       init_from=str(tmp_path / "enc" / "last.pt")))
    # Trained on other frames than the validation split: allowed.
    train(config(tiny_camvid, tmp_path / "enc_train", epochs=1, train_split="train"))
    Trainer(config(tiny_camvid, tmp_path / "full2", model="fplnet", epochs=1, train_split="trainval",
                   val_split="val", init_from=str(tmp_path / "enc_train" / "last.pt"))).close()


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(None, {"learning_rate": 0.1})
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(str(tmp_path / "missing.yaml"), {})
    with pytest.raises(ValueError, match="HEIGHTxWIDTH"):
        load_config(None, {"crop_size": "360-480"})


def test_repository_configs_load():
    """Every config the repository ships is valid, and keeps its recipe: the training configs and
    ablation recipes as files, the sweeps as each run they expand to."""
    from pathlib import Path
    from fplnet.engine.sweep import load_sweep
    configs = Path(__file__).parents[1] / "configs"
    loaded = [(path.name, load_config(str(path), {}))
              for path in sorted([*configs.glob("*.yaml"), *configs.glob("ablations/*.yaml")])]
    for path in sorted(configs.glob("sweeps/*.yaml")):
        loaded += [(f"{path.name} {run.arm}", load_config(None, run.config)) for run in load_sweep(str(path)).runs()]
    assert len(loaded) > 10
    for name, cfg in loaded:
        assert cfg.poly_power == 0.9, name
        if cfg.optimizer == "sgd":     # the paper's recipe
            assert (cfg.lr, cfg.momentum, cfg.weight_decay) == (0.045, 0.9, 0.0005), name
        else:                          # the CamVid recipe chosen on the held-out sequence (docs/recipe.md)
            assert (cfg.optimizer, cfg.lr, cfg.weight_decay) == ("adam", 0.001, 0.0002), name


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


# --- run folders -------------------------------------------------------------------------------
def test_a_new_run_refuses_a_folder_holding_another_run(tiny_camvid, tmp_path):
    train(config(tiny_camvid, tmp_path, epochs=1))
    before = weights(tmp_path / "last.pt")
    with pytest.raises(ValueError, match=r"already holds a run .*--resume .*--overwrite"):
        train(config(tiny_camvid, tmp_path, epochs=1, seed=5))
    assert_same_weights(before, weights(tmp_path / "last.pt"))      # nothing was touched
    train(config(tiny_camvid, tmp_path, epochs=1, seed=5), overwrite=True)
    after = load_checkpoint(tmp_path / "last.pt")
    assert after["run_config"]["seed"] == 5 and len(after["history"]) == 1
    assert len((tmp_path / "log.csv").read_text().strip().splitlines()) == 2   # the old rows are gone


def test_a_second_process_cannot_use_a_locked_run_folder(tiny_camvid, tmp_path):
    from fplnet.engine.run_folder import RunLock
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from fplnet.engine.run_folder import RunLock; "
        f"lock = RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=rf"in use by another training process \(PID {holder.pid}"):
            train(config(tiny_camvid, tmp_path, epochs=1))
        assert not (tmp_path / "last.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    RunLock(tmp_path).acquire().release()   # the kernel dropped the dead holder's lock


def test_default_output_is_a_new_folder_per_run(tiny_camvid, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = train(config(tiny_camvid, None, epochs=1))["output"]
    second = train(config(tiny_camvid, None, epochs=1))["output"]
    assert first != second
    for folder in (first, second):
        assert Path(folder).parent == Path("runs") and Path(folder).name.startswith("fplnet_encoder_camvid_")
        assert (tmp_path / folder / "last.pt").exists()


def test_cli_resume_takes_the_runs_own_settings(tiny_camvid, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--model", "fplnet_encoder", "--dataset", "camvid", "--data-root", str(tiny_camvid),
            "--val-split", "none", "--crop-size", "96x128", "--batch-size", "4", "--lr", "0.02", "--epochs", "2",
            "--no-tensorboard", "--output", str(run)]
    assert cli(base + ["--stop-after-epoch", "1"]) == 0
    # A flag that changes the optimisation is refused, before anything is written.
    assert cli(["train", "--resume", str(run), "--batch-size", "2"]) == 2
    assert "--batch-size 2 differs from the resumed run's 4" in capsys.readouterr().err
    assert cli(["train", "--resume", str(run), "--output", str(tmp_path / "elsewhere")]) == 2
    assert load_checkpoint(run / "last.pt")["epoch"] == 1
    # Nothing repeated: crop size, batch, lr and folder come from the checkpoint; log_every may change.
    assert cli(["train", "--resume", str(run), "--log-every", "1"]) == 0
    out = capsys.readouterr().out
    assert "--log-every changed from 10 to 1" in out
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["run_config"]["crop_size"] == [96, 128]
    assert ckpt["run_config"]["batch_size"] == 4 and ckpt["scheduler"]["last_epoch"] == 4
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flags, message", [
    (["--model", "fplnet_nope"], "--model 'fplnet_nope': must be one of"),
    (["--batch-size", "0"], "--batch-size 0: must be a positive integer"),
    (["--batch-size", "-2"], "--batch-size -2: must be a positive integer"),
    (["--epochs", "0"], "--epochs 0: must be a positive integer"),
    (["--epochs", "-1"], "--epochs -1: must be a positive integer"),
    (["--val-every", "0"], "--val-every 0: must be a positive integer"),
    (["--device", "gpu0"], "--device 'gpu0': must be auto, cpu, cuda or cuda:N"),
    (["--optimizer", "lion"], "--optimizer 'lion': must be one of sgd, adam, adamw"),
    (["--lr", "-1"], "--lr -1.0: must be a positive number"),
    (["--crop-size", "0x0"], "--crop-size"),
    (["--scale-range", "2,1"], "scale_range"),
    (["--color-jitter", "0.3,0.3"], "--color-jitter '0.3,0.3': expected 4 comma-separated numbers"),
    (["--batch-size", "64"], "--batch-size 64 x 1 process(es) is larger than the 8 training images"),
    (["--resume", "/nonexistent/run"], "--resume /nonexistent/run: no checkpoint"),
    (["--stop-after-epoch", "0"], "--stop-after-epoch 0: must be a positive integer"),
    (["--train-split", "sequence_XYZ"], "no frames of sequence 'XYZ'"),
])
def test_bad_train_flags_exit_2_with_one_line(tiny_camvid, tmp_path, flags, message, capsys):
    args = ["train", "--model", "fplnet_encoder", "--dataset", "camvid", "--data-root", str(tiny_camvid),
            "--crop-size", "96x128", "--batch-size", "4", "--epochs", "1", "--val-split", "none",
            "--no-tensorboard", "--output", str(tmp_path / "run")] + flags
    assert cli(args) == 2          # an exception escaping here would be a traceback for the user
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_bad_flag_prints_no_traceback_from_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fplnet.cli", "train", "--data-root", str(tmp_path),
                             "--batch-size", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "fplnet train: error: --batch-size 0: must be a positive integer"


# --- recipe options ----------------------------------------------------------------------------
def test_no_decay_norm_puts_norm_prelu_and_bias_parameters_in_a_decay_free_group():
    from fplnet.engine.train import build_optimizer
    from fplnet.models import create_model
    model = create_model("fplnet_encoder", num_classes=11)
    cfg = TrainConfig(optimizer="adam", lr=1e-3, weight_decay=2e-4, no_decay_norm=True)
    optimizer = build_optimizer(model, cfg)
    assert isinstance(optimizer, torch.optim.Adam)
    decayed, free = optimizer.param_groups
    assert decayed["weight_decay"] == 2e-4 and free["weight_decay"] == 0.0
    bn_and_prelu = {id(p) for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.PReLU))
                    for p in m.parameters()}
    assert bn_and_prelu and bn_and_prelu <= {id(p) for p in free["params"]}
    assert all(p.ndim == 4 for p in decayed["params"])
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == \
        sum(p.numel() for p in model.parameters())


def test_warmup_then_poly():
    from fplnet.engine.train import schedule_lambda
    factor = schedule_lambda(100, 0.9, warmup_iters=10)
    assert factor(0) == pytest.approx(0.1) and factor(4) == pytest.approx(0.5 * (1 - 4 / 100) ** 0.9)
    assert factor(50) == pytest.approx(0.5 ** 0.9) and factor(100) == 0.0


def test_fp16_training_uses_a_grad_scaler_and_resumes_it(tiny_camvid, tmp_path):
    summary = train(config(tiny_camvid, tmp_path, epochs=2, amp="fp16", device="cpu"), stop_after_epoch=1)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["scaler"] and ckpt["scaler"]["scale"] > 0
    assert math.isfinite(summary["last"]["train_loss"])
    train(resume=tmp_path)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


def test_adam_jitter_recipe_trains(tiny_camvid, tmp_path):
    cfg = config(tiny_camvid, tmp_path, epochs=1, optimizer="adam", lr=1e-3, weight_decay=2e-4,
                 no_decay_norm=True, color_jitter="0.3,0.3,0.3,0.05", scale_range="0.5,2.0", warmup_epochs=0.5,
                 label_smoothing=0.1)
    assert cfg.color_jitter == (0.3, 0.3, 0.3, 0.05) and cfg.scale_range == (0.5, 2.0)
    summary = train(cfg)
    assert summary["complete"] and math.isfinite(summary["last"]["train_loss"])
    stored = load_checkpoint(tmp_path / "last.pt")["run_config"]
    assert stored["optimizer"] == "adam" and stored["color_jitter"] == [0.3, 0.3, 0.3, 0.05]


def test_class_weight_constant_sets_the_loss_weights(tiny_camvid, tmp_path):
    """class_weight_c is the c of w = 1 / ln(c + p), counted on the run's training split."""
    from fplnet.data import build_dataset
    from fplnet.data.class_weights import enet_class_weights, pixel_counts
    counts = pixel_counts(build_dataset("camvid", tiny_camvid, "train"))
    loss_weights = {}
    for c in (1.02, 1.10):
        trainer = Trainer(config(tiny_camvid, tmp_path / str(c), epochs=1, class_weight_c=c))
        try:
            loss_weights[c] = trainer.criterion.weight.cpu()
        finally:
            trainer.close()
        assert torch.allclose(loss_weights[c], enet_class_weights(counts, 11, c=c))
    assert (loss_weights[1.10] < loss_weights[1.02]).all()   # a larger c flattens the weights
    with pytest.raises(ConfigError, match="--class-weight-c 1.0: must be a number above 1"):
        config(tiny_camvid, tmp_path / "bad", class_weight_c=1.0)


@pytest.mark.slow
def test_compiled_training_step_matches_eager(tiny_camvid, tmp_path):
    """--compile runs the same arithmetic: after three steps the weights agree with eager ones to
    float rounding (inductor fuses and reorders sums). The smallest registered encoder keeps the
    compile time of this test down. fp32 in both (``amp: auto`` would run the compiled step in bf16
    on a CPU with native bf16)."""
    states = {}
    for mode in ("none", "default"):
        trainer = Trainer(config(tiny_camvid, tmp_path / mode, epochs=1, compile=mode, model="fplnet_encoder_d2x6",
                                 crop_size=(64, 96), amp="none"))
        try:
            losses = [trainer.train_step(torch.arange(4), torch.Generator().manual_seed(0)).item() for _ in range(3)]
        finally:
            trainer.close()
        states[mode] = (losses, {k: v.clone() for k, v in trainer.model.state_dict().items()})
    assert states["none"][0] == pytest.approx(states["default"][0], rel=1e-3)
    eager, compiled = states["none"][1], states["default"][1]
    assert max((eager[k].float() - compiled[k].float()).abs().max().item() for k in eager) < 1e-2


@pytest.mark.parametrize("native_bf16", [True, False])
def test_amp_auto_picks_bf16_on_cuda_and_on_a_bf16_cpu_only_when_compiled(monkeypatch, native_bf16):
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: native_bf16)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert train_module.default_amp(cuda) == "bf16"
    assert train_module.default_amp(cuda, "default") == "bf16"
    assert train_module.default_amp(cpu) == "none"
    assert train_module.default_amp(cpu, "default") == ("bf16" if native_bf16 else "none")
    assert train_module.default_amp(cpu, "reduce-overhead") == ("bf16" if native_bf16 else "none")


@pytest.mark.parametrize("name", ["espnet_c", "fplnet"])
def test_bf16_cpu_steps_get_the_gradients_of_dilated_convolutions_right(name):
    """The layout a bf16 CPU step picks (channels_last unless ``bf16_channels_last_hazard`` names a
    layer) gives every dilated convolution of the model, at the shapes a CamVid crop gives it,
    the weight gradients fp32 gives, within bf16's rounding. ESPNet-C is the model whose run went
    NaN in channels_last; FPLNet keeps channels_last."""
    from fplnet.diagnostics import bf16_weight_grad_error, dilated_conv_shapes
    from fplnet.models import create_model
    from fplnet.runtime import bf16_channels_last_hazard
    model = create_model(name, num_classes=11)
    hazard = bf16_channels_last_hazard(model, torch.device("cpu"), "bf16")
    assert (hazard is not None) == (name == "espnet_c")
    assert bf16_channels_last_hazard(model, torch.device("cpu"), "none") is None
    shapes = dilated_conv_shapes(model)
    assert shapes
    for shape in sorted(shapes):
        error = bf16_weight_grad_error(shape, channels_last=hazard is None)
        assert math.isfinite(error) and error < 0.02, (shape, error)


def test_a_compiled_bf16_step_keeps_the_contiguous_layout_when_asked():
    """inductor turns convolutions channels_last by itself; ``compile_module(keep_layout=True)``
    turns that off, so a compiled bf16 CPU step of one of ESPNet-C's dilated convolutions (25
    channels, rate 4, at 1/8 of a 360x480 crop: NaN in channels_last) gets fp32's gradient."""
    from fplnet.diagnostics import bf16_weight_grad_error
    from fplnet.runtime import compile_module
    error = bf16_weight_grad_error((25, 25, (3, 3), (4, 4), 1, 45, 60), channels_last=False,
                                   wrap=lambda conv: compile_module(conv, "default", keep_layout=True))
    assert math.isfinite(error) and error < 0.02, error


def test_trainer_compiles_a_hazardous_bf16_cpu_step_without_inductors_layout_switch(tiny_camvid, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: calls.append(kwargs) or model)
    for name, out in (("espnet_c", "esp"), ("fplnet_encoder", "fpl")):
        trainer = Trainer(config(tiny_camvid, tmp_path / out, model=name, amp="bf16", device="cpu",
                                 compile="reduce-overhead"))
        trainer.close()
    hazardous, plain = calls
    assert hazardous["options"]["layout_optimization"] is False and "mode" not in hazardous
    assert hazardous["options"]["triton.cudagraphs"] is True    # reduce-overhead's own option, kept
    assert plain == {"mode": "reduce-overhead"}


def test_bf16_cpu_run_keeps_contiguous_layout_for_a_hazardous_model_and_refuses_channels_last(tiny_camvid, tmp_path):
    trainer = Trainer(config(tiny_camvid, tmp_path / "auto", model="espnet_c", amp="bf16", device="cpu"))
    try:
        assert trainer.channels_last is False
    finally:
        trainer.close()
    with pytest.raises(ConfigError, match="--channels-last .* --no-channels-last"):
        Trainer(config(tiny_camvid, tmp_path / "forced", model="espnet_c", amp="bf16", device="cpu",
                       channels_last=True))
    trainer = Trainer(config(tiny_camvid, tmp_path / "fpl", amp="bf16", device="cpu"))
    try:
        assert trainer.channels_last is True
    finally:
        trainer.close()


def test_time_budget_shortens_the_schedule_from_the_runs_own_epochs(tiny_camvid, tmp_path, monkeypatch):
    # On a clock that moves 1 s each time it is read, an epoch "takes" several seconds, so a
    # 2-minute budget holds some but not all of 100 epochs.
    clock = iter(range(10_000_000))
    monkeypatch.setattr(train_module.time, "monotonic", lambda: float(next(clock)))
    trainer = Trainer(config(tiny_camvid, tmp_path / "run", epochs=100, save_every_epochs=1000,
                             time_budget_minutes=2.0))
    summary = trainer.fit()
    trainer.close()
    assert 2 < summary["epochs"] < 100 and summary["complete"], summary["epochs"]
    assert trainer.total_iters == summary["epochs"] * trainer.steps_per_epoch == trainer.scheduler.last_epoch
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)  # the poly decay reached its end
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == summary["epochs"] and ckpt["budget_planned"]
    assert "time_budget_minutes=2" in ckpt["run_config"]["notes"]


def test_save_every_epochs_skips_end_of_epoch_checkpoints_but_not_the_last(tiny_camvid, tmp_path, monkeypatch):
    saved = []
    original = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self, name, point, metrics=None: (
        saved.append((name, point.epoch)), original(self, name, point, metrics)))
    trainer = Trainer(config(tiny_camvid, tmp_path / "run", epochs=5, save_every_epochs=2))
    trainer.fit()
    trainer.close()
    assert saved == [("last", 2), ("last", 4), ("last", 5)]


def test_weight_average_is_what_validation_scores_and_the_checkpoint_holds(tiny_camvid, tmp_path, capsys):
    # The average itself: avg <- d * avg + (1 - d) * current, integer buffers copied.
    model = torch.nn.BatchNorm2d(2)
    average = train_module.WeightAverage(model, 0.75)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.num_batches_tracked.fill_(5)
    average.update()
    assert torch.allclose(average.model.weight, torch.full((2,), 1.5))     # 0.75 * 1 + 0.25 * 3
    assert average.model.num_batches_tracked.item() == 5
    # In a run: the checkpoint's weights are the average; fplnet evaluate scores them as validation did.
    summary = train(config(tiny_camvid, tmp_path / "run", epochs=2, ema_decay=0.9, val_split="val"))
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert any(not torch.equal(ckpt["state_dict"][k], ckpt["train_state_dict"][k]) for k in ckpt["state_dict"])
    assert cli(["evaluate", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--dataset", "camvid",
                "--data-root", str(tiny_camvid), "--split", "val"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"mIoU: {summary['last']['val_miou']:.2f}"
