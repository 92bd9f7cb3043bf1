"""Each rnnzoo layer with a numpy implementation of its paper's equation."""

import numpy as np

from rnnzoo.layers import MRNN, ResRNN, ScopedRNN, TensorRNN

UNITS = 4


def mrnn_step(cell, x, h, t):
    """Thesis eq. 5.5-5.6 with the bias of eq. 5.1."""
    f = (x @ cell.input_factor_kernel.numpy()) * (h @ cell.hidden_factor_kernel.numpy())
    return np.tanh(f @ cell.factor_hidden_kernel.numpy() + x @ cell.kernel.numpy() + cell.bias.numpy())


def tensor_step(cell, x, h, t):
    """Thesis eq. 5.3: h W^(v) with W^(v) = sum_m v_m W^(m), plus additive terms."""
    if cell.rank is None:
        bilinear = np.einsum("bm,bj,mjk->bk", x, h, cell.tensor.numpy())
    else:
        full = np.einsum(
            "mr,jr,rk->mjk",
            cell.input_factor_kernel.numpy(),
            cell.hidden_factor_kernel.numpy(),
            cell.factor_output_kernel.numpy(),
        )
        bilinear = np.einsum("bm,bj,mjk->bk", x, h, full)
    pre = x @ cell.kernel.numpy() + h @ cell.recurrent_kernel.numpy() + cell.bias.numpy()
    return np.tanh(pre + bilinear)


def res_step(cell, x, h, t):
    """longer-rnns §3: r = relu(W_hh1 h + W_xh x + b1); h' = h + W_hh2 r + b2."""
    pre = h @ cell.recurrent_kernel.numpy() + x @ cell.kernel.numpy() + cell.recurrent_bias.numpy()
    return h + np.maximum(pre, 0.0) @ cell.combination_kernel.numpy() + cell.bias.numpy()


def scoped_step(cell, x, h, t):
    """longer-rnns §2: the iRNN step with the parameters of scope k(t)."""
    k = min(t // cell.scope_length, cell.num_scopes - 1)
    pre = x @ cell.kernel.numpy()[k] + h @ cell.recurrent_kernel.numpy()[k] + cell.bias.numpy()[k]
    return np.maximum(pre, 0.0)


CASES = {
    "mrnn": (lambda **kw: MRNN(UNITS, factors=3, **kw), mrnn_step),
    "tensor_full": (lambda **kw: TensorRNN(UNITS, **kw), tensor_step),
    "tensor_cp": (lambda **kw: TensorRNN(UNITS, rank=3, **kw), tensor_step),
    "res_rnn": (lambda **kw: ResRNN(UNITS, **kw), res_step),
    "scoped_rnn": (lambda **kw: ScopedRNN(UNITS, num_scopes=3, scope_length=2, **kw), scoped_step),
}


def randomize(layer, seed=0, scale=0.5):
    """Gives every weight random nonzero values (ResRNN starts at zeros by design)."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [
            (scale * rng.standard_normal(w.shape)).astype(w.dtype) if w.dtype.kind == "f" else w
            for w in layer.get_weights()
        ]
    )


def numpy_sequence(layer, step, x, h0=None):
    """Runs the numpy step over time: returns all hidden states, (batch, time, units)."""
    h = np.zeros((x.shape[0], layer.cell.units)) if h0 is None else h0
    outputs = []
    for t in range(x.shape[1]):
        h = step(layer.cell, x[:, t], h, t)
        outputs.append(h)
    return np.stack(outputs, 1)
