"""What every segmentation data set here shares: decoding image and label files, checking them,
and the item format.

Items are ``(image, mask)``: ``image`` a float32 tensor 3xHxW in [0, 1] (not normalized; see
``transforms.normalize``), ``mask`` an int64 tensor HxW of class indices with 255 = ignore.

Input files are accepted as follows:

* images: 8-bit RGB. 8-bit grayscale, palette, 1-bit, RGBA/LA (alpha dropped, not blended) and
  CMYK/YCbCr images are converted to RGB. Images with more than 8 bits per channel (16-bit RGB
  or grayscale PNG/TIFF, 32-bit) are refused: Pillow would silently keep only the high byte or
  clip, so they must be converted deliberately by the user.
* labels: single-channel 8-bit PNG of class indices ("L"), or a palette PNG whose *indices* are
  the class ids ("P", as in Pascal VOC), or 1-bit. Colour-coded RGB labels and 16-bit labels are
  refused with a message saying how to convert them.

Every problem raises ``DatasetError`` naming the file and what to do about it.

These are the only image readers in fplnet: ``fplnet.inference.load_rgb`` (``Segmenter``,
``fplnet predict``) reads files and PIL images through ``read_rgb_image`` and ``rgb_array``, so a
16-bit image is refused with the same message whether it is trained on or predicted on.
"""
from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .info import DatasetInfo
from .resize import resize_uint8_image

# The image files fplnet looks for in folders (data sets and `fplnet predict` alike).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")

# Pillow decodes these raw layouts into 8-bit modes by dropping the low byte, so the file's
# true depth has to be read from the decoder tiles before loading.
_WIDE_RAW_MODE_PREFIXES = ("RGB;16", "RGBA;16", "RGBX;16", "LA;16", "L;16", "I;16", "CMYK;16")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_CONVERTIBLE_IMAGE_MODES = ("L", "P", "1", "RGBA", "LA", "PA", "RGBX", "CMYK", "YCbCr", "La", "RGBa")
_LABEL_MODES = ("L", "P", "1")


class DatasetError(ValueError):
    """A problem with the data on disk, explained for the person who owns the files."""


def _is_wider_than_8_bits(image: Image.Image) -> bool:
    if image.mode in _WIDE_MODES:
        return True
    for tile in image.tile:
        args = tile[3] if len(tile) > 3 else None
        raw_mode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else "")
        if isinstance(raw_mode, str) and raw_mode.startswith(_WIDE_RAW_MODE_PREFIXES):
            return True
    return False


def _open_decoded(path: Path, what: str) -> tuple[Image.Image, bool]:
    """Open and fully decode, so truncated files fail here and not halfway through training."""
    image = None
    try:
        image = Image.open(path)
        wide = _is_wider_than_8_bits(image)
        image.load()
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} does not exist") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, Image.DecompressionBombError) as error:
        if image is not None:
            image.close()
        raise DatasetError(f"cannot decode {what} {path}: {error}. The file is truncated, corrupt or "
                           "not an image; re-extract it from the original archive or remove it "
                           "together with its pair.") from error
    return image, wide


