"""PyTorch reference steps for `ganfold bench --reference` (same shapes as ganfold's models).

  python reference.py dcgan28|lgan28 --threads T --batch B --steps N --warmup W [--device cuda] [--serve]

Prints one JSON line (median step): steps_per_s, img_per_s, ms_per_step, gflop_per_step (PyTorch's FLOP
counter over one whole step), torch version. With --serve (what `ganfold bench --reference` uses), it
prints that line without timings once warmed up, then reads step counts from stdin, one per line, and
answers each with {"times_ms": [...]}: ganfold alternates blocks of its own steps with blocks of these,
so a slow spell of a shared machine hits both sides alike. Written for ganfold; the DCGAN-28 model is the
standard MNIST-sized DCGAN defined below (DcganG, DcganD), the LGAN step matches plugins/lgan (generation
mode, defaults). --device (cpu, cuda, cuda:N) makes it the default device of every tensor and module;
each timed step ends with a synchronisation of that device, as ganfold's do.
"""
import argparse, json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def adam(params, lr):
    return torch.optim.Adam(params, lr, betas=(0.5, 0.999))


class DcganG(nn.Module):
    def __init__(self, nz=100, ngf=64):
        super().__init__()
        self.ngf = ngf
        self.fc = nn.Linear(nz, 2 * ngf * 49)
        self.bn0 = nn.BatchNorm1d(2 * ngf * 49)
        self.up1 = nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1)
        self.bn1 = nn.BatchNorm2d(ngf)
        self.up2 = nn.ConvTranspose2d(ngf, 1, 4, 2, 1)

    def forward(self, z):
        h = F.relu(self.bn0(self.fc(z))).view(-1, 2 * self.ngf, 7, 7)
        return torch.tanh(self.up2(F.relu(self.bn1(self.up1(h)))))


class DcganD(nn.Module):
    def __init__(self, ndf=64):
        super().__init__()
        self.c1 = nn.Conv2d(1, ndf, 4, 2, 1)
        self.c2 = nn.Conv2d(ndf, 2 * ndf, 4, 2, 1)
        self.bn2 = nn.BatchNorm2d(2 * ndf)
        self.fc = nn.Linear(2 * ndf * 49, 1)

    def forward(self, x):
        h = F.leaky_relu(self.c1(x), 0.2)
        h = F.leaky_relu(self.bn2(self.c2(h)), 0.2)
        return self.fc(h.flatten(1))


def dcgan28(bs):
    g, d = DcganG(), DcganD()
    og, od = adam(g.parameters(), 2e-4), adam(d.parameters(), 2e-4)
    real = torch.rand(bs, 1, 28, 28) * 2 - 1
    ones, zeros = torch.ones(bs, 1), torch.zeros(bs, 1)

    def step():
        fake = g(torch.randn(bs, 100))
        ld = F.binary_cross_entropy_with_logits(d(real), ones) + F.binary_cross_entropy_with_logits(d(fake.detach()), zeros)
        od.zero_grad(); ld.backward(); od.step()
        lg = F.binary_cross_entropy_with_logits(d(fake), ones)
        og.zero_grad(); lg.backward(); og.step()
    return step


class LocalG(nn.Module):
    """G(x, z): conv encoder -> N-dim code (standardised per sample) + z -> deconv decoder."""

    def __init__(self, n=10, ngf=32):
        super().__init__()
        self.ngf, f = ngf, 2 * ngf * 49
        self.e1 = nn.Conv2d(1, ngf, 4, 2, 1)
        self.e2 = nn.Conv2d(ngf, 2 * ngf, 4, 2, 1)
        self.efc = nn.Linear(f, n)
        self.dfc = nn.Linear(n, f)
        self.d1 = nn.ConvTranspose2d(2 * ngf, ngf, 4, 2, 1)
        self.d2 = nn.ConvTranspose2d(ngf, 1, 4, 2, 1)

    def forward(self, x, z):
        h = F.leaky_relu(self.e2(F.leaky_relu(self.e1(x), 0.2)), 0.2)
        h = self.efc(h.flatten(1))
        h = h - h.mean(1, keepdim=True)
        h = h / (h.pow(2).mean(1, keepdim=True) + 1e-5).sqrt()
        h = F.leaky_relu(h + z, 0.2)
        h = F.relu(self.dfc(h)).view(-1, 2 * self.ngf, 7, 7)
        return torch.tanh(self.d2(F.relu(self.d1(h))))


