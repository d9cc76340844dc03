"""Multinomial logistic regression with an L2 penalty, every strength of a grid in one batched solve.

The objective of head `j`, for `n` rows `x_i` with classes `y_i`, weights `W` (d x c) and an
unpenalised bias `b` (c), is the mean cross-entropy plus half the strength times the squared
weights:

    L_j(W, b) = (1/n) sum_i CE(x_i W + b, y_i) + (strength_j / 2) ||W||^2

scikit-learn's `LogisticRegression` minimises `C sum_i CE + ||W||^2 / 2`; dividing by `C n`
gives the same minimiser, so `strength = 1 / (C n)`, that is `C = 1 / (strength n)`, with `n`
the rows of the fit (`strength_to_c`).

All heads are one `(k, d + 1, c)` tensor (the bias as the last row, against a column of ones),
so one matrix product serves every strength. The solver is L-BFGS with a history per head,
a backtracking (Armijo) line search whose step is each head's own, and a stop per head once
the largest gradient entry is at most `tol` (scipy's `gtol`, which scikit-learn's lbfgs passes
`tol` to). Converged heads leave the batch, so the remaining iterations cost only the slow ones.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

_HISTORY = 10
"""L-BFGS correction pairs kept per head (scipy's default `maxcor`)."""
_ARMIJO = 1e-4
_WOLFE = 0.9
_MAX_TRIALS = 40
_SINGLE_TOL_FACTOR = 1.0
"""A head's loss and gradient are computed in float32 until its largest gradient entry is this
many times `tol` (or a line search finds no decrease), then in float64 until it is `tol`: the
float32 products take 0.76x the time of the whole solve in float64 (10,000 x 512, one thread),
and float64 confirms the end and resolves the last decreases float32's rounding would hide."""
_PARALLEL_WORK = 2**27
"""Multiply-adds of one logits product below which the solve runs on one thread. On this shared
2-core machine, 8 iterations of a 20 x 512 problem took 7.2 s on 2 threads and 0.09 s on 1, and
the same 1,600 x 256 sweep (33M) took 4 s or 59-69 s on 2 threads as other jobs came and went;
10,000 x 512 x 8 heads (410M) is 1.8x faster on 2."""


@contextmanager
def _threads_for(work: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if work < _PARALLEL_WORK:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class LogisticFit:
    """Heads fitted by `fit_logistic`, one per strength, with how the solve ended.

    Args:
        weights: `(k, d, c)` weights, float64.
        bias: `(k, c)` biases, float64.
        converged: per head, whether the largest gradient entry reached `tol`.
        iterations: per head, the L-BFGS iterations it took.

    Example:
        >>> x = torch.tensor([[0.0], [1.0]]); y = torch.tensor([0, 1])
        >>> fit = fit_logistic(x, y, 2, torch.tensor([0.1, 1.0]))
        >>> fit.weights.shape, fit.converged.tolist()
        (torch.Size([2, 1, 2]), [True, True])
    """

    weights: Float[Tensor, "k d c"]
    bias: Float[Tensor, "k c"]
    converged: Bool[Tensor, " k"]
    iterations: Int[Tensor, " k"]

    def predict(self, x: Float[Tensor, "n d"]) -> Int[Tensor, "k n"]:
        """Each head's class for each row of `x`.

        Example:
            >>> x = torch.tensor([[0.0], [1.0]]); y = torch.tensor([0, 1])
            >>> fit_logistic(x, y, 2, torch.tensor([1e-3])).predict(x).tolist()
            [[0, 1]]
        """
        logits = torch.einsum("nd,kdc->knc", x.to(self.weights), self.weights)
        return (logits + self.bias[:, None, :]).argmax(dim=2)


def strength_to_c(strength: float, n: int) -> float:
    """scikit-learn's `C` for an L2 `strength` of resfx's objective on `n` rows: `1 / (strength n)`.

    Args:
        strength: the L2 strength (> 0).
        n: rows of the fit.

    Returns:
        `C` for `sklearn.linear_model.LogisticRegression`.

    Raises:
        ValueError: `strength` or `n` not positive.

    Example:
        >>> strength_to_c(1e-3, 500)
        2.0
    """
    if not strength > 0 or n < 1:
        raise ValueError(f"strength and n must be positive, got {strength} and {n}")
    return 1.0 / (strength * n)


def _loss_and_grad(
    x: Float[Tensor, "n p"],
    onehot: Float[Tensor, "n c"],
    theta: Float[Tensor, "a p c"],
    strengths: Float[Tensor, " a"],
) -> tuple[Float[Tensor, " a"], Float[Tensor, "a p c"]]:
    n, p = x.shape
    a, _, c = theta.shape
    logits = (x @ theta.permute(1, 0, 2).reshape(p, a * c)).view(n, a, c)
    log_z = torch.logsumexp(logits, dim=2)
    picked = torch.einsum("nac,nc->na", logits, onehot)
    weights = theta[:, :-1]
    penalty = 0.5 * strengths * weights.pow(2).sum(dim=(1, 2))
    loss = (log_z - picked).mean(dim=0) + penalty
    residual = torch.softmax(logits, dim=2) - onehot[:, None, :]
    grad = (x.T @ residual.view(n, a * c)).view(p, a, c).permute(1, 0, 2) / n
    grad[:, :-1] += strengths[:, None, None] * weights
    return loss, grad


def _direction(
    grad: Float[Tensor, "a q"],
    s: Float[Tensor, "a m q"],
    y: Float[Tensor, "a m q"],
    rho: Float[Tensor, "a m"],
    gamma: Float[Tensor, " a"],
) -> Float[Tensor, "a q"]:
    """L-BFGS two-loop recursion, batched; empty history slots have `rho = 0` and do nothing."""
    q = grad.clone()
    alphas = []
    for j in reversed(range(s.shape[1])):
        alpha = rho[:, j] * (s[:, j] * q).sum(dim=1)
        q -= alpha[:, None] * y[:, j]
        alphas.append(alpha)
    r = gamma[:, None] * q
    for j, alpha in zip(range(s.shape[1]), reversed(alphas), strict=True):
        beta = rho[:, j] * (y[:, j] * r).sum(dim=1)
        r += s[:, j] * (alpha - beta)[:, None]
    return -r


def fit_logistic(
    x: Float[Tensor, "n d"],
    y: Int[Tensor, " n"],
    n_classes: int,
    strengths: Float[Tensor, " k"],
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    init: LogisticFit | None = None,
) -> LogisticFit:
    """Fit one multinomial logistic regression per L2 strength, all in one batched L-BFGS solve.

    The objective is in the module's docstring; it is convex, so the solution does not
    depend on the start (`init` only saves iterations). Each head is computed in float32
    until its gradient reaches `tol`, then in float64 until it does so there (only float64
    declares a head converged); the weights are float64.

    Args:
        x: `(n, d)` features (standardise them first: the penalty treats every column alike).
        y: their classes, in `[0, n_classes)`.
        n_classes: outputs of each head.
        strengths: `(k,)` L2 strengths, each `> 0`.
        tol: stop a head once its largest gradient entry is at most this.
        max_iter: L-BFGS iterations at most; a head still above `tol` then is not converged.
        init: heads to start from (e.g. a fit on a subset), with the same `k`, `d` and `c`.

    Returns:
        The heads, with `converged` and `iterations` per head.

    Raises:
        ValueError: no rows, a label out of range, a strength not positive and finite,
            `tol` or `max_iter` not positive, or `init` of another shape.

    Example:
        >>> x = torch.tensor([[-1.0], [-0.5], [0.5], [1.0]]); y = torch.tensor([0, 0, 1, 1])
        >>> fit = fit_logistic(x, y, 2, torch.tensor([1e-2, 1.0]))
        >>> fit.predict(x).tolist(), fit.converged.all().item()
        ([[0, 0, 1, 1], [0, 0, 1, 1]], True)
    """
    n, d = x.shape
    if n == 0 or n_classes < 1:
        raise ValueError(f"need rows and classes, got {n} rows and n_classes={n_classes}")
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ValueError(f"labels must be in [0, {n_classes}), got {int(y.min())}..{int(y.max())}")
    strengths = strengths.to(torch.float64).cpu()
    if strengths.ndim != 1 or not bool(torch.isfinite(strengths).all() and (strengths > 0).all()):
        raise ValueError(f"strengths must be positive and finite, got {strengths.tolist()}")
    if not tol > 0 or max_iter < 1:
        raise ValueError(f"tol and max_iter must be positive, got {tol} and {max_iter}")
    k, c = len(strengths), n_classes
    device = x.device
    strengths = strengths.to(device)
    data = torch.cat([x.to(torch.float64), torch.ones(n, 1, dtype=torch.float64, device=device)], 1)
    onehot = torch.nn.functional.one_hot(y.to(device), c).to(torch.float64)
    theta = torch.zeros(k, d + 1, c, dtype=torch.float64, device=device)
    if init is not None:
        if init.weights.shape != (k, d, c):
            raise ValueError(
                f"init has weights of shape {tuple(init.weights.shape)}, expected {(k, d, c)}"
            )
        theta[:, :d] = init.weights.to(theta)
        theta[:, d] = init.bias.to(theta)
    with _threads_for(n * (d + 1) * k * c):
        return _solve(data, onehot, theta, strengths, tol, max_iter)


def _solve(
    data: Float[Tensor, "n p"],
    onehot: Float[Tensor, "n c"],
    theta: Float[Tensor, "k p c"],
    strengths: Float[Tensor, " k"],
    tol: float,
    max_iter: int,
) -> LogisticFit:
    """Batched L-BFGS from `theta` (modified in place); see `fit_logistic`."""
    k, p, c = theta.shape
    d, device = p - 1, theta.device
    size = p * c
    rough_data, rough_onehot = data.to(torch.float32), onehot.to(torch.float32)
    precise = torch.zeros(k, dtype=torch.bool, device=device)

    def evaluate(
        heads: Int[Tensor, " a"], at: Float[Tensor, "a p c"]
    ) -> tuple[Float[Tensor, " a"], Float[Tensor, "a p c"]]:
        loss = torch.empty(len(heads), dtype=torch.float64, device=device)
        grad = torch.empty_like(at)
        for exact in (False, True):
            part = (precise[heads] == exact).nonzero().flatten()
            if len(part) == 0:
                continue
            if exact:
                part_loss, part_grad = _loss_and_grad(
                    data, onehot, at[part], strengths[heads[part]]
                )
            else:
                part_loss, part_grad = _loss_and_grad(
                    rough_data, rough_onehot, at[part].float(), strengths[heads[part]].float()
                )
            loss[part], grad[part] = part_loss.double(), part_grad.double()
        return loss, grad

    loss, grad = evaluate(torch.arange(k, device=device), theta)
    s_hist = torch.zeros(k, _HISTORY, size, dtype=torch.float64, device=device)
    y_hist = torch.zeros_like(s_hist)
    rho = torch.zeros(k, _HISTORY, dtype=torch.float64, device=device)
    gamma = 1.0 / grad.flatten(1).norm(dim=1).clamp_min(1.0)
    converged = grad.flatten(1).abs().amax(dim=1) <= tol
    active = ~converged
    iterations = torch.zeros(k, dtype=torch.int64, device=device)
    for _ in range(max_iter):
        heads = active.nonzero().flatten()
        if len(heads) == 0:
            break
        iterations[heads] += 1
        g0 = grad[heads].flatten(1)
        step = _direction(g0, s_hist[heads], y_hist[heads], rho[heads], gamma[heads])
        slope = (step * g0).sum(dim=1)
        uphill = slope >= 0  # lost curvature: restart that head from steepest descent
        step[uphill] = -g0[uphill] * gamma[heads][uphill, None]
        slope = (step * g0).sum(dim=1)
        # Weak Wolfe line search by doubling and bisection (Lewis and Overton), per head: a step
        # must lower the loss enough (Armijo) and flatten the slope (curvature), or L-BFGS's
        # pairs stay short and ill-conditioned heads crawl.
        t = torch.ones(len(heads), dtype=torch.float64, device=device)
        low, high = torch.zeros_like(t), torch.full_like(t, math.inf)
        new_loss, new_grad = loss[heads].clone(), grad[heads].clone()
        moved = torch.zeros(len(heads), dtype=torch.bool, device=device)
        pending = torch.ones(len(heads), dtype=torch.bool, device=device)
        for _ in range(_MAX_TRIALS):
            which = pending.nonzero().flatten()
            if len(which) == 0:
                break
            trial = theta[heads[which]] + (t[which, None] * step[which]).view(-1, d + 1, c)
            trial_loss, trial_grad = evaluate(heads[which], trial)
            armijo = trial_loss <= loss[heads[which]] + _ARMIJO * t[which] * slope[which]
            flatter = (trial_grad.flatten(1) * step[which]).sum(dim=1) >= _WOLFE * slope[which]
            lower = which[armijo]
            new_loss[lower], new_grad[lower] = trial_loss[armijo], trial_grad[armijo]
            low[lower], moved[lower] = t[lower], True
            high[which[~armijo]] = t[which[~armijo]]
            pending[which[armijo & flatter]] = False
            t = torch.where(torch.isinf(high), 2 * low, (low + high) / 2)
        t = low
        stalled = heads[~moved]  # no decrease at any step: as far as float64 can go
        done_heads = heads[moved]
        s = (t[moved, None] * step[moved]).view(-1, d + 1, c)
        theta[done_heads] += s
        y_step = (new_grad[moved] - grad[done_heads]).flatten(1)
        s = s.flatten(1)
        loss[done_heads], grad[done_heads] = new_loss[moved], new_grad[moved]
        curvature = (s * y_step).sum(dim=1)
        keep = curvature > 1e-12 * s.norm(dim=1) * y_step.norm(dim=1)
        kept = done_heads[keep]
        s_hist[kept] = torch.cat([s_hist[kept, 1:], s[keep, None]], dim=1)
        y_hist[kept] = torch.cat([y_hist[kept, 1:], y_step[keep, None]], dim=1)
        rho[kept] = torch.cat([rho[kept, 1:], (1.0 / curvature[keep])[:, None]], dim=1)
        gamma[kept] = curvature[keep] / y_step[keep].pow(2).sum(dim=1)
        largest = grad[heads].flatten(1).abs().amax(dim=1)
        stalled = stalled[precise[stalled]]  # a float32 head that stalls goes on in float64
        switch = heads[~precise[heads] & ((largest <= _SINGLE_TOL_FACTOR * tol) | ~moved)]
        if len(switch):  # near the end, or stuck: float64 from here, from this point
            precise[switch] = True
            loss[switch], grad[switch] = evaluate(switch, theta[switch])
            largest = grad[heads].flatten(1).abs().amax(dim=1)
        converged[heads] = precise[heads] & (largest <= tol)
        active[heads] = ~converged[heads]
        active[stalled] = False
    return LogisticFit(theta[:, :d].clone(), theta[:, d].clone(), converged.cpu(), iterations.cpu())
