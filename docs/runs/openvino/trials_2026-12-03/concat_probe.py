"""Per-Concat time and layouts of the shipped FPLNet under OpenVINO f32 at 512x1024 (PERF_COUNT, mean of 10 calls)
and what feeds and consumes each: a diagnosis for issue 9, not a benchmark.

    python docs/runs/openvino/trials_2026-12-03/concat_probe.py > docs/runs/openvino/trials_2026-12-03/concat_probe.txt
"""
import numpy as np, torch
from fplnet.fast import Variant, prepare_model
from fplnet.models import load_model
from fplnet.openvino_backend import compile_for_shape, nhwc_output, to_openvino
H, W = 512, 1024
model, _ = load_model("camvid")
ovm = to_openvino(prepare_model(model, Variant.parse("openvino")))
c = compile_for_shape(nhwc_output(ovm), (1, 3, H, W), 2, "f32", {"PERF_COUNT": True})
req = c.create_infer_request(); x = np.random.randn(1, 3, H, W).astype(np.float32)
for _ in range(3): req.infer({0: x})
t = {}
for _ in range(10):
    req.infer({0: x})
    for i in req.get_profiling_info(): t[i.node_name] = t.get(i.node_name, 0) + i.real_time.total_seconds() * 100
rt = c.get_runtime_model()
for op in rt.get_ops():
    info = op.get_rt_info()
    if str(info["layerType"]) != "Concatenation" and op.get_type_name() != "Concat" and "Concat" not in op.get_friendly_name():
        continue
    n = op.get_friendly_name()
    ins = [ (inp.get_source_output().get_node().get_rt_info()["layerType"].astype(str), inp.get_source_output().get_node().get_rt_info()["outputLayouts"].astype(str)) for inp in op.inputs()]
    outs = [tin.get_node().get_rt_info()["layerType"].astype(str) for o in op.outputs() for tin in o.get_target_inputs()]
    print(f"{t.get(n,-1):.2f} ms", n[-45:], info["outputLayouts"].astype(str), op.get_output_shape(0), "in:", ins, "out:", outs)
