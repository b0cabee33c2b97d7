"""Where OpenVINO's CPU plugin spends the time of one FPLNet forward: per-layer execution times
(``PERF_COUNT``), summed by layer type and listed for the slowest layers, float and INT8.

    python scripts/openvino_profile.py --checkpoint camvid --size 512x1024 --int8 --calib-data ../shared/data/camvid

The graph is the one ``OpenVINORunner`` compiles (``to_openvino``'s rewrites and the NHWC output
of ``nhwc_output``); ``--precision bf16`` runs the float layers in bf16 (AMX / AVX512-BF16 CPUs),
and ``--int8-scope all`` quantizes every layer, to see what the layers ``quantize`` keeps in float
cost (a speed probe only: that model loses more than issue 9's 0.5 mIoU points).

A diagnosis tool for issue 9 (why the INT8 model is far from 40 ms at 512x1024), not a benchmark:
profiling adds its own overhead, so the totals it prints are not latencies; `fplnet benchmark`
is. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import collections
import time

import numpy as np
import torch

from fplnet.calibration import calibration_set
from fplnet.fast import Variant, prepare_model
from fplnet.models._factory import create_model, load_model
from fplnet.openvino_backend import PRECISIONS, compile_for_shape, keep_in_float, nhwc_output, quantize, to_openvino


def profile(compiled, x: np.ndarray, iters: int) -> tuple[list[float], dict]:
    request = compiled.create_infer_request()
    walls, per_layer = [], collections.defaultdict(float)
    for i in range(iters + 2):
        start = time.perf_counter()
        request.infer({0: x})
        wall = time.perf_counter() - start
        if i < 2:          # warm-up
            continue
        walls.append(wall * 1e3)
        for info in request.get_profiling_info():
            per_layer[(info.node_name, info.node_type, info.exec_type)] += info.real_time.total_seconds() * 1e3 / iters
    return walls, per_layer


def report(title: str, walls: list[float], per_layer: dict, top: int) -> None:
    total = sum(per_layer.values())
    print(f"\n== {title}: wall median {np.median(walls):.1f} ms, sum of layer times {total:.1f} ms")
    by_type = collections.defaultdict(lambda: [0.0, 0])
    for (_, node_type, exec_type), ms in per_layer.items():
        entry = by_type[(node_type, exec_type)]
        entry[0] += ms
        entry[1] += 1
    print(f"{'layer type':<22} {'executed as':<34} {'count':>5} {'ms':>8} {'share':>6}")
    for (node_type, exec_type), (ms, count) in sorted(by_type.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"{node_type:<22} {exec_type:<34} {count:>5} {ms:>8.2f} {ms / total:>6.1%}")
    print(f"\nslowest {top} layers:")
    for (name, node_type, exec_type), ms in sorted(per_layer.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{ms:>7.2f} ms  {node_type:<14} {exec_type:<30} {name[-70:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="trained weights (default: a fresh --model)")
    parser.add_argument("--model", default="fplnet")
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--size", default="512x1024", help="HxW")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--int8", action="store_true", help="also profile the NNCF INT8 model")
    parser.add_argument("--calib-data", help="calibration frames for --int8 (default: the checkpoint's data)")
    parser.add_argument("--calib-size", type=int, default=30)
    parser.add_argument("--precision", choices=PRECISIONS, default="f32", help="precision of the float layers")
    parser.add_argument("--int8-scope", choices=("float-islands", "all"), default="float-islands",
                        help="float-islands: keep what `quantize` keeps in float (the default); all: quantize every layer")
    parser.add_argument("--shuffle-deconv", action="store_true",
                        help="kernel == stride transposed convolutions (FPLNet's classifier) as 1x1 conv + pixel shuffle "
                             "(the shuffle_deconv switch)")
    parser.add_argument("--nhwc-input", action="store_true",
                        help="declare the input tensor NHWC (OpenVINO pre-processing adds the transpose)")
    parser.add_argument("--property", action="append", default=[], metavar="KEY=VALUE",
                        help="extra CPU plugin property, e.g. SNIPPETS_MODE=DISABLE (repeatable)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    if args.checkpoint:
        model, ckpt = load_model(args.checkpoint)
    else:
        model, ckpt = create_model(args.model, num_classes=args.num_classes).eval(), None
    # What the openvino variant (with --shuffle-deconv, openvino+shuffle_deconv) exports.
    model = prepare_model(model, Variant.parse("openvino+shuffle_deconv" if args.shuffle_deconv else "openvino"))
    ov_model = to_openvino(model)
    x = torch.randn(1, 3, height, width).numpy()
    if args.nhwc_input:
        import openvino as ov
        ppp = ov.preprocess.PrePostProcessor(ov_model)
        ppp.input().tensor().set_layout(ov.Layout("NHWC"))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        ov_model = ppp.build()
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    shape = x.shape
    extra = {"PERF_COUNT": True, **dict(item.split("=", 1) for item in args.property)}
    walls, layers = profile(compile_for_shape(nhwc_output(ov_model), shape, args.threads, args.precision, extra),
                            x, args.iters)
    shown = " ".join(args.property + (["shuffle_deconv"] if args.shuffle_deconv else []))
    report(f"{args.checkpoint or args.model} {args.size} OpenVINO {args.precision} {shown}", walls, layers, args.top)
    if args.int8:
        if ckpt is None:
            raise SystemExit("--int8 needs --checkpoint (calibration frames come from its data)")
        frames = [torch.nn.functional.interpolate(torch.from_numpy(f), size=(height, width), mode="bilinear",
                                                  align_corners=False).numpy()
                  for f in calibration_set(ckpt, args.calib_data, args.calib_size).frames]
        scope = keep_in_float(model) if args.int8_scope == "float-islands" else {}
        int8 = quantize(ov_model, frames, scope)
        walls, layers = profile(compile_for_shape(nhwc_output(int8), shape, args.threads, args.precision, extra),
                                x, args.iters)
        kept = "float islands in " + args.precision if scope else "every layer quantized"
        report(f"{args.checkpoint} {args.size} OpenVINO INT8 ({kept}) {shown}", walls, layers, args.top)


if __name__ == "__main__":
    main()
