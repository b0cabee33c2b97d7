"""x264 alone: time per frame and file size of encoding 30 CamVid val frames scaled to 1920x1080
(as `fplnet predict` encodes an overlay video: PyAV, libx264, yuv420p) with x264's default preset
(medium) at crf 20, what predict used, and faster presets, veryfast also at crf 19 (what predict
uses now: as close to the frames as medium at crf 20). Also the mean over pixels of the largest
channel error of the decoded frames against the encoded ones. Run from the repository root on an
idle machine:

    python docs/runs/predict_pipeline_2026-12-03/x264_presets.py > docs/runs/predict_pipeline_2026-12-03/x264_presets.txt
"""
import io
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

files = sorted(Path("../shared/data/camvid/val").glob("*.png"))[:30]
frames = [np.asarray(Image.open(f).convert("RGB").resize((1920, 1080), Image.BILINEAR)) for f in files]
for preset, crf in ((None, 20), ("veryfast", 20), ("veryfast", 19), ("superfast", 20)):
    for round_ in range(2):
        buffer = io.BytesIO()
        with av.open(buffer, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
            stream.options = {"crf": str(crf), **({"preset": preset} if preset else {})}
            start = time.perf_counter()
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
            elapsed = time.perf_counter() - start
        buffer.seek(0)
        with av.open(buffer) as container:
            decoded = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
        error = np.mean([np.abs(d - f).max(axis=2).mean() for d, f in zip(decoded, frames)])
        print(f"preset {preset or 'medium (default)'}, crf {crf}, round {round_ + 1}: {1000 * elapsed / len(frames):.1f} "
              f"ms per frame, {len(buffer.getvalue()) / 1e6:.2f} MB for {len(frames)} frames, mean error "
              f"{error:.2f} levels", flush=True)
