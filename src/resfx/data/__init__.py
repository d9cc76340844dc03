"""Data for the feature-extraction job: CIFAR-10, the seed's transform, a device-side fast path.

Example:
    >>> from resfx import data
    >>> split = data.load_split("synthetic", "train", 4)
    >>> data.preprocess(split.images, 64).shape
    torch.Size([4, 3, 64, 64])
"""

from ._cifar import CIFAR10_FOLDER as CIFAR10_FOLDER
from ._cifar import CIFAR10_SIZES as CIFAR10_SIZES
from ._cifar import CIFAR10_URL as CIFAR10_URL
from ._cifar import IMAGENET_MEAN as IMAGENET_MEAN
from ._cifar import IMAGENET_STD as IMAGENET_STD
from ._cifar import DatasetUnavailableError as DatasetUnavailableError
from ._cifar import check_subset_size as check_subset_size
from ._cifar import get_cifar_subset as get_cifar_subset
from ._cifar import load_cifar10 as load_cifar10
from ._cifar import seed_transform as seed_transform
from ._device import DATASETS as DATASETS
from ._device import ImageSplit as ImageSplit
from ._device import describe_preprocessing as describe_preprocessing
from ._device import epoch_order as epoch_order
from ._device import iterate_batches as iterate_batches
from ._device import load_split as load_split
from ._device import preprocess as preprocess
from ._synthetic import SyntheticCIFAR10 as SyntheticCIFAR10

__all__ = [
    "CIFAR10_FOLDER",
    "CIFAR10_SIZES",
    "CIFAR10_URL",
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DatasetUnavailableError",
    "ImageSplit",
    "SyntheticCIFAR10",
    "check_subset_size",
    "describe_preprocessing",
    "epoch_order",
    "get_cifar_subset",
    "iterate_batches",
    "load_cifar10",
    "load_split",
    "preprocess",
    "seed_transform",
]
