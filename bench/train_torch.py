"""PyTorch baseline for bench/train.ts: the same heads, masked losses and AdamW, timed per step.

Usage: python3 bench/train_torch.py '<json config>'  (bench/train.ts passes it). Prints one JSON
line {"msPerStep": …, "torch": …, "threads": …}. CPU only, torch.set_num_threads(config.threads).
"""
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def tower(width, tower_hidden, outputs):
    layers = []
    for h in tower_hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


class SharedBottom(nn.Module):
    def __init__(self, cfg, outputs):
        super().__init__()
        layers, width = [], cfg["inputDim"]
        for h in cfg["hidden"]:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.bottom = nn.Sequential(*layers)
        self.towers = nn.ModuleList([tower(width, cfg["towerHidden"], o) for o in outputs])

    def forward(self, x):
        h = self.bottom(x)
        return [t(h) for t in self.towers]


class MMoE(nn.Module):
    """All experts in one matrix and all gates in one matrix, as in lib/domain/train/heads.ts."""

    def __init__(self, cfg, outputs):
        super().__init__()
        self.e, self.h, self.t = cfg["experts"], cfg["expertHidden"], len(outputs)
        self.experts = nn.Linear(cfg["inputDim"], self.e * self.h)
        self.gates = nn.Linear(cfg["inputDim"], self.t * self.e)
        self.towers = nn.ModuleList([tower(self.h, cfg["towerHidden"], o) for o in outputs])

    def forward(self, x):
        b = x.shape[0]
        experts = F.relu(self.experts(x)).view(b, self.e, self.h)
        gates = torch.softmax(self.gates(x).view(b, self.t, self.e), dim=-1)
        mixtures = torch.bmm(gates, experts)
        return [t(mixtures[:, k]) for k, t in enumerate(self.towers)]


def masked_mean(per_row, mask):
    return (per_row * mask).sum() / mask.sum().clamp(min=1.0)


def losses(outputs, batch):
    click, topic, price = outputs
    y_click, m_click, y_topic, m_topic, y_price, m_price = batch[1:]
    bce = F.binary_cross_entropy_with_logits(click.squeeze(1), y_click, reduction="none")
    labelled = m_topic > 0
    ce = F.cross_entropy(topic, torch.where(labelled, y_topic, torch.zeros_like(y_topic)), reduction="none")
    mse = (price.squeeze(1) - y_price) ** 2
    return [masked_mean(bce, m_click), masked_mean(ce, m_topic), masked_mean(mse, m_price)]


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(1)
    outputs = [1, cfg["classes"], 1]
    model = (SharedBottom if cfg["architecture"] == "shared-bottom" else MMoE)(cfg, outputs)
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    no_decay = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-3,
        foreach=cfg.get("foreach", True),
    )
    b, d = cfg["batch"], cfg["inputDim"]
    mask = lambda: (torch.rand(b) < 0.8).float()
    batches = [
        (
            torch.randn(b, d),
            (torch.rand(b) < 0.3).float(),
            mask(),
            torch.randint(0, cfg["classes"], (b,)),
            mask(),
            torch.randn(b),
            mask(),
        )
        for _ in range(4)
    ]
    lam = torch.ones(3)

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        total = sum(w * l for w, l in zip(lam, losses(model(batch[0]), batch)))
        total.backward()
        optimizer.step()
        return total

    for i in range(cfg["warmupSteps"]):
        step(batches[i % 4])
    start = time.perf_counter()
    for i in range(cfg["steps"]):
        step(batches[i % 4])
    elapsed = time.perf_counter() - start
    print(json.dumps({"msPerStep": 1000 * elapsed / cfg["steps"], "torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_info()}))


def blas_info():
    """Which BLAS kernel torch's dense layers ran on. threadpoolctl (Debian's python3-threadpoolctl)
    names the library, its version and the CPU kernel it picked (OpenBLAS's `architecture`, which
    OPENBLAS_CORETYPE overrides); without it, torch's build config and Debian's libblas.so.3
    alternative (netlib's reference BLAS unless OpenBLAS or BLIS is installed)."""
    try:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            return "; ".join(
                f"{p.get('internal_api')} {p.get('version')} kernel {p.get('architecture', '?')}, {p.get('num_threads')} threads ({p.get('filepath')})"
                for p in pools
            )
    except ImportError:
        pass
    config = torch.__config__.show()
    info = next((part.split("=", 1)[1] for part in config.replace(",", " ").split() if part.startswith("BLAS_INFO=")), "unknown")
    if info != "generic":
        return info
    try:
        import os

        return "generic -> " + os.path.realpath("/etc/alternatives/libblas.so.3-x86_64-linux-gnu")
    except OSError:
        return "generic"


if __name__ == "__main__":
    main()
