"""The Table IV speed baselines (ENet, ERFNet, CGNet): parameter counts against their papers,
and forward/backward at input sizes that are not multiples of the networks' stride."""
import io

import pytest
import torch
import torch.nn.functional as F

from fplnet.models import create_model, get_model_entry
from fplnet.models.enet import max_unpool

# name: (class count the docstring compares at, our exact count at that class count)
PARAM_COUNTS = {
    "enet": (19, 364_311),     # FPLNet Table IV: 0.36M
    "erfnet": (19, 2_064_191),  # ERFNet paper: 2.06M
    "cgnet": (19, 496_306),    # CGNet paper / FPLNet Table IV: 0.5M
}
BASELINES = tuple(PARAM_COUNTS)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", BASELINES)
def test_parameter_count_matches_paper(name):
    num_classes, expected = PARAM_COUNTS[name]
    count = count_parameters(create_model(name, num_classes=num_classes))
    assert count == expected
    paper = get_model_entry(name).paper_params
    assert abs(count - paper) / paper < 0.03, f"{name}: {count:,} vs paper {paper:,.0f}"


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("shape", [(1, 3, 97, 131), (2, 3, 64, 96)])
def test_forward_backward_any_size(name, shape):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).train()
    x = torch.randn(*shape)
    out = model(x)
    assert out.shape == (shape[0], 5, *shape[-2:])
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)

    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (shape[0], 5, *shape[-2:])
    assert torch.isfinite(out).all()


def test_enet_unpool_matches_torch():
    x = torch.randn(2, 4, 10, 14)
    pooled, indices = F.max_pool2d(x, 2, 2, return_indices=True)
    expected = F.max_unpool2d(pooled, indices, 2, output_size=x.shape[-2:])
    assert torch.equal(max_unpool(pooled, indices, x.shape[-2:]), expected)


@pytest.mark.filterwarnings("ignore::UserWarning")  # the exporter's constant-folding notes
@pytest.mark.parametrize("name", BASELINES)
def test_onnx_export(name):
    pytest.importorskip("onnx")
    model = create_model(name).eval()
    buffer = io.BytesIO()
    torch.onnx.export(model, torch.randn(1, 3, 64, 96), buffer, opset_version=17, dynamo=False)
    assert buffer.getvalue()
