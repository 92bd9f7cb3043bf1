"""Optimizers of the thesis: NAG with momentum schedules (ch. 7) and Hessian-free (ch. 4)."""

from rnnzoo.optimizers import schedules
from rnnzoo.optimizers.gauss_newton import gauss_newton_product
from rnnzoo.optimizers.nag import NAG

__all__ = ["NAG", "gauss_newton_product", "schedules"]
