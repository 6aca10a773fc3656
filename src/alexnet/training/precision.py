"""train.precision=auto: mixed_bfloat16 where the hardware computes bfloat16 natively, float32 elsewhere.

Measured with this project's paper step (`make bench`): on a CPU with AMX or avx512_bf16, mixed_bfloat16
trains 1.5-1.6x faster than float32; on a 2-core CPU without them it was slower (22.4 against 36.8 img/s);
a GPU computes bfloat16 natively from compute capability 8.0 (Ampere) on. The weights stay float32 and
LRN's sums of squares, the colour noise and the softmax are computed in float32 whatever the policy.

Example:
    choose_precision("auto", {"avx512f", "amx_bf16"}, [])   # ("mixed_bfloat16", "auto: this CPU has amx_bf16")
"""

from __future__ import annotations

from pathlib import Path

# The CPU flags (Linux's /proc/cpuinfo names) of native bfloat16 arithmetic: AMX tiles, AVX-512's BF16 dot products.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
BF16_GPU_CAPABILITY = (8, 0)


def choose_precision(setting: str, cpu_flags: set[str], gpu_capabilities: list[tuple[int, int]]) -> tuple[str, str]:
    """(the Keras dtype policy, why) for train.precision `setting` on hardware with these CPU flags and these GPUs'
    compute capabilities (training runs on the GPUs when there are any)."""
    if setting != "auto":
        return setting, "train.precision"
    if gpu_capabilities:
        oldest = min(gpu_capabilities)
        if oldest >= BF16_GPU_CAPABILITY:
            return "mixed_bfloat16", f"auto: GPU compute capability {oldest[0]}.{oldest[1]} has bfloat16 units"
        return "float32", f"auto: GPU compute capability {oldest[0]}.{oldest[1]} has no bfloat16 units"
    found = [flag for flag in BF16_CPU_FLAGS if flag in cpu_flags]
    if found:
        return "mixed_bfloat16", f"auto: this CPU has {', '.join(found)}"
    return "float32", f"auto: this CPU has neither {' nor '.join(BF16_CPU_FLAGS)}"


def cpu_flags() -> set[str]:
    """This machine's CPU flags from /proc/cpuinfo (Linux); empty elsewhere, where auto means float32."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_capabilities() -> list[tuple[int, int]]:
    """The compute capability of each GPU TensorFlow sees."""
    import tensorflow as tf

    details = [tf.config.experimental.get_device_details(gpu) for gpu in tf.config.list_physical_devices("GPU")]
    return [tuple(d["compute_capability"]) for d in details if d.get("compute_capability")]


def resolve_precision(setting: str) -> tuple[str, str]:
    """choose_precision for this machine."""
    if setting != "auto":
        return setting, "train.precision"
    return choose_precision(setting, cpu_flags(), gpu_capabilities())
