"""Minimal patches to transformers' NemotronH so it can express two variants its classes lack.

Both patches leave stock behaviour untouched for configs that do not ask for the variant, so the
plain fixtures are produced by unmodified transformers code even with the patches installed.

(i)  SwiGLU MLP. Selected by `mlp_hidden_act == "silu"`. The "-" blocks then hold
     `mixer.gate_proj`, `mixer.up_proj`, `mixer.down_proj` (no biases) and compute
     `down(silu(gate(x)) * up(x))`. Installed by replacing the "mlp" entry of
     `modeling_nemotron_h.MIXER_TYPES`, the table `NemotronHBlock.__init__` looks its mixer up in.
     NOTE: stock transformers given the same config.json would build a NON-gated
     `down(silu(up(x)))` and drop `gate_proj` as an unexpected key.

(ii) Rotary position embedding in the attention ("*") blocks. Selected by
     `position_embedding_type == "rope"`, with `rope_theta` and `partial_rotary_factor`.
     Installed by wrapping `NemotronHAttention.forward`: q and k are rotated right after their
     projections (before the KV cache and before attention) with transformers' own GPT-NeoX
     helpers (`GPTNeoXRotaryEmbedding` for cos/sin, `apply_rotary_pos_emb`, which rotates the first
     rotary_dim = int(head_dim * partial_rotary_factor) channels of every head with the rotate_half
     convention and passes the rest through). Positions are the `position_ids` the model already
     passes to every block (0..L-1 for a full forward, past length + i while decoding).
"""

from torch import nn

from transformers import GPTNeoXConfig
from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXRotaryEmbedding
from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb as neox_apply_rotary_pos_emb
from transformers.models.nemotron_h import modeling_nemotron_h as mnh


class NemotronHSwiGLUMLP(nn.Module):
    def __init__(self, config, intermediate_size=None, **kwargs):
        super().__init__()
        self.intermediate_size = intermediate_size or config.intermediate_size
        self.gate_proj = nn.Linear(config.hidden_size, self.intermediate_size, bias=config.mlp_bias)
        self.up_proj = nn.Linear(config.hidden_size, self.intermediate_size, bias=config.mlp_bias)
        self.down_proj = nn.Linear(self.intermediate_size, config.hidden_size, bias=config.mlp_bias)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


def _rope_embedding_for(config):
    neox_cfg = GPTNeoXConfig(
        hidden_size=config.head_dim * config.num_attention_heads,
        num_attention_heads=config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": float(config.rope_theta),
            "partial_rotary_factor": float(config.partial_rotary_factor),
        },
    )
    return GPTNeoXRotaryEmbedding(neox_cfg)


_installed = False


def install():
    """Install both patches (idempotent). Call before building or loading any model."""
    global _installed
    if _installed:
        return
    _installed = True

    stock_mlp = mnh.MIXER_TYPES["mlp"]

    def mlp_factory(config, **kwargs):
        if config.mlp_hidden_act == "silu":
            return NemotronHSwiGLUMLP(config, **kwargs)
        return stock_mlp(config, **kwargs)

    mnh.MIXER_TYPES["mlp"] = mlp_factory

    stock_attention_forward = mnh.NemotronHAttention.forward

    def attention_forward(self, hidden_states, attention_mask=None, past_key_values=None, **kwargs):
        if getattr(self.config, "position_embedding_type", "none") != "rope":
            return stock_attention_forward(self, hidden_states, attention_mask, past_key_values, **kwargs)
        # Same as the stock forward, plus the rotation of q and k right after the projections.
        if not hasattr(self, "_ringscan_rope"):
            self._ringscan_rope = _rope_embedding_for(self.config)
        position_ids = kwargs.get("position_ids")
        if position_ids is None:
            raise RuntimeError("rope variant: the attention block was called without position_ids")
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query_states = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key_states = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        cos, sin = self._ringscan_rope(value_states, position_ids)
        query_states, key_states = neox_apply_rotary_pos_emb(query_states, key_states, cos, sin)
        if past_key_values is not None:
            key_states, value_states = past_key_values.update(key_states, value_states, self.layer_idx)
        attention_interface = mnh.ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, mnh.eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self, query_states, key_states, value_states, attention_mask,
            dropout=0.0, scaling=self.scaling, **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output), attn_weights

    mnh.NemotronHAttention.forward = attention_forward


def assert_torch_paths():
    """The fixtures must come from transformers' pure-torch Mamba path: fail if a kernel package could
    have been picked instead (transformers prefers mamba_ssm / causal_conv1d when importable)."""
    import importlib.util

    for pkg in ("mamba_ssm", "causal_conv1d", "kernels"):
        if importlib.util.find_spec(pkg) is not None:
            raise RuntimeError(f"package {pkg} is installed: fixtures must come from the pure-torch path")
    return "torch"

