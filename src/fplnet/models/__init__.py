"""Model registry and the model families. Importing this package registers every model."""
from . import cgnet, enet, erfnet, espnet, fplnet
from ._factory import build_model, create_model, load_model
from ._registry import (DEFAULT_NUM_CLASSES, ModelEntry, ModelVariant, UnknownModelError, get_model_entry,
                        list_models, register_model, register_variants)
from .cgnet import CGNet, CGNetConfig
from .enet import ENet, ENetConfig
from .erfnet import ERFNet, ERFNetConfig
from .espnet import ESPNet, ESPNetConfig
from .fplnet import FPLNet, FPLNetConfig

# The paper's own models and ablations (Tables IV, VI-X), then the speed baselines of Table IV,
# each built from its own paper.
register_variants(FPLNet, fplnet.VARIANTS)
register_variants(ESPNet, espnet.ESPNET_VARIANTS)
register_variants(ENet, enet.ENET_VARIANTS)
register_variants(ERFNet, erfnet.ERFNET_VARIANTS)
register_variants(CGNet, cgnet.CGNET_VARIANTS)
