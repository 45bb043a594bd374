"""What a compiled program costs on this device: FLOPs (XLA's cost analysis), memory (the
compiled program's buffers; the device's peak where its runtime reports one) and the device's
dense peak, for MFU."""

from __future__ import annotations

import jax

# Dense peak TFLOP/s per device (bf16 tensor cores / MXU), from the vendors' data sheets. The CPU
# has no entry: give `--peak_tflops` to get an MFU there.
PEAK_TFLOPS = {
    "H100": 989.0,  # SXM
    "H200": 989.0,
    "A100": 312.0,
    "L4": 121.0,
    "TPU v4": 275.0,
    "TPU v5 lite": 197.0,
    "TPU v5e": 197.0,
    "TPU v5p": 459.0,
    "TPU v6 lite": 918.0,
}


def peak_tflops(device_kind: str, override: float | None = None) -> float | None:
    """The dense peak of a device kind (`override` wins), None when unknown."""
    if override:
        return override
    for name, peak in PEAK_TFLOPS.items():
        if name.lower() in device_kind.lower():
            return peak
    return None


def compiled_flops(compiled) -> float:
    """FLOPs of one call of a compiled program (per device for an SPMD program)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0)) if cost else 0.0


def compiled_bytes(compiled) -> int | None:
    """Bytes of the compiled program's arguments, outputs and temporaries (aliased ones once)."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    return int(
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )


def peak_device_bytes() -> int | None:
    """The runtime's peak bytes in use on device 0 (GPU, TPU); None where it keeps no count
    (the CPU)."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats else stats.get("peak_bytes_in_use")


def memory(compiled) -> dict:
    """The compiled program's and the device's peak memory, in MiB (None where unknown)."""
    mib = lambda n: None if n is None else round(n / 2**20, 2)
    return {
        "compiled_mb": mib(compiled_bytes(compiled)),
        "peak_device_mb": mib(peak_device_bytes()),
    }


def utilisation(flops: float, seconds: float, peak: float | None, devices: int = 1) -> dict:
    """Achieved TFLOP/s and MFU (None without a peak) of `flops` done in `seconds`."""
    achieved = flops / seconds / 1e12
    return {
        "tflops_per_s": round(achieved, 4),
        "peak_tflops_per_device": peak,
        "mfu": None if not peak else round(achieved / (peak * devices), 4),
    }
