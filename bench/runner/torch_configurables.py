"""PyTorch optimizers and LR schedulers registered for gin under their torch names.

We do not rely on `import gin.torch`: in gin-config 0.5.0 it registers nothing by itself (the
classes live in `gin.torch.external_configurables`), it imports `distutils`, which Python >= 3.12
lacks without setuptools, and its list misses NAdam, RAdam and LinearLR. Bind them as
`@torch.optim.Adam` in gin files.
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
