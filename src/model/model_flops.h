// Model FLOPs, counted as the useful multiply-adds x 2 (the convention of
// MFU): every projection, causal attention (scores and values over the visible
// keys), the SSD scan's matrix form (per chunk: C B^T, its use on x, chunk
// states, state outputs). Norms, activations and the conv are left out (a few
// per cent at most). The benches' MFU and the performance model
// (runtime/perf_model.h) count with the same pieces.
#pragma once
#include <cstdint>

#include "model/config.h"

namespace ringscan {

// One layer of kind k's projections (in/out, q/k/v/o, up/down), per token.
double projection_flops_per_token(const ModelConfig& c, LayerKind k);
// The lm_head, per token.
double lm_head_flops_per_token(const ModelConfig& c);
// One attention layer, per (query, visible key) pair: QK^T and PV.
double attention_pair_flops(const ModelConfig& c);
// One Mamba layer's SSD scan, per token, in a sequence of L tokens (the
// intra-chunk part grows with the chunk, capped by L).
double ssd_flops_per_token(const ModelConfig& c, int64_t L);
// One Mamba layer's correction of a segment's outputs by its incoming state
// (sequence parallel only), per token.
double ssd_correction_flops_per_token(const ModelConfig& c);
// The part of ssd_flops_per_token after a segment's final state is known: C B^T,
// the intra-chunk outputs and the outputs of the chunks' incoming states (what
// the sequence-parallel state scan overlaps, kernels/ssd_scan.h).
double ssd_output_flops_per_token(const ModelConfig& c, int64_t L);

// A whole single-sequence prefill of L tokens.
double prefill_flops(const ModelConfig& c, int64_t L);

}  // namespace ringscan
