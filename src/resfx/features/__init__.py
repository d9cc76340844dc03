"""Frozen-backbone features: a cache keyed by content, and a feature store on disk.

Example:
    >>> from resfx.features import FeatureCache
    >>> from resfx.models import ResNet, ResNetConfig
    >>> from resfx.data import load_split
    >>> model, split = ResNet(ResNetConfig(width=4)).eval(), load_split("synthetic", "test", 2)
    >>> FeatureCache().features(model, split, image_size=32).shape
    torch.Size([2, 32])
"""

from ._cache import FeatureCache as FeatureCache
from ._extract import extract as extract
from ._key import FeatureKey as FeatureKey
from ._key import feature_key as feature_key
from ._key import fingerprint_module as fingerprint_module
from ._key import tensor_checksum as tensor_checksum
from ._pass import compute_features as compute_features
from ._pass import compute_stage_features as compute_stage_features
from ._source import FeatureSource as FeatureSource
from ._source import TensorFeatures as TensorFeatures
from ._store import STORE_FORMAT as STORE_FORMAT
from ._store import STORE_VERSION as STORE_VERSION
from ._store import FeatureStore as FeatureStore
from ._store import StoreError as StoreError
from ._store import StoreFeatures as StoreFeatures

__all__ = [
    "STORE_FORMAT",
    "STORE_VERSION",
    "FeatureCache",
    "FeatureKey",
    "FeatureSource",
    "FeatureStore",
    "StoreError",
    "StoreFeatures",
    "TensorFeatures",
    "compute_features",
    "compute_stage_features",
    "extract",
    "feature_key",
    "fingerprint_module",
    "tensor_checksum",
]
