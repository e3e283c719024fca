// y = x W^T with cuBLAS, fp32 activations and fp32 accumulation.
//
// Choice for BF16/F16 weights: convert a panel of W's rows to fp32 on the
// device (exact), then one fp32 GEMM per panel with CUBLAS_COMPUTE_32F (not
// the TF32 compute types, and the handle keeps the default math mode, so no
// tensor-core rounding of the inputs). The product is then the exact fp32
// values of x and W summed in fp32, the same numbers the CPU twin multiplies;
// only the summation order differs. cuBLAS has no mixed bf16 x fp32 GEMM, and
// rounding x to bf16 to use the tensor cores would lose ~3 significant digits
// of the activations: a later, measured decision, not this one.
// The panel bounds the scratch to kPanelElems fp32 (64 MiB), so lm_head
// (131072 x 3136) is never expanded whole.
//
// Row-major y[rows, out] = x[rows, in] W[out, in]^T is, in cuBLAS's
// column-major terms, y^T (out x rows, ld_y) = W^T-op(W as in x out, ld in) * x^T (in x rows, ld_x).
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "cuda/cuda_common.cuh"
#include "linear.h"

namespace ringscan::kernels::cuda {
namespace {

constexpr int64_t kPanelElems = int64_t{16} << 20;

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuda::linear: ") + what + " failed: " +
                             cublasGetStatusString(s));
}

// One cuBLAS handle and one panel scratch per (host thread, device). They are
// deliberately never destroyed: destroying them from a thread_local destructor
// at exit can run after the CUDA runtime has shut down.
struct DeviceState {
  cublasHandle_t handle = nullptr;
  float* scratch = nullptr;
  int64_t scratch_elems = 0;
  __nv_bfloat16* x_bf16 = nullptr;  // linear_bf16's rounded activations
  int64_t x_bf16_elems = 0;
};

