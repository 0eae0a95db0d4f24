"""NumPy programs written the way their public originals write them, not adapted to the tracer.

Each follows a well-known public NumPy program (named above it): dict parameters, ``np.split`` and
``np.hstack``, ``x[range(n), y]``, in-place updates of the caller's arrays, arrays made with ``np.zeros``
and filled row by row, masks from ``x.shape``. tests/test_real_programs.py traces them unmodified.
"""
import numpy as np


# ----------------------------------------------------------------------------- GPT-2 (after picoGPT's gpt2.py)

def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def softmax(x):
    exp_x = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return exp_x / np.sum(exp_x, axis=-1, keepdims=True)


def layer_norm(x, g, b, eps: float = 1e-5):
    mean = np.mean(x, axis=-1, keepdims=True)
    variance = np.var(x, axis=-1, keepdims=True)
    x = (x - mean) / np.sqrt(variance + eps)
    return g * x + b


def linear(x, w, b):
    return x @ w + b


def ffn(x, c_fc, c_proj):
    a = gelu(linear(x, **c_fc))
    x = linear(a, **c_proj)
    return x


def attention(q, k, v, mask):
    return softmax(q @ k.T / np.sqrt(q.shape[-1]) + mask) @ v


def mha(x, c_attn, c_proj, n_head):
    x = linear(x, **c_attn)
    qkv = np.split(x, 3, axis=-1)
    qkv_heads = list(map(lambda x: np.split(x, n_head, axis=-1), qkv))
    causal_mask = (1 - np.tri(x.shape[0], dtype=x.dtype)) * -1e10
    out_heads = [attention(q, k, v, causal_mask) for q, k, v in zip(*qkv_heads)]
    x = np.hstack(out_heads)
    x = linear(x, **c_proj)
    return x


def transformer_block(x, mlp, attn, ln_1, ln_2, n_head):
    x = x + mha(layer_norm(x, **ln_1), **attn, n_head=n_head)
    x = x + ffn(layer_norm(x, **ln_2), **mlp)
    return x


def gpt2(inputs, wte, wpe, blocks, ln_f, n_head):
    x = wte[inputs] + wpe[range(len(inputs))]
    for block in blocks:
        x = transformer_block(x, **block, n_head=n_head)
    x = layer_norm(x, **ln_f)
    return x @ wte.T


