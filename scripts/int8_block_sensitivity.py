"""Which FPLNet blocks to keep in float under INT8 (issue 9): quantize the shipped CamVid FPLNet
with NNCF on 300 CamVid train frames once per configuration (a block, an NNCF preset or option),
and score each on the train frames left out of calibration (argmax agreement with OpenVINO fp32,
mIoU) and, for the record, on val and the held-out sequence 0006R0.

    python scripts/int8_block_sensitivity.py --data-root ../shared/data/camvid default fusions head \
        > docs/runs/openvino/int8_block_sensitivity.jsonl

One JSON line per configuration. The ranking criterion is the left-out train frames, so that the
evaluation splits do not choose the layers; the choice is KEEP_IN_FLOAT in fplnet/openvino_backend.py.
About 100 s per configuration on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from fplnet.calibration import calibration_set
from fplnet.data import build_dataset
from fplnet.engine.evaluate import evaluate
from fplnet.fast import Variant, prepare_model
from fplnet.metrics import ConfusionMatrix
from fplnet.models import load_model
from fplnet.openvino_backend import OpenVINORunner, fake_quantize_count, require, to_openvino
from fplnet.spec import InferenceSpec


def configurations(nncf) -> dict:
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters as advanced
    from nncf.quantization.advanced_parameters import OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet as ranges
    scope = nncf.IgnoredScope
    deconvs = ["ConvolutionBackpropData"]
    table = {
        "default": {},
        "initial": {"ignored_scope": scope(patterns=[".*/encoder/initial/.*"])},
        "enc_stage0": {"ignored_scope": scope(patterns=[r".*/encoder/stages\.0.*"])},
        "enc_stage1": {"ignored_scope": scope(patterns=[r".*/encoder/stages\.1.*"])},
        "fusions": {"ignored_scope": scope(patterns=[".*/encoder/fusions.*"])},
        "head": {"ignored_scope": scope(patterns=[".*/head/.*"], types=deconvs)},
        "full_bias_correction": {"fast_bias_correction": False},
        "mixed": {"preset": nncf.QuantizationPreset.MIXED},
        "ignore_deconv": {"ignored_scope": scope(types=deconvs)},
        "mixed_ignore_deconv": {"preset": nncf.QuantizationPreset.MIXED, "ignored_scope": scope(types=deconvs)},
        "ignore_deconv_initial": {"ignored_scope": scope(types=deconvs, patterns=[".*/encoder/initial/convs.*"])},
        "mixed_fusions": {"preset": nncf.QuantizationPreset.MIXED, "ignored_scope": scope(patterns=[".*/encoder/fusions.*"])},
        "mixed_fusions_enc_stage0": {"preset": nncf.QuantizationPreset.MIXED,
                                     "ignored_scope": scope(patterns=[".*/encoder/fusions.*", r".*/encoder/stages\.0.*"])},
    }
    # Activation range estimators and the first-layer overflow fix (NNCF's advanced parameters),
    # alone with MIXED and on top of the current scope (fusions + encoder stage 0 in float).
    current = [".*/encoder/fusions.*", r".*/encoder/stages\.0.*"]
    options = {
        "hist": advanced(activations_range_estimator_params=ranges.HISTOGRAM),
        "mean_minmax": advanced(activations_range_estimator_params=ranges.MEAN_MINMAX),
        "mean_quantile": advanced(activations_range_estimator_params=ranges.MEAN_QUANTILE),
        "no_overflow_fix": advanced(overflow_fix=OverflowFix.DISABLE),
    }
    for key, params in options.items():
        table[f"mixed_{key}"] = {"preset": nncf.QuantizationPreset.MIXED, "advanced_parameters": params}
        table[f"mixed_fusions_enc_stage0_{key}"] = {"preset": nncf.QuantizationPreset.MIXED, "advanced_parameters": params,
                                                    "ignored_scope": scope(patterns=current)}
    table["mixed_enc_stage0"] = {"preset": nncf.QuantizationPreset.MIXED,
                                 "ignored_scope": scope(patterns=[r".*/encoder/stages\.0.*"])}
    # NNCF's accuracy-aware search from the current scope: quantizer groups back to float until
    # the left-out train frames lose at most 0.4 mIoU points (0.5 is issue 9's bound on val and 0006R0).
    table["accuracy_control_0.4"] = {"preset": nncf.QuantizationPreset.MIXED, "max_drop": 0.004,
                                     "ranking_frames": 24, "ignored_scope": scope(patterns=current)}
    # One more block in float beside the current scope: stage 1's downsampler, or the decoder's deconvolutions.
    table["mixed_fusions_enc_stage0_stage1_down"] = {
        "preset": nncf.QuantizationPreset.MIXED, "ignored_scope": scope(patterns=current + [r".*/encoder/stages\.1\.0/.*"])}
    # The best range estimator (mean of per-frame quantiles) with one more block in float: stage
    # 1's downsampler, or its last module (the first NNCF's accuracy control put back).
    for key, pattern in (("stage1_down", r".*/encoder/stages\.1\.0/.*"), ("stage1_last", r".*/encoder/stages\.1\.8/.*")):
        table[f"mixed_fusions_enc_stage0_mean_quantile_{key}"] = {
            "preset": nncf.QuantizationPreset.MIXED, "ignored_scope": scope(patterns=current + [pattern]),
            "advanced_parameters": options["mean_quantile"]}
    # Towards speed (issue 9): encoder stage 0 in float is the costly part of the chosen scope (its
    # five modules run at 1/4 of the input resolution). The chosen ranges and stage 1's last module,
    # with none of stage 0, its downsampler, or its first two modules in float.
    chosen = [".*/encoder/fusions.*", r".*/encoder/stages\.1\.8/.*"]
    for key, extra in (("no_stage0", []), ("stage0_down", [r".*/encoder/stages\.0\.0/.*"]),
                       ("stage0_first2", [r".*/encoder/stages\.0\.[01]/.*"])):
        table[f"mixed_mean_quantile_fusions_stage1_last_{key}"] = {
            "preset": nncf.QuantizationPreset.MIXED, "ignored_scope": scope(patterns=chosen + extra),
            "advanced_parameters": options["mean_quantile"]}
    table["mixed_fusions_enc_stage0_deconvs"] = {
        "preset": nncf.QuantizationPreset.MIXED, "ignored_scope": scope(patterns=current, types=deconvs)}
    return table


def accuracy_controlled(nncf, fp32, calibration, inputs, left_out, spec, max_drop: float, ranking_frames: int,
                        **kwargs):
    """NNCF's accuracy-aware quantization: quantize, then put quantizer groups back in float, the
    most harmful first by NNCF's ranking on ``ranking_frames`` of them, until the mIoU on the
    left-out train frames (``inputs`` with ``left_out``'s masks) is within ``max_drop`` (a
    fraction) of fp32's."""
    items = [(x.numpy(), mask) for x, (_, mask) in zip(inputs, left_out)]

    def validate(compiled, data):
        matrix, per_frame = ConfusionMatrix(spec.num_classes), []
        for x, mask in data:
            labels = torch.from_numpy(compiled(x)[0]).argmax(1)
            target = torch.from_numpy(mask).long()[None]
            matrix.update(labels, target)
            valid = target != 255
            per_frame.append(float((labels == target)[valid].float().mean()))
        return float(matrix.compute()["miou"]), per_frame
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters
    static = fp32.clone()   # every frame is 360x480: a static graph validates several times faster
    static.reshape([int(v) for v in items[0][0].shape])
    return nncf.quantize_with_accuracy_control(
        static, nncf.Dataset(list(calibration)), nncf.Dataset(items, lambda item: item[0]), validate,
        max_drop=max_drop, subset_size=len(calibration),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            ranking_subset_size=ranking_frames, num_ranking_workers=1), **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--checkpoint", default="camvid")
    parser.add_argument("configs", nargs="+")
    args = parser.parse_args()
    nncf = require("nncf")
    table = configurations(nncf)
    threads = torch.get_num_threads()
    model, ckpt = load_model(args.checkpoint)
    spec = InferenceSpec.from_checkpoint(ckpt)
    # Frames and masks are compared at CamVid's own 360x480 below, with no resize either way.
    if tuple(spec.network_size((360, 480))) != (360, 480):
        parser.error(f"--checkpoint {args.checkpoint} runs CamVid frames at {spec.describe_size()}, not at their "
                     "own 360x480; this study compares labels at the frames' size and does not resize")
    fp32 = to_openvino(prepare_model(model, Variant.parse("openvino")))
    reference_runner = OpenVINORunner(fp32, threads)
    calibration = calibration_set(ckpt, args.data_root, 300)
    train = build_dataset("camvid", args.data_root, "train")
    used = {str(path) for path in calibration.files}
    left_out = [train.load_raw(i) for i, (image, _) in enumerate(train.files) if str(image) not in used]
    inputs = [spec.preprocess([image]) for image, _ in left_out]
    reference = [reference_runner(x).argmax(1) for x in inputs]
    splits = {split: build_dataset("camvid", args.data_root, split).load_all_uint8() for split in ("val", "heldout_val")}
    for name in args.configs:
        started = time.time()
        if name.startswith("accuracy_control"):
            quantized = accuracy_controlled(nncf, fp32, calibration.frames, inputs, left_out, spec, **table[name])
        else:
            quantized = nncf.quantize(fp32, nncf.Dataset(calibration.frames), subset_size=len(calibration.frames),
                                      **table[name])
        runner = OpenVINORunner(quantized, threads)
        matrix, same, total = ConfusionMatrix(spec.num_classes), 0, 0
        for x, expected, (_, mask) in zip(inputs, reference, left_out):
            labels = runner(x).argmax(1)
            same, total = same + int((labels == expected).sum()), total + labels.numel()
            matrix.update(labels, torch.from_numpy(mask).long()[None])
        row = {"config": name, "train_rest_agree": round(same / total, 5),
               "train_rest_miou": round(float(matrix.compute()["miou"]) * 100, 2)}
        for split, (images, masks) in splits.items():
            result = evaluate(runner, images, masks, spec.num_classes, spec.mean, spec.std, "cpu", batch_size=4)
            row[split] = round(float(result.compute()["miou"]) * 100, 2)
        row.update({"fq": fake_quantize_count(quantized), "seconds": round(time.time() - started)})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
