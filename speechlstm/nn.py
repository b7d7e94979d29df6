"""A small layer API over the kernels: LSTM, Dense, log-softmax, the acoustic model, Adam, clipping,
and a Keras-style sequence classifier.

Parameters are plain numpy arrays in dicts named exactly like PyTorch's (``weight_ih_l0``,
``weight_hh_l0_reverse``, ``fc.weight`` ...), so ``state_dict()`` moves both ways between the two.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from . import lstm as _lstm
from .errors import ParameterError, check_int, check_real
from .linalg import matmul, matmul_tn

__all__ = [
    "LSTM", "Dense", "log_softmax", "log_softmax_backward", "softmax_cross_entropy", "frame_distillation_loss",
    "AcousticModel",
    "Adam", "clip_grad_norm", "SequenceClassifier",
]


def _check_dropout(p) -> float:
    return check_real("dropout", p, 0.0, 1.0, high_open=True)


def _dropout_mask(rng: np.random.Generator, shape, p: float, dtype) -> np.ndarray:
    """Inverted dropout: 0 with probability ``p``, else 1/(1-p)."""
    return (rng.random(shape, dtype=np.float32) >= p).astype(dtype) * dtype.type(1.0 / (1.0 - p))


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class _Module:
    """Parameters in ``self.params`` (name -> array), gradients in ``self.grads`` (same names)."""

    params: Dict[str, np.ndarray]
    grads: Dict[str, np.ndarray]

    def state_dict(self) -> Dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, d: Dict[str, np.ndarray]) -> None:
        missing = sorted(set(self.params) - set(d))
        extra = sorted(set(d) - set(self.params))
        if missing or extra:
            raise ParameterError(f"state dict mismatch: missing {missing}, unexpected {extra}")
        for k, v in d.items():
            a = np.asarray(v)
            if a.shape != self.params[k].shape:
                raise ParameterError(f"{k}: expected shape {self.params[k].shape}, got {a.shape}")
            self.params[k][...] = a

    def zero_grad(self) -> None:
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def num_parameters(self) -> int:
        return int(sum(v.size for v in self.params.values()))


class LSTM(_Module):
    """Multi-layer LSTM with PyTorch ``nn.LSTM(batch_first=True)`` semantics and parameter names.

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int
    bidirectional : bool
    dtype : np.float32 or np.float64
    seed : int, np.random.Generator or None
        initialisation is PyTorch's: every parameter uniform in ±1/sqrt(hidden_size).
    dropout : float in [0, 1)
        as PyTorch's: in training mode, each layer's output but the last's is zeroed with this
        probability (element-wise, kept ones scaled by 1/(1-dropout)) before the next layer reads
        it.  The masks come from the attribute ``dropout_rng`` (a ``np.random.Generator``; None,
        the default, draws fresh entropy — set it for reproducible masks).  Inference is unaffected.
    """

    def __init__(self, input_size, hidden_size, *, num_layers=1, bidirectional=False, dtype=np.float32, seed=None,
                 dropout=0.0):
        self.dropout = _check_dropout(dropout)
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = H = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.bidirectional = bool(bidirectional)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ParameterError(f"dtype must be float32 or float64, got {self.dtype}")
        D = 2 if bidirectional else 1
        k = 1.0 / np.sqrt(H)
        rng = _rng(seed)
        self.params = {}
        for l in range(self.num_layers):
            I = self.input_size if l == 0 else D * H
            for d in range(D):
                sfx = f"_l{l}" + ("_reverse" if d else "")
                for name, shape in (("weight_ih", (4 * H, I)), ("weight_hh", (4 * H, H)),
                                    ("bias_ih", (4 * H,)), ("bias_hh", (4 * H,))):
                    self.params[name + sfx] = rng.uniform(-k, k, shape).astype(self.dtype)
        self.zero_grad()
        self.training = True
        self.device = "cpu"
        self._cache = None
        self._workspace = _lstm.Workspace()  # CPU scratch reused call to call (see lstm.Workspace)
        self.grad_state = None
        self.dropout_rng = None  # np.random.Generator for the dropout masks; None: a fresh, unseeded one

    def to(self, device: str) -> "LSTM":
        """Run forward and backward on ``"cpu"``, ``"cuda"`` (numba.cuda kernels, float32) or
        ``"auto"``; parameters stay numpy arrays on the host either way."""
        from .device import resolve_device

        dev = resolve_device(device)
        if dev == "cuda" and self.dtype != np.float32:
            raise ParameterError(f"the CUDA kernels are float32; this LSTM is {self.dtype}")
        self.device = dev
        return self

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _names(self, l, d):
        sfx = f"_l{l}" + ("_reverse" if d else "")
        return [n + sfx for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def weights(self):
        """Weights nested as ``lstm_forward`` takes them."""
        return [[tuple(self.params[n] for n in self._names(l, d)) for d in range(self.num_directions)]
                for l in range(self.num_layers)]

    def train(self, mode: bool = True) -> "LSTM":
        self.training = bool(mode)
        return self

    def eval(self) -> "LSTM":
        return self.train(False)

    def forward(self, x, lengths=None, state=None):
        """Run the LSTM.

        Parameters
        ----------
        x : np.ndarray [shape=(B, T, input_size)]
        lengths : np.ndarray [shape=(B,)] or None
        state : (h0, c0), each [num_layers*D, B, hidden_size], or None

        Returns
        -------
        y : np.ndarray [shape=(B, T, D*hidden_size)]
        (h_n, c_n) : np.ndarray [shape=(num_layers*D, B, hidden_size)]
        """
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ParameterError(f"x must be [B, T, {self.input_size}], got shape {x.shape}")
        h0, c0 = (None, None) if state is None else state
        x = x.astype(self.dtype, copy=False)
        forward, extra = self._kernels("forward")
        if self.training and self.dropout > 0 and self.num_layers > 1:
            # fresh masks in layer order; the kernels apply them between layers (and in backward)
            shape = (x.shape[0], x.shape[1], self.num_directions * self.hidden_size)
            extra["masks"] = [self.dropout_mask(shape, self.dropout, x.dtype) for _ in range(self.num_layers - 1)]
        y, (hn, cn), cache = forward(x, self.weights(), lengths=lengths, h0=h0, c0=c0, training=self.training,
                                     **extra)
        self._cache = cache
        return y, (hn, cn)

    def _kernels(self, which, cache=None):
        """(function, extra keyword arguments) of the CPU or CUDA forward, or of the backward that
        fits ``cache``."""
        if which == "forward" and self.device == "cuda":
            from .gpu_lstm import gpu_lstm_forward as fn
            return fn, {}
        if which == "backward" and not isinstance(cache, _lstm.LSTMCache):
            from .gpu_lstm import gpu_lstm_backward as fn
            return fn, {}
        return (_lstm.lstm_forward if which == "forward" else _lstm.lstm_backward), {"workspace": self._workspace}

    __call__ = forward

    def backward(self, grad_y, grad_state=None, *, input_grad=True):
        """Backpropagate; fills ``self.grads`` (accumulating) and ``self.grad_state = (dh0, dc0)``.

        ``input_grad=False`` skips the gradient of the input (like a PyTorch input without
        ``requires_grad``) and returns ``None``.

        Returns
        -------
        grad_x : np.ndarray [shape=(B, T, input_size)] or None
        """
        if self._cache is None:
            raise ParameterError("LSTM.backward needs a forward pass in training mode first")
        ghn, gcn = (None, None) if grad_state is None else grad_state
        backward, extra = self._kernels("backward", cache=self._cache)
        gx, gw, self.grad_state = backward(grad_y, self._cache, grad_hn=ghn, grad_cn=gcn, input_grad=input_grad,
                                           **extra)
        for l in range(self.num_layers):
            for d in range(self.num_directions):
                for n, g in zip(self._names(l, d), gw[l][d]):
                    self.grads[n] += g
        return gx

    def dropout_mask(self, shape, p: float, dtype) -> np.ndarray:
        """An inverted-dropout mask (0 with probability ``p``, else 1/(1-p)) from ``dropout_rng``
        (created unseeded on first use when None)."""
        if self.dropout_rng is None:
            self.dropout_rng = np.random.default_rng()
        return _dropout_mask(self.dropout_rng, shape, p, np.dtype(dtype))

    def stream(self):
        """A streaming runner: ``runner(chunk) -> y_chunk`` carrying (h, c) across chunks."""
        if self.bidirectional:
            raise ParameterError("streaming needs a unidirectional LSTM (this one is bidirectional)")
        return _LSTMStream(self)


class _LSTMStream:
    def __init__(self, layer: LSTM):
        self.layer = layer
        self.state = None

    def __call__(self, chunk):
        was = self.layer.training
        self.layer.training = False
        try:
            y, self.state = self.layer.forward(chunk, state=self.state)
        finally:
            self.layer.training = was
        return y


class Dense(_Module):
    """``y = x @ weight.T + bias`` over the last axis (PyTorch ``nn.Linear`` layout and init)."""

    def __init__(self, in_features, out_features, *, dtype=np.float32, seed=None):
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        k = 1.0 / np.sqrt(in_features)
        rng = _rng(seed)
        self.params = {"weight": rng.uniform(-k, k, (out_features, in_features)).astype(dtype),
                       "bias": rng.uniform(-k, k, (out_features,)).astype(dtype)}
        self.zero_grad()
        self._x = None

    def forward(self, x):
        x = np.asarray(x)
        if x.shape[-1] != self.in_features:
            raise ParameterError(f"Dense expects last axis {self.in_features}, got shape {x.shape}")
        self._x = x
        w = self.params["weight"]
        y = matmul(x.reshape(-1, self.in_features).astype(w.dtype, copy=False), w.T, bias=self.params["bias"])
        return y.reshape(x.shape[:-1] + (self.out_features,))

    __call__ = forward

    def backward(self, grad_y):
        g = np.ascontiguousarray(grad_y, dtype=self.params["weight"].dtype).reshape(-1, self.out_features)
        x2 = self._x.reshape(-1, self.in_features).astype(g.dtype, copy=False)
        self.grads["weight"] += matmul_tn(g, x2)
        self.grads["bias"] += g.sum(axis=0)
        return matmul(g, self.params["weight"]).reshape(self._x.shape)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable log-softmax."""
    z = np.asarray(z)
    m = np.max(z, axis=axis, keepdims=True)
    s = z - m
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def log_softmax_backward(grad_logp: np.ndarray, logp: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient w.r.t. the logits given the gradient w.r.t. ``logp = log_softmax(logits)``."""
    return grad_logp - np.exp(logp) * np.sum(grad_logp, axis=axis, keepdims=True)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> Tuple[float, np.ndarray]:
    """Mean categorical cross-entropy over rows and its gradient w.r.t. the logits.

    ``labels`` are class indices [N] or one-hot / probability rows [N, C].
    """
    logits = np.asarray(logits)
    lp = log_softmax(logits.astype(np.float64))
    n = lp.shape[0]
    labels = np.asarray(labels)
    target = np.zeros_like(lp)
    if labels.ndim == 1:
        target[np.arange(n), labels.astype(np.int64)] = 1.0
    else:
        target[...] = labels
    loss = float(-(target * lp).sum() / n)
    grad = (np.exp(lp) * target.sum(axis=1, keepdims=True) - target) / n
    return loss, grad.astype(logits.dtype)


def frame_distillation_loss(logits: np.ndarray, teacher_probs: np.ndarray, lengths: np.ndarray, *,
                            temperature: float = 1.0):
    """Frame-wise knowledge distillation: per utterance, the sum over its frames of
    τ² · KL(teacher ‖ student) = τ² · Σ_c p_T · (log p_T − log softmax(logits / τ)), and its gradient.

    Parameters
    ----------
    logits : np.ndarray [shape=(B, T, C)], float
        the student's unnormalised scores.
    teacher_probs : np.ndarray [shape=(B, T, C)], float
        the teacher's per-frame posteriors (rows sum to 1 on valid frames; any values past
        ``lengths``, which are ignored).
    lengths : np.ndarray [shape=(B,)], int in [0, T]
    temperature : float > 0
        τ: the student's scores are divided by it, and the term multiplied by τ² so that its gradient
        keeps its size as τ grows (Hinton et al., 2015); ``teacher_probs`` are expected already
        softened at the same τ. 1 (the default) is plain KL.

    Returns
    -------
    loss : np.ndarray [shape=(B,)], float64
    grad : np.ndarray [shape=(B, T, C)], dtype of ``logits``
        gradient of ``loss.sum()`` w.r.t. the logits: τ · (softmax(logits / τ) − p_T) on valid
        frames, 0 past ``lengths``.
    """
    logits = np.asarray(logits)
    p_t = np.asarray(teacher_probs, np.float64)
    if logits.ndim != 3 or p_t.shape != logits.shape:
        raise ParameterError(f"logits {logits.shape} and teacher_probs {p_t.shape} must be equal [B, T, C] shapes")
    lengths = np.asarray(lengths)
    if lengths.shape != (logits.shape[0],) or np.any(lengths < 0) or np.any(lengths > logits.shape[1]):
        raise ParameterError(f"lengths must be {logits.shape[0]} values in [0, {logits.shape[1]}], got {lengths!r}")
    tau = check_real("temperature", temperature, 0.0, low_open=True)
    valid = (np.arange(logits.shape[1])[None, :] < lengths[:, None])[:, :, None]
    lp = log_softmax(logits.astype(np.float64) / tau)  # x / 1.0 and x * 1.0 are exact: τ = 1 is the plain term
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p_t > 0, p_t * np.log(np.where(p_t > 0, p_t, 1.0)), 0.0)
    loss = np.where(valid, plogp - p_t * lp, 0.0).sum(axis=(1, 2))
    grad = np.where(valid, np.exp(lp) * p_t.sum(axis=2, keepdims=True) - p_t, 0.0)
    # d(τ² KL)/d logits = τ² · (1/τ) · (softmax(logits/τ) − p_T)
    return loss * (tau * tau), (grad * tau).astype(logits.dtype)


class AcousticModel(_Module):
    """Stacked LSTM → Dense → (log-softmax): frame features to per-frame symbol scores.

    Parameter names are those of a PyTorch module with attributes ``lstm`` and ``fc``.
    ``dropout`` (training only) drops each LSTM layer's output, the top one's included (before the
    Dense layer), with masks from ``dropout_rng`` (see :class:`LSTM`).
    """

    def __init__(self, input_size, hidden_size, num_classes, *, num_layers=2, bidirectional=True,
                 dtype=np.float32, seed=None, dropout=0.0):
        rng = _rng(seed)
        self.lstm = LSTM(input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional, dtype=dtype,
                         seed=rng, dropout=dropout)
        self.fc = Dense(hidden_size * self.lstm.num_directions, num_classes, dtype=dtype, seed=rng)
        self.num_classes = num_classes
        self._mask = None

    @property
    def dropout(self) -> float:
        return self.lstm.dropout

    @property
    def dropout_rng(self):
        return self.lstm.dropout_rng

    @dropout_rng.setter
    def dropout_rng(self, rng):
        self.lstm.dropout_rng = rng

    @property
    def params(self):
        d = {f"lstm.{k}": v for k, v in self.lstm.params.items()}
        d.update({f"fc.{k}": v for k, v in self.fc.params.items()})
        return d

    @property
    def grads(self):
        d = {f"lstm.{k}": v for k, v in self.lstm.grads.items()}
        d.update({f"fc.{k}": v for k, v in self.fc.grads.items()})
        return d

    def zero_grad(self):
        self.lstm.zero_grad()
        self.fc.zero_grad()

    def train(self, mode=True):
        self.lstm.train(mode)
        return self

    def to(self, device: str) -> "AcousticModel":
        """Run the LSTM on ``device`` (see :meth:`LSTM.to`); the Dense layer and the loss stay on
        the host (they are a small share of the work)."""
        self.lstm.to(device)
        return self

    def eval(self):
        return self.train(False)

    def config(self) -> dict:
        return {"input_size": self.lstm.input_size, "hidden_size": self.lstm.hidden_size,
                "num_classes": self.num_classes, "num_layers": self.lstm.num_layers,
                "bidirectional": self.lstm.bidirectional}

    def forward(self, x, lengths=None, state=None):
        """Logits [B, T, num_classes] (and the LSTM's final state)."""
        y, st = self.lstm.forward(x, lengths, state)
        self._mask = None
        if self.lstm.training and self.dropout > 0:
            self._mask = self.lstm.dropout_mask(y.shape, self.dropout, y.dtype)
            y = y * self._mask
        return self.fc.forward(y), st

    __call__ = forward

    def log_probs(self, x, lengths=None, state=None):
        """Per-frame log-probabilities [B, T, num_classes]."""
        z, st = self.forward(x, lengths, state)
        return log_softmax(z), st

    def backward(self, grad_logits, *, input_grad=True):
        """Gradients of every parameter into ``grads``; returns the features' gradient (or ``None``
        with ``input_grad=False``, which training uses: features need none)."""
        g = self.fc.backward(grad_logits)
        if self._mask is not None:
            g = g * self._mask
        return self.lstm.backward(g, input_grad=input_grad)


class Adam:
    """Adam with optional decoupled weight decay (AdamW); updates the arrays in place.

    The state (``t``, ``m``, ``v``) round-trips through ``state_dict``/``load_state_dict`` so a
    resumed training run continues bit-identically.
    """

    def __init__(self, params: Dict[str, np.ndarray], *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        lr = check_real("lr", lr, 0, low_open=True)
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ParameterError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        betas = tuple(check_real(f"betas[{i}]", b, 0, 1, high_open=True) for i, b in enumerate(betas))
        eps = check_real("eps", eps, 0, low_open=True)
        weight_decay = check_real("weight_decay", weight_decay, 0)
        self.params = params
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: Dict[str, np.ndarray], lr: Optional[float] = None) -> None:
        lr = self.lr if lr is None else float(lr)
        b1, b2 = self.betas
        self.t += 1
        c1 = 1.0 - b1 ** self.t
        c2 = 1.0 - b2 ** self.t
        for k, p in self.params.items():
            g = grads[k]
            m, v = self.m[k], self.v[k]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            if self.weight_decay:
                p -= (lr * self.weight_decay) * p
            p -= ((lr / c1) * m / (np.sqrt(v / c2) + self.eps)).astype(p.dtype, copy=False)

    def state_dict(self) -> dict:
        d = {"t": np.array(self.t)}
        d.update({f"m.{k}": v.copy() for k, v in self.m.items()})
        d.update({f"v.{k}": v.copy() for k, v in self.v.items()})
        return d

    def load_state_dict(self, d: dict) -> None:
        self.t = int(d["t"])
        for k in self.params:
            self.m[k][...] = d[f"m.{k}"]
            self.v[k][...] = d[f"v.{k}"]


def clip_grad_norm(grads: Dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (inf/NaN norms zero the gradients instead).
    """
    total = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
    if not np.isfinite(total):
        for g in grads.values():
            g[...] = 0
        return total
    if total > max_norm > 0:
        scale = max_norm / (total + 1e-6)
        for g in grads.values():
            g *= scale
    return total


class SequenceClassifier:
    """The classic Keras model: ``LSTM(128, return_sequences) → LSTM(64) → Dense softmax``,
    trained with categorical cross-entropy and Adam.

    Parameters
    ----------
    input_size : int
        features per timestep.
    num_classes : int
    units : (int, int)
        hidden sizes of the two LSTM layers.
    """

    def __init__(self, input_size, num_classes, *, units=(128, 64), lr=1e-3, clip=5.0, seed=0):
        rng = _rng(seed)
        self.lstm1 = LSTM(input_size, units[0], seed=rng)
        self.lstm2 = LSTM(units[0], units[1], seed=rng)
        self.dense = Dense(units[1], num_classes, seed=rng)
        self.num_classes = num_classes
        self.clip = clip
        self._rng = rng
        self.opt = Adam(self._params(), lr=lr)

    def _modules(self):
        return {"lstm1": self.lstm1, "lstm2": self.lstm2, "dense": self.dense}

    def _params(self):
        return {f"{m}.{k}": v for m, mod in self._modules().items() for k, v in mod.params.items()}

    def _grads(self):
        return {f"{m}.{k}": v for m, mod in self._modules().items() for k, v in mod.grads.items()}

    def _forward(self, X, lengths, training):
        for m in (self.lstm1, self.lstm2):
            m.train(training)
        y1, _ = self.lstm1.forward(X, lengths)
        _, (h2, _) = self.lstm2.forward(y1, lengths)
        return self.dense.forward(h2[-1])  # the last valid step of each sequence

    def _check(self, X, y=None, lengths=None):
        X = np.asarray(X, np.float32)
        if X.ndim != 3 or X.shape[2] != self.lstm1.input_size:
            raise ParameterError(f"X must be [N, T, {self.lstm1.input_size}], got shape {X.shape}")
        if y is not None:
            y = np.asarray(y)
            labels = y.argmax(axis=1) if y.ndim == 2 else y
            if labels.shape != (X.shape[0],) or labels.min() < 0 or labels.max() >= self.num_classes:
                raise ParameterError(f"y must be {X.shape[0]} labels in [0, {self.num_classes}) or one-hot rows")
        if lengths is not None:
            lengths = np.asarray(lengths, np.int64)
        return X, y, lengths

    def predict(self, X, lengths=None, batch_size=256) -> np.ndarray:
        """Class probabilities [N, num_classes]."""
        X, _, lengths = self._check(X, None, lengths)
        out = []
        for s in range(0, X.shape[0], batch_size):
            ln = None if lengths is None else lengths[s:s + batch_size]
            out.append(np.exp(log_softmax(self._forward(X[s:s + batch_size], ln, False))))
        return np.concatenate(out)

    def evaluate(self, X, y, lengths=None, batch_size=256) -> Tuple[float, float]:
        """(mean cross-entropy, accuracy)."""
        X, y, lengths = self._check(X, y, lengths)
        p = self.predict(X, lengths, batch_size)
        labels = y.argmax(axis=1) if y.ndim == 2 else y
        loss = float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-30))))
        return loss, float(np.mean(p.argmax(axis=1) == labels))

    def fit(self, X, y, *, epochs=10, batch_size=32, lengths=None, validation_data=None, verbose=False):
        """Train; returns a history dict of per-epoch loss/accuracy (and val_ ones)."""
        X, y, lengths = self._check(X, y, lengths)
        history = {"loss": [], "accuracy": []}
        n = X.shape[0]
        for epoch in range(epochs):
            order = self._rng.permutation(n)
            tot, correct = 0.0, 0
            for s in range(0, n, batch_size):
                idx = order[s:s + batch_size]
                ln = None if lengths is None else lengths[idx]
                for m in self._modules().values():
                    m.zero_grad()
                logits = self._forward(X[idx], ln, True)
                loss, g = softmax_cross_entropy(logits, y[idx])
                gh2 = self.dense.backward(g)
                B = len(idx)
                dh = np.zeros((1, B, self.lstm2.hidden_size), np.float32)
                dh[0] = gh2
                gy1 = self.lstm2.backward(np.zeros((B, X.shape[1], self.lstm2.hidden_size), np.float32), (dh, None))
                self.lstm1.backward(gy1)
                grads = self._grads()
                if self.clip:
                    clip_grad_norm(grads, self.clip)
                self.opt.params = self._params()
                self.opt.step(grads)
                tot += loss * B
                lab = y[idx].argmax(axis=1) if y.ndim == 2 else y[idx]
                correct += int(np.sum(logits.argmax(axis=1) == lab))
            history["loss"].append(tot / n)
            history["accuracy"].append(correct / n)
            if validation_data is not None:
                vl, va = self.evaluate(*validation_data)
                history.setdefault("val_loss", []).append(vl)
                history.setdefault("val_accuracy", []).append(va)
            if verbose:
                print(f"epoch {epoch + 1}/{epochs} loss {history['loss'][-1]:.4f} acc {history['accuracy'][-1]:.3f}")
        return history
