"""PyTorch optimizers and LR schedulers registered for gin under their torch names.

We do not rely on `import gin.torch` (it registers nothing by itself and breaks on Python >= 3.12
without setuptools; ecosystem.md C3). Bind them as `@torch.optim.Adam` in gin files.
"""

import gin
import torch

for _opt in ("Adam", "AdamW", "SGD", "NAdam", "RAdam", "RMSprop"):
    gin.external_configurable(getattr(torch.optim, _opt), module="torch.optim", denylist=["params"])

for _sched in ("CosineAnnealingLR", "StepLR", "LinearLR", "ExponentialLR", "OneCycleLR"):
    gin.external_configurable(
        getattr(torch.optim.lr_scheduler, _sched),
        module="torch.optim.lr_scheduler",
        denylist=["optimizer"],
    )
