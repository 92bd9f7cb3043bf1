"""Optimizers of the thesis: NAG with momentum schedules (ch. 7) and Hessian-free (ch. 4).

- `NAG`: Nesterov's accelerated gradient, exact under momentum schedules (eq. 7.12-7.13).
- `Momentum`: classical momentum under the same schedules (eq. 7.1-7.2).
- `schedules`: the momentum schedules of ch. 7.
- `HessianFree`: Hessian-free with structural damping (Alg. 5, §4.2); train with `rnnzoo.Model`.
- `AugmentedHessianFree`: AHF (§6.2), line searches on the objective along A-conjugate
  Krylov directions with the previous update as hot start; train with `rnnzoo.Model`.
- `LBFGS`: L-BFGS with memory 100 (the baseline of §6.7.1), in-graph; train with `rnnzoo.Model`.
- `SecondOrderOptimizer`: the base of these three, optimizers that run one whole iteration per
  `fit` step (`runs_own_step`); `second_order` holds what they share.
- `gauss_newton_operator`: the Gauss-Newton matrix on a batch as `product(vectors)`,
  one forward pass for any number of products (the operator HF's CG uses).
- `gauss_newton_product`: one Gauss-Newton matrix-vector product, for curvature analysis.
"""

from rnnzoo.optimizers import schedules
from rnnzoo.optimizers.augmented_hessian_free import AugmentedHessianFree
from rnnzoo.optimizers.gauss_newton import gauss_newton_operator, gauss_newton_product
from rnnzoo.optimizers.hessian_free import HessianFree
from rnnzoo.optimizers.lbfgs import LBFGS
from rnnzoo.optimizers.momentum import Momentum
from rnnzoo.optimizers.nag import NAG
from rnnzoo.optimizers.second_order import SecondOrderOptimizer

__all__ = [
    "LBFGS", "AugmentedHessianFree", "HessianFree", "Momentum", "NAG", "SecondOrderOptimizer",
    "gauss_newton_operator", "gauss_newton_product", "schedules",
]
