"""`fplnet ablate` on a tiny grid (2 models x 2 seeds, 1 epoch, 8 CamVid frames): the tables are
written, complete runs are skipped, an interrupted run is resumed, a model shared by two tables
is trained once; the verdict on hand-made numbers; the tables' paper figures against the paper."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from fplnet.checkpoint import load_checkpoint
from fplnet.cli import main as cli
from fplnet.engine.ablate import (TABLES, build_grid, compare, load_recipe, paper_comparisons, recipe_folder,
                                  verdict)
from fplnet.engine.sweep import run_state
from fplnet.models import get_model_entry, list_models

VERDICTS = ("confirmed", "contradicted", "not decided at this scale")


def write_recipe(path, root, epochs=1, **changes):
    path.write_text(yaml.safe_dump({
        "model": "fplnet_encoder", "dataset": "camvid", "data_root": str(root), "train_split": "train",
        "val_split": "val", "epochs": epochs, "batch_size": 4, "crop_size": "96x128", "tensorboard": False,
        "save_every_minutes": 0, **changes}))
    return path


@pytest.fixture
def one_thread_runs(monkeypatch):
    # The runs are child processes; one thread each is several times faster than two on a busy
    # 2-core machine, and the figures of a 1-epoch run do not matter here.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def stamps(folder, model):
    return {p: p.stat().st_mtime_ns for p in folder.glob(f"{model}__seed*/*") if p.is_file()}


def test_tiny_grid_tables_skip_and_shared_model(tiny_camvid, tmp_path, capsys, one_thread_runs):
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_camvid)
    runs, doc, raw = tmp_path / "runs", tmp_path / "ablations.md", tmp_path / "ablations.json"
    doc.write_text("# Ablations\n\nIntro text.\n")
    common = ["--recipe", str(recipe), "--seeds", "2", "--runs-root", str(runs), "--doc", str(doc), "--json", str(raw)]
    assert cli(["ablate", "--table", "vii", *common]) == 0
    grid = runs / "tiny-1ep"
    assert sorted(p.name for p in grid.glob("*__seed*") if p.is_dir()) == [
        "fplnet_encoder__seed0", "fplnet_encoder__seed1", "fplnet_encoder_hasty__seed0", "fplnet_encoder_hasty__seed1"]
    table = json.loads(raw.read_text())["tables"]["vii"]
    assert list(table["rows"]) == ["fplnet_encoder", "fplnet_encoder_hasty"]
    for row in table["rows"].values():
        assert row["n"] == 2 and row["std"] is not None and row["params"] > 0
        assert all(0 <= r["val_miou"] <= 100 and r["epochs"] == 1 for r in row["runs"])
    assert table["verdict"] in VERDICTS and table["comparisons"][0]["outcome"] in ("holds", "reversed", "within spread")
    assert table["runs_complete"] == 4 and table["wall_seconds"] > 0 and table["hardware"]
    text = doc.read_text()
    assert "Intro text." in text and "<!-- sweep:ablation_vii -->" in text
    assert "| **Delayed** | fplnet_encoder |" in text and "| Hasty | fplnet_encoder_hasty |" in text
    assert f"Verdict: **{table['verdict']}**" in text and "| Delayed > Hasty | +1.86 |" in text
    assert f"--table vii --recipe {recipe} --epochs 1 --seeds 2" in text

    # Second call: everything is complete, nothing is trained or rewritten.
    before = {**stamps(grid, "fplnet_encoder"), **stamps(grid, "fplnet_encoder_hasty")}
    capsys.readouterr()
    assert cli(["ablate", "--table", "vii", *common]) == 0
    assert "4 complete run(s) skipped" in capsys.readouterr().out
    assert before == {**stamps(grid, "fplnet_encoder"), **stamps(grid, "fplnet_encoder_hasty")}

    # Another table holding fplnet_encoder reads its runs; only ReLU is trained.
    assert cli(["ablate", "--table", "activation", *common]) == 0
    assert "2 complete run(s) skipped" in capsys.readouterr().out
    assert before == {**stamps(grid, "fplnet_encoder"), **stamps(grid, "fplnet_encoder_hasty")}
    tables = json.loads(raw.read_text())["tables"]
    assert set(tables) == {"vii", "activation"}            # the JSON keeps the earlier table
    assert tables["activation"]["rows"]["fplnet_encoder"]["runs"] == tables["vii"]["rows"]["fplnet_encoder"]["runs"]
    assert "<!-- sweep:ablation_vii -->" in doc.read_text() and "| ReLU | fplnet_encoder_relu |" in doc.read_text()

    # The recipe edited after the runs: refused rather than mixed in.
    write_recipe(recipe, tiny_camvid, lr=0.01)
    assert cli(["ablate", "--table", "vii", *common, "--table-only"]) == 2
    assert "was trained with lr=0.045" in capsys.readouterr().err


def test_interrupted_run_is_resumed_not_restarted(tiny_camvid, tmp_path, one_thread_runs):
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_camvid, epochs=2)
    runs = tmp_path / "runs"
    grid = build_grid([TABLES["vii"]], load_recipe(str(recipe), {}), recipe_folder(str(recipe), 2, str(runs)), 1)
    first = grid.runs()[0]
    assert first.folder == runs / "tiny-2ep" / "fplnet_encoder__seed0"
    (tmp_path / "first.yaml").write_text(yaml.safe_dump(first.config))
    assert cli(["train", "--config", str(tmp_path / "first.yaml"), "--stop-after-epoch", "1"]) == 0
    assert run_state(first.folder) == "interrupted"
    history_before = load_checkpoint(first.folder / "last.pt")["history"]
    common = ["ablate", "--table", "vii", "--recipe", str(recipe), "--seeds", "1", "--runs-root", str(runs)]
    assert cli([*common, "--table-only"]) == 0               # the table alone trains nothing
    assert run_state(first.folder) == "interrupted"
    assert cli(common) == 0
    after = load_checkpoint(first.folder / "last.pt")
    assert after["epoch"] == 2 and after["history"][0] == history_before[0]   # continued, not restarted
    assert "resumed" in (grid.output / f"{first.folder.name}.log").read_text()
    assert all(run_state(run.folder) == "complete" for run in grid.runs())


def fake_run(folder, miou):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"last": {"val_miou": miou}, "epochs": 1, "wall_seconds": 60.0,
                                                     "hardware": "hand-made"}))


@pytest.mark.parametrize("delayed, hasty, expected", [
    ((60.0, 61.0), (55.0, 55.5), "confirmed"),                   # +5.25 > spread 1.06
    ((60.0, 61.0), (64.0, 66.0), "contradicted"),                # -4.5 < -(0.71 + 1.41)
    ((60.0, 61.0), (60.2, 60.4), "not decided at this scale"),   # +0.2 within 0.85
])
def test_verdict_of_a_table_from_hand_made_runs(tmp_path, capsys, delayed, hasty, expected):
    recipe = write_recipe(tmp_path / "tiny.yaml", tmp_path)
    grid = tmp_path / "runs" / "tiny-1ep"
    common = ["ablate", "--table", "vii", "--recipe", str(recipe), "--runs-root", str(tmp_path / "runs"),
              "--json", str(tmp_path / "a.json"), "--table-only"]
    assert cli(common) == 0
    out = capsys.readouterr().out
    assert "Verdict: **-**" in out and "| 0/2 | - |" in out and "not measured" in out
    for seed, a in enumerate(delayed):
        fake_run(grid / f"fplnet_encoder__seed{seed}", a)
    assert cli(common) == 0   # one row measured: nothing to beat, so no best row yet
    assert json.loads((tmp_path / "a.json").read_text())["tables"]["vii"]["our_best"] is None
    assert "Our best row: -;" in capsys.readouterr().out
    for seed, b in enumerate(hasty):
        fake_run(grid / f"fplnet_encoder_hasty__seed{seed}", b)
    assert cli(common) == 0
    table = json.loads((tmp_path / "a.json").read_text())["tables"]["vii"]
    assert table["verdict"] == expected
    assert math.isclose(table["rows"]["fplnet_encoder"]["mean"], 60.5)
    # Our differences are to the paper's best row (Delayed), like the paper's column beside them.
    assert table["rows"]["fplnet_encoder"]["diff_to_paper_best"] == 0.0
    assert math.isclose(table["rows"]["fplnet_encoder_hasty"]["diff_to_paper_best"], sum(hasty) / 2 - 60.5)
    assert table["our_best"] == ("fplnet_encoder_hasty" if expected == "contradicted" else "fplnet_encoder")
    out = capsys.readouterr().out
    assert f"Verdict: **{expected}**" in out and "the paper's: Delayed" in out
    assert table["invoked_as"] == "fplnet " + " ".join(common)
    # Asked for 3 seeds, the same two per row measure every comparison but judge nothing yet.
    assert cli([*common, "--seeds", "3"]) == 0
    table = json.loads((tmp_path / "a.json").read_text())["tables"]["vii"]
    assert table["verdict"] == "incomplete (4 of 6 runs done)"
    assert {c["outcome"] for c in table["comparisons"]} != {"not measured"}


def test_a_table_names_each_machine_and_the_precision_its_steps_ran_in(tmp_path, capsys):
    """A run resumed on another machine, where `amp: auto` chose fp32 instead of bf16, is listed
    under both, each with its precision and its share of the time."""
    recipe = write_recipe(tmp_path / "tiny.yaml", tmp_path)
    grid = tmp_path / "runs" / "tiny-1ep"
    sessions = [{"hardware": "CPU A", "amp": "bf16", "seconds": 1800.0}, {"hardware": "CPU B", "amp": "none", "seconds": 3600.0}]
    for model, miou in [("fplnet_encoder", 60.0), ("fplnet_encoder_hasty", 58.0)]:
        fake_run(grid / f"{model}__seed0", miou)
        summary = json.loads((grid / f"{model}__seed0" / "summary.json").read_text())
        (grid / f"{model}__seed0" / "summary.json").write_text(json.dumps({**summary, "sessions": sessions}))
    assert cli(["ablate", "--table", "vii", "--recipe", str(recipe), "--runs-root", str(tmp_path / "runs"),
                "--seeds", "1", "--table-only"]) == 0
    out = capsys.readouterr().out
    assert "Hardware: CPU A, bf16 steps; CPU B, fp32 steps." in out
    assert "(1.00 h on CPU A, bf16 steps; 2.00 h on CPU B, fp32 steps)" in out


def test_compare_and_verdict_rules():
    def estimate(mean, std, n=3):
        return {"mean": mean, "std": std, "n": n}
    assert compare(estimate(60, 0.5), estimate(58, 0.5))["outcome"] == "holds"
    assert compare(estimate(58, 0.5), estimate(60, 0.5))["outcome"] == "reversed"
    assert compare(estimate(60, 0.5), estimate(59.5, 0.5))["outcome"] == "within spread"
    assert compare(estimate(58.8, 0.5), estimate(59.5, 0.5))["outcome"] == "within spread"   # reversed means, within spread
    judged = compare(estimate(60, None, n=1), estimate(58, 0.5))
    assert judged["outcome"] == "not measured" and judged["difference"] == 2
    assert compare(None, estimate(58, 0.5))["outcome"] == "not measured"
    assert verdict(["holds", "holds"]) == "confirmed"
    assert verdict(["holds", "reversed"]) == "contradicted"
    assert verdict(["holds", "within spread"]) == "not decided at this scale"
    assert verdict(["holds", "not measured"]) == "incomplete (1 of 2 comparisons measured)"
    assert verdict(["reversed", "not measured"]) == "incomplete (1 of 2 comparisons measured)"
    # Every comparison measured on 2 seeds, but the table asks for 3: no verdict yet, not even "contradicted".
    assert verdict(["reversed", "holds"], runs_done=12, runs_wanted=18) == "incomplete (12 of 18 runs done)"
    assert verdict(["reversed", "holds"], runs_done=18, runs_wanted=18) == "contradicted"
    assert verdict(["not measured"]) == verdict([]) == "not measured yet"


# The paper's figures as printed (Tables VI-X, Section IV-C), row by row in the paper's order.
PAPER_MIOU = {
    "vi": [53.30, 55.73, 58.83, 56.29],
    "vii": [58.83, 56.97],
    "viii": [57.00, 56.42, 56.97, 57.20, 57.75, 58.83],
    "ix": [56.0, 56.1, 55.9, 55.0, 57.4, 58.83, 57.2, 57.98],
    "x": [59.10, 56.79, 58.83],
    "activation": [58.83, None],
    "reference": [58.83, 66.93],
    "fpl_reading": [58.83, None, None, 56.29],
}
PAPER_PARAMS_M = {
    "vi": [0.34, 0.38, 0.42, 0.38], "vii": [0.42, 0.40],
    "viii": [0.414810, 0.414636, 0.419820, 0.414810, 0.419994, 0.419994],
    "ix": [0.32, 0.40, 0.47, 0.57, 0.34, 0.42, 0.49, 0.57], "x": [0.54, 0.38, 0.42],
    "activation": [0.42, None],
    "reference": [0.42, 0.49],
    "fpl_reading": [0.42, 0.42, 0.42, 0.38],
}


def test_tables_hold_the_papers_rows_and_figures():
    assert set(TABLES) == set(PAPER_MIOU)
    for table in TABLES.values():
        assert all(model in list_models() for model in table.models()) and table.choice in table.models()
        assert [get_model_entry(m).paper_miou for m in table.models()] == PAPER_MIOU[table.id]
        decimals = 6 if table.id == "viii" else 2     # Table VIII prints thousands to 3 decimals
        params = [get_model_entry(m).paper_params for m in table.models()]
        assert [None if p is None else round(p / 1e6, decimals) for p in params] == PAPER_PARAMS_M[table.id]
    assert TABLES["viii"].seeds == 3 and all(t.seeds == 2 for t in TABLES.values() if t.id != "viii")
    # Table X: the paper prints no factorization above composite; the comparison follows the print.
    assert paper_comparisons(TABLES["x"]) == [("fplnet_encoder_nofact", "fplnet_encoder"),
                                              ("fplnet_encoder", "fplnet_encoder_allfact")]


def test_bad_table_is_refused(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "tiny.yaml", tmp_path)
    assert cli(["ablate", "--table", "xi", "--recipe", str(recipe), "--table-only"]) == 2
    assert "--table 'xi': must be one of vi, fpl_reading, vii, viii, ix, x, activation, reference or all" in capsys.readouterr().err


def test_a_broken_doc_block_is_refused_before_any_run(tmp_path, capsys, monkeypatch):
    """A hand edit that lost a table's end marker is found before the grid trains, not after."""
    from fplnet.engine.sweep import Runner
    recipe = write_recipe(tmp_path / "tiny.yaml", tmp_path)
    doc = tmp_path / "ablations.md"
    doc.write_text("intro\n<!-- sweep:ablation_vii -->\nold table, its end marker lost\n")
    monkeypatch.setattr(Runner, "run", lambda self: pytest.fail("trained before checking the document"))
    assert cli(["ablate", "--table", "vii", "--recipe", str(recipe), "--runs-root", str(tmp_path / "runs"),
                "--doc", str(doc), "--json", str(tmp_path / "a.json")]) == 2
    assert "<!-- /sweep:ablation_vii --> must appear once each" in capsys.readouterr().err
    assert doc.read_text().startswith("intro\n") and not (tmp_path / "a.json").exists()