class LganD(nn.Module):
    def __init__(self, ndf=32):
        super().__init__()
        self.c1 = nn.Conv2d(1, ndf, 4, 2, 1, bias=False)
        self.c2 = nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False)
        self.c3 = nn.Conv2d(2 * ndf, 4 * ndf, 3, 2, 1, bias=False)
        self.bn2, self.bn3 = nn.BatchNorm2d(2 * ndf), nn.BatchNorm2d(4 * ndf)
        self.fc = nn.Linear(4 * ndf * 16, 1)

    def forward(self, x):
        h = F.leaky_relu(self.c1(x), 0.2)
        h = F.leaky_relu(self.bn2(self.c2(h)), 0.2)
        h = F.leaky_relu(self.bn3(self.c3(h)), 0.2)
        return self.fc(h.flatten(1))


def lgan28(bs, n=10, s=4, delta=1e-2, mu=10.0, eta=1.0):
    g, d = LocalG(n), LganD()
    og, od = adam(g.parameters(), 1e-3), adam(d.parameters(), 5e-5)
    x = torch.rand(bs, 1, 28, 28) * 2 - 1
    ones, zeros = torch.ones(bs, 1), torch.zeros(bs, 1)

    def step():
        fake = g(x, torch.randn(bs, n)).detach()
        ld = F.binary_cross_entropy_with_logits(d(x), ones) + F.binary_cross_entropy_with_logits(d(fake), zeros)
        od.zero_grad(); ld.backward(); od.step()
        adv = F.binary_cross_entropy_with_logits(d(g(x, torch.randn(bs, n))), ones)
        # Locality ||G(x,0) - x||^2 (per element) and orthonormality of the finite-difference
        # Jacobian rows on a random subset S of |S| coordinates, as plugins/lgan does.
        loc = (g(x, torch.zeros(bs, n)) - x).pow(2).flatten(1).sum(1).mean() / 784
        coords = torch.randperm(n)[:s]
        z = torch.zeros(2, bs, s, n)
        z[0, :, torch.arange(s), coords] = delta
        z[1, :, torch.arange(s), coords] = -delta
        xr = x.unsqueeze(1).expand(bs, s, 1, 28, 28).reshape(bs * s, 1, 28, 28).repeat(2, 1, 1, 1)
        out = g(xr, z.reshape(2 * bs * s, n)).flatten(1)
        j = ((out[: bs * s] - out[bs * s:]) / (2 * delta)).view(bs, s, -1)
        orth = (j @ j.transpose(1, 2) - torch.eye(s)).pow(2).flatten(1).sum(1).mean() / (s * s)
        lg = adv + mu * loc + eta * orth
        og.zero_grad(); lg.backward(); og.step()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["dcgan28", "lgan28"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.set_default_device(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    step = {"dcgan28": dcgan28, "lgan28": lgan28}[a.model](a.batch)
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    for _ in range(a.warmup):
        step()
    sync()
    meta = {"model": a.model, "torch": torch.__version__, "device": a.device, "threads": a.threads, "batch": a.batch, "gflop_per_step": flops / 1e9}
    if a.serve:
        print(json.dumps(meta), flush=True)
        for line in sys.stdin:
            times = []
            for _ in range(int(line)):
                t = time.perf_counter()
                step()
                sync()
                times.append((time.perf_counter() - t) * 1e3)
            print(json.dumps({"times_ms": times}), flush=True)
        return
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    dt = sorted(times)[len(times) // 2]  # the median step, as ganfold bench reports
    print(json.dumps({**meta, "steps_per_s": 1 / dt, "img_per_s": a.batch / dt, "ms_per_step": dt * 1e3}))


if __name__ == "__main__":
    main()
