"""fplnet: reference implementation of FPLNet (factorized pyramidal learning) for real-time
semantic segmentation, with training, evaluation, inference, export and benchmarks."""
from .models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "__version__"]
