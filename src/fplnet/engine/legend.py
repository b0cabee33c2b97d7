"""A class legend drawn into video frames: each class name beside a swatch of its palette colour.

Laid out once per frame size and then blended into every frame of a video (``fplnet predict``),
in the top-left corner: in road scenes that is sky and buildings, the part of the picture a
viewer needs least. Sizes follow the frame height (the font is 1/40 of it, at least 11 px), so
the legend reads the same on a 480x360 CamVid clip and a 2048x1024 Cityscapes one; when the
classes do not fit in one column of the frame's height they continue in further columns. The
swatches are opaque palette colours; the panel behind the text is a translucent dark grey.
"""
from __future__ import annotations

import math

import numpy as np

from ..data.info import DatasetInfo

PANEL_RGBA = (20, 20, 20, 170)     # behind the names: the frame shows through, the text stays legible
TEXT_RGBA = (255, 255, 255, 255)
SWATCH_EDGE_RGBA = (235, 235, 235, 255)   # dark palette colours (car, pedestrian) stand out from the panel


def _font(pixels: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=pixels)   # Pillow >= 10.1 with FreeType: scalable
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()               # the fixed bitmap font: small, but legible


class Legend:
    """The legend for frames of ``width`` x ``height``: ``box`` is its (left, top, right, bottom)
    in the frame, ``swatches`` each class's index and the rectangle of its swatch that is exactly
    the palette colour (right and bottom exclusive), and ``draw`` blends it into a frame."""

    def __init__(self, info: DatasetInfo, width: int, height: int):
        from PIL import Image, ImageDraw
        self.font_px = max(11, round(height / 40))
        font = _font(self.font_px)
        margin, padding = round(self.font_px * 0.6), round(self.font_px * 0.45)
        row, swatch, gap = round(self.font_px * 1.4), self.font_px, round(self.font_px * 0.45)
        names = list(info.class_names)
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        text_boxes = [measure.textbbox((0, 0), name, font=font) for name in names]
        text_width = max(right for _, _, right, _ in text_boxes)
        # One baseline offset for every row, from letters that reach up and down: centring each
        # name's own ink would shift 'sky' and 'rider' against each other.
        _, ink_top, _, ink_bottom = measure.textbbox((0, 0), "Hg", font=font)
        column_width = swatch + gap + text_width

        rows_fitting = max(1, (height - 2 * margin - 2 * padding) // row)
        columns = math.ceil(len(names) / rows_fitting)
        rows = math.ceil(len(names) / columns)   # balanced columns
        panel_width = 2 * padding + columns * column_width + (columns - 1) * 2 * padding
        panel_height = 2 * padding + rows * row

        panel = Image.new("RGBA", (panel_width, panel_height), PANEL_RGBA)
        draw = ImageDraw.Draw(panel)
        self.swatches: list[tuple[int, tuple[int, int, int, int]]] = []
        for index, (name, color) in enumerate(zip(names, info.palette)):
            column, line = divmod(index, rows)
            x = padding + column * (column_width + 2 * padding)
            y = padding + line * row
            swatch_top = y + (row - swatch) // 2
            draw.rectangle((x, swatch_top, x + swatch - 1, swatch_top + swatch - 1), fill=tuple(color) + (255,),
                           outline=SWATCH_EDGE_RGBA)
            # Inside the one-pixel edge: exactly the palette colour.
            self.swatches.append((index, (margin + x + 1, margin + swatch_top + 1, margin + x + swatch - 1,
                                          margin + swatch_top + swatch - 1)))
            draw.text((x + swatch + gap, y + row / 2 - (ink_top + ink_bottom) / 2), name, font=font, fill=TEXT_RGBA)

        # A frame smaller than the legend shows the part that fits.
        pixels = np.asarray(panel, dtype=np.float32)[:max(0, height - margin), :max(0, width - margin)]
        self.box = (margin, margin, margin + pixels.shape[1], margin + pixels.shape[0])
        self._color = pixels[:, :, :3]
        self._alpha = pixels[:, :, 3:] / 255
        self.size = (width, height)

    def draw(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` (H x W x 3 uint8, of the legend's size) with the legend blended in; a new array."""
        if frame.shape[1::-1] != self.size:
            raise ValueError(f"the legend was laid out for {self.size[0]}x{self.size[1]} frames, "
                             f"got {frame.shape[1]}x{frame.shape[0]}")
        left, top, right, bottom = self.box
        out = frame.copy()
        region = out[top:bottom, left:right].astype(np.float32)
        out[top:bottom, left:right] = (region * (1 - self._alpha) + self._color * self._alpha).round().astype(np.uint8)
        return out
