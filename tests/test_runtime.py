"""Process set-up of fplnet.runtime that the commands rely on."""
import subprocess
import sys

import pytest

# Multiply a tensor of subnormal fp32 values, large enough that torch splits the work across its
# thread pool, and print how many results stayed nonzero.
_COUNT_SUBNORMAL_PRODUCTS = (
    "import torch; y = torch.full((1 << 22,), 1e-39) * 2; print(int((y != 0).sum()))")


def _nonzero_after(prelude: str) -> int:
    out = subprocess.run([sys.executable, "-c", prelude + "\n" + _COUNT_SUBNORMAL_PRODUCTS],
                         capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_every_command_flushes_subnormals_in_all_of_torchs_threads():
    import torch
    if not torch.set_flush_denormal(False):   # no FTZ/DAZ on this CPU: nothing to switch
        pytest.skip("this CPU cannot flush subnormal numbers")
    # Control: without the switch, every product of a subnormal is a (nonzero) subnormal.
    assert _nonzero_after("") == 1 << 22
    # Through the CLI's entry point, before any other tensor work: all flushed to zero.
    prelude = "import contextlib, io\nfrom fplnet.cli import main\n" \
              "with contextlib.redirect_stdout(io.StringIO()): main(['models'])"
    assert _nonzero_after(prelude) == 0
