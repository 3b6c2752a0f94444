"""PyTorch peer of `npm run bench -- train`: ms per SGD step (batch B, random data) of the same networks.

usage: python3 torch_train.py --model lenet-300-100|lenet-5|resnet-bn --threads N [--steps S] [--warmup W] [--batch B]
Prints one JSON object: {"model", "threads", "msPerStep", "torch", "blas"}.
Debian's python3-torch uses the system BLAS: install libopenblas0-pthread, or it runs the reference BLAS (much slower).
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Lenet300(nn.Module):
    def __init__(self):
        super().__init__()
        self.ip1 = nn.Linear(784, 300)
        self.ip2 = nn.Linear(300, 100)
        self.ip3 = nn.Linear(100, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.ip3(F.relu(self.ip2(F.relu(self.ip1(x)))))


class Lenet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.ip1 = nn.Linear(800, 500)
        self.ip2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        return self.ip2(F.relu(self.ip1(x.flatten(1))))


class ResnetBn(nn.Module):
    """Mirror of bench/train.ts's residual CNN: stem conv+BN, two identity blocks (conv+BN+ReLU, conv+BN, add, ReLU) with a pool between, global average pool, dense."""

    def __init__(self, c=16):
        super().__init__()
        self.stem = nn.Conv2d(1, c, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(c, eps=1e-3)
        self.convs = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1) for _ in range(4)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(c, eps=1e-3) for _ in range(4)])
        self.fc = nn.Linear(c, 10)

    def block(self, x, i):
        y = F.relu(self.bns[i](self.convs[i](x)))
        y = self.bns[i + 1](self.convs[i + 1](y))
        return F.relu(x + y)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.block(x, 0)
        x = F.max_pool2d(x, 2)
        x = self.block(x, 2)
        return self.fc(x.mean(dim=(2, 3)))


MODELS = {"lenet-300-100": Lenet300, "lenet-5": Lenet5, "resnet-bn": ResnetBn}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = MODELS[a.model]()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(a.batch, 1, 28, 28)
    y = torch.randint(0, 10, (a.batch,))

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    ms = (time.perf_counter() - t0) * 1000 / a.steps
    # The BLAS actually loaded (Debian's torch reports BLAS_INFO=generic and uses whatever libblas.so.3 resolves to).
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "blas" in line.split()[-1]})
    print(json.dumps({"model": a.model, "threads": a.threads, "msPerStep": ms, "torch": torch.__version__, "blas": ",".join(libs)}))


if __name__ == "__main__":
    main()
