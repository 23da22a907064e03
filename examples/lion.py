"""An optimizer of your own, used without editing the repository:

    python src/train.py --workload mnist-logreg --optimizer examples/lion.py:Lion --lr 1e-4 --opt "betas=(0.9,0.99)"

Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2): the sign
of an interpolation of momentum and gradient, with decoupled weight decay.
"""
import torch


class Lion(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in (p for p in group["params"] if p.grad is not None):
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p)
                m = state["m"]
                p.mul_(1 - lr * wd)                                              # decoupled weight decay
                p.add_(torch.sign(m * beta1 + p.grad * (1 - beta1)), alpha=-lr)  # the sign of the interpolation
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)                      # then the momentum moves
