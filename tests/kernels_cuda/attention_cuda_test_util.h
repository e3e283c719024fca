// Attention states for the CUDA attention tests (test_attention_cuda.cpp,
// test_attention_mma_cuda.cpp): one on the host initialised by the reference,
// one on the device initialised by cuda::attention_init.
#pragma once
#include <cstdint>

#include "attention.h"
#include "cuda_test_util.h"
#include "kernels/attention_test_util.h"

namespace ringscan::test {

struct RefAttentionState : AttentionState {
  RefAttentionState(const kernels::AttentionShape& s, int64_t lq) : AttentionState(s, lq) {
    kernels::ref::attention_init(s, lq, acc.data(), m.data(), l.data());
  }
};

struct DeviceAttentionState {
  DeviceArray<float> acc, m, l;
  DeviceAttentionState(const kernels::AttentionShape& s, int64_t lq)
      : acc(lq * s.q_heads * s.head_dim), m(lq * s.q_heads), l(lq * s.q_heads) {
    kernels::cuda::attention_init(s, lq, acc.get(), m.get(), l.get());
  }
  RefAttentionState download(const kernels::AttentionShape& s, int64_t lq) const {
    RefAttentionState h(s, lq);
    h.acc = acc.download();
    h.m = m.download();
    h.l = l.download();
    return h;
  }
};

}  // namespace ringscan::test
