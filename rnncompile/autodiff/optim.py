"""Optimizers, gradient clipping and learning-rate schedules, each as torch.optim defines it.

    sgd    v = momentum * v + g (the first step: v = g);  p -= lr * v
           (nesterov: p -= lr * (g + momentum * v)).  torch.optim.SGD
    adam   Kingma & Ba 2015 with bias correction.       torch.optim.Adam
    adamw  Adam with decoupled weight decay (Loshchilov & Hutter 2019): p *= 1 - lr * wd before
           the Adam step.                               torch.optim.AdamW

`weight_decay` is an L2 term `g += wd * p` for sgd and adam (as torch adds
it) and the decoupled decay for adamw. Schedules give the learning rate of
optimizer step t (0-based), as torch's schedulers stepped once per
optimizer step: constant; step (lr * gamma ** (t // step_size), StepLR);
cosine (from lr down to min_lr over the steps after the warmup,
CosineAnnealingLR with T_max = those steps). A warmup of N steps ramps
linearly from lr / (N + 1) up to lr (LinearLR with start_factor 1/(N+1) and
total_iters N, then the schedule: SequentialLR). tests/test_train_loop.py
checks every optimizer and schedule against torch to 1e-12.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
ADAMW_WEIGHT_DECAY = 0.01  # torch.optim.AdamW's default


def _positive(value: float, what: str, zero: bool = False) -> float:
    ok = math.isfinite(value) and (value >= 0 if zero else value > 0)
    if not ok:
        raise UsageError(f"{what} {value}: give a {'non-negative' if zero else 'positive'} number")
    return float(value)


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every optimizer step of a run of `total` steps."""

    kind: str = "constant"
    lr: float = 0.01
    total: int = 1
    step_size: int = 1
    gamma: float = 0.1
    min_lr: float = 0.0
    warmup: int = 0

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise UsageError(f"unknown schedule `{self.kind}`; use one of: {', '.join(SCHEDULES)}")
        _positive(self.lr, "--lr")
        _positive(self.gamma, "--gamma")
        _positive(self.min_lr, "--min-lr", zero=True)
        if self.step_size < 1:
            raise UsageError(f"--step-size {self.step_size}: give a whole number of steps, at least 1")
        if self.warmup < 0:
            raise UsageError(f"--warmup {self.warmup}: give a whole number of steps, 0 or more")
        if self.kind == "cosine" and self.min_lr > self.lr:
            raise UsageError(f"--min-lr {self.min_lr:g} is above --lr {self.lr:g}: cosine decays from --lr down "
                             f"to --min-lr")

    def __call__(self, t: int) -> float:
        if t < self.warmup:
            start = 1.0 / (self.warmup + 1)
            return self.lr * (start + (1.0 - start) * t / self.warmup)
        t -= self.warmup
        if self.kind == "step":
            return self.lr * self.gamma ** (t // self.step_size)
        if self.kind == "cosine":
            span = max(self.total - self.warmup, 1)
            return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * min(t, span) / span)) / 2
        return self.lr


class Optimizer:
    """Updates params in place from their gradients; its state (`state()`) is what a checkpoint keeps."""

    def __init__(self, kind: str, lr: float | Schedule, momentum: float = 0.9, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float | None = None, nesterov: bool = False):
        if kind not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer `{kind}`; use one of: {', '.join(OPTIMIZERS)}")
        self.schedule = lr if isinstance(lr, Schedule) else Schedule("constant", _positive(lr, "--lr"))
        if weight_decay is None:
            weight_decay = ADAMW_WEIGHT_DECAY if kind == "adamw" else 0.0
        self.weight_decay = _positive(weight_decay, "--weight-decay", zero=True)
        self.momentum = _positive(momentum, "--momentum", zero=True)
        if nesterov and (kind != "sgd" or self.momentum == 0):
            raise UsageError("--nesterov is a form of SGD's momentum: use it with --optimizer sgd and a momentum "
                             "above 0")
        if not all(0 <= b < 1 for b in betas):
            raise UsageError(f"Adam's betas {tuple(betas)} must lie in [0, 1)")
        self.kind, self.betas, self.eps, self.nesterov = kind, tuple(betas), _positive(eps, "eps"), nesterov
        self.m: dict = {}
        self.v: dict = {}
        self.t = 0

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return self.schedule(self.t)

    def step(self, params: dict, grads: dict) -> None:
        lr, wd = self.schedule(self.t), self.weight_decay
        self.t += 1
        for k, g in grads.items():
            p = params[k]
            if wd and self.kind != "adamw":
                g = g + wd * p
            if self.kind == "sgd":
                if self.momentum:
                    m = self.m[k] = g if k not in self.m else self.momentum * self.m[k] + g
                    g = g + self.momentum * m if self.nesterov else m
                params[k] = p - lr * g
                continue
            if self.kind == "adamw" and wd:
                p = p * (1 - lr * wd)
            b1, b2 = self.betas
            m = self.m[k] = (1 - b1) * g if k not in self.m else b1 * self.m[k] + (1 - b1) * g
            v = self.v[k] = (1 - b2) * g * g if k not in self.v else b2 * self.v[k] + (1 - b2) * g * g
            mhat, vhat = m / (1 - b1 ** self.t), v / (1 - b2 ** self.t)
            params[k] = p - lr * mhat / (np.sqrt(vhat) + self.eps)

    def state(self) -> dict[str, np.ndarray]:
        """The moments keyed `m.<param>`, `v.<param>`, and the step count `t`."""
        out = {f"m.{k}": v for k, v in self.m.items()}
        out.update({f"v.{k}": v for k, v in self.v.items()})
        out["t"] = np.asarray(self.t, np.int64)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.t = int(state["t"])
        self.m = {k[2:]: v for k, v in state.items() if k.startswith("m.")}
        self.v = {k[2:]: v for k, v in state.items() if k.startswith("v.")}


def clip_by_norm(grads: dict, limit: float | None) -> float:
    """Scale every gradient by limit / (norm + 1e-6) when that is below 1, as torch.nn.utils.clip_grad_norm_
    does (the 1e-6 keeps a zero gradient finite); returns the global norm before."""
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    if limit is not None:
        scale = limit / (norm + 1e-6)
        if scale < 1.0:
            for k in grads:
                grads[k] = grads[k] * scale
    return norm


def clip_by_value(grads: dict, limit: float | None) -> None:
    """Clamp every gradient element to [-limit, limit] (torch.nn.utils.clip_grad_value_)."""
    if limit is not None:
        for k in grads:
            grads[k] = np.clip(grads[k], -limit, limit)