def gpt2_params(rng, n_vocab=50, n_ctx=16, n_embd=16, n_layer=2):
    def normal(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    def lin(n_in, n_out):
        return {"w": normal(n_in, n_out), "b": normal(n_out)}

    def ln():
        return {"g": 1 + normal(n_embd), "b": normal(n_embd)}

    blocks = [{"mlp": {"c_fc": lin(n_embd, 4 * n_embd), "c_proj": lin(4 * n_embd, n_embd)},
               "attn": {"c_attn": lin(n_embd, 3 * n_embd), "c_proj": lin(n_embd, n_embd)},
               "ln_1": ln(), "ln_2": ln()} for _ in range(n_layer)]
    return {"wte": normal(n_vocab, n_embd), "wpe": normal(n_ctx, n_embd), "blocks": blocks, "ln_f": ln()}


# ----------------------------------------------------------------------------- two-layer net (after CS231n's neural_net.py)

def two_layer_net_step(params, X, y, reg, learning_rate):
    W1, b1 = params['W1'], params['b1']
    W2, b2 = params['W2'], params['b2']
    N, D = X.shape

    h1 = np.maximum(0, X.dot(W1) + b1)
    scores = h1.dot(W2) + b2
    scores -= np.max(scores, axis=1, keepdims=True)
    exp_scores = np.exp(scores)
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    loss = -np.sum(np.log(probs[range(N), y])) / N
    loss += reg * (np.sum(W1 * W1) + np.sum(W2 * W2))

    dscores = probs.copy()
    dscores[range(N), y] -= 1
    dscores /= N
    dW2 = h1.T.dot(dscores) + 2 * reg * W2
    db2 = np.sum(dscores, axis=0)
    dh1 = dscores.dot(W2.T)
    dh1[h1 <= 0] = 0
    dW1 = X.T.dot(dh1) + 2 * reg * W1
    db1 = np.sum(dh1, axis=0)

    params['W1'] -= learning_rate * dW1
    params['b1'] -= learning_rate * db1
    params['W2'] -= learning_rate * dW2
    params['b2'] -= learning_rate * db2
    return loss


# ----------------------------------------------------------------------------- LSTM (after Karpathy's lstm.py)

def lstm_forward(X, WLSTM, c0=None, h0=None):
    n, b, input_size = X.shape
    d = WLSTM.shape[1] // 4
    if c0 is None:
        c0 = np.zeros((b, d))
    if h0 is None:
        h0 = np.zeros((b, d))

    xphpb = WLSTM.shape[0]
    Hin = np.zeros((n, b, xphpb))
    Hout = np.zeros((n, b, d))
    IFOG = np.zeros((n, b, d * 4))
    IFOGf = np.zeros((n, b, d * 4))
    C = np.zeros((n, b, d))
    Ct = np.zeros((n, b, d))
    for t in range(n):
        prevh = Hout[t - 1] if t > 0 else h0
        Hin[t, :, 0] = 1
        Hin[t, :, 1:input_size + 1] = X[t]
        Hin[t, :, input_size + 1:] = prevh
        IFOG[t] = Hin[t].dot(WLSTM)
        IFOGf[t, :, :3 * d] = 1.0 / (1.0 + np.exp(-IFOG[t, :, :3 * d]))
        IFOGf[t, :, 3 * d:] = np.tanh(IFOG[t, :, 3 * d:])
        prevc = C[t - 1] if t > 0 else c0
        C[t] = IFOGf[t, :, :d] * IFOGf[t, :, 3 * d:] + IFOGf[t, :, d:2 * d] * prevc
        Ct[t] = np.tanh(C[t])
        Hout[t] = IFOGf[t, :, 2 * d:3 * d] * Ct[t]

    cache = {'WLSTM': WLSTM, 'Hout': Hout, 'IFOGf': IFOGf, 'IFOG': IFOG, 'C': C, 'Ct': Ct, 'Hin': Hin,
             'c0': c0, 'h0': h0}
    return Hout, C[t], Hout[t], cache


def lstm_backward(dHout_in, cache):
    WLSTM = cache['WLSTM']
    Hout = cache['Hout']
    IFOGf = cache['IFOGf']
    IFOG = cache['IFOG']
    C = cache['C']
    Ct = cache['Ct']
    Hin = cache['Hin']
    c0 = cache['c0']
    n, b, d = Hout.shape
    input_size = WLSTM.shape[0] - d - 1

    dIFOG = np.zeros(IFOG.shape)
    dIFOGf = np.zeros(IFOGf.shape)
    dWLSTM = np.zeros(WLSTM.shape)
    dHin = np.zeros(Hin.shape)
    dC = np.zeros(C.shape)
    dX = np.zeros((n, b, input_size))
    dh0 = np.zeros((b, d))
    dc0 = np.zeros((b, d))
    dHout = dHout_in.copy()
    for t in reversed(range(n)):
        tanhCt = Ct[t]
        dIFOGf[t, :, 2 * d:3 * d] = tanhCt * dHout[t]
        dC[t] += (1 - tanhCt**2) * (IFOGf[t, :, 2 * d:3 * d] * dHout[t])
        if t > 0:
            dIFOGf[t, :, d:2 * d] = C[t - 1] * dC[t]
            dC[t - 1] += IFOGf[t, :, d:2 * d] * dC[t]
        else:
            dIFOGf[t, :, d:2 * d] = c0 * dC[t]
            dc0 = IFOGf[t, :, d:2 * d] * dC[t]
        dIFOGf[t, :, :d] = IFOGf[t, :, 3 * d:] * dC[t]
        dIFOGf[t, :, 3 * d:] = IFOGf[t, :, :d] * dC[t]

        dIFOG[t, :, 3 * d:] = (1 - IFOGf[t, :, 3 * d:] ** 2) * dIFOGf[t, :, 3 * d:]
        y = IFOGf[t, :, :3 * d]
        dIFOG[t, :, :3 * d] = (y * (1.0 - y)) * dIFOGf[t, :, :3 * d]

        dWLSTM += np.dot(Hin[t].transpose(), dIFOG[t])
        dHin[t] = dIFOG[t].dot(WLSTM.transpose())

        dX[t] = dHin[t, :, 1:input_size + 1]
        if t > 0:
            dHout[t - 1, :] += dHin[t, :, input_size + 1:]
        else:
            dh0 += dHin[t, :, input_size + 1:]

    return dX, dWLSTM, dc0, dh0


def lstm_forward_backward(X, WLSTM, dHout):
    Hout, cT, hT, cache = lstm_forward(X, WLSTM)
    dX, dWLSTM, dc0, dh0 = lstm_backward(dHout, cache)
    return Hout, dX, dWLSTM, dc0, dh0


# ----------------------------------------------------------------------------- N-body (after pmocz's nbody-python)

def getAcc(pos, mass, G, softening):
    x = pos[:, 0:1]
    y = pos[:, 1:2]
    z = pos[:, 2:3]
    dx = x.T - x
    dy = y.T - y
    dz = z.T - z
    inv_r3 = (dx**2 + dy**2 + dz**2 + softening**2)
    inv_r3[inv_r3 > 0] = inv_r3[inv_r3 > 0]**(-1.5)
    ax = G * (dx * inv_r3) @ mass
    ay = G * (dy * inv_r3) @ mass
    az = G * (dz * inv_r3) @ mass
    a = np.hstack((ax, ay, az))
    return a


def nbody_step(pos, vel, mass, dt, G, softening):
    acc = getAcc(pos, mass, G, softening)
    vel += acc * dt / 2.0
    pos += vel * dt
    acc = getAcc(pos, mass, G, softening)
    vel += acc * dt / 2.0
    return pos, vel


# ----------------------------------------------------------------------------- periodic stencils

def heat_step(u, alpha, dt, dx):
    """Explicit heat equation on a periodic grid, with np.roll as in most tutorials."""
    lap = (np.roll(u, 1, axis=0) + np.roll(u, -1, axis=0) + np.roll(u, 1, axis=1) + np.roll(u, -1, axis=1)
           - 4 * u) / dx**2
    return u + alpha * dt * lap


def life_step(X):
    """Conway's game of life (after Jake VanderPlas's post)."""
    nbrs_count = sum(np.roll(np.roll(X, i, 0), j, 1)
                     for i in (-1, 0, 1) for j in (-1, 0, 1)
                     if (i != 0 or j != 0))
    return (nbrs_count == 3) | (X & (nbrs_count == 2))


# ----------------------------------------------------------------------------- k-means (the vectorised step)

def kmeans_assign(X, centroids):
    """The step without a loop over clusters: counts and sums from a one-hot matrix."""
    distances = np.sqrt(((X - centroids[:, np.newaxis])**2).sum(axis=2))
    labels = np.argmin(distances, axis=0)
    one_hot = labels == np.arange(centroids.shape[0])[:, None]
    counts = one_hot.sum(axis=1)
    sums = one_hot.astype(X.dtype) @ X
    new_centroids = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centroids)
    return labels, new_centroids


def kmeans_step(X, centroids):
    """The step as most tutorials write it: a mean of each cluster's points, one by one."""
    distances = np.sqrt(((X - centroids[:, np.newaxis])**2).sum(axis=2))
    labels = np.argmin(distances, axis=0)
    new_centroids = np.array([X[labels == k].mean(axis=0) for k in range(centroids.shape[0])])
    return labels, new_centroids
