"""How figures, tables and logs name the data: as people say it, never a path's case changed."""

from pathlib import PurePath

SYNTHETIC_NOTE = "SYNTHETIC data (generated, not CIFAR-10)"
"""What a title says about the generated stand-in, loudly, so no one takes it for real data."""


def data_name(dataset: str) -> str:
    """The data's name for a title: CIFAR-10, the synthetic stand-in, or an image folder's name.

    Args:
        dataset: what a run or probe records as its data: `"cifar10"`, `"synthetic"`,
            or an image folder's path.

    Returns:
        `"CIFAR-10"`, `SYNTHETIC_NOTE`, or the folder's last component as written.

    Example:
        >>> data_name("cifar10"), data_name("/data/Imagenette2/"), data_name("synthetic")[:9]
        ('CIFAR-10', 'Imagenette2', 'SYNTHETIC')
    """
    if dataset == "cifar10":
        return "CIFAR-10"
    if dataset == "synthetic":
        return SYNTHETIC_NOTE
    return PurePath(dataset).name or dataset
