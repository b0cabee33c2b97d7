"""The paper's numbers (Tables I, VI-X, Table II shapes) and the model contract."""
import pytest
import torch

import fplnet
from fplnet.complexity import count_conv_weights, count_params
from fplnet.layers import ESPModule, FPLModule, StageFusion, pairwise_fusion
from fplnet.layers.esp import hierarchical_fusion
from fplnet.models import get_model_entry

# Exact figures of Table VIII (20 outputs: 19 Cityscapes classes + void, counted like thop).
TABLE_VIII = {
    "fplnet_encoder_if": 414_810,
    "fplnet_encoder_isff_add": 414_636,
    "fplnet_encoder_isff_concat": 419_820,
    "fplnet_encoder_if_isff_add": 414_810,
    "fplnet_encoder_if_isff_concat": 419_994,
    "fplnet_encoder": 419_994,
}
# Tables VI, VII, IX, X print millions with two decimals.
TABLES_IN_MILLIONS = {
    "espnet_c": 0.34, "espnet_c_fpl": 0.38, "fplnet_encoder_esp": 0.38,          # Table VI
    "fplnet_encoder_hasty": 0.40,                                                 # Table VII
    "fplnet_encoder_d2x6": 0.32, "fplnet_encoder_d2x8": 0.40, "fplnet_encoder_d2x10": 0.47,
    "fplnet_encoder_d4x6": 0.34, "fplnet_encoder_d4x8": 0.42, "fplnet_encoder_d4x10": 0.49,
    "fplnet_encoder_d4x12": 0.57,                                                 # Table IX
    "fplnet_encoder_nofact": 0.54, "fplnet_encoder_allfact": 0.38,                # Table X
}


def params(name, num_classes=20):
    return count_params(fplnet.create_model(name, num_classes=num_classes))


@pytest.mark.parametrize("name,expected", TABLE_VIII.items())
def test_table_viii_counts_exactly(name, expected):
    assert params(name) == expected


@pytest.mark.parametrize("name,expected", TABLES_IN_MILLIONS.items())
def test_tables_vi_vii_ix_x_within_15k(name, expected):
    assert abs(params(name) - expected * 1e6) <= 15_000


def test_table_ix_row_2x12_contradicts_the_table_itself():
    # (2,12) and (4,12) differ by two 64-channel FPL modules (19,488 parameters), yet the paper
    # prints 0.57M for both; our (2,12) is exactly (4,12) minus those two modules.
    module_64 = count_params(FPLModule(64, 64))
    assert params("fplnet_encoder_d4x12") - params("fplnet_encoder_d2x12") == 2 * module_64 == 19_488


def test_full_fplnet_under_half_a_million():
    assert 490_000 <= params("fplnet") < 500_000


def test_espnet_with_decoder_near_its_paper():
    assert abs(params("espnet") - 364_000) <= 0.03 * 364_000


def test_table_i_module_counts():
    assert count_conv_weights(FPLModule(60, 60, dilations=(1, 2, 4, 8))) == 8_325
    assert count_conv_weights(FPLModule(60, 60, factorization="none")) == 11_025
    assert count_conv_weights(ESPModule(60, 60)) == 7_200


def test_fpl_module_parameter_formula():
    # Cin*d + 33*d^2 + 17*d: the per-module count that makes Table VIII exact.
    for cin, cout in [(35, 64), (64, 64), (131, 128), (128, 128), (16, 16)]:
        d = cout // 4
        assert count_params(FPLModule(cin, cout, stride=2 if cin != cout else 1)) == cin * d + 33 * d * d + 17 * d


def test_pairwise_fusion_adds_neighbouring_rates():
    b = [torch.full((1, 1, 1, 1), v) for v in (1.0, 10.0, 100.0, 1000.0)]
    context = torch.full((1, 1, 1, 1), 5.0)
    assert [t.item() for t in pairwise_fusion(b, context)] == [1.0, 11.0, 110.0, 1100.0]
    assert [t.item() for t in pairwise_fusion(b, context, "context")] == [6.0, 15.0, 105.0, 1005.0]
    assert [t.item() for t in hierarchical_fusion(b)] == [1.0, 10.0, 110.0, 1110.0]


