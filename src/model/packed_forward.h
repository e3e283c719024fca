// Prefill of several short, independent sequences at once (data-parallel
// batches of a batch job): their rows are stacked so that every per-token
// operation (norms, projections, MLP, LM head) is one large GEMM instead of one
// small GEMM per document, while the conv, the SSD scan and attention run on
// each sequence's own rows from a fresh state. Equals Model::forward of each
// sequence alone to fp32 round-off (tests/model/test_packed_forward.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace ringscan {

// seqs[i] holds ids of sequence i; hidden_out receives the final hidden states
// (after norm_f) of all sequences stacked in order, [sum of lengths, hidden].
void forward_packed(const Model& model, const std::vector<std::vector<int32_t>>& seqs, float* hidden_out);

}  // namespace ringscan
