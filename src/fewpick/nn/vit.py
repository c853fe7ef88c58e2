"""A small ViT masked autoencoder (He et al. 2022) sized for a CPU, for the few-shot picker.

A window of ``size``² px is standardised (its own mean and standard deviation), cut into
``patch``² px patches, embedded linearly with fixed 2D sine-cosine positions and passed through
pre-norm transformer blocks. Training masks a random ``mask_ratio`` of the patches; the encoder
sees only the visible ones and a light decoder reconstructs every patch (MSE on the masked ones).
A window's feature is the mean of its encoder tokens after the final norm, with no masking.

:meth:`MaskedAutoencoder.sliding_features` computes the features of every window on a grid over a
whole image. Overlapping windows share their patch embeddings: one stride-1 convolution over the
image gives every patch's embedding, and each window's standardisation is applied to it exactly
(the embedding is linear, so ``emb((x − μ)/σ) = (conv(x) − μ·conv(1))/σ + b``, with μ and σ of every
window from summed-area tables).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def sincos_positions(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2D sine-cosine position embeddings, (grid², dim); half the channels encode rows, half columns."""
    if dim % 4:
        raise ValueError("embedding dimension must be a multiple of 4")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    coords = torch.arange(grid, dtype=torch.float64)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    parts = []
    for c in (yy.reshape(-1), xx.reshape(-1)):
        angles = c[:, None] * omega[None]
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=1).float()


