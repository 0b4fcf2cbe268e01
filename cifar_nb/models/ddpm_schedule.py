"""DDPM noise schedules, the training loss and ancestral sampling (Ho et al. 2020), as report B uses them.

Timesteps are indexed i = 0..T-1 here; the paper's t is i + 1, and the network sees t/T in (0, 1].

    forward:   x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,            abar_t = prod_{s<=t} (1 - beta_s)
    loss:      || eps - eps_theta(x_t, t/T, y) ||^2,  t uniform, eps ~ N(0, I)
    sampling:  x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) * eps_theta) / sqrt(alpha_t) + sigma_t z,
               sigma_t^2 = beta_t, and no noise on the last step.
Report B prints the sampling step with sqrt(1 - alpha_t) in the denominator; Ho et al.'s Algorithm 2 has
sqrt(1 - abar_t), which is what we use (the other is a typo: with it the update does not invert the
forward process).

Fewer sampling steps (previews only): ancestral sampling over an evenly spaced subsequence tau of the T
steps, with each jump's beta recomputed as 1 - abar_{tau_k} / abar_{tau_{k-1}} (the "respacing" of
Nichol & Dhariwal's improved-diffusion). With all T steps it is exactly the sampler above.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def linear_betas(T: int) -> torch.Tensor:
    """Ho et al.: beta rising linearly from 1e-4 to 0.02 (their T is 1000; other T keep the endpoints)."""
    return torch.linspace(1e-4, 0.02, T, dtype=torch.float64)


def sigmoid_betas(T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> torch.Tensor:
    """Jabri, Fleet & Chen 2022 ("Scalable adaptive computation for iterative generation", the report's
    reference [8]): abar(s) = (sigmoid(end/tau) - sigmoid((s (end - start) + start)/tau))
                               / (sigmoid(end/tau) - sigmoid(start/tau)),  s in [0, 1],
    with that paper's defaults start=-3, end=3, tau=1, turned into betas and clipped at 0.999 the way
    lucidrains' denoising-diffusion-pytorch does. abar(1) = 0, so the last beta is the clip value."""
    s = torch.linspace(0, 1, T + 1, dtype=torch.float64)
    v_start, v_end = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64)), \
        torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
    abar = (v_end - torch.sigmoid((s * (end - start) + start) / tau)) / (v_end - v_start)
    return (1 - abar[1:] / abar[:-1]).clamp(0, 0.999)


BETA_SCHEDULES = {"linear": linear_betas, "sigmoid": sigmoid_betas}


def make_betas(name: str, T: int) -> torch.Tensor:
    if name not in BETA_SCHEDULES:
        raise ValueError(f"unknown beta_schedule {name!r}; known: {sorted(BETA_SCHEDULES)}")
    if not isinstance(T, int) or T < 2:
        raise ValueError(f"timesteps must be an integer >= 2, got {T!r}")
    return BETA_SCHEDULES[name](T)


def respaced(T: int, steps: int | None) -> list[int]:
    """Indices visited by the sampler, descending: all T, or `steps` of them evenly spaced (incl. 0, T-1)."""
    if steps is None or steps >= T:
        return list(range(T - 1, -1, -1))
    if steps < 1:
        raise ValueError(f"sample_steps must be >= 1, got {steps}")
    idx = sorted({round(x) for x in torch.linspace(0, T - 1, steps, dtype=torch.float64).tolist()})
    return idx[::-1]


class Diffusion:
    """A beta schedule's constants on one device, with q_sample, the loss and the sampler."""

    def __init__(self, betas: torch.Tensor, device: torch.device | str = "cpu"):
        betas = betas.to(torch.float64)
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must lie in (0, 1)")
        self.T = len(betas)
        self.abar64 = torch.cumprod(1 - betas, 0)           # kept in float64 for the sampler's ratios
        self.betas = betas.float().to(device)
        self.alpha_bar = self.abar64.float().to(device)
        self.sqrt_abar = self.abar64.sqrt().float().to(device)
        self.sqrt_1m_abar = (1 - self.abar64).sqrt().float().to(device)

    @classmethod
    def named(cls, name: str, T: int, device="cpu") -> "Diffusion":
        return cls(make_betas(name, T), device)

    def model_time(self, i: torch.Tensor) -> torch.Tensor:
        return (i.float() + 1) / self.T

    def q_sample(self, x0: torch.Tensor, i: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.sqrt_abar[i].view(-1, 1, 1, 1) * x0 + self.sqrt_1m_abar[i].view(-1, 1, 1, 1) * noise

    def loss(self, model, x0: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The epsilon-prediction MSE at uniformly drawn timesteps (Ho et al.'s L_simple)."""
        i = torch.randint(0, self.T, (x0.shape[0],), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        xt = self.q_sample(x0, i, noise).contiguous(memory_format=_memory_format(x0))
        return F.mse_loss(model(xt, self.model_time(i), y).float(), noise.float())

    @torch.no_grad()
    def sample(self, model, x_T: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
               steps: int | None = None, clip_x0: bool = False) -> torch.Tensor:
        """Ancestral sampling from the starting noise x_T; returns images in [-1, 1] (float32).

        `steps` < T samples over a respaced subsequence (see the module docstring): previews only.
        `clip_x0` (off in report B) writes the same mean through the predicted x_0, clipped to [-1, 1]
        (Ho et al.'s released code, improved-diffusion, lucidrains): identical while no pixel of x_0 needs
        clipping, but it stops the 1/sqrt(alpha_t) ~ 32x amplification of the model's error at a step
        whose beta is near 1, as the sigmoid schedule's last one (clipped at 0.999) is."""
        x = x_T.float()
        order = respaced(self.T, steps)
        for k, i in enumerate(order):
            prev = order[k + 1] if k + 1 < len(order) else None
            abar = self.abar64[i].item()
            abar_prev = self.abar64[prev].item() if prev is not None else 1.0
            alpha = abar / abar_prev
            beta = 1 - alpha
            t = torch.full((x.shape[0],), (i + 1) / self.T, device=x.device)
            eps = model(x.contiguous(memory_format=_memory_format(x)), t, y).float()
            if clip_x0:
                x0 = ((x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)).clamp(-1, 1)
                x = (math.sqrt(abar_prev) * beta * x0 + math.sqrt(alpha) * (1 - abar_prev) * x) / (1 - abar)
            else:
                x = (x - beta / math.sqrt(1 - abar) * eps) / math.sqrt(alpha)
            if prev is not None:
                x = x + math.sqrt(beta) * torch.randn(x.shape, device=x.device, generator=generator)
        return x.clamp(-1, 1)

def _memory_format(x: torch.Tensor):
    return torch.channels_last if x.is_cuda else torch.contiguous_format
