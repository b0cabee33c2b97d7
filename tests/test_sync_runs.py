"""scripts/sync_runs.py, which carries unfinished runs across sessions in git: a finished run's
checkpoint is dropped unless a later stage needs it (--keep-finished), and restore never replaces
a checkpoint that is further along."""
from __future__ import annotations

from pathlib import Path

import torch

from fplnet.checkpoint import FORMAT

from _helpers import load_script


def make_run(folder: Path, epoch: int, complete: bool) -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model: fplnet_encoder\n")
    (folder / "log.csv").write_text("epoch\n1\n")
    torch.save({"format": FORMAT, "state_dict": {}, "epoch": epoch, "step": 10 * epoch}, folder / "last.pt")
    if complete:
        (folder / "summary.json").write_text("{}")


def test_save_drops_finished_checkpoints_unless_kept_and_restore_keeps_the_newer_one(tmp_path):
    sync = load_script("sync_runs")
    runs, saved = tmp_path / "runs", tmp_path / "saved"
    make_run(runs / "encoder", epoch=250, complete=True)
    make_run(runs / "full", epoch=7, complete=False)
    sync.save(runs, saved)
    assert not (saved / "encoder" / "last.pt").exists() and (saved / "encoder" / "summary.json").is_file()
    assert (saved / "full" / "last.pt").is_file()
    sync.save(runs, saved, keep_finished={"full"})  # only the named runs keep theirs
    assert not (saved / "encoder" / "last.pt").exists()
    sync.save(runs, saved, keep_finished=True)     # stage 2 starts from the encoder's last epoch
    assert (saved / "encoder" / "last.pt").is_file()
    (runs / "full" / "summary.json").write_text("{}")
    sync.save(runs, tmp_path / "named", keep_finished={"full"})   # finished, its weights still to ship
    assert (tmp_path / "named" / "full" / "last.pt").is_file()
    assert not (tmp_path / "named" / "encoder" / "last.pt").exists()
    (runs / "full" / "last.pt").unlink()           # finished, and its checkpoint gone here
    sync.save(runs, tmp_path / "other", keep_finished=True)
    assert (tmp_path / "other" / "full" / "summary.json").is_file()
    assert not (tmp_path / "other" / "full" / "last.pt").exists()
    (runs / "full" / "summary.json").unlink()
    torch.save({"format": FORMAT, "state_dict": {}, "epoch": 7, "step": 70}, runs / "full" / "last.pt")

    elsewhere = tmp_path / "elsewhere"
    sync.restore(saved, elsewhere)
    assert sync.progress(elsewhere / "full" / "last.pt") == (7, 70)
    assert (elsewhere / "encoder" / "summary.json").is_file() and (elsewhere / "encoder" / "last.pt").is_file()
    torch.save({"format": FORMAT, "state_dict": {}, "epoch": 9, "step": 90}, elsewhere / "full" / "last.pt")
    sync.restore(saved, elsewhere)                 # the saved copy (epoch 7) is older: kept as is
    assert sync.progress(elsewhere / "full" / "last.pt") == (9, 90)


def test_neither_direction_goes_backwards_and_a_live_trainer_is_left_alone(tmp_path):
    sync = load_script("sync_runs")
    from fplnet.engine.run_folder import RunLock
    runs, saved = tmp_path / "runs", tmp_path / "saved"
    make_run(runs / "full", epoch=5, complete=False)
    make_run(saved / "full", epoch=9, complete=False)        # e.g. a device's progress, unpacked
    (saved / "full" / "log.csv").write_text("epoch\n9\n")
    sync.save(runs, saved)
    assert sync.progress(saved / "full" / "last.pt") == (9, 90)
    assert (saved / "full" / "log.csv").read_text() == "epoch\n9\n"    # nothing of the older run mixed in
    lock = RunLock(runs / "full").acquire()                    # a trainer is using the folder
    try:
        sync.restore(saved, runs)
        assert sync.progress(runs / "full" / "last.pt") == (5, 50)
    finally:
        lock.release()
    sync.restore(saved, runs)
    assert sync.progress(runs / "full" / "last.pt") == (9, 90)


def test_a_saved_copy_without_a_checkpoint_does_not_overwrite_a_run_that_has_one(tmp_path):
    sync = load_script("sync_runs")
    runs, saved = tmp_path / "runs", tmp_path / "saved"
    make_run(runs / "full", epoch=5, complete=False)
    (runs / "full" / "log.csv").write_text("epoch\n5\n")
    (saved / "full").mkdir(parents=True)                       # saved before its first checkpoint
    (saved / "full" / "config.yaml").write_text("model: fplnet_encoder\n")
    (saved / "full" / "log.csv").write_text("epoch\n")
    sync.restore(saved, runs)
    assert (runs / "full" / "log.csv").read_text() == "epoch\n5\n"
    assert sync.progress(runs / "full" / "last.pt") == (5, 50)


def test_the_long_run_rule_keeps_the_encoder_until_the_full_stage_has_a_checkpoint(tmp_path):
    sync = load_script("sync_runs")
    runs = tmp_path / "trainval_adam"
    make_run(runs / "encoder", epoch=250, complete=True)
    assert sync.long_run_keep(runs) == {"full", "encoder"}     # stage 2 will start from it
    make_run(runs / "full", epoch=1, complete=False)
    assert sync.long_run_keep(runs) == {"full"}


def test_the_command_line_flags_leave_the_folders_in_place(tmp_path):
    sync = load_script("sync_runs")
    runs = tmp_path / "runs"
    make_run(runs / "encoder", epoch=250, complete=True)
    make_run(runs / "full", epoch=3, complete=False)
    assert sync.main(["save", "--keep-finished", str(runs), str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "encoder" / "last.pt").is_file()
    assert sync.main(["save", "--keep", "full", str(runs), str(tmp_path / "b")]) == 0
    assert not (tmp_path / "b" / "encoder" / "last.pt").exists()
    assert sync.main(["save", "--long-run", str(runs), str(tmp_path / "c")]) == 0
    assert not (tmp_path / "c" / "encoder" / "last.pt").exists() and (tmp_path / "c" / "full" / "last.pt").is_file()
    # A run complete here is never replaced by an older, unfinished saved copy.
    (runs / "full" / "summary.json").write_text("{}")
    (runs / "full" / "last.pt").unlink()
    sync.restore(tmp_path / "c", runs)
    assert not (runs / "full" / "last.pt").exists() and (runs / "full" / "summary.json").is_file()
