"""4-bit NormalFloat (NF4) from scratch, matching bitsandbytes bit for bit (lesson 04).

NF4 (Dettmers et al. 2023, §3) stores each weight as one of 16 values placed at quantiles of
N(0, 1), scaled by the absolute maximum of its block of 64 weights. Double quantization then
stores those per-block constants in 8 bits, in blocks of 256, around their mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from course_lib.models.loading import keep_cpu_4bit_trainable  # where 4-bit models are loaded

__all__ = ["nf4_table", "int4_table", "fp4_table", "dynamic_map_8bit", "quantize_blockwise",
           "dequantize_blockwise", "quantize_nf4", "dequantize_nf4", "DoubleQuantized",
           "double_quantize", "double_dequantize", "bits_per_parameter", "keep_cpu_4bit_trainable"]

NF4_OFFSET = 0.9677083  # bitsandbytes' create_normal_map: the outermost quantile, ½(1−1/(2·15) + 1−1/(2·16))


def nf4_table(offset: float = NF4_OFFSET) -> torch.Tensor:
    """The 16 NF4 values: quantiles of N(0,1), 8 positive and 7 negative plus an exact 0, scaled to [-1, 1]."""
    ppf = lambda p: torch.special.ndtri(p.double())  # the inverse normal CDF, Φ⁻¹
    positive = ppf(torch.linspace(offset, 0.5, 9)[:-1])  # 8 values: more on the positive side
    negative = -ppf(torch.linspace(offset, 0.5, 8)[:-1])  # 7 values: asymmetric so that 0 is a code
    values = torch.cat([negative, torch.zeros(1, dtype=torch.float64), positive]).sort().values
    return (values / values.abs().max()).float()  # (16,), sorted, -1 … 0 … 1


def int4_table() -> torch.Tensor:
    """Symmetric absmax int4: the 15 values k/7 for k = -7 … 7 (what `Int4` in the QLoRA paper means)."""
    return torch.arange(-7, 8, dtype=torch.float32) / 7


def fp4_table() -> torch.Tensor:
    """FP4 E2M1 as bitsandbytes stores it: ±{0, 0.0625, 2, 3, 4, 6, 8, 12} / 12, sorted (16 codes, ±0 both)."""
    mags = torch.tensor([0.0, 0.0625, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0]) / 12
    return torch.cat([-mags, mags]).sort().values


def dynamic_map_8bit() -> torch.Tensor:
    """bitsandbytes' signed 8-bit 'dynamic' code (Dettmers 2015): 256 sorted values in [-1, 1]."""
    data: list[float] = []
    for i in range(7):  # exponent 10^(i-6): finer steps near 0
        bounds = torch.linspace(0.1, 1, 2 ** i + 1, dtype=torch.float32)
        means = ((bounds[:-1] + bounds[1:]) / 2.0) * (10 ** (-6 + i))
        data += means.tolist() + (-means).tolist()
    data += [0.0, 1.0]
    return torch.tensor(data + [0.0] * (256 - len(data))).sort().values


def quantize_blockwise(w: torch.Tensor, table: torch.Tensor, blocksize: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Absmax-scale each block of `blocksize` values of w (flattened) and round to the nearest table entry.

    Returns (codes: uint8 indices into `table`, shaped like w; absmax: float32, one per block).
    """
    if blocksize <= 0:
        raise ValueError(f"blocksize must be positive, got {blocksize}.")
    flat = w.detach().reshape(-1).float()
    n = flat.numel()
    blocks = math.ceil(n / blocksize)
    padded = torch.nn.functional.pad(flat, (0, blocks * blocksize - n)).view(blocks, blocksize)  # (blocks, 64)
    absmax = padded.abs().amax(dim=1)  # (blocks,)
    scaled = (padded * (1.0 / absmax.clamp(min=1e-38))[:, None]).clamp(-1, 1)  # in [-1, 1]
    table = table.to(scaled.device)
    midpoints = (table[:-1] + table[1:]) / 2  # nearest value = which gap between midpoints x falls in
    codes = torch.bucketize(scaled.reshape(-1)[:n], midpoints).to(torch.uint8)
    return codes.view(w.shape), absmax


def dequantize_blockwise(codes: torch.Tensor, absmax: torch.Tensor, table: torch.Tensor,
                         blocksize: int = 64) -> torch.Tensor:
    """table[codes] · absmax of each block, in float32, shaped like codes."""
    values = table.to(absmax.device)[codes.reshape(-1).long()]  # (n,) in [-1, 1]
    scale = absmax.repeat_interleave(blocksize)[: values.numel()]  # one absmax per value
    return (values * scale).view(codes.shape)


def quantize_nf4(w: torch.Tensor, blocksize: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """NF4 codes (uint8, 0–15, shaped like w) and one float32 absmax per block of `blocksize` (lesson 04)."""
    return quantize_blockwise(w, nf4_table(), blocksize)


def dequantize_nf4(codes: torch.Tensor, absmax: torch.Tensor, blocksize: int = 64) -> torch.Tensor:
    """Undo `quantize_nf4` up to rounding: nf4_table()[codes] × the block's absmax, float32."""
    return dequantize_blockwise(codes, absmax, nf4_table(), blocksize)


@dataclass
class DoubleQuantized:
    """The absmax constants stored in 8 bits: codes, one float32 scale per 256 of them, and their mean."""

    codes: torch.Tensor  # uint8, one per first-level block
    scales: torch.Tensor  # float32, one per `blocksize` codes
    offset: float  # the mean absmax, subtracted first so the 8-bit code is centred
    blocksize: int = 256  # second-level block size (QLoRA §3)


def double_quantize(absmax: torch.Tensor, blocksize: int = 256) -> DoubleQuantized:
    """Quantize the per-block constants themselves, as `bnb_4bit_use_double_quant=True` does."""
    offset = absmax.float().mean()
    codes, scales = quantize_blockwise(absmax.float() - offset, dynamic_map_8bit(), blocksize)
    return DoubleQuantized(codes, scales, float(offset), blocksize)


def double_dequantize(dq: DoubleQuantized) -> torch.Tensor:
    """The absmax constants back, float32 (close to, not equal to, the originals)."""
    return dequantize_blockwise(dq.codes, dq.scales, dynamic_map_8bit(), dq.blocksize) + dq.offset


def bits_per_parameter(blocksize: int = 64, double_quant: bool = False, dq_blocksize: int = 256) -> float:
    """4 bits per weight plus its share of the block constants: 4.5 plain, ≈4.127 with double quantization."""
    if not double_quant:
        return 4 + 32 / blocksize
    return 4 + 8 / blocksize + 32 / (blocksize * dq_blocksize)
