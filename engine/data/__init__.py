"""MNIST for the engine: the IDX format (``idx``), finding, checking and loading the digits
(``mnist``), fetching the full set (``download``), turning a drawing into an MNIST digit
(``preprocess``), and the built-in sample (``sample/``)."""

from engine.data.idx import DataError
from engine.data.mnist import Dataset, load_dataset

__all__ = ["DataError", "Dataset", "load_dataset"]