class Block(nn.Module):
    """Pre-norm transformer block: multi-head self-attention and a GELU MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


class MaskedAutoencoder(nn.Module):
    """ViT-MAE for ``size``² px single-channel windows."""

    def __init__(self, size: int = 24, patch: int = 4, dim: int = 64, depth: int = 3, heads: int = 4,
                 decoder_dim: int = 48, decoder_depth: int = 1, mlp_ratio: float = 2.0, norm: str = "meanstd"):
        super().__init__()
        if size % patch:
            raise ValueError(f"window size {size} is not a multiple of the patch size {patch}")
        if norm not in ("mean", "meanstd"):
            raise ValueError(f"window normalisation must be 'mean' or 'meanstd', got {norm!r}")
        self.size, self.patch, self.grid, self.norm_mode = size, patch, size // patch, norm
        self.config = dict(size=size, patch=patch, dim=dim, depth=depth, heads=heads, decoder_dim=decoder_dim,
                           decoder_depth=decoder_depth, mlp_ratio=mlp_ratio, norm=norm)
        self.embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.register_buffer("pos", sincos_positions(dim, self.grid)[None], persistent=False)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.dec_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.register_buffer("dec_pos", sincos_positions(decoder_dim, self.grid)[None], persistent=False)
        self.dec_blocks = nn.ModuleList(Block(decoder_dim, max(1, heads // 2), mlp_ratio) for _ in range(decoder_depth))
        self.dec_norm = nn.LayerNorm(decoder_dim)
        self.dec_pred = nn.Linear(decoder_dim, patch * patch)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Each window to zero mean and unit standard deviation (``'meanstd'``, the default: on simulated
        data with distractors it discriminates far better) or to zero mean only (``'mean'``)."""
        x = x - x.mean(dim=(-2, -1), keepdim=True)
        if self.norm_mode == "meanstd":
            x = x / (x.std(dim=(-2, -1), keepdim=True, unbiased=False) + 1e-5)
        return x

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) → (B, T, patch²) in row-major patch order."""
        return F.unfold(x, self.patch, stride=self.patch).transpose(1, 2)

    def _encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor, mask_ratio: float = 0.75, generator: torch.Generator | None = None):
        """Masked reconstruction of windows ``x`` (B, 1, S, S).

        Returns the MSE on the masked patches (of the standardised window) and the features of the
        masked views (B, dim): the mean of the visible tokens' encodings.
        """
        x = self.standardize(x)
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        b, t, d = tokens.shape
        keep = max(1, int(round(t * (1 - mask_ratio))))
        noise = torch.rand(b, t, generator=generator).to(tokens.device)  # drawn on the CPU: the same on any device
        order = noise.argsort(dim=1)
        restore = order.argsort(dim=1)
        visible = order[:, :keep]
        latent = self._encode_tokens(torch.gather(tokens, 1, visible[..., None].expand(-1, -1, d)))
        features = latent.mean(dim=1)
        dec = self.dec_embed(latent)
        dd = dec.shape[-1]
        full = torch.cat([dec, self.mask_token.expand(b, t - keep, dd)], dim=1)
        full = torch.gather(full, 1, restore[..., None].expand(-1, -1, dd)) + self.dec_pos
        for blk in self.dec_blocks:
            full = blk(full)
        pred = self.dec_pred(self.dec_norm(full))
        masked = torch.ones(b, t, device=tokens.device)
        masked[:, :keep] = 0
        masked = torch.gather(masked, 1, restore)
        err = ((pred - self.patches(x)) ** 2).mean(dim=-1)
        mse = (err * masked).sum() / masked.sum().clamp(min=1) if mask_ratio > 0 else err.mean()
        return mse, features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Features of whole windows (no masking), (B, dim)."""
        x = self.standardize(x)
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        return self._encode_tokens(tokens).mean(dim=1)

    @torch.inference_mode()
    def sliding_features(self, image: np.ndarray, stride: int, rows_per_chunk: int = 16,
                         mask: np.ndarray | None = None):
        """Features of every ``size``² window of a 2D image at ``stride``.

        Yields ``(row_index, features)`` per chunk of window rows, features (rows, n_cols, dim); window
        (i, j) has its top-left corner at (i·stride, j·stride). Equal to :meth:`features` on the
        cropped windows (up to float rounding). With ``mask`` (n_rows, n_cols, bool) only those windows are
        encoded; the others' features are zero.
        """
        s, p = self.size, self.patch
        h, w = image.shape
        if h < s or w < s:
            raise ValueError(f"image {h}×{w} is smaller than the {s} px window")
        weight, bias = self.embed.weight, self.embed.bias
        dev = weight.device
        img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(dev)
        ny, nx = (h - s) // stride + 1, (w - s) // stride + 1
        # window mean and sd from summed-area tables (float64 for accuracy, on the CPU)
        sat = F.pad(torch.from_numpy(np.asarray(image, np.float64)).cumsum(0).cumsum(1), (1, 0, 1, 0))
        sat2 = F.pad(torch.from_numpy(np.asarray(image, np.float64) ** 2).cumsum(0).cumsum(1), (1, 0, 1, 0))
        ys, xs = torch.arange(ny) * stride, torch.arange(nx) * stride

        def box(t):
            return (t[ys[:, None] + s, xs[None] + s] - t[ys[:, None], xs[None] + s]
                    - t[ys[:, None] + s, xs[None]] + t[ys[:, None], xs[None]]) / (s * s)

        mu = box(sat)
        if self.norm_mode == "meanstd":
            inv = (1.0 / ((box(sat2) - mu**2).clamp(min=0).sqrt() + 1e-5)).float()
        else:
            inv = torch.ones_like(mu, dtype=torch.float32)
        mu, inv, ys, xs = mu.float().to(dev), inv.to(dev), ys.to(dev), xs.to(dev)
        ones = weight.sum(dim=(1, 2, 3))  # conv of a constant 1
        grid = torch.arange(self.grid, device=dev) * p
        pos = self.pos[0].reshape(self.grid, self.grid, -1)
        if mask is not None:
            if tuple(mask.shape) != (ny, nx):
                raise ValueError(f"mask of {tuple(mask.shape)} cells for a grid of {(ny, nx)}")
            mask = torch.from_numpy(np.asarray(mask, bool)).to(dev)
        dim = weight.shape[0]
        for r0 in range(0, ny, rows_per_chunk):
            r1 = min(ny, r0 + rows_per_chunk)
            sel = None if mask is None else mask[r0:r1]
            if sel is not None and not bool(sel.any()):
                yield r0, torch.zeros(r1 - r0, nx, dim, device=dev)
                continue
            # the patch embedding of the image rows these windows cover only (a whole micrograph's would take
            # dim × its pixels: 1.3 GB for 2,275² resampled px)
            top = int(ys[r0])
            band = img[top : int(ys[r1 - 1]) + s]
            emb = F.conv2d(band[None, None], weight)[0].permute(1, 2, 0)  # (rows-p+1, w-p+1, dim), no bias
            yy = ys[r0:r1, None, None, None] - top + grid[None, None, :, None]  # (r, 1, g, 1)
            xx = xs[None, :, None, None] + grid[None, None, None, :]  # (1, nx, 1, g)
            tok = emb[yy, xx]  # (r, nx, g, g, dim)
            m = mu[r0:r1, :, None, None, None]
            tok = (tok - m * ones) * inv[r0:r1, :, None, None, None] + bias + pos
            if sel is None:
                n = (r1 - r0) * nx
                feats = self._encode_tokens(tok.reshape(n, self.grid * self.grid, -1)).mean(dim=1)
                yield r0, feats.reshape(r1 - r0, nx, -1)
            else:
                picked = tok[sel]  # (n selected, g, g, dim)
                feats = self._encode_tokens(picked.reshape(len(picked), self.grid * self.grid, -1)).mean(dim=1)
                full = torch.zeros(r1 - r0, nx, feats.shape[-1], dtype=feats.dtype, device=dev)
                full[sel] = feats
                yield r0, full

