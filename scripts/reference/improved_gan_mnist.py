"""PyTorch reference for the `improved-gan` plugin: Improved-GAN's semi-supervised MNIST training
(Salimans et al. 2016) as the authors' Theano script trains it, written for ganfold to compare
learning curves with `ganfold train improved-gan` (same networks, losses, init and optimiser).

  python improved_gan_mnist.py --data datasets/mnist --epochs 3 --seed 0 [--threads 2]

Prints one JSON line per epoch: epoch, loss_lab, loss_unl, loss_gen (epoch means) and the test error
of the final weights and of their moving average (rate 1e-4 from zero, as the authors test).
Needs torch (not a ganfold dependency): python3 -m venv v && v/bin/pip install torch numpy.
"""
import argparse, gzip, json, os, time
import numpy as np
import torch
import torch.nn.functional as F


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


class WnDense(torch.nn.Module):
    """Weight-normalised dense layer; the scale is fixed after the data-dependent init unless
    `train_scale`."""

    def __init__(self, inp, out, train_scale=False, std=0.1):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.randn(out, inp) * std)
        self.scale = torch.nn.Parameter(torch.ones(out), requires_grad=train_scale)
        self.bias = torch.nn.Parameter(torch.zeros(out))

    def pre(self, x):
        w = self.theta * (self.scale / (self.theta.pow(2).sum(1) + 1e-6).sqrt()).unsqueeze(1)
        return x @ w.t()

    def forward(self, x):
        return self.pre(x) + self.bias

    @torch.no_grad()
    def init(self, x):
        a = self.pre(x)
        m, s = a.mean(0), (a - a.mean(0)).pow(2).mean(0).sqrt()
        self.scale.div_(s)
        self.bias.copy_(-m / s)
        return (a - m) / s


class Disc(torch.nn.Module):
    def __init__(self):
        super().__init__()
        ws = [784, 1000, 500, 250, 250, 250]
        self.hidden = torch.nn.ModuleList([WnDense(a, b) for a, b in zip(ws, ws[1:])])
        self.out = WnDense(250, 10, train_scale=True)

    def forward(self, x, noise=True, init=False):
        h = x + 0.3 * torch.randn_like(x) if noise else x
        feat = None
        for l in self.hidden:
            feat = F.relu(l.init(h) if init else l(h))
            h = feat + 0.5 * torch.randn_like(feat) if noise else feat
        return feat, (self.out.init(h) if init else self.out(h))


class Gen(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(100, 500, bias=False)
        self.l2 = torch.nn.Linear(500, 500, bias=False)
        for l in (self.l1, self.l2):
            torch.nn.init.xavier_uniform_(l.weight)
        self.b1 = torch.nn.BatchNorm1d(500, affine=False, eps=1e-6, momentum=0.1)
        self.b2 = torch.nn.BatchNorm1d(500, affine=False, eps=1e-6, momentum=0.1)
        self.s1 = torch.nn.Parameter(torch.zeros(500))
        self.s2 = torch.nn.Parameter(torch.zeros(500))
        self.out = WnDense(500, 784, train_scale=True)
        a = (6.0 / (500 + 784)) ** 0.5
        torch.nn.init.uniform_(self.out.theta, -a, a)

    def forward(self, z):
        h = F.softplus(self.b1(self.l1(z)) + self.s1)
        h = F.softplus(self.b2(self.l2(h)) + self.s2)
        return torch.sigmoid(self.out(h))


def adam(params):
    # The authors' Adam divides by sqrt(v + 1e-8); torch's eps is added after the sqrt.
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=3e-3, betas=(0.5, 0.999), eps=1e-4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="datasets/mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.RandomState(a.seed)
    tx = idx(os.path.join(a.data, "train-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255
    ty = idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    ex = torch.tensor(idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255)
    ey = torch.tensor(idx(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    perm = rng.permutation(len(tx))
    lab = np.concatenate([perm[ty[perm] == c][:10] for c in range(10)])
    xl, yl = torch.tensor(tx[lab]), torch.tensor(ty[lab])
    xall = torch.tensor(tx)

    d, g = Disc(), Gen()
    with torch.no_grad():
        d(xall[perm[:500]], init=True)
    od, og = adam(d.parameters()), adam(g.parameters())
    avg = [torch.zeros_like(p) for p in d.parameters()]
    steps = len(tx) // 100
    for epoch in range(a.epochs):
        t0 = time.time()
        u1, u2 = rng.permutation(len(tx)), rng.permutation(len(tx))
        sums = np.zeros(3)
        for t in range(steps):
            li = rng.permutation(100)
            x_l, y_l = xl[li], yl[li]
            x_u = xall[u1[t * 100:(t + 1) * 100]]
            with torch.no_grad():
                fake = g(torch.rand(100, 100))
            _, ll = d(x_l)
            _, lu = d(x_u)
            _, lf = d(fake)
            loss_lab = (torch.logsumexp(ll, 1) - ll.gather(1, y_l[:, None])[:, 0]).mean()
            zu, zf = torch.logsumexp(lu, 1), torch.logsumexp(lf, 1)
            loss_unl = 0.5 * (F.softplus(zu) - zu).mean() + 0.5 * F.softplus(zf).mean()
            od.zero_grad()
            (loss_lab + loss_unl).backward()
            od.step()
            with torch.no_grad():
                for p, q in zip(d.parameters(), avg):
                    q.add_(1e-4 * (p - q))
            fu, _ = d(xall[u2[t * 100:(t + 1) * 100]])
            fg, _ = d(g(torch.rand(100, 100)))
            loss_gen = (fu.detach().mean(0) - fg.mean(0)).pow(2).mean()
            og.zero_grad()
            loss_gen.backward()
            og.step()
            sums += [loss_lab.item(), loss_unl.item(), loss_gen.item()]
        with torch.no_grad():
            err_raw = (d(ex, noise=False)[1].argmax(1) != ey).float().mean().item()
            saved = [p.clone() for p in d.parameters()]
            for p, q in zip(d.parameters(), avg):
                p.copy_(q)
            # The fixed hidden scales are not averaged (not trainable in the authors' code).
            for l, s in zip(d.hidden, saved[1::3]):
                l.scale.copy_(s)
            err_avg = (d(ex, noise=False)[1].argmax(1) != ey).float().mean().item()
            for p, s in zip(d.parameters(), saved):
                p.copy_(s)
        m = sums / steps
        print(json.dumps({"epoch": epoch + 1, "loss_lab": m[0], "loss_unl": m[1], "loss_gen": m[2],
                          "test_error": err_raw, "test_error_avg": err_avg, "seconds": time.time() - t0}), flush=True)


if __name__ == "__main__":
    main()
