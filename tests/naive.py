"""Slow, obviously-correct NumPy references: every fast kernel is tested against these.

One timestep, one sequence, one unit of work at a time; float64 throughout; no cleverness.
"""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------- LSTM ---------------------------
def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step, PyTorch gate order (i, f, g, o). Returns h', c', and the activated gates."""
    H = h.shape[0]
    z = w_ih @ x + b_ih + w_hh @ h + b_hh
    i, f, g, o = sigmoid(z[:H]), sigmoid(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), sigmoid(z[3 * H:])
    c2 = f * c + i * g
    return o * np.tanh(c2), c2, (i, f, g, o)


def lstm_forward(x, weights, lengths=None, h0=None, c0=None, masks=None):
    """x [B,T,I]; weights[l][d] = (w_ih, w_hh, b_ih, b_hh). Returns y [B,T,D*H], h_n, c_n.
    masks[l] (dropout) multiplies layer l's output before layer l+1 reads it (l < L-1)."""
    x = np.asarray(x, np.float64)
    B, T, _ = x.shape
    L, D = len(weights), len(weights[0])
    H = weights[0][0][1].shape[1]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    h0 = np.zeros((L * D, B, H)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((L * D, B, H)) if c0 is None else np.asarray(c0, np.float64)
    hn, cn = np.zeros((L * D, B, H)), np.zeros((L * D, B, H))
    inp = x
    for l in range(L):
        out = np.zeros((B, T, D * H))
        for d in range(D):
            w = [np.asarray(a, np.float64) for a in weights[l][d]]
            for b in range(B):
                h, c = h0[l * D + d, b].copy(), c0[l * D + d, b].copy()
                steps = range(lengths[b]) if d == 0 else range(lengths[b] - 1, -1, -1)
                for t in steps:
                    h, c, _ = lstm_cell(inp[b, t], h, c, *w)
                    out[b, t, d * H:(d + 1) * H] = h
                hn[l * D + d, b], cn[l * D + d, b] = h, c
        inp = out * masks[l] if masks is not None and l < L - 1 else out
    return inp, hn, cn


def lstm_backward(x, weights, grad_y, lengths=None, h0=None, c0=None, grad_hn=None, grad_cn=None, masks=None):
    """Backward through time, one sequence and one step at a time (``masks`` as in lstm_forward).

    Returns grad_x, grads[l][d] = (dw_ih, dw_hh, db_ih, db_hh), grad_h0, grad_c0.
    """
    x = np.asarray(x, np.float64)
    B, T, _ = x.shape
    L, D = len(weights), len(weights[0])
    H = weights[0][0][1].shape[1]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    h0 = np.zeros((L * D, B, H)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((L * D, B, H)) if c0 is None else np.asarray(c0, np.float64)
    ghn = np.zeros((L * D, B, H)) if grad_hn is None else np.asarray(grad_hn, np.float64)
    gcn = np.zeros((L * D, B, H)) if grad_cn is None else np.asarray(grad_cn, np.float64)
    # forward again, recording every layer's input and every step's states
    inputs, records = [], []
    inp = x
    for l in range(L):
        inputs.append(inp)
        out = np.zeros((B, T, D * H))
        rec = {}
        for d in range(D):
            w = [np.asarray(a, np.float64) for a in weights[l][d]]
            for b in range(B):
                h, c = h0[l * D + d, b].copy(), c0[l * D + d, b].copy()
                steps = list(range(lengths[b])) if d == 0 else list(range(lengths[b] - 1, -1, -1))
                seq = []
                for t in steps:
                    h2, c2, gates = lstm_cell(inp[b, t], h, c, *w)
                    seq.append((t, h, c, h2, c2, gates))
                    h, c = h2, c2
                    out[b, t, d * H:(d + 1) * H] = h
                rec[d, b] = seq
        records.append(rec)
        inp = out * masks[l] if masks is not None and l < L - 1 else out
    gy = np.asarray(grad_y, np.float64).copy()
    grads = [[None] * D for _ in range(L)]
    gh0, gc0 = np.zeros((L * D, B, H)), np.zeros((L * D, B, H))
    for l in range(L - 1, -1, -1):
        gx = np.zeros_like(inputs[l])
        for d in range(D):
            w_ih, w_hh = (np.asarray(a, np.float64) for a in weights[l][d][:2])
            dw_ih, dw_hh, db = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros(4 * H)
            for b in range(B):
                dh, dc = ghn[l * D + d, b].copy(), gcn[l * D + d, b].copy()
                for t, h_prev, c_prev, h2, c2, (i, f, g, o) in reversed(records[l][d, b]):
                    dh = dh + gy[b, t, d * H:(d + 1) * H]
                    tc = np.tanh(c2)
                    do = dh * tc
                    dc = dc + dh * o * (1 - tc ** 2)
                    di, df, dg = dc * g, dc * c_prev, dc * i
                    dz = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)])
                    dw_ih += np.outer(dz, inputs[l][b, t])
                    dw_hh += np.outer(dz, h_prev)
                    db += dz
                    gx[b, t] += w_ih.T @ dz
                    dh = w_hh.T @ dz
                    dc = dc * f
                gh0[l * D + d, b], gc0[l * D + d, b] = dh, dc
            grads[l][d] = (dw_ih, dw_hh, db, db.copy())
        gy = gx * masks[l - 1] if masks is not None and l > 0 else gx
    return gy, grads, gh0, gc0


