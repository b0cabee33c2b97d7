"""The sweep runner on a tiny grid (2 models x 2 seeds, 1 epoch, 8 CamVid frames): the table is
written, complete runs are skipped on the second call, an interrupted run is resumed."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from fplnet.checkpoint import load_checkpoint
from fplnet.cli import main as cli
from fplnet.engine.sweep import Runner, Sweep, load_sweep, run_state, splice


def write_sweep(path, root, output, epochs=1):
    spec = {
        "name": "tiny", "output": str(output), "seeds": [0, 1],
        "base": {"dataset": "camvid", "data_root": str(root), "train_split": "train", "val_split": "val",
                 "epochs": epochs, "batch_size": 4, "crop_size": "96x128", "tensorboard": False,
                 "model": "fplnet_encoder", "save_every_minutes": 0},
        "arms": {"fir": {}, "hasty": {"model": "fplnet_encoder_hasty"}},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def test_tiny_grid_table_skip_and_resume(tiny_camvid, tmp_path, capsys):
    spec = write_sweep(tmp_path / "tiny.yaml", tiny_camvid, tmp_path / "grid")
    doc, raw = tmp_path / "doc.md", tmp_path / "results.json"
    doc.write_text("# Trials\n\nText before.\n\n<!-- sweep:tiny -->\nold\n<!-- /sweep:tiny -->\n\nText after.\n")
    assert cli(["sweep", str(spec), "--json", str(raw), "--doc", str(doc)]) == 0
    results = json.loads(raw.read_text())
    assert set(results["arms"]) == {"fir", "hasty"}
    for arm in results["arms"].values():
        assert arm["n"] == 2 and arm["std"] is not None
        assert all(0 <= r["val_miou"] <= 100 and r["epochs"] == 1 for r in arm["runs"])
    text = doc.read_text()
    assert "Text before." in text and "Text after." in text and "old" not in text
    assert "| hasty | model=fplnet_encoder_hasty | 2/2 |" in text
    # Second call: everything is complete, nothing is trained again.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "grid").glob("*/last.pt")}
    capsys.readouterr()
    assert cli(["sweep", str(spec)]) == 0
    assert "4 complete run(s) skipped" in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "grid").glob("*/last.pt")}
    # The sweep edited after its runs (the crop of one arm): refused rather than tabulated as the new arm.
    edited = yaml.safe_load(spec.read_text())
    edited["arms"]["hasty"]["crop_size"] = "64x96"
    spec.write_text(yaml.safe_dump(edited))
    assert cli(["sweep", str(spec), "--table-only"]) == 2
    assert "hasty__seed0 was trained with crop_size=[96, 128] but tiny now gives [64, 96]" in capsys.readouterr().err


def test_interrupted_run_is_resumed_not_restarted(tiny_camvid, tmp_path):
    spec = write_sweep(tmp_path / "tiny.yaml", tiny_camvid, tmp_path / "grid", epochs=2)
    sweep = load_sweep(str(spec))
    # One run stopped after its first epoch, as a killed runner leaves it.
    first = sweep.runs()[0]
    (tmp_path / "first.yaml").write_text(yaml.safe_dump(first.config))
    assert cli(["train", "--config", str(tmp_path / "first.yaml"), "--stop-after-epoch", "1"]) == 0
    assert run_state(first.folder) == "interrupted"
    history_before = load_checkpoint(first.folder / "last.pt")["history"]
    assert cli(["sweep", str(spec), "--table-only"]) == 0          # the table alone trains nothing
    assert run_state(first.folder) == "interrupted"
    assert cli(["sweep", str(spec)]) == 0
    after = load_checkpoint(first.folder / "last.pt")
    assert after["epoch"] == 2 and after["history"][0] == history_before[0]   # continued, not restarted
    assert "resumed" in (tmp_path / "grid" / f"{first.folder.name}.log").read_text()
    assert all(run_state(run.folder) == "complete" for run in sweep.runs())


def test_bad_sweep_files_are_refused_before_any_run(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "output": str(tmp_path / "o"), "seeds": [0],
                                    "base": {"model": "fplnet_encoder", "data_root": "x"},
                                    "arms": {"a": {"batch_size": 0}}}))
    with pytest.raises(ValueError, match="--batch-size 0"):
        load_sweep(str(path))
    path.write_text(yaml.safe_dump({"name": "x"}))
    with pytest.raises(ValueError, match="lacks output, base, seeds, arms"):
        load_sweep(str(path))
    assert not (tmp_path / "o").exists()


def test_splice_appends_markers_when_missing(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n")
    splice(doc, "grid", "| a |")
    splice(doc, "grid", "| b |")
    text = doc.read_text()
    assert text.count("<!-- sweep:grid -->") == 1 and "| b |" in text and "| a |" not in text


@pytest.mark.parametrize("broken", [
    "# Title\n<!-- sweep:grid -->\n| a |\n\nmore text\n",                                   # end marker lost
    "<!-- sweep:grid -->\n| a |\n<!-- /sweep:grid -->\n<!-- sweep:grid -->\n",                 # start doubled
    "<!-- /sweep:grid -->\ntext\n<!-- sweep:grid -->\n",                                        # out of order
])
def test_splice_refuses_broken_markers_and_leaves_the_document(tmp_path, broken):
    doc = tmp_path / "doc.md"
    doc.write_text(broken)
    with pytest.raises(ValueError, match=r"doc\.md: the markers .* must appear once each"):
        splice(doc, "grid", "| b |")
    assert doc.read_text() == broken


def test_runs_of_another_experiment_are_refused(tmp_path):
    """Starting from pretrained weights or not (init_from), or a setting the saved config predates
    given a non-default value, is another experiment; what only the machine changes (a device, a
    data or weights path) is not."""
    from fplnet.engine.sweep import check_existing_runs
    from fplnet.engine.train import ConfigError, load_config
    base = {"data_root": str(tmp_path), "epochs": 1}
    grid = Sweep("exp", tmp_path / "runs", base, [0], {"a": {}})
    folder = grid.runs()[0].folder
    folder.mkdir(parents=True)
    saved = load_config(None, grid.runs()[0].config).to_dict()
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    check_existing_runs(grid)
    check_existing_runs(Sweep("exp", tmp_path / "runs", {**base, "device": "cpu", "data_root": "/elsewhere"},
                              [0], {"a": {}}))
    with pytest.raises(ConfigError, match="was trained from scratch but exp now starts it from 'enc.pt'"):
        check_existing_runs(Sweep("exp", tmp_path / "runs", base, [0], {"a": {"init_from": "enc.pt"}}))
    # The same starting weights under another path (the run moved from a GPU's scratch folder).
    (folder / "config.yaml").write_text(yaml.safe_dump({**saved, "init_from": "/tmp/gpu/chains/enc/last.pt"}))
    check_existing_runs(Sweep("exp", tmp_path / "runs", base, [0], {"a": {"init_from": "runs/enc/last.pt"}}))
    with pytest.raises(ConfigError, match="trained from '/tmp/gpu/chains/enc/last.pt' but exp now starts it from scratch"):
        check_existing_runs(grid)
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    # A config written before a field existed trained with that field's default.
    (folder / "config.yaml").write_text(yaml.safe_dump({k: v for k, v in saved.items() if k != "poly_power"}))
    check_existing_runs(grid)
    with pytest.raises(ConfigError, match="was trained with poly_power=0.9"):
        check_existing_runs(Sweep("exp", tmp_path / "runs", {**base, "poly_power": 1.0}, [0], {"a": {}}))


def test_a_run_completed_meanwhile_is_not_started(tmp_path, monkeypatch):
    """A run that became complete after the runner listed it (restored from another machine, or
    finished by another grid that shares it) is skipped, never started over its results."""
    import fplnet.engine.sweep as sweep_module
    grid = Sweep("meanwhile", tmp_path, {"device": "cpu"}, [0], {"a": {}})
    run = grid.runs()[0]
    run.folder.mkdir(parents=True)
    (run.folder / "summary.json").write_text("{}")
    listed = []

    def state_when_listed_then_real(folder):   # "new" when the runner makes its list, complete after
        if folder not in listed:
            listed.append(folder)
            return "new"
        return run_state(folder)
    monkeypatch.setattr(sweep_module, "run_state", state_when_listed_then_real)
    monkeypatch.setattr(Runner, "_start", lambda self, run: pytest.fail(f"started {run.folder}"))
    messages = []
    result = Runner(grid, log=messages.append).run()
    assert result["failed"] == [] and result["complete"] == 1
    assert any("complete meanwhile, skipped" in m for m in messages)
    assert (run.folder / "summary.json").read_text() == "{}"


def test_a_failing_runner_stops_its_children_first(tmp_path, monkeypatch):
    """If the runner itself fails, the runs it started are told to stop (SIGTERM, which makes a
    trainer save and exit) and waited for, rather than left training in their own sessions."""
    import subprocess
    import sys
    grid = Sweep("crash", tmp_path, {"device": "cpu"}, [0], {"a": {}})
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    monkeypatch.setattr(Runner, "_start", lambda self, run: child)
    monkeypatch.setattr(Runner, "_between_polls", lambda self: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        Runner(grid).run()
    assert child.poll() is not None and child.returncode == -15   # ended by SIGTERM, not left running


def test_a_child_that_ignores_sigterm_is_killed_not_waited_for_forever(tmp_path, monkeypatch):
    """A child that does not stop on SIGTERM (stuck in a compile, a deadlocked loader) must not hang
    a failed runner: after the grace period it is killed with its process group."""
    import subprocess
    import sys
    import fplnet.engine.sweep as sweep_module
    grid = Sweep("stuck", tmp_path, {"device": "cpu"}, [0], {"a": {}})
    ignores_term = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", ignores_term], start_new_session=True,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"   # its SIGTERM handler is in place
    monkeypatch.setattr(Runner, "_start", lambda self, run: child)
    monkeypatch.setattr(sweep_module, "STOP_GRACE_SECONDS", 1)
    monkeypatch.setattr(Runner, "_between_polls", lambda self: (_ for _ in ()).throw(RuntimeError("boom")))
    messages = []
    with pytest.raises(RuntimeError, match="boom"):
        Runner(grid, log=messages.append).run()
    assert child.returncode == -9                        # killed, after SIGTERM did nothing
    assert any("did not stop within 1 s" in m for m in messages)


def test_runs_at_once_on_the_cpu_share_its_threads(tmp_path, monkeypatch):
    """--parallel N on the CPU gives each run 1/N of the runner's threads; one run at a time keeps
    the runner's environment."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    grid = Sweep("threads", tmp_path, {"device": "cpu"}, [0], {"a": {}})
    assert Runner(grid, parallel=2).child_env()["OMP_NUM_THREADS"] == "2"
    assert Runner(grid, parallel=8).child_env()["OMP_NUM_THREADS"] == "1"
    assert Runner(grid, parallel=1).child_env() is None
