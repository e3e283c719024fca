// y = x W^T. F32 weights go straight to one sgemm. BF16/F16 weights are never
// expanded whole: panels of W's rows are converted to fp32 and multiplied
// against all of x; each thread owns one panel buffer at a time.
//
// Measured (bench/kernels, in 3136 -> out 12544, one thread, OpenBLAS SkylakeX
// kernels): one thread per panel with a single-threaded sgemm each reaches
// ~135 GFLOP/s at 512-2048 rows against ~155 for the fp32 sgemm, and is at
// memory bandwidth for one row. Converting a panel with all threads and then
// running a threaded sgemm on it was never faster and, with two synchronisations
// per panel, collapsed (100x) whenever another process shared the cores.
// A separate GEMV path reading bf16 directly for one row was no faster.
#include "linear.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace ringscan::kernels::cpu {
namespace {

// Converts n elements starting at element `offset` of w to fp32.
void to_f32(const WeightView& w, int64_t offset, int64_t n, float* out) {
  const uint16_t* p = static_cast<const uint16_t*>(w.data) + offset;
  switch (w.dtype) {
    case DType::F32:
      std::memcpy(out, static_cast<const float*>(w.data) + offset, n * sizeof(float));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {  // a shift per element; the compiler vectorises it
        const uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      return;
    case DType::F16: {
      int64_t i = 0;
#if defined(__F16C__)
      for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i,
                         _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i))));
#endif
      for (; i < n; ++i) out[i] = f16_to_f32(p[i]);
      return;
    }
  }
}

// Output rows per converted panel. Each panel's sgemm re-packs all of x, an
// overhead per flop of about 1 / (2 * panel rows): so panels grow with the
// rows of x (where that overhead would show; 32-row panels lost 40% at 512
// rows) up to 8 MB of fp32, and shrink so that every thread gets a panel.
int64_t panel_rows(int64_t rows, int64_t in, int64_t out) {
  constexpr int64_t kMaxPanelBytes = int64_t{8} << 20;
  const int64_t cap = std::max<int64_t>(16, kMaxPanelBytes / (4 * std::max<int64_t>(in, 1)));
  const int64_t threads = omp_get_max_threads();
  int64_t p = std::min(std::max<int64_t>(rows, 64), cap);
  p = std::min(p, (out + threads - 1) / threads);
  p = (p + 15) / 16 * 16;
  return std::min(p, out);
}

}  // namespace

void linear(const float* x, int64_t ld_x, int64_t rows, const WeightView& weight, float* y,
            int64_t ld_y) {
  const int64_t in = weight.cols, out = weight.rows;
  if (rows <= 0 || out <= 0) return;
  if (weight.dtype == DType::F32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.f, x, ld_x,
                static_cast<const float*>(weight.data), in, 0.f, y, ld_y);
    return;
  }
  const int64_t P = panel_rows(rows, in, out), n_panels = (out + P - 1) / P;
  // OpenBLAS (OpenMP build) runs single-threaded inside this parallel region.
#pragma omp parallel
  {
    std::vector<float> panel(static_cast<size_t>(P * in));
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n_panels; ++i) {
      const int64_t o0 = i * P, np = std::min(P, out - o0);
      to_f32(weight, o0 * in, np * in, panel.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, np, in, 1.f, x, ld_x, panel.data(),
                  in, 0.f, y + o0, ld_y);
    }
  }
}

}  // namespace ringscan::kernels::cpu
