"""fplnet: reference implementation of FPLNet (factorized pyramidal learning) for real-time
semantic segmentation, with training, evaluation, inference, export and benchmarks."""
from .models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["Segmenter", "create_model", "list_models", "__version__"]


def __getattr__(name):
    # Segmenter pulls in the data and inference code; import it only when asked for.
    if name == "Segmenter":
        from .inference import Segmenter
        return Segmenter
    raise AttributeError(f"module 'fplnet' has no attribute {name!r}")
