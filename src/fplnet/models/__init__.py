"""Model registry and the model families. Importing this package registers every model."""
from . import espnet, fplnet
from ._registry import DEFAULT_NUM_CLASSES, ModelEntry, create_model, get_model_entry, list_models, register_model
from .espnet import ESPNet, ESPNetConfig
from .fplnet import FPLNet, FPLNetConfig

for _name, (_cfg, _params, _source, _miou, _desc) in {**fplnet.VARIANTS, **espnet.ESPNET_VARIANTS}.items():
    _family = fplnet if _name in fplnet.VARIANTS else espnet
    register_model(_name, _family._builder(_cfg), description=_desc, paper_params=_params,
                   paper_source=_source, paper_miou=_miou)
