"""The parameter summary: every parameter's shape, size, trainable or frozen, and BatchNorm policy."""

from dataclasses import dataclass

from torch import nn

from ._policy import BNPolicy, bn_policy


@dataclass(frozen=True)
class ParameterRow:
    """One parameter in a `ParameterSummary`.

    Args:
        name: the parameter's name in the model.
        shape: its shape.
        count: its number of elements.
        trainable: whether it requires gradients.
        bn_policy: the policy of its BatchNorm (see `bn_policy`), `None` outside BatchNorms.

    Example:
        >>> ParameterRow("fc.bias", (10,), 10, True, None).count
        10
    """

    name: str
    shape: tuple[int, ...]
    count: int
    trainable: bool
    bn_policy: BNPolicy | None


@dataclass(frozen=True)
class ParameterSummary:
    """Every parameter of a model: shape, size, trainable or frozen, BatchNorm policy; totals.

    Args:
        rows: one row per parameter, in module order.

    Example:
        >>> import resfx
        >>> summary = resfx.parameter_summary(resfx.get_resnet_for_feature_extraction(num_classes=10))
        >>> summary.trainable, summary.frozen, summary.total
        (5130, 21284672, 21289802)
    """

    rows: tuple[ParameterRow, ...]

    @property
    def trainable(self) -> int:
        """Elements in trainable parameters."""
        return sum(row.count for row in self.rows if row.trainable)

    @property
    def frozen(self) -> int:
        """Elements in frozen parameters."""
        return sum(row.count for row in self.rows if not row.trainable)

    @property
    def total(self) -> int:
        """Elements in all parameters."""
        return sum(row.count for row in self.rows)

    def table(self) -> str:
        """The rows and totals as a fixed-width text table, for printing.

        Returns:
            The table, one line per parameter plus a header and the totals.

        Example:
            >>> import torch, resfx
            >>> print(resfx.parameter_summary(resfx.freeze(torch.nn.BatchNorm1d(2))).table())
            parameter  shape  count  status  bn
            weight     (2,)   2      frozen  eval
            bias       (2,)   2      frozen  eval
            total: 4 parameters, 0 trainable, 4 frozen
        """
        header = ("parameter", "shape", "count", "status", "bn")
        lines = [
            (
                row.name,
                str(row.shape),
                str(row.count),
                "train" if row.trainable else "frozen",
                row.bn_policy or "",
            )
            for row in self.rows
        ]
        widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
        text = [
            "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
            for cells in [header, *lines]
        ]
        text.append(
            f"total: {self.total} parameters, {self.trainable} trainable, {self.frozen} frozen"
        )
        return "\n".join(text)


def parameter_summary(module: nn.Module) -> ParameterSummary:
    """Summarise the parameters of `module`: names, shapes, counts, trainable or frozen, BN policy.

    Args:
        module: any module.

    Returns:
        The summary; `print(summary.table())` shows it.

    Example:
        >>> import resfx
        >>> model = resfx.freeze_to(resfx.resnet18(num_classes=10), "layer4")
        >>> summary = resfx.parameter_summary(model)
        >>> summary.rows[1].name, summary.rows[1].trainable, summary.rows[1].bn_policy
        ('bn1.weight', False, 'eval')
        >>> summary.trainable
        5130
    """
    rows = []
    seen: set[int] = set()
    for module_name, sub in module.named_modules():
        policy = bn_policy(sub)
        for name, parameter in sub.named_parameters(prefix=module_name, recurse=False):
            if id(parameter) in seen:
                continue
            seen.add(id(parameter))
            rows.append(
                ParameterRow(
                    name=name,
                    shape=tuple(parameter.shape),
                    count=parameter.numel(),
                    trainable=parameter.requires_grad,
                    bn_policy=policy,
                )
            )
    return ParameterSummary(tuple(rows))
