"""PyTorch peer of `npm run bench -- eval`: candidates per second of the masked-dense evaluation a PyTorch user would
write (w ⊙ m, then one forward pass over the images in batches of 1,000 and an argmax), on one thread.

usage: python3 torch_eval.py --model lenet-300-100|lenet-5 [--images 6000] [--threads 1] [--seconds 3]
Prints one JSON object: {"model", "threads", "images", "candidatesPerSecond", "torch", "blas"}.
The cost of a dense pass does not depend on the values, so weights, masks and images are random.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

SHAPES = {
    "lenet-300-100": [("fc", (300, 784)), ("fc", (100, 300)), ("fc", (10, 100))],
    "lenet-5": [("conv", (20, 1, 5, 5)), ("conv", (50, 20, 5, 5)), ("fc", (500, 800)), ("fc", (10, 500))],
}


def forward(model, ws, bs, x):
    if model == "lenet-300-100":
        h = x.flatten(1)
        h = F.relu(F.linear(h, ws[0], bs[0]))
        h = F.relu(F.linear(h, ws[1], bs[1]))
        return F.linear(h, ws[2], bs[2])
    h = F.max_pool2d(F.conv2d(x, ws[0], bs[0]), 2)
    h = F.max_pool2d(F.conv2d(h, ws[1], bs[1]), 2)
    h = F.relu(F.linear(h.flatten(1), ws[2], bs[2]))
    return F.linear(h, ws[3], bs[3])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, choices=sorted(SHAPES))
    p.add_argument("--images", type=int, default=6000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(s, generator=g) * 0.1 for _, s in SHAPES[a.model]]
    masks = [(torch.rand(s, generator=g) < 0.05).float() for _, s in SHAPES[a.model]]
    biases = [torch.randn(s[0], generator=g) * 0.1 for _, s in SHAPES[a.model]]
    x = torch.rand(a.images, 1, 28, 28, generator=g)

    def candidate():
        with torch.no_grad():
            ws = [w * m for w, m in zip(weights, masks)]
            correct = 0
            for i in range(0, a.images, 1000):
                correct += int(forward(a.model, ws, biases, x[i : i + 1000]).argmax(1).eq(0).sum())
            return correct

    candidate()
    n = 0
    t0 = time.perf_counter()
    while True:
        candidate()
        n += 1
        if time.perf_counter() - t0 >= a.seconds:
            break
    rate = n / (time.perf_counter() - t0)
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "blas" in line.split()[-1]})
    print(json.dumps({"model": a.model, "threads": a.threads, "images": a.images, "candidatesPerSecond": rate, "torch": torch.__version__, "blas": ",".join(libs)}))


if __name__ == "__main__":
    main()
