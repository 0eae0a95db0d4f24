import time, numpy as np, cupy as cp, gputrace
from gputrace import nn
rng = np.random.default_rng(0)
def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True)); return e / e.sum(axis=-1, keepdims=True)
def layernorm(x, w, b):
    m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True); return (x - m) / np.sqrt(v + 1e-5) * w + b
def rmsnorm(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * w
gelu = lambda x: 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))
def bench(f, args, n=20):
    f(*args); cp.cuda.runtime.deviceSynchronize()
    s, e = cp.cuda.Event(), cp.cuda.Event(); ts = []
    for _ in range(n):
        s.record(); f(*args); e.record(); e.synchronize(); ts.append(cp.cuda.get_elapsed_time(s, e))
    return float(np.median(ts))
src = cp.empty(1 << 28, np.uint8); dst = cp.empty_like(src)
copy_ms = bench(lambda: dst.__setitem__(slice(None), src), ())
copy_bw = 2 * src.nbytes / copy_ms / 1e6
print(f"device {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()} copy bandwidth {copy_bw:.0f} GB/s")
cases = {"gelu": (gelu, [(8192, 8192)]), "softmax": (softmax, [(8192, 8192)]),
         "layernorm": (layernorm, [(8192, 8192), (8192,), (8192,)]), "rmsnorm": (rmsnorm, [(8192, 8192), (8192,)])}
for name, (fn, shapes) in cases.items():
    small = [rng.standard_normal(tuple(min(s, 64) for s in sh)).astype(np.float32) for sh in shapes]
    t = gputrace.trace(fn, tuple(small))
    x = [rng.standard_normal(sh).astype(np.float32) for sh in shapes]
    xd = [cp.asarray(a) for a in x]
    got = t(*xd); ref = fn(*x)
    err = float(np.max(np.abs(cp.asnumpy(got) - ref) / (np.abs(ref) + 1e-6)))
    prog = t.lower(*xd)
    ms = bench(t, xd); ms_cp = bench(fn, xd)
    nbytes = sum(a.nbytes for a in x) + ref.nbytes
    print(f"{name:10s} kernels={len(prog.kernels)} max_rel_err={err:.2e} gputrace {ms:.3f} ms ({nbytes/ms/1e6:.0f} GB/s, {100*nbytes/ms/1e6/copy_bw:.0f}% of copy) cupy eager {ms_cp:.3f} ms -> {ms_cp/ms:.1f}x")
class MyCell(nn.Module):
    def __init__(self):
        super().__init__(); self.linear = nn.Linear(4, 4, seed=0)
    def forward(self, x, h):
        new_h = np.tanh(self.linear(x) + h); return new_h, new_h
cell = MyCell(); x, h = rng.random((3, 4), dtype=np.float32), rng.random((3, 4), dtype=np.float32)
traced = gputrace.trace(cell, (x, h)); cell.to("cuda")
out = traced(cp.asarray(x), cp.asarray(h)); cell.to("cpu")
print("MyCell cuda vs numpy max abs", float(np.abs(cp.asnumpy(out[0]) - traced(x, h)[0]).max()))
xs = cp.asarray(rng.random(1000, dtype=np.float32)); tg = gputrace.trace(gelu, np.ones(1000, np.float32)); tg(xs)
t0 = time.perf_counter()
for _ in range(2000): tg(xs)
cp.cuda.runtime.deviceSynchronize(); print(f"host time per one-kernel call {1e6*(time.perf_counter()-t0)/2000:.1f} us")
