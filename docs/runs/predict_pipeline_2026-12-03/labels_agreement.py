"""How often OpenVINO's in-graph resize + argmax (``OpenVINORunner.labels``, what
``Segmenter.predict_arrays`` runs when the sizes differ) gives the label that torch's resize of the
same logits and its argmax give: CamVid val frames scaled to 1920x1080 (network at 640x360), the
shipped weights on the CPU fast path and the INT8 IR. Run from the repository root:

    python docs/runs/predict_pipeline_2026-12-03/labels_agreement.py > docs/runs/predict_pipeline_2026-12-03/labels_agreement.txt
"""
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fplnet.inference import Segmenter

IR = Path(os.environ.get("IR_DIR", "/tmp/fplnet_exported")) / "fplnet_camvid_int8.xml"
files = sorted(Path("../shared/data/camvid/val").glob("*.png"))[::10]
frames = [np.asarray(Image.open(f).convert("RGB").resize((1920, 1080), Image.BILINEAR)) for f in files]
for checkpoint in ("camvid", str(IR)):
    segmenter = Segmenter(checkpoint)
    agreements = []
    for frame in frames:
        in_graph = segmenter.predict_arrays([frame])[0]
        in_torch = segmenter.logits([frame]).argmax(1)[0].to(torch.uint8).numpy()
        agreements.append(float((in_graph == in_torch).mean()))
    print(f"{checkpoint} ({segmenter.runs_as}): {len(frames)} frames of 1920x1080, labels agree on "
          f"{min(agreements):.5%} of pixels at worst, {np.mean(agreements):.5%} on average", flush=True)
