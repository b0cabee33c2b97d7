"""Carry a SegNet-layout CamVid folder to the device machine and back into its own layout there.

The device tool sends the repository and at most 64 MiB with it; CamVid's 468 train + val PNGs
are 119 MB. Lossless WebP brings them to about 84 MB, still too much for one call, so ``pack``
splits the frames into parts that each fit one call beside the working tree, and ``unpack`` (run
on the device, once per part, into the same folder) decodes each image back to the PNG pixels
it came from. Lossless means exact: ``pack`` decodes every file it writes and compares it with
the original before it keeps it. Labels, list files and classes stay as they are.

    python scripts/device_data.py pack ../shared/data/camvid .devdata --part-mb 44
    python scripts/device_data.py unpack .devdata/part0 /tmp/camvid      # on the device, each part
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_FOLDERS = ("train", "val")


def _to_webp(task: tuple[str, str]) -> int:
    source, target = map(Path, task)
    with Image.open(source) as image:
        pixels = np.array(image.convert("RGB"))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "WEBP", lossless=True, quality=100, method=6, exact=True)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        if not np.array_equal(np.array(decoded.convert("RGB")), pixels):
            raise SystemExit(f"WebP of {source} does not decode to the same pixels")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())
    return len(buffer.getvalue())


def pack(source: Path, target: Path, part_mb: float, workers: int) -> None:
    images = sorted(p for folder in IMAGE_FOLDERS for p in (source / folder).glob("*.png"))
    if not images:
        raise SystemExit(f"no PNG images under {source}/{{train,val}}")
    staged = target / "all"
    tasks = [(str(p), str(staged / p.parent.name / (p.stem + ".webp"))) for p in images]
    with ProcessPoolExecutor(workers) as pool:
        sizes = list(pool.map(_to_webp, tasks, chunksize=4))
    # Fill parts in file order; the small files (labels, lists) go into the last part.
    part, used = 0, 0.0
    for (src, dst), size in zip(tasks, sizes):
        if used + size / 1e6 > part_mb:
            part, used = part + 1, 0.0
        final = target / f"part{part}" / Path(dst).parent.name / Path(dst).name
        final.parent.mkdir(parents=True, exist_ok=True)
        Path(dst).replace(final)
        used += size / 1e6
    last = target / f"part{part}"
    for item in source.iterdir():
        if item.name in IMAGE_FOLDERS:
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, last / item.name)
    shutil.rmtree(staged)
    for folder in sorted(target.glob("part*")):
        total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"{folder}: {total / 1e6:.1f} MB")


def _to_png(task: tuple[str, str]) -> None:
    source, target = map(Path, task)
    with Image.open(source) as image:
        image.convert("RGB").save(target, "PNG", compress_level=1)


def unpack(part: Path, target: Path, workers: int) -> None:
    tasks = []
    for item in part.iterdir():
        if item.name in IMAGE_FOLDERS:
            (target / item.name).mkdir(parents=True, exist_ok=True)
            tasks += [(str(f), str(target / item.name / (f.stem + ".png"))) for f in item.glob("*.webp")]
        elif item.is_dir():
            shutil.copytree(item, target / item.name, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, target / item.name)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_to_png, tasks, chunksize=8))
    print(f"{part} -> {target}: {len(tasks)} images")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--part-mb", type=float, default=44.0)
    p.add_argument("--workers", type=int, default=2)
    u = sub.add_parser("unpack")
    u.add_argument("part", type=Path)
    u.add_argument("target", type=Path)
    u.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.source, args.target, args.part_mb, args.workers)
    else:
        unpack(args.part, args.target, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
