"""Loading pretrained and local checkpoints into resfx models, strictly.

Example:
    >>> from resfx import weights
    >>> sorted(name for name in weights.PRETRAINED if name.startswith("resnet34."))
    ['resnet34.IMAGENET1K_V1', 'resnet34.tv_in1k']
"""

from ._weights import PRETRAINED as PRETRAINED
from ._weights import TORCHVISION_WEIGHTS as TORCHVISION_WEIGHTS
from ._weights import CheckpointMismatchError as CheckpointMismatchError
from ._weights import ChecksumError as ChecksumError
from ._weights import InferenceTransform as InferenceTransform
from ._weights import PretrainedWeights as PretrainedWeights
from ._weights import WeightsUnavailableError as WeightsUnavailableError
from ._weights import check_state_dict as check_state_dict
from ._weights import check_weights_source as check_weights_source
from ._weights import fetch_pretrained as fetch_pretrained
from ._weights import load_weights as load_weights
from ._weights import read_checkpoint as read_checkpoint
from ._weights import sha256_of as sha256_of
from ._weights import verify_file_hash as verify_file_hash

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
    "read_checkpoint",
    "sha256_of",
    "verify_file_hash",
]
