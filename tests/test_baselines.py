"""The Table IV speed baselines (ENet, ERFNet, CGNet): parameter counts against their papers,
and forward/backward at input sizes that are not multiples of the networks' stride, and the
exported ONNX graph of every baseline reproducing its logits."""
import pytest
import torch
import torch.nn.functional as F

from fplnet.fast import InferenceRunner, fold_batchnorm
from fplnet.graph_export import INPUT_NAME, export_onnx_bytes
from fplnet.models import create_model, get_model_entry
from fplnet.models.enet import max_pool_2x2, max_unpool_2x2

from _helpers import camvid_image, make_model, normalized

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


def test_enet_pool_and_unpool_match_torch_ties_and_gradients_included():
    """max_pool_2x2 / max_unpool_2x2 against F.max_pool2d(return_indices) / F.max_unpool2d, on a
    map of small integers (so windows hold ties) and on a random one, values and gradients."""
    for x in (torch.randint(-2, 3, (2, 4, 10, 14)).float(), torch.randn(2, 4, 10, 14)):
        ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
        pooled, position = max_pool_2x2(ours)
        expected, indices = F.max_pool2d(theirs, 2, 2, return_indices=True)
        assert torch.equal(pooled, expected)
        assert torch.equal(max_unpool_2x2(pooled, position), F.max_unpool2d(expected, indices, 2))
        weights = torch.randn_like(x)
        (max_unpool_2x2(pooled, position) * weights).sum().backward()
        (F.max_unpool2d(expected, indices, 2) * weights).sum().backward()
        assert torch.equal(ours.grad, theirs.grad)


@pytest.mark.filterwarnings("ignore::UserWarning")  # the exporter's constant-folding notes
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_enet_pool_and_unpool_put_tied_maxima_where_torch_does_in_the_exported_graph(backend):
    """The exported argmax breaks ties as torch does: pool + unpool of a map of -1, 0 and 1 (ties
    in almost every window) gives torch's output bit for bit."""
    pytest.importorskip(backend)
    import numpy as np


    class PoolUnpool(torch.nn.Module):
        def forward(self, x):
            return max_unpool_2x2(*max_pool_2x2(x))

    x = torch.randint(-1, 2, (1, 3, 16, 24), generator=torch.Generator().manual_seed(0)).float()
    expected = PoolUnpool()(x)
    out = torch.as_tensor(np.asarray(InferenceRunner(PoolUnpool(), backend, torch.device("cpu"))(x))).float()
    assert torch.equal(out, expected)


@pytest.mark.filterwarnings("ignore::UserWarning")  # the exporter's constant-folding notes
@pytest.mark.parametrize("name", ("espnet",) + BASELINES)
def test_onnx_export_reproduces_the_model(name):
    """The graph `fplnet export` ships (BatchNorms folded) run by onnxruntime gives the PyTorch
    logits on a real CamVid frame: the fp32 bound of the backends (1e-3, 99.9% of the argmax)."""
    onnxruntime = pytest.importorskip("onnxruntime")
    model = make_model(name, num_classes=11)   # BN statistics from real frames, logits up to 12
    session = onnxruntime.InferenceSession(export_onnx_bytes(fold_batchnorm(model)), providers=["CPUExecutionProvider"])
    x = normalized(camvid_image(3)[:120, :168])
    with torch.no_grad():
        reference = model(x)
    exported = torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0])
    assert exported.shape == reference.shape
    assert (reference - exported).abs().max().item() < 1e-3
    assert (reference.argmax(1) == exported.argmax(1)).float().mean().item() >= 0.999
    assert len(reference.argmax(1).unique()) > 1   # a constant label map would agree trivially


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ("espnet",) + BASELINES)
def test_openvino_runs_the_baselines_as_pytorch_does(name):
    """The OpenVINO variant converts the same graph and rewrites it (split_concat_convs touches
    ESPNet, CGNet and ERFNet too): the fp32 bound holds for every baseline."""
    pytest.importorskip("openvino")
    model = make_model(name, num_classes=11)
    x = normalized(camvid_image(3)[:120, :168])
    with torch.no_grad():
        reference = model(x)
    out = InferenceRunner(model, "openvino", torch.device("cpu"))(x)
    assert out.shape == reference.shape
    assert (reference - out).abs().max().item() < 1e-3
    assert (reference.argmax(1) == out.argmax(1)).float().mean().item() >= 0.999
