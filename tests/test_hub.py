"""torch.hub.load from a local checkout, as a user of the repository would."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("fplnet", "fplnet_encoder", "espnet", "espnet_c", "enet", "erfnet", "cgnet")


def test_hub_load_local_and_forward():
    model = torch.hub.load(str(REPO), "fplnet", source="local", pretrained=None, num_classes=11).eval()
    assert 490_000 < sum(p.numel() for p in model.parameters()) < 500_000
    with torch.no_grad():
        out = model(torch.randn(1, 3, 97, 131))
    assert out.shape == (1, 11, 97, 131)


@pytest.mark.parametrize("name", ENTRY_POINTS[1:])
def test_every_entry_point_builds(name):
    model = torch.hub.load(str(REPO), name, source="local", num_classes=5)
    assert model.num_classes == 5 and model.model_name == name


def test_hub_works_without_an_installed_package(tmp_path):
    """A plain clone: hubconf.py puts src/ on sys.path itself. ``python -S`` skips site-packages
    and its .pth files (where an editable install registers src/); only torch's folder is
    added back, so fplnet is not importable until hubconf adds it."""
    site_packages = str(Path(torch.__file__).resolve().parents[1])
    code = (
        "import sys, importlib.util\n"
        "sys.path.append(sys.argv[1])\n"
        "assert importlib.util.find_spec('fplnet') is None, 'fplnet should not be importable here'\n"
        "import torch\n"
        "m = torch.hub.load(sys.argv[2], 'fplnet_encoder', source='local', num_classes=5)\n"
        "print(tuple(m(torch.randn(1, 3, 64, 64)).shape))\n"
    )
    result = subprocess.run([sys.executable, "-S", "-c", code, site_packages, str(REPO)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(1, 5, 64, 64)")


def test_pretrained_weights_come_back_ready_for_inference():
    """In training mode the BatchNorms would normalize each input by its own batch statistics."""
    model = torch.hub.load(str(REPO), "fplnet", source="local", pretrained="camvid")
    assert not model.training and not any(m.training for m in model.modules())
    assert model.inference_spec.info.num_classes == 11