def read_rgb_image(path: Path, upright: bool = False) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (conversions as in the module docstring). Every image
    fplnet reads, for training, evaluation or prediction, comes through here or ``rgb_array``.

    ``upright``: turn the pixels as the file's EXIF orientation says, as photo viewers do, so a
    phone photo is segmented the way up it is seen (prediction). Data sets read the pixels as
    stored (the default): their label maps annotate the stored pixels."""
    image, wide = _open_decoded(path, "image")
    with image:
        if upright:
            from PIL import ImageOps
            image = ImageOps.exif_transpose(image)
        return rgb_array(image, f"image {path}", wide)


def rgb_array(image: Image.Image, what: str = "the image", wide: Optional[bool] = None) -> np.ndarray:
    """A PIL image as HxWx3 uint8 RGB under the same policy as image files: 8-bit modes are
    converted, wider ones refused. ``wide`` is passed by ``read_rgb_image``, which has to look
    before decoding; an image that Pillow has already decoded to 8 bits cannot be told apart."""
    if wide is None:
        wide = _is_wider_than_8_bits(image)
    if wide:
        raise DatasetError(f"{what} has more than 8 bits per channel (mode {image.mode}); "
                           "fplnet reads 8-bit images only. Convert it to 8-bit RGB first, scaling "
                           "the values to 0..255 as suits your data.")
    if image.mode != "RGB":
        if image.mode not in _CONVERTIBLE_IMAGE_MODES:
            raise DatasetError(f"{what} has unsupported mode {image.mode}; save it as 8-bit RGB")
        image = image.convert("RGB")
    return np.array(image, dtype=np.uint8)


def read_label(path: Path) -> np.ndarray:
    """A label file as HxW uint8 of raw values (before any id mapping)."""
    image, wide = _open_decoded(path, "label")
    if wide:
        raise DatasetError(f"label {path} is a 16/32-bit image (mode {image.mode}); labels must be "
                           "8-bit single-channel PNGs of class indices. If all values are below "
                           "256, re-save it with Image.fromarray(array.astype(numpy.uint8)).")
    if image.mode not in _LABEL_MODES:
        raise DatasetError(f"label {path} has mode {image.mode}; labels must be single-channel "
                           "8-bit PNGs of class indices. Colour-coded labels must be converted to "
                           "indices first (one value per class).")
    # A palette label's indices are the class ids; its colours are only for viewing.
    return np.array(image, dtype=np.uint8)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def require_folder(path: Path, hint: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"expected folder {path} does not exist. {hint}")
    return path


class SegmentationDataset(torch.utils.data.Dataset):
    """Shared behaviour; subclasses find their files and give a raw-label -> train-id table.

    ``label_table`` has 256 int16 entries: the train id (or 255) for each raw label value, and -1
    for values that must not occur, so that stray values are caught on load. Training augments
    whole batches on the device (``data.transforms``), so items are returned untransformed.
    """

    def __init__(self, root, split: str, files: Sequence[tuple[Path, Optional[Path]]],
                 info: DatasetInfo, label_table: np.ndarray):
        self.root = Path(root)
        self.split = split
        self.files = list(files)
        self.info = info
        self.label_table = label_table
        if not self.files:
            raise DatasetError(f"{info.name} split {split!r} under {self.root} contains no images")

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
                f"images={len(self)}, classes={self.info.num_classes})")

    def load_label(self, index: int, size: Optional[tuple[int, int]] = None) -> np.ndarray:
        """HxW uint8 of train ids / 255 only (no image decoding); ``size`` = (H, W) resizes (nearest)."""
        image_path, label_path = self.files[index]
        if label_path is None:
            with Image.open(image_path) as image:
                width, height = image.size
            if size is not None:
                height, width = size
            return np.full((height, width), 255, dtype=np.uint8)
        mask = self._map_label(read_label(label_path), label_path)
        if size is not None and mask.shape != tuple(size):
            mask = np.array(Image.fromarray(mask).resize((size[1], size[0]), Image.Resampling.NEAREST))
        return mask

    def load_raw(self, index: int, size: Optional[tuple[int, int]] = None) -> tuple[np.ndarray, np.ndarray]:
        """(HxWx3 uint8 RGB, HxW uint8 train ids / 255), checked. ``size`` = (H, W) resizes, e.g.
        to keep Cityscapes at 512x1024 (``train_size``): the image with ``fplnet.data.resize``'s
        antialiased bilinear, the one resize evaluation and inference use too, the mask nearest."""
        image_path, label_path = self.files[index]
        image = read_rgb_image(image_path)
        if label_path is None:
            mask = np.full(image.shape[:2], 255, dtype=np.uint8)
        else:
            mask = self._map_label(read_label(label_path), label_path)
            if mask.shape != image.shape[:2]:
                raise DatasetError(
                    f"label {label_path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
                    f"{image_path} is {image.shape[1]}x{image.shape[0]}; labels must match their "
                    "image pixel for pixel.")
        if size is not None and image.shape[:2] != tuple(size):
            image = resize_uint8_image(image, size)
            mask = np.array(Image.fromarray(mask).resize((size[1], size[0]), Image.Resampling.NEAREST))
        return image, mask

    def _map_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        mapped = self.label_table[raw]
        if (mapped < 0).any():
            bad = np.unique(raw[mapped < 0]).tolist()
            allowed = np.flatnonzero(self.label_table >= 0).tolist()
            raise DatasetError(f"label {path} contains values {bad[:10]} that are neither a class "
                               f"nor the ignore value of {self.info.name} (allowed: "
                               f"{_compact_ranges(allowed)}). Is this the right label file?")
        return mapped.astype(np.uint8)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load_raw(index)
        image = torch.from_numpy(image).permute(2, 0, 1).float().div_(255)
        mask = torch.from_numpy(mask).long()
        return image, mask

    def load_all_uint8(self, size: Optional[tuple[int, int]] = None, num_workers: Optional[int] = None
                       ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Decode the whole split: (list of uint8 3xHxW images, list of uint8 HxW masks).

        Decoding runs in threads (Pillow releases the GIL while inflating PNGs). ``size`` as in
        ``load_raw``; full Cityscapes at 2048x1024 needs about 25 GB, at 1024x512 about 6 GB.
        """
        def load(index):
            image, mask = self.load_raw(index, size)
            return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(mask)

        workers = num_workers or min(16, (os.cpu_count() or 1) + 4)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(load, index) for index in range(len(self))]
            items = []
            for index, future in enumerate(futures):
                try:
                    items.append(future.result())
                except DatasetError:
                    for pending in futures:
                        pending.cancel()
                    raise
                except Exception as error:
                    for pending in futures:
                        pending.cancel()
                    image_path, label_path = self.files[index]
                    raise DatasetError(f"failed to load item {index} ({image_path}, {label_path}): "
                                       f"{error}") from error
        return [image for image, _ in items], [mask for _, mask in items]


def _compact_ranges(values: list[int]) -> str:
    """[0, 1, 2, 3, 255] -> '0-3, 255' for readable error messages."""
    parts, start = [], None
    for i, value in enumerate(values):
        if start is None:
            start = value
        if i + 1 == len(values) or values[i + 1] != value + 1:
            parts.append(str(start) if start == value else f"{start}-{value}")
            start = None
    return ", ".join(parts)