# ---------------------------------------------------------------- dense & softmax ----------------
def dense_forward(x, w, b):
    """x [..., I], w [O, I], b [O] -> [..., O]"""
    return np.asarray(x, np.float64) @ np.asarray(w, np.float64).T + b


def dense_backward(x, w, grad_out):
    """Returns grad_x, grad_w, grad_b for y = x w^T + b."""
    x2 = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
    g2 = np.asarray(grad_out, np.float64).reshape(-1, grad_out.shape[-1])
    return (g2 @ w).reshape(x.shape), g2.T @ x2, g2.sum(0)


def log_softmax(z):
    """Row-wise log-softmax, one row at a time."""
    z = np.asarray(z, np.float64)
    flat = z.reshape(-1, z.shape[-1])
    out = np.empty_like(flat)
    for r in range(flat.shape[0]):
        m = flat[r].max()
        out[r] = flat[r] - m - np.log(np.sum(np.exp(flat[r] - m)))
    return out.reshape(z.shape)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy over rows and its gradient w.r.t. the logits."""
    lp = log_softmax(logits)
    n = lp.shape[0]
    loss = -np.mean([lp[r, labels[r]] for r in range(n)])
    grad = np.exp(lp)
    for r in range(n):
        grad[r, labels[r]] -= 1.0
    return loss, grad / n


def central_difference_grad(f, x, eps=1e-6):
    """d f(x) / d x of a scalar function by central differences, one element at a time."""
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num[idx] = (f(xp) - f(xm)) / (2 * eps)
    return num


def frame_kl(logits, teacher_probs, lengths, temperature=1.0):
    """Per utterance, the sum over valid frames of temperature² · KL(teacher || softmax(logits /
    temperature)), one frame and one class at a time (the gradient is checked by finite differences
    in the tests, not written here)."""
    B, T, C = logits.shape
    out = np.zeros(B)
    for b in range(B):
        for t in range(int(lengths[b])):
            lp = log_softmax(logits[b, t][None] / temperature)[0]
            for c in range(C):
                p = float(teacher_probs[b, t, c])
                if p > 0:
                    out[b] += temperature ** 2 * p * (np.log(p) - lp[c])
    return out


def random_lstm_weights(rng, input_size, hidden, layers, bidirectional, scale=None, dtype=np.float64):
    D = 2 if bidirectional else 1
    k = scale if scale is not None else 1.0 / np.sqrt(hidden)
    out = []
    for l in range(layers):
        I = input_size if l == 0 else D * hidden
        out.append([tuple(rng.uniform(-k, k, s).astype(dtype) for s in
                          [(4 * hidden, I), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,)])
                    for _ in range(D)])
    return out


# ---------------------------------------------------------------- CTC ----------------------------
def ctc_collapse(path, blank=0):
    out, prev = [], None
    for p in path:
        if p != prev and p != blank:
            out.append(p)
        prev = p
    return out


def ctc_loss_bruteforce(logits, target, blank=0):
    """-log of the summed probability of every length-T path that collapses to ``target``."""
    import itertools

    lp = log_softmax(logits)
    T, C = lp.shape
    total = 0.0
    for path in itertools.product(range(C), repeat=T):
        if ctc_collapse(path, blank) == list(target):
            total += np.exp(sum(lp[t, path[t]] for t in range(T)))
    return -np.log(total) if total > 0 else np.inf


# ---------------------------------------------------------------- VTLP warp ----------------------
def warp_matrix(alpha, n_bins, boundary):
    """The vocal-tract-length warp of a power spectrum as a dense matrix M, ``warped = power @ M``:
    the energy at bin f moves to ``alpha * f`` up to the boundary (``boundary`` of the Nyquist bin,
    times min(alpha, 1) / alpha, in source bins), then a straight line to the Nyquist bin, which
    stays. Each target bin linearly interpolates the spectrum at its source position."""
    top = n_bins - 1
    knot_src = boundary * top * min(alpha, 1.0) / alpha
    knot_tgt = alpha * knot_src
    M = np.zeros((n_bins, n_bins))
    for k in range(n_bins):
        if k <= knot_tgt:
            s = k / alpha
        else:
            s = knot_src + (k - knot_tgt) * (top - knot_src) / (top - knot_tgt)
        j = min(int(np.floor(s)), top - 1)
        w = s - j
        M[j, k] += 1.0 - w
        M[j + 1, k] += w
    return M


def mel_band_mask(x, band, n_cepstra, n_mels, scale=None):
    """SpecAugment's frequency mask on cepstral features, one frame and one group at a time: undo the
    normalisation's scale, rebuild the smooth log-mel envelope by the inverse orthonormal DCT of the
    zero-padded cepstra, set the masked bands to the normalisation mean (0), take the cepstra again."""
    from scipy.fft import dct, idct

    x = np.asarray(x, np.float64)
    scale = np.ones(x.shape[1]) if scale is None else np.asarray(scale, np.float64)
    out = np.empty_like(x)
    for t in range(x.shape[0]):
        for g0 in range(0, x.shape[1], n_cepstra):
            c = x[t, g0:g0 + n_cepstra] * scale[g0:g0 + n_cepstra]
            padded = np.zeros(n_mels)
            padded[:n_cepstra] = c
            envelope = idct(padded, type=2, norm="ortho")
            envelope[band] = 0.0
            out[t, g0:g0 + n_cepstra] = dct(envelope, type=2, norm="ortho")[:n_cepstra] / scale[g0:g0 + n_cepstra]
    return out


def spec_augment_draws(seed, T, *, time_masks, max_time, feature_masks, max_features, mel_bands):
    """``spec_augment``'s draws with mel-band masks, replayed for ``seed``: (frames zeroed by the time masks,
    mel bands masked) — the same draws in the same order, with the same bounds.  ``seed`` may be a Generator,
    which then goes on (default_rng returns it as it is), as spec_augment's does over a batch."""
    rng = np.random.default_rng(seed)

    def masked(count, widest, length):
        hit = np.zeros(length, bool)
        for _ in range(count):
            w = int(rng.integers(0, widest + 1))
            if w and length > w:
                s = int(rng.integers(0, length - w))
                hit[s:s + w] = True
        return hit

    rows = masked(time_masks, max_time, T)
    return rows, masked(feature_masks, max_features, mel_bands)


