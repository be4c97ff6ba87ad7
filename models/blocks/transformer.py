"""Attention blocks: the CR cross-attention transformer of HFL-Net (official ``hfl_net_hor/CR.py``), its
HandOccNet variants (FIT / SET blocks: learned positional embeddings, sigmoid gate, no query residual) and the
self-attention feature mapper of UniHOPE (official ``SlfMultiHeadAttention``, mob_recon transformer.py).

Spec: docs/official-model.md §1.9 and §1.11; docs/official-baselines.md §3.2-§3.3 (HandOccNet ``Block``).
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CRBlock", "CRTransformer", "SlfMultiHeadAttention"]


def _map_tokens(feature_map):
    """(B, C, H, W) -> (B, H*W, C), copied channel-contiguous so attention runs on the fused SDPA kernel."""
    return feature_map.flatten(2).transpose(1, 2).contiguous()


def _split_heads(tokens, num_heads):
    """(B, N, heads*d) -> (B, heads, N, d); heads are contiguous channel chunks."""
    batch, length, channels = tokens.shape
    return tokens.view(batch, length, num_heads, channels // num_heads).transpose(1, 2)


def _merge_heads(tokens):
    """(B, heads, N, d) -> (B, N, heads*d)."""
    batch, heads, length, dim = tokens.shape
    return tokens.transpose(1, 2).reshape(batch, length, heads * dim)


class _Mlp(nn.Module):
    """Linear -> GELU (exact erf) -> Linear on tokens (B, N, dim); dropout 0 as in the official model."""

    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x, out_features=None):
        """x (B, N, dim) -> (B, N, out_features): the first ``out_features`` outputs of ``fc2`` only (its first
        rows of weights; the same dot products as the full layer), all ``dim`` when None."""
        hidden = self.act(self.fc1(x))
        if out_features is None or out_features == self.fc2.out_features:
            return self.fc2(hidden)
        return F.linear(hidden, self.fc2.weight[:out_features], self.fc2.bias[:out_features])


class CRBlock(nn.Module):
    """One CR cross-attention block: query map attends over key map, both (B, C, H, W) -> (B, C, H, W).

    Queries from ``encode_query(query)``, keys / values from ``encode_key(key)`` / ``encode_value(key)``
    (1x1 convs); scaled dot-product attention over the H*W key tokens with ``num_heads`` heads; the residual
    adds the *raw* query tokens (no output projection, no norm before attention); then a pre-norm MLP.

    HandOccNet variants (defaults give the CR block):
        embedding_res: adds learned embeddings ``q_embedding`` / ``k_embedding`` (1, C, R, R) (R = this value) to
            the query / key maps before ``encode_query`` / ``encode_key`` (values use the raw key); inputs must
            then be R x R.
        gated: ``encode_query2`` / ``encode_key2`` give a per-query, per-head gate
            sigmoid(sum_keys(q2 . k2) / sqrt(d)) multiplying the attention output (FIT).
        query_residual: False drops the raw-query residual (FIT); the MLP residual stays.
    out_channels: forward returns only the first ``out_channels`` channels (B, out_channels, H, W) (None: all
        ``dim``). Exact: those channels are computed as in the full block (attention and the pre-MLP LayerNorm
        still see all ``dim`` channels); only the unused rows of the last MLP Linear and of the residual are
        skipped. The parameters do not change, so state-dict keys and shapes stay those of the full block.
    """

    def __init__(self, dim, num_heads=8, mlp_ratio=4, embedding_res=None, gated=False, query_residual=True,
                 out_channels=None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"CRBlock: dim {dim} is not divisible by num_heads {num_heads}")
        if out_channels is not None and not 0 < out_channels <= dim:
            raise ValueError(f"CRBlock: out_channels must be in [1, {dim}], got {out_channels}")
        self.num_heads = num_heads
        self.out_channels = dim if out_channels is None else int(out_channels)
        self.gated = gated
        self.query_residual = query_residual
        self.embedding_res = embedding_res
        if embedding_res is not None:
            self.q_embedding = nn.Parameter(torch.randn(1, dim, embedding_res, embedding_res))
            self.k_embedding = nn.Parameter(torch.randn(1, dim, embedding_res, embedding_res))
        self.encode_value = nn.Conv2d(dim, dim, kernel_size=1)
        self.encode_query = nn.Conv2d(dim, dim, kernel_size=1)
        self.encode_key = nn.Conv2d(dim, dim, kernel_size=1)
        if gated:
            self.encode_query2 = nn.Conv2d(dim, dim, kernel_size=1)
            self.encode_key2 = nn.Conv2d(dim, dim, kernel_size=1)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = _Mlp(dim, dim * mlp_ratio)

    def _embedded(self, query, key):
        """(query, key) maps with the learned embeddings added (unchanged without embeddings)."""
        if self.embedding_res is None:
            return query, key
        size = (self.embedding_res, self.embedding_res)
        if tuple(query.shape[-2:]) != size or tuple(key.shape[-2:]) != size:
            raise ValueError(f"CRBlock with learned embeddings needs {size} maps, got query "
                             f"{tuple(query.shape[-2:])} and key {tuple(key.shape[-2:])}")
        return query + self.q_embedding, key + self.k_embedding

    def forward(self, query, key):
        batch, channels, height, width = query.shape
        query_in, key_in = self._embedded(query, key)
        q = _split_heads(_map_tokens(self.encode_query(query_in)), self.num_heads)  # (B, h, HW, d)
        k = _split_heads(_map_tokens(self.encode_key(key_in)), self.num_heads)
        v = _split_heads(_map_tokens(self.encode_value(key)), self.num_heads)
        attended = F.scaled_dot_product_attention(q, k, v)  # (B, h, HW, d), scale d^-0.5
        if self.gated:
            q2 = _split_heads(_map_tokens(self.encode_query2(query_in)), self.num_heads)
            k2 = _split_heads(_map_tokens(self.encode_key2(key_in)), self.num_heads)
            # sum over keys of q2 . k2 = q2 . (sum of k2): (B, h, HW, d) @ (B, h, d, 1) -> (B, h, HW, 1)
            gate = torch.sigmoid(q2 @ k2.sum(dim=2).unsqueeze(-1) * q2.shape[-1] ** -0.5)
            attended = attended * gate
        tokens = _merge_heads(attended)  # (B, HW, C)
        if self.query_residual:
            tokens = query.flatten(2).transpose(1, 2) + tokens
        out = self.out_channels  # (B, HW, C) -> (B, HW, out): the MLP residual of the kept channels only
        tokens = tokens[..., :out] + self.mlp(self.norm2(tokens), out_features=out)
        return tokens.transpose(1, 2).reshape(batch, out, height, width)


class CRTransformer(nn.Module):
    """Stack of ``depth`` CR blocks; each block's output becomes the next query, the key map stays fixed.

    forward(query (B, C, H, W), key (B, C, H, W)) -> (B, C_out, H, W), C_out = ``out_channels`` or C.
    Official name ``Transformer``. ``inp_res`` is the side of the learned embeddings when
    ``learned_embedding`` (HandOccNet); the CR transformer uses none. ``gated`` / ``query_residual`` are passed
    to every :class:`CRBlock`; ``out_channels`` (None: all) to the last one only (see :class:`CRBlock`: the
    same values as the first ``out_channels`` channels of the full output, same parameters).
    """

    def __init__(self, inp_res=32, dim=256, depth=1, num_heads=8, mlp_ratio=4, learned_embedding=False,
                 gated=False, query_residual=True, out_channels=None):
        super().__init__()
        self.inp_res = inp_res
        embedding_res = inp_res if learned_embedding else None
        self.layers = nn.ModuleList(
            CRBlock(dim, num_heads, mlp_ratio, embedding_res, gated, query_residual,
                    out_channels=out_channels if index == depth - 1 else None)
            for index in range(depth))

    def forward(self, query, key):
        for layer in self.layers:
            query = layer(query, key)
        return query


class SlfMultiHeadAttention(nn.Module):
    """Post-norm multi-head self-attention on tokens (B, L, d_model) -> (B, L, d_model).

    out = LayerNorm(dropout(fc(heads(softmax(q k^T / sqrt(d_k)) v))) + x), LayerNorm eps 1e-6;
    projections without bias; attention dropout and output dropout ``dropout`` (train mode only).
    """

    def __init__(self, n_head, d_model, d_k, d_v, dropout=0.1):
        super().__init__()
        if d_k != d_v:
            raise ValueError(f"SlfMultiHeadAttention: d_k ({d_k}) must equal d_v ({d_v})")
        self.n_head = n_head
        self.d_k = d_k
        self.attention_dropout = dropout
        self.w_qs = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_ks = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_vs = nn.Linear(d_model, n_head * d_v, bias=False)
        self.fc = nn.Linear(n_head * d_v, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, x):
        q = _split_heads(self.w_qs(x), self.n_head)  # (B, h, L, d_k)
        k = _split_heads(self.w_ks(x), self.n_head)
        v = _split_heads(self.w_vs(x), self.n_head)
        attended = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attention_dropout if self.training else 0.0, scale=self.d_k ** -0.5)
        return self.layer_norm(self.dropout(self.fc(_merge_heads(attended))) + x)