def test_the_rival_fpl_reading_keeps_the_count_and_changes_the_module():
    """fplnet_encoder_r16 / _r16_cpff (layers/fpl.py docstring): rates (2, 4, 8, 16), and PFF adding
    each branch to the first stage's output; no parameter moves, every FPL module changes."""
    assert params("fplnet_encoder_r16") == params("fplnet_encoder_r16_cpff") == 419_994
    for name, pff in (("fplnet_encoder_r16", "neighbours"), ("fplnet_encoder_r16_cpff", "context")):
        modules = [m for m in fplnet.create_model(name).modules() if isinstance(m, FPLModule)]
        assert len(modules) == 14 and {m.pff for m in modules} == {pff}
        assert {tuple(b[0].dilation[0] for b in m.branches) for m in modules} == {(2, 4, 8, 16)}
    with pytest.raises(ValueError, match="pairwise feature fusion 'sum'"):
        FPLModule(16, 16, pff="sum")


def test_fir_channel_order_is_sum_then_deep_then_image():
    fusion = StageFusion("fir", width=2, image_chs=1)
    torch.nn.init.ones_(fusion.norm_act[0].weight)
    fusion.eval()  # BN with running stats (0, 1) ~ identity; PReLU leaves positives alone
    deep = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    shallow = torch.tensor([10.0, 20.0]).view(1, 2, 1, 1)
    image = torch.tensor([5.0]).view(1, 1, 1, 1)
    out = fusion(deep, shallow, image).flatten()
    assert fusion.out_chs == 5
    torch.testing.assert_close(out, torch.tensor([11.0, 22.0, 1.0, 2.0, 5.0]) / (1 + 1e-3) ** 0.5)


def test_fir_channels_match_table_ii():
    model = fplnet.create_model("fplnet_encoder", num_classes=20)
    assert [f.out_chs for f in model.encoder.fusions] == [131, 259]
    assert model.encoder.initial.out_chs == 35


def test_table_ii_shapes_at_512x1024():
    model = fplnet.create_model("fplnet", num_classes=20).eval()
    shapes = {}
    hooks = [model.encoder.initial.register_forward_hook(lambda m, i, o: shapes.__setitem__("s1", o.shape)),
             model.encoder.fusions[0].register_forward_hook(lambda m, i, o: shapes.__setitem__("s2", o.shape)),
             model.encoder.fusions[1].register_forward_hook(lambda m, i, o: shapes.__setitem__("s3", o.shape))]
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, 512, 1024))
    for h in hooks:
        h.remove()
    assert shapes == {"s1": (1, 35, 256, 512), "s2": (1, 131, 128, 256), "s3": (1, 259, 64, 128)}
    assert out.shape == (1, 20, 512, 1024)


@pytest.mark.parametrize("name", fplnet.list_models())
def test_every_model_forward_backward(name):
    torch.manual_seed(0)
    model = fplnet.create_model(name, num_classes=5)
    x = torch.randn(2, 3, 64, 96)
    out = model.train()(x)
    assert out.shape == (2, 5, 64, 96)
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        odd = model(torch.randn(1, 3, 97, 131))
    assert odd.shape == (1, 5, 97, 131) and torch.isfinite(odd).all()


@pytest.mark.parametrize("name", ["fplnet", "fplnet_encoder", "espnet"])
@pytest.mark.parametrize("size", [(360, 480), (375, 500)])
def test_logits_at_input_resolution(name, size):
    model = fplnet.create_model(name, num_classes=11).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 11, *size)


def test_unknown_model_lists_valid_names():
    with pytest.raises(KeyError) as err:
        fplnet.create_model("fplnett")
    assert "fplnet_encoder_hasty" in str(err.value) and "espnet_c" in str(err.value)


def test_duplicate_registration_raises():
    from fplnet.models import register_model
    with pytest.raises(ValueError, match="twice"):
        register_model("fplnet", lambda num_classes: None)


def test_overrides_replace_config_fields():
    model = fplnet.create_model("fplnet_encoder", num_classes=3, depths=(1, 1), dilations=(1, 2, 3, 5))
    assert model.cfg.depths == (1, 1) and len(model.encoder.stages[0]) == 2
    assert model.encoder.stages[0][1].branches[3][0].dilation == (5, 1)


def test_registry_paper_figures_are_recorded():
    assert get_model_entry("fplnet_encoder_isff_add").paper_params == 414_636
    assert get_model_entry("fplnet").paper_miou == 66.93


def test_models_command_lists_every_model(tmp_path, capsys):
    from fplnet.cli import main
    out = tmp_path / "models.json"
    assert main(["models", "--size", "64x128", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in fplnet.list_models())
    import json
    rows = {r["name"]: r for r in json.loads(out.read_text())["models"]}
    assert rows["fplnet_encoder"]["params"] == 419_994 and rows["fplnet_encoder"]["paper_params"] == 419_994
