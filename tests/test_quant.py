"""course_lib.memory.quant: NF4 from scratch equals bitsandbytes (lesson 04)."""

import pytest
import torch

from course_lib.memory.quant import (bits_per_parameter, double_dequantize, double_quantize, dequantize_nf4,
                              dynamic_map_8bit, fp4_table, int4_table, nf4_table, quantize_blockwise,
                              dequantize_blockwise, quantize_nf4)

F = pytest.importorskip("bitsandbytes.functional")


def bnb_codes(packed: torch.Tensor, n: int) -> torch.Tensor:
    """bitsandbytes packs two 4-bit codes per byte, the first in the high nibble."""
    flat = packed.reshape(-1)
    return torch.stack([flat >> 4, flat & 0xF], dim=1).reshape(-1)[:n]


def test_nf4_table_matches_bitsandbytes():
    table = nf4_table()
    assert table.shape == (16,) and table.dtype == torch.float32
    torch.testing.assert_close(table, F.get_4bit_type("nf4", device="cpu"), atol=1e-6, rtol=0)
    assert table[7] == 0 and table[0] == -1 and table[-1] == 1  # zero is exact; 8 positive, 7 negative
    assert (table > 0).sum() == 8 and (table < 0).sum() == 7


def test_other_tables():
    torch.testing.assert_close(fp4_table(), F.get_4bit_type("fp4", device="cpu").sort().values)
    torch.testing.assert_close(dynamic_map_8bit(), F.create_dynamic_map())
    assert int4_table().numel() == 15 and int4_table()[7] == 0


def test_quantize_shapes_and_types():
    w = torch.randn(10, 70)  # 700 values: 10 full blocks and one of 60
    codes, absmax = quantize_nf4(w)
    assert codes.shape == w.shape and codes.dtype == torch.uint8 and int(codes.max()) <= 15
    assert absmax.shape == (11,) and absmax.dtype == torch.float32
    assert dequantize_nf4(codes, absmax).shape == w.shape


@pytest.mark.parametrize("shape", [(256, 128), (100, 7), (3, 64), (4096,)])
def test_round_trip_equals_bitsandbytes_random(shape):
    torch.manual_seed(0)
    w = torch.randn(shape) * 0.02
    packed, state = F.quantize_4bit(w, blocksize=64, quant_type="nf4")
    codes, absmax = quantize_nf4(w, blocksize=64)
    assert torch.equal(codes.reshape(-1), bnb_codes(packed, w.numel()))
    torch.testing.assert_close(absmax, state.absmax)
    theirs = F.dequantize_4bit(packed, state).reshape(w.shape)  # bitsandbytes returns 1-D input as (1, n)
    torch.testing.assert_close(dequantize_nf4(codes, absmax), theirs, atol=1e-6, rtol=0)


def test_round_trip_equals_bitsandbytes_real_weights():
    from course_lib.models.base import ModelNotAvailable
    from course_lib.models.loading import load_base_model
    try:
        model = load_base_model()
    except ModelNotAvailable:
        pytest.skip("course-tiny is not built yet (course pretrain)")
    for name, p in list(model.named_parameters())[:12]:
        w = p.detach()
        packed, state = F.quantize_4bit(w, blocksize=64, quant_type="nf4")
        codes, absmax = quantize_nf4(w)
        theirs = F.dequantize_4bit(packed, state).reshape(w.shape)  # 1-D weights (norms) come back as (1, n)
        torch.testing.assert_close(dequantize_nf4(codes, absmax), theirs, atol=1e-6, rtol=0,
                                   msg=lambda m, name=name: f"{name}: {m}")


def test_double_quantization_equals_bitsandbytes():
    torch.manual_seed(1)
    w = torch.randn(512, 256)  # 2048 blocks of 64 -> 8 second-level blocks of 256
    packed, state = F.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
    codes, absmax = quantize_nf4(w)
    dq = double_quantize(absmax)
    assert dq.codes.dtype == torch.uint8 and dq.scales.shape == (8,)
    assert abs(dq.offset - float(state.offset)) < 1e-6
    torch.testing.assert_close(dq.scales, state.state2.absmax)
    # bitsandbytes' C kernel breaks exact midpoint ties differently: allow a neighbouring code there
    diff = (dq.codes.int() - state.absmax.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 0.01
    same = (diff == 0).repeat_interleave(64).view(w.shape)
    ours = dequantize_nf4(codes, double_dequantize(dq))
    torch.testing.assert_close(ours[same], F.dequantize_4bit(packed, state)[same], atol=1e-6, rtol=0)
    assert (double_dequantize(dq) - absmax).abs().max() < 0.01 * absmax.max()


def test_nf4_beats_int4_on_normal_weights():
    torch.manual_seed(0)
    w = torch.randn(64, 64)
    err = lambda table: (dequantize_blockwise(*quantize_blockwise(w, table), table) - w).pow(2).mean()
    assert err(nf4_table()) < err(int4_table())


def test_bits_per_parameter():
    assert bits_per_parameter() == 4.5
    assert round(bits_per_parameter(double_quant=True) - 4, 3) == 0.127


def test_bad_blocksize():
    with pytest.raises(ValueError, match="blocksize"):
        quantize_nf4(torch.randn(4), blocksize=0)


def test_cpu_4bit_layer_still_backpropagates_after_an_evaluation():
    import bitsandbytes as bnb
    from course_lib.memory.quant import keep_cpu_4bit_trainable
    torch.manual_seed(0)
    dense = torch.nn.Linear(128, 64, bias=False)
    layer = bnb.nn.Linear4bit(128, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(dense.weight.data, requires_grad=False, quant_type="nf4")
    layer = layer.to("cpu")  # quantizes the weight
    model = torch.nn.Sequential(layer)
    assert keep_cpu_4bit_trainable(model) == 1
    model.eval()
    with torch.no_grad():
        model(torch.randn(3, 128))  # an evaluation: what would trigger the inference-only repacking
    model.train()
    x = torch.randn(3, 128, requires_grad=True)
    model(x).sum().backward()
    w = F.dequantize_4bit(layer.weight.data, layer.weight.quant_state)  # (64, 128)
    torch.testing.assert_close(x.grad, w.sum(0).expand(3, -1), atol=1e-4, rtol=1e-4)
