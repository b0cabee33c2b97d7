"""What a data set is, independent of where its files are: class names, colours, ignore value,
normalization statistics and, for Cityscapes, the official id tables.

The FPLNet paper (Sec. IV-A) evaluates on the 19 Cityscapes training classes and the 11 CamVid
classes; these are the two ``DatasetInfo`` constants below. A ``DatasetInfo`` travels inside
checkpoints (``to_dict``) so that a trained model can be used without the data set on disk.

Post-processing lives here, in one place: ``colorize`` for visualisation and
``train_ids_to_label_ids`` for Cityscapes test-server files. So do the tables every other module
reads instead of keeping its own: the palettes (``default_palette`` for classes without
colours), the Cityscapes label id table and the ImageNet statistics.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Optional

import numpy as np

# ImageNet statistics: the paper trains from scratch and does not give its own, so these are
# only a conventional scale for the inputs (and what checkpoints without statistics assume).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]   # RGB per class, same order as class_names
    ignore_index: int = 255                      # value of the masks that the loaders produce
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    train_to_label_id: Optional[tuple[int, ...]] = None   # Cityscapes: official labelId per train id

    def __post_init__(self):
        if len(self.palette) != len(self.class_names):
            raise ValueError(f"{self.name}: {len(self.class_names)} class names but "
                             f"{len(self.palette)} palette colours")
        if 0 <= self.ignore_index < len(self.class_names):
            raise ValueError(f"{self.name}: ignore_index {self.ignore_index} is also a class index")
        if self.train_to_label_id is not None and len(self.train_to_label_id) != len(self.class_names):
            raise ValueError(f"{self.name}: train_to_label_id needs one entry per class")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        """Plain lists, strings and numbers only: checkpoints are read with
        ``torch.load(weights_only=True)`` and safetensors metadata must be JSON."""
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "palette": [list(color) for color in self.palette],
            "ignore_index": int(self.ignore_index),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "train_to_label_id": (None if self.train_to_label_id is None
                                  else [int(v) for v in self.train_to_label_id]),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetInfo":
        label_ids = d.get("train_to_label_id")
        return cls(
            name=str(d["name"]),
            class_names=tuple(str(n) for n in d["class_names"]),
            palette=tuple(tuple(int(c) for c in color) for color in d["palette"]),
            ignore_index=int(d.get("ignore_index", 255)),
            mean=tuple(float(v) for v in d.get("mean", IMAGENET_MEAN)),
            std=tuple(float(v) for v in d.get("std", IMAGENET_STD)),
            train_to_label_id=None if label_ids is None else tuple(int(v) for v in label_ids),
        )


def default_palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """Colours for classes that come without any (a folder data set without ``colors``, a
    checkpoint without a dataset description): golden-ratio hue steps keep neighbouring class
    indices far apart in colour."""
    colors = []
    for index in range(num_classes):
        red, green, blue = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.65, 0.95)
        colors.append((round(red * 255), round(green * 255), round(blue * 255)))
    return tuple(colors)


def numbered_info(num_classes: int) -> DatasetInfo:
    """A description for a model whose checkpoint carries none: classes ``class_0`` ...,
    ``default_palette`` colours, ImageNet statistics (the training default)."""
    return DatasetInfo(name="unknown", class_names=tuple(f"class_{i}" for i in range(num_classes)),
                       palette=default_palette(num_classes))


# Official Cityscapes table (cityscapesScripts, labels.py): index = labelId 0..33, value = trainId.
# The license plate (labelId -1) never appears in the 8-bit labelIds PNGs.
CITYSCAPES_LABEL_ID_TO_TRAIN_ID = (
    255,  # 0  unlabeled
    255,  # 1  ego vehicle
    255,  # 2  rectification border
    255,  # 3  out of roi
    255,  # 4  static
    255,  # 5  dynamic
    255,  # 6  ground
    0,    # 7  road
    1,    # 8  sidewalk
    255,  # 9  parking
    255,  # 10 rail track
    2,    # 11 building
    3,    # 12 wall
    4,    # 13 fence
    255,  # 14 guard rail
    255,  # 15 bridge
    255,  # 16 tunnel
    5,    # 17 pole
    255,  # 18 polegroup
    6,    # 19 traffic light
    7,    # 20 traffic sign
    8,    # 21 vegetation
    9,    # 22 terrain
    10,   # 23 sky
    11,   # 24 person
    12,   # 25 rider
    13,   # 26 car
    14,   # 27 truck
    15,   # 28 bus
    255,  # 29 caravan
    255,  # 30 trailer
    16,   # 31 train
    17,   # 32 motorcycle
    18,   # 33 bicycle
)

CITYSCAPES = DatasetInfo(
    name="cityscapes",
    class_names=("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                 "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
                 "bus", "train", "motorcycle", "bicycle"),
    palette=((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
             (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
             (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
             (0, 80, 100), (0, 0, 230), (119, 11, 32)),
    train_to_label_id=tuple(CITYSCAPES_LABEL_ID_TO_TRAIN_ID.index(train_id) for train_id in range(19)),
)

# SegNet's CamVid: label values 0..10 are these classes, 11 is void (mapped to 255 by the loader).
CAMVID_VOID_LABEL = 11
CAMVID = DatasetInfo(
    name="camvid",
    class_names=("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                 "Car", "Pedestrian", "Bicyclist"),
    palette=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
             (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
             (0, 128, 192)),
)

_INFOS = {info.name: info for info in (CITYSCAPES, CAMVID)}


def get_info(name: str) -> DatasetInfo:
    """The built-in data sets. A ``folder`` data set describes itself in its ``classes.yaml``."""
    if name not in _INFOS:
        raise KeyError(f"no built-in dataset info for {name!r}; known: {', '.join(_INFOS)} "
                       "(a 'folder' dataset reads its classes from root/classes.yaml)")
    return _INFOS[name]


def _label_table() -> np.ndarray:
    """Cityscapes labelId -> trainId for all 256 byte values, int16: the train id or 255 for the
    34 label ids, 255 for 255 (some tools write the license plate's labelId -1 so), and -1 for
    values that are no label id at all. The data set refuses -1 values on load;
    ``label_ids_to_train_ids`` maps them to 255."""
    table = np.full(256, -1, dtype=np.int16)
    table[:len(CITYSCAPES_LABEL_ID_TO_TRAIN_ID)] = CITYSCAPES_LABEL_ID_TO_TRAIN_ID
    table[255] = 255
    return table


CITYSCAPES_LABEL_TABLE = _label_table()


def _as_uint8(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{what} must be an integer array, got {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"{what} must hold values 0..255, got {array.min()}..{array.max()}")
    return array.astype(np.uint8)


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes labelIds (34 classes) -> the 19 train ids; everything else becomes 255."""
    train_ids = CITYSCAPES_LABEL_TABLE[_as_uint8(label_ids, "label ids")]
    return np.where(train_ids < 0, 255, train_ids).astype(np.uint8)


def train_ids_to_label_ids(train_ids: np.ndarray, info: DatasetInfo = CITYSCAPES) -> np.ndarray:
    """Train ids -> the data set's official label ids (Cityscapes: the 34 ids the evaluation
    server expects). 255 and any value that is not a train id become 0 (unlabeled): the test
    server only accepts real label ids."""
    if info.train_to_label_id is None:
        raise ValueError(f"data set {info.name} has no train id -> label id table")
    lookup = np.zeros(256, dtype=np.uint8)
    lookup[:len(info.train_to_label_id)] = info.train_to_label_id
    return lookup[_as_uint8(train_ids, "train ids")]


def colorize(train_id_map, info: DatasetInfo) -> np.ndarray:
    """HxW class indices (numpy or torch) -> HxWx3 uint8 RGB; ignore and unknown values are black."""
    if hasattr(train_id_map, "detach"):
        train_id_map = train_id_map.detach().cpu().numpy()
    train_id_map = np.asarray(train_id_map)
    if train_id_map.ndim != 2:
        raise ValueError(f"colorize expects an HxW map, got shape {train_id_map.shape}")
    colors = np.zeros((256, 3), dtype=np.uint8)
    colors[:info.num_classes] = np.asarray(info.palette, dtype=np.uint8)
    if train_id_map.dtype == np.uint8:
        # What predict hands over: every value already indexes the 256-entry table (unknown ones
        # black), and np.take on it is 4x faster than the masking below (0.5 against 2.1 ms per
        # 480x360 map; `fplnet predict` colours every image once or twice).
        return np.take(colors, train_id_map, axis=0)
    # Anything outside 0..255 is not a class either; clip it onto a black entry.
    indices = np.where((train_id_map >= 0) & (train_id_map < info.num_classes), train_id_map, 255)
    return colors[indices.astype(np.intp)]


def blend_overlay(rgb: np.ndarray, train_id_map, info: DatasetInfo, alpha: float = 0.5) -> np.ndarray:
    """The colour mask blended over an HxWx3 uint8 image: (1 - alpha) * image + alpha * colour."""
    if rgb.shape[:2] != np.shape(train_id_map):
        raise ValueError(f"image is {rgb.shape[1]}x{rgb.shape[0]} but the label map is "
                         f"{np.shape(train_id_map)[1]}x{np.shape(train_id_map)[0]}")
    # The same float32 arithmetic in place, in two buffers instead of six temporaries.
    blended = np.multiply(rgb, np.float32(1 - alpha), dtype=np.float32)
    color = np.multiply(colorize(train_id_map, info), np.float32(alpha), dtype=np.float32)
    blended += color
    np.rint(blended, out=blended)
    np.clip(blended, 0, 255, out=blended)
    return blended.astype(np.uint8, order="C")   # C order as before, whatever the layout of rgb
