"""What a variant name means, without any optional backend installed: ``fast`` wherever a
variant is accepted, the device a variant runs on, and the bound on per-shape caches."""
import importlib.util
from collections import OrderedDict

import pytest
import torch

from fplnet import Segmenter
from fplnet.engine.arguments import variant_spec, variant_specs
from fplnet import openvino_backend
from fplnet.fast import CPU_FAST, CPU_FAST_TORCH, CUDA_FAST, Variant, fast_variant, resolve_variant
from fplnet.runtime import make_room


def test_fast_and_the_device_a_variant_runs_on(monkeypatch):
    """`fast` is a variant wherever one is accepted (the device's fast path), and device "auto"
    runs the exported-graph backends on the CPU even where a GPU is visible."""
    assert resolve_variant("fast", "cpu") == (fast_variant("cpu"), torch.device("cpu"))
    assert resolve_variant("fast", "cpu", keep_memory=True)[0] == fast_variant("cpu", keep_memory=True)
    assert Segmenter("camvid", variant="fast").variant == fast_variant("cpu")
    assert variant_spec("fast") == "fast" and variant_specs("eager, fast") == ["eager", "fast"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_variant("openvino+int8", "auto")[1] == torch.device("cpu")
    assert resolve_variant(Variant.parse("onnxruntime"), "auto")[1] == torch.device("cpu")
    assert resolve_variant("channels_last", "auto")[1] == torch.device("cuda")


def test_the_cpu_fast_path_is_openvino_where_it_runs_else_compiled_torch(monkeypatch):
    """fast=True on the CPU is OpenVINO f32 where onnx and OpenVINO import and its CPU plugin
    loads, else the best torch path (a broken install says why); CUDA's does not depend on it."""
    monkeypatch.setattr(openvino_backend, "runs_here", lambda: True)
    assert fast_variant("cpu") == Variant.parse(CPU_FAST) == Variant.parse("openvino")
    assert fast_variant("cpu", keep_memory=True) == Variant.parse("keep_memory+openvino")
    assert fast_variant("cpu").backend == "openvino" and "bf16" not in fast_variant("cpu")
    monkeypatch.setattr(openvino_backend, "runs_here", lambda: False)
    assert fast_variant("cpu") == Variant.parse(CPU_FAST_TORCH)
    assert "compile" in fast_variant("cpu") and fast_variant("cpu").backend == "torch"
    assert fast_variant("cuda") == Variant.parse(CUDA_FAST)


def broken_plugin():
    raise OSError("plugin libopenvino_intel_cpu_plugin.so failed")


def test_whether_openvino_runs_here(monkeypatch):
    check = openvino_backend.runs_here
    find_spec = importlib.util.find_spec
    try:
        for missing in ("onnx", "openvino"):     # not installed: silently no
            check.cache_clear()
            monkeypatch.setattr(importlib.util, "find_spec", lambda name, m=missing: None if name == m else find_spec(name))
            assert check() is False
        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        if find_spec("openvino") is None or find_spec("onnx") is None:
            pytest.skip("OpenVINO is not installed here")
        check.cache_clear()
        assert check() is True
        check.cache_clear()                      # installed but broken: no, and a warning that says why
        monkeypatch.setattr(openvino_backend, "core", broken_plugin)
        with pytest.warns(RuntimeWarning, match="OpenVINO is installed but does not load here .*plugin.*compiled torch"):
            assert check() is False
    finally:
        check.cache_clear()


def test_a_per_shape_cache_drops_the_least_recently_used_and_keeps_at_least_one():
    cache = OrderedDict([("a", 1), ("b", 2), ("c", 3)])
    make_room(cache, 2)
    assert list(cache) == ["c"]          # room for one more within two
    with pytest.raises(ValueError, match="at least one"):
        make_room(cache, 0)


@pytest.mark.parametrize("spec", ["fold_bn+onnxruntime", "channels_last+openvino", "fold_bn+openvino+int8"])
def test_switches_that_change_nothing_in_an_exported_graph_are_refused(spec):
    """They would make a benchmark time one graph twice under two names."""
    with pytest.raises(ValueError, match="runs the exported graph, whose BatchNorms are always folded"):
        Variant.parse(spec)
