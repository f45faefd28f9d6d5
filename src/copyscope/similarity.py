"""Image-similarity measures for a sample and its nearest training item (the pair view).

The reference study compared pairs with RMSE, PSNR, SSIM, MS-SSIM, FSIM, UIQ, SAM, SRE and ISSM.
Here each comes from a maintained library where one exists:

- ``rmse``: root-mean-square pixel difference, pixels in [0, 1]; computed from the exact integer
  distance the search found, so it equals ``nn_l2`` by definition.
- ``psnr``: 10 log10(1 / MSE) in dB, pixels in [0, 1]; +inf for identical images.
- ``ssim``: Wang, Bovik, Sheikh & Simoncelli (2004), Gaussian 11x11 window, sigma 1.5,
  K = (0.01, 0.03); pytorch-msssim.
- ``ms_ssim``: Wang, Simoncelli & Bovik (2003); torchmetrics, Gaussian sigma 1.5. A 28-pixel
  image does not survive the standard four 2x downsamplings, so the number of scales is the most
  that keeps the coarsest scale at least 7 pixels wide (3 for MNIST: 28, 14, 7), with the first
  weights of the 2003 paper renormalised to sum to one; 5 scales and the paper's weights from
  112 pixels up.
- ``uiq``: Universal Image Quality index, Wang & Bovik (2002), 8x8 sliding window; sewar, which
  follows the reference code's convention that two identical flat windows score 1.
- ``sam``: Spectral Angle Mapper, Kruse et al. (1993), mean angle in radians between the pixel
  colour vectors; sewar. Only defined for RGB, so the column exists only for RGB inputs.

FSIM, SRE and ISSM are not computed: no maintained library provides them for this stack (piq
imports torchvision; image-similarity-measures pins numpy<2 and scikit-image<0.21).
"""

from __future__ import annotations

import numpy as np
import torch

from copyscope.search.base import normalised_l2
from copyscope.tensors import to_nchw

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, Table 1
MIN_COARSE_SIDE = 7
BATCH = 256


def ms_ssim_scales(side: int) -> int:
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and side // 2**scales >= MIN_COARSE_SIDE:
        scales += 1
    return scales


def pair_measures(a: np.ndarray, b: np.ndarray, d2: np.ndarray) -> dict[str, np.ndarray]:
    """Measures between image pairs ``a[i]``, ``b[i]`` (uint8, N x H x W x C).

    ``d2`` is the exact squared pixel distance of each pair (from the search) and gives RMSE and
    PSNR without rounding.
    """
    # Loaded on first use: torchmetrics (which imports matplotlib) and sewar (SciPy's statistics)
    # take about 2 s to import, which the web app's start-up would otherwise pay.
    from pytorch_msssim import ssim
    from sewar.full_ref import sam, uqi
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    n, h, w, c = a.shape
    rmse = normalised_l2(np.asarray(d2), h * w * c)
    with np.errstate(divide="ignore"):
        psnr = -20.0 * np.log10(rmse)
    out = {"rmse": rmse, "psnr": psnr,
           "ssim": np.empty(n), "ms_ssim": np.empty(n), "uiq": np.empty(n)}
    if c == 3:
        out["sam"] = np.empty(n)
    scales = ms_ssim_scales(min(h, w))
    betas = MS_SSIM_WEIGHTS[:scales]
    betas = tuple(x / sum(betas) for x in betas)
    with torch.inference_mode():
        for s in range(0, n, BATCH):
            ta = _tensor(a[s : s + BATCH])
            tb = _tensor(b[s : s + BATCH])
            out["ssim"][s : s + BATCH] = ssim(ta, tb, data_range=1.0, size_average=False).numpy()
            # With a Gaussian window torchmetrics sizes it from sigma; kernel_size only feeds its
            # check that the coarsest scale is still wider than the kernel.
            out["ms_ssim"][s : s + BATCH] = multiscale_structural_similarity_index_measure(
                ta, tb, data_range=1.0, betas=betas, sigma=1.5,
                kernel_size=MIN_COARSE_SIDE, reduction="none",
            ).numpy()
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    for i in range(n):
        out["uiq"][i] = uqi(fa[i], fb[i])
        if c == 3:
            out["sam"][i] = sam(fa[i], fb[i])
    return out


def _tensor(x: np.ndarray) -> torch.Tensor:
    return to_nchw(x).to(torch.float32) / 255.0
