import torch
import torch.nn.functional as F

from fractions import Fraction

from pixelwise.models.layers import BilinearUpsample, Geometry, bilinear_kernel, overlap_crops


def test_bilinear_kernel_reproduces_linear_interpolation_of_a_ramp():
    factor, n = 4, 10
    up = BilinearUpsample(1, factor)
    ramp = torch.arange(n, dtype=torch.float32)
    x = (2 * ramp[None, :] + 3 * ramp[:, None])[None, None]  # a 2-D ramp
    y = up(x)[0, 0]
    # input cell i sits at output position factor*i + factor - 0.5; between two cells the
    # transposed conv must give the ramp evaluated at the fractional cell position
    j = torch.arange(factor, factor * n)
    t = (j - factor + 0.5) / factor
    expected = 2 * t[None, :] + 3 * t[:, None]
    torch.testing.assert_close(y[factor : factor * n, factor : factor * n], expected)


def test_bilinear_kernel_matches_interpolate():
    # upsampling by 2 with the kernel equals F.interpolate(align_corners=False) in the interior
    x = torch.randn(1, 3, 8, 8)
    up = BilinearUpsample(3, 2)(x)[..., 1:-1, 1:-1]  # drop the 1-cell ramp at each border
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])


def test_kernel_is_channel_diagonal():
    w = bilinear_kernel(3, 3, 4)
    assert w[0, 1].abs().sum() == 0
    assert torch.allclose(w[2, 2], w[0, 0])


def test_geometry_release_offsets_by_hand():
    g = Geometry().conv(3, 1, 100).conv(3, 1, 1).conv(2, 2)
    assert g.offset == -98.5 and g.stride == 2
    a, b, fused = overlap_crops(Geometry(Fraction(16), Fraction(-23, 2)), Geometry(Fraction(16), Fraction(-183, 2)))
    assert (a, b, fused.offset) == (0, 5, -11.5)