# ---------------------------------------------------------------- pauses -------------------------
def pause_cuts(y, sr, level_db, split_s, min_speech_s):
    """Cut points of ``transcribe.pause_cuts`` the slow way: frame by frame, run by run, piece by piece."""
    win, hop = int(round(0.025 * sr)), int(round(0.010 * sr))
    n = (len(y) - win) // hop + 1 if len(y) >= win else 0
    quiet = []
    for i in range(n):
        f = np.asarray(y[i * hop:i * hop + win], np.float64)
        quiet.append(10 * np.log10(np.mean(f * f) + 1e-20) < level_db)
    runs, i = [], 0
    while i < n:
        if quiet[i]:
            j = i
            while j < n and quiet[j]:
                j += 1
            if i > 0 and j < n and (j - i) * 0.010 >= split_s - 1e-9:
                runs.append((i, j))
            i = j
        else:
            i += 1
    pieces, start = [], 0  # (first frame, end frame) of the pieces between runs
    for a, b in runs:
        pieces.append((start, a))
        start = b
    pieces.append((start, n))
    loud = [sum(1 for f in range(a, b) if not quiet[f]) for a, b in pieces]
    cuts, carried = [], 0
    for k, (a, b) in enumerate(runs):
        if carried + loud[k] >= min_speech_s / 0.010 and loud[k + 1] >= min_speech_s / 0.010:
            cuts.append((a * hop + b * hop + win) // 2)
            carried = 0
        else:
            carried += loud[k]
    return cuts