DeviceState& state_for_current_device() {
  thread_local std::vector<DeviceState> states;
  int dev = 0;
  detail::check_cuda(cudaGetDevice(&dev), "linear", "cudaGetDevice");
  if (static_cast<size_t>(dev) >= states.size()) states.resize(dev + 1);
  DeviceState& s = states[dev];
  if (!s.handle) {
    check_cublas(cublasCreate(&s.handle), "cublasCreate");
    // The legacy default stream, like every other ringscan CUDA kernel.
    check_cublas(cublasSetStream(s.handle, 0), "cublasSetStream");
    // Explicitly not CUBLAS_TF32_TENSOR_OP_MATH: fp32 GEMMs stay true fp32.
    check_cublas(cublasSetMathMode(s.handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }
  return s;
}

// Grows a per-device scratch; earlier GEMMs on the default stream may still
// read the old buffer, hence the synchronisation before freeing it.
template <class T>
T* grow(T*& p, int64_t& have, int64_t elems, const char* what) {
  if (have < elems) {
    if (p) {
      detail::check_cuda(cudaDeviceSynchronize(), "linear", "cudaDeviceSynchronize");
      detail::check_cuda(cudaFree(p), "linear", "cudaFree");
      p = nullptr;
      have = 0;
    }
    detail::check_cuda(cudaMalloc(&p, elems * sizeof(T)), "linear", what);
    have = elems;
  }
  return p;
}

// x [rows, in] (ld_x) -> contiguous bf16 [rows, in], round to nearest even.
__global__ void x_to_bf16_kernel(const float* x, int64_t ld_x, int64_t rows, int64_t in, __nv_bfloat16* out) {
  const int64_t n = rows * in;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(x[(i / in) * ld_x + i % in]);
}

__global__ void to_f32_kernel(const void* w, DType dt, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = detail::load_weight(w, dt, i);
}

void gemm(cublasHandle_t h, const float* w, int64_t out_rows, int64_t in, const float* x,
          int64_t ld_x, int64_t rows, float* y, int64_t ld_y) {
  const float one = 1.f, zero = 0.f;
  check_cublas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out_rows),
                            static_cast<int>(rows), static_cast<int>(in), &one, w, CUDA_R_32F,
                            static_cast<int>(in), x, CUDA_R_32F, static_cast<int>(ld_x), &zero, y,
                            CUDA_R_32F, static_cast<int>(ld_y), CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

// The argument checks shared by linear and linear_bf16; false: nothing to do.
bool check_args(const char* op, int64_t ld_x, int64_t rows, const WeightView& weight, int64_t ld_y) {
  const int64_t in = weight.cols, out = weight.rows;
  if (rows <= 0 || out <= 0) return false;
  if (ld_x < in || ld_y < out)
    throw std::invalid_argument(std::string("cuda::") + op + ": ld_x must be >= in_features and ld_y >= out_features");
  if (rows > INT_MAX || in > INT_MAX || out > INT_MAX || ld_x > INT_MAX || ld_y > INT_MAX)
    throw std::invalid_argument(std::string("cuda::") + op + ": a dimension exceeds cuBLAS's 32-bit int range");
  return true;
}

}  // namespace

void linear(const float* x, int64_t ld_x, int64_t rows, const WeightView& weight, float* y,
            int64_t ld_y) {
  const int64_t in = weight.cols, out = weight.rows;
  if (!check_args("linear", ld_x, rows, weight, ld_y)) return;
  if (in == 0) {  // an empty sum: y = 0, which cuBLAS with k = 0 would also give
    detail::check_cuda(cudaMemset2D(y, ld_y * sizeof(float), 0, out * sizeof(float), rows),
                       "linear", "cudaMemset2D");
    return;
  }
  DeviceState& s = state_for_current_device();
  if (weight.dtype == DType::F32) {
    gemm(s.handle, static_cast<const float*>(weight.data), out, in, x, ld_x, rows, y, ld_y);
    return;
  }
  const int64_t panel_rows = std::max<int64_t>(1, std::min<int64_t>(out, kPanelElems / in));
  float* panel = grow(s.scratch, s.scratch_elems, panel_rows * in, "cudaMalloc of the weight panel");
  for (int64_t o0 = 0; o0 < out; o0 += panel_rows) {
    const int64_t nr = std::min(panel_rows, out - o0);
    const WeightView part = weight.row_slice(o0, nr);  // pointer arithmetic only
    to_f32_kernel<<<detail::grid_for(nr * in, 256), 256>>>(part.data, part.dtype, nr * in, panel);
    detail::check_launch("linear");
    gemm(s.handle, panel, nr, in, x, ld_x, rows, y + o0, ld_y);
  }
}

void linear_bf16(const float* x, int64_t ld_x, int64_t rows, const WeightView& weight, float* y,
                 int64_t ld_y) {
  const int64_t in = weight.cols, out = weight.rows;
  if (weight.dtype != DType::BF16)
    throw std::invalid_argument(std::string("cuda::linear_bf16: the weight must be BF16, not ") +
                                dtype_name(weight.dtype));
  if (!check_args("linear_bf16", ld_x, rows, weight, ld_y)) return;
  if (in == 0) {
    detail::check_cuda(cudaMemset2D(y, ld_y * sizeof(float), 0, out * sizeof(float), rows),
                       "linear_bf16", "cudaMemset2D");
    return;
  }
  DeviceState& s = state_for_current_device();
  __nv_bfloat16* xb = grow(s.x_bf16, s.x_bf16_elems, rows * in, "cudaMalloc of the bf16 activations");
  x_to_bf16_kernel<<<detail::grid_for(rows * in, 256), 256>>>(x, ld_x, rows, in, xb);
  detail::check_launch("linear_bf16");
  const float one = 1.f, zero = 0.f;
  // bf16 x bf16 products are exact in fp32; CUBLAS_COMPUTE_32F accumulates
  // them in fp32 on the tensor cores.
  check_cublas(cublasGemmEx(s.handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(rows),
                            static_cast<int>(in), &one, weight.data, CUDA_R_16BF, static_cast<int>(in), xb,
                            CUDA_R_16BF, static_cast<int>(in), &zero, y, CUDA_R_32F, static_cast<int>(ld_y),
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx (bf16)");
}

}  // namespace ringscan::kernels::cuda
