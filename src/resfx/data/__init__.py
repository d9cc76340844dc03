"""Data for the feature-extraction job: CIFAR-10, image folders, any Dataset, a device-side fast path.

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
from ._dataset import from_dataset as from_dataset
from ._decode import BadImageError as BadImageError
from ._decode import BadImagePolicy as BadImagePolicy
from ._decode import StoreWay as StoreWay
from ._decode import describe_store as describe_store
from ._decode import resize_to_square as resize_to_square
from ._decode import to_uint8_image as to_uint8_image
from ._device import DATASETS as DATASETS
from ._device import DEFAULT_MEMORY_BUDGET_MIB as DEFAULT_MEMORY_BUDGET_MIB
from ._device import DatasetName as DatasetName
from ._device import ImageSplit as ImageSplit
from ._device import StreamedSplit as StreamedSplit
from ._device import describe_preprocessing as describe_preprocessing
from ._device import epoch_order as epoch_order
from ._device import load_split as load_split
from ._device import materialise as materialise
from ._device import preprocess as preprocess
from ._files import FileLoader as FileLoader
from ._files import decode_image_file as decode_image_file
from ._files import files_digest as files_digest
from ._folder import FolderLayout as FolderLayout
from ._folder import FolderLayoutError as FolderLayoutError
from ._folder import load_folder_split as load_folder_split
from ._folder import read_image_file as read_image_file
from ._folder import scan_image_folder as scan_image_folder
from ._gpu import decode_jpeg_batch as decode_jpeg_batch
from ._load import check_data_source as check_data_source
from ._load import load_data as load_data
from ._loader import DecodedBatch as DecodedBatch
from ._loader import decoded_batches as decoded_batches
from ._loader import iterate_batches as iterate_batches
from ._pool import default_workers as default_workers
from ._subset import SubsetKind as SubsetKind
from ._subset import choose_subset as choose_subset
from ._subset import resolve_subset as resolve_subset
from ._synthetic import SyntheticCIFAR10 as SyntheticCIFAR10

__all__ = [
    "CIFAR10_FOLDER",
    "CIFAR10_SIZES",
    "CIFAR10_URL",
    "DATASETS",
    "DEFAULT_MEMORY_BUDGET_MIB",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BadImageError",
    "BadImagePolicy",
    "DatasetName",
    "DatasetUnavailableError",
    "DecodedBatch",
    "FileLoader",
    "FolderLayout",
    "FolderLayoutError",
    "ImageSplit",
    "StoreWay",
    "StreamedSplit",
    "SubsetKind",
    "SyntheticCIFAR10",
    "check_data_source",
    "check_subset_size",
    "choose_subset",
    "decode_image_file",
    "decode_jpeg_batch",
    "decoded_batches",
    "default_workers",
    "describe_preprocessing",
    "describe_store",
    "epoch_order",
    "files_digest",
    "from_dataset",
    "get_cifar_subset",
    "iterate_batches",
    "load_cifar10",
    "load_data",
    "load_folder_split",
    "load_split",
    "materialise",
    "preprocess",
    "read_image_file",
    "resize_to_square",
    "resolve_subset",
    "scan_image_folder",
    "seed_transform",
    "to_uint8_image",
]
