"""Loading pretrained and local checkpoints into resfx models, strictly.

Example:
    >>> from resfx import weights
    >>> sorted(name for name in weights.PRETRAINED if name.startswith("resnet34."))
    ['resnet34.IMAGENET1K_V1', 'resnet34.tv_in1k']
"""

from ._weights._download import fetch_pretrained as fetch_pretrained
from ._weights._download import sha256_of as sha256_of
from ._weights._download import verify_file_hash as verify_file_hash
from ._weights._errors import CheckpointMismatchError as CheckpointMismatchError
from ._weights._errors import ChecksumError as ChecksumError
from ._weights._errors import WeightsUnavailableError as WeightsUnavailableError
from ._weights._load import check_state_dict as check_state_dict
from ._weights._load import check_weights_source as check_weights_source
from ._weights._load import load_weights as load_weights
from ._weights._load import matching_architecture as matching_architecture
from ._weights._load import read_checkpoint as read_checkpoint
from ._weights._registry import PRETRAINED as PRETRAINED
from ._weights._registry import TORCHVISION_WEIGHTS as TORCHVISION_WEIGHTS
from ._weights._registry import InferenceTransform as InferenceTransform
from ._weights._registry import PretrainedWeights as PretrainedWeights

__all__ = [
    "PRETRAINED",
    "TORCHVISION_WEIGHTS",
    "CheckpointMismatchError",
    "ChecksumError",
    "InferenceTransform",
    "PretrainedWeights",
    "WeightsUnavailableError",
    "check_state_dict",
    "check_weights_source",
    "fetch_pretrained",
    "load_weights",
    "matching_architecture",
    "read_checkpoint",
    "sha256_of",
    "verify_file_hash",
]
