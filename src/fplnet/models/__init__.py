"""Model registry and the model families. Importing this package registers every model."""
from . import espnet, fplnet
from ._registry import DEFAULT_NUM_CLASSES, ModelEntry, create_model, get_model_entry, list_models, register_model
from .espnet import ESPNet, ESPNetConfig
from .fplnet import FPLNet, FPLNetConfig

for _name, (_cfg, _params, _source, _miou, _desc) in {**fplnet.VARIANTS, **espnet.ESPNET_VARIANTS}.items():
    _family = fplnet if _name in fplnet.VARIANTS else espnet
    register_model(_name, _family._builder(_cfg), description=_desc, paper_params=_params,
                   paper_source=_source, paper_miou=_miou)

# Speed baselines of Table IV (ENet, ERFNet, CGNet), each built from its own paper.
from . import cgnet, enet, erfnet
from .cgnet import CGNet, CGNetConfig
from .enet import ENet, ENetConfig
from .erfnet import ERFNet, ERFNetConfig

for _family, _variants in ((enet, enet.ENET_VARIANTS), (erfnet, erfnet.ERFNET_VARIANTS), (cgnet, cgnet.CGNET_VARIANTS)):
    for _name, (_cfg, _params, _source, _miou, _desc) in _variants.items():
        register_model(_name, _family._builder(_cfg), description=_desc, paper_params=_params,
                       paper_source=_source, paper_miou=_miou, tags=("baseline",))
