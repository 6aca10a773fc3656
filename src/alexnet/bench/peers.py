"""`make bench PEERS=torch`: PyTorch's training step on the same network, beside the project's own rows.

The paper's one-tower AlexNet (section 3.5, 227x227, LRN after conv1 and conv2) in PyTorch, trained with SGD
(momentum 0.9, lr 0.01) and cross-entropy on one synthetic uint8 batch converted to float in the step, in three
settings (SETTINGS). Each is timed as the Keras rows are: the median of `reps` repetitions of `steps` steps after
one untimed repetition, in a process of its own. That process runs this file as a script, and this file imports
only the standard library at module level: TensorFlow never loads beside torch (their thread pools would share
the cores). torch is installed only when asked for (`make bench PEERS=torch`), never by `make install`.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

KNOWN = ("torch",)
TORCH_REQUIREMENT = "torch==2.13.0"  # a CPU wheel for Python 3.11 lies on this project's machines
# PyTorch's settings: row key suffix -> what the table calls it.
SETTINGS = {"float32": "float32", "bfloat16_autocast": "bfloat16 autocast", "channels_last": "float32 channels-last"}


def require(peers) -> None:
    """ConfigError for a peer the bench does not know, or for torch where it is not installed."""
    # Imported here: at module level it would load TensorFlow (through alexnet) in the torch process.
    from alexnet.errors import ConfigError

    unknown = [peer for peer in peers if peer not in KNOWN]
    if unknown:
        raise ConfigError(f"make bench knows no peer {', '.join(unknown)}: the peers are {', '.join(KNOWN)}")
    if "torch" in peers and importlib.util.find_spec("torch") is None:
        raise ConfigError(f"--peers torch needs PyTorch, which is not installed here: `make bench PEERS=torch` "
                          f"installs it first (`pip install {TORCH_REQUIREMENT}`)")


def torch_step_in_own_process(setting: str, width: float, batch: int, steps: int, reps: int, num_classes: int,
                              image_size: int) -> list[float]:
    """Images/s of each timed repetition of PyTorch's step at setting (a key of SETTINGS), in a fresh process."""
    job = {"setting": setting, "width": width, "batch": batch, "steps": steps, "reps": reps,
           "num_classes": num_classes, "image_size": image_size}
    result = subprocess.run([sys.executable, __file__, json.dumps(job)], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"PyTorch's {SETTINGS[setting]} step failed ({result.returncode}): {result.stderr[-2000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def torch_alexnet(width: float, num_classes: int, image_size: int):
    """The paper's one-tower AlexNet in PyTorch, each conv and fc layer's width scaled as build_alexnet scales it."""
    from torch import nn

    c1, c2, c3, c4, c5 = (max(1, round(f * width)) for f in (96, 256, 384, 384, 256))
    fc = max(1, round(4096 * width))
    side = (image_size - 11) // 4 + 1  # conv1: 11x11, stride 4, no padding
    for _ in range(3):  # pool1, pool2, pool5: 3x3, stride 2 (conv2-conv5 keep the size)
        side = (side - 3) // 2 + 1

    def lrn():
        # torch divides alpha by n (size): 5 * 1e-4 is the paper's alpha = 1e-4 with k = 2, n = 5, beta = 0.75.
        return nn.LocalResponseNorm(size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)

    return nn.Sequential(
        nn.Conv2d(3, c1, 11, stride=4), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(c5 * side * side, fc), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(fc, num_classes),
    )


def time_torch_step(setting: str, width: float, batch: int, steps: int, reps: int, num_classes: int,
                    image_size: int) -> list[float]:
    """Images/s of each of reps timed repetitions of steps training steps, after one untimed repetition."""
    import torch

    torch.manual_seed(0)
    model = torch_alexnet(width, num_classes, image_size)
    images = torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (batch,))
    if setting == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        x = (images.float() - 120.0) / 64.0  # to float in the step, as the Keras model does; unit size stays finite
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting == "bfloat16_autocast"):
            loss = loss_fn(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    samples = []
    for repetition in range(1 + reps):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        loss.item()  # the repetition ends with its last loss on the host, as EpochTimer's epochs do
        if repetition:
            samples.append(batch * steps / (time.perf_counter() - start))
    return samples


if __name__ == "__main__":
    print(json.dumps(time_torch_step(**json.loads(sys.argv[1]))))
