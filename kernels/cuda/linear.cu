// y = x W^T with cuBLAS, fp32 accumulation, two ways.
//
// gemm_bf16 (the engine's default): bf16 weight and bf16 x (an fp32 x is
// rounded into the caller's workspace first), y fp32 or bf16, beta = 1 for a
// residual add in the epilogue; on the caller's stream.
//
// linear / linear_accumulate (exact inputs, for tests against the CPU).
// Choice for BF16/F16 weights: convert a panel of W's rows to fp32 on the
// device (exact), then one fp32 GEMM per panel with CUBLAS_COMPUTE_32F (not
// the TF32 compute types, and the handle keeps the default math mode, so no
// tensor-core rounding of the inputs). The product is then the exact fp32
// values of x and W summed in fp32, the same numbers the CPU twin multiplies;
// only the summation order differs (cuBLAS has no mixed bf16 x fp32 GEMM).
// The panel bounds the scratch to kPanelElems fp32 (64 MiB), so lm_head
// (131072 x 3136) is never expanded whole.
//
// Row-major y[rows, out] = x[rows, in] W[out, in]^T is, in cuBLAS's
// column-major terms, y^T (out x rows, ld_y) = W^T-op(W as in x out, ld in) * x^T (in x rows, ld_x).
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <mutex>
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
};

DeviceState& state_for_current_device() {
  thread_local std::vector<DeviceState> states;
  int dev = 0;
  detail::check_cuda(cudaGetDevice(&dev), "linear", "cudaGetDevice");
  if (static_cast<size_t>(dev) >= states.size()) states.resize(dev + 1);
  DeviceState& s = states[dev];
  if (!s.handle) {
    check_cublas(cublasCreate(&s.handle), "cublasCreate");
    // Every call sets the stream it runs on (cublasSetStream is a host-side setting).
    check_cublas(cublasSetStream(s.handle, 0), "cublasSetStream");
    // Explicitly not CUBLAS_TF32_TENSOR_OP_MATH: fp32 GEMMs stay true fp32.
    check_cublas(cublasSetMathMode(s.handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }
  return s;
}

// cuBLAS workspaces given for streams (set_gemm_workspace). The handle is
// shared by every stream of a thread, and two streams' GEMMs may run at once
// (the Decoder's prefill chunk beside a decode step): each such stream brings
// its own workspace, so they never share cuBLAS's default one.
struct StreamWorkspace {
  GpuStream stream;
  void* data;
  size_t bytes;
};
std::mutex workspaces_mutex;
std::vector<StreamWorkspace>& stream_workspaces() {
  static auto* w = new std::vector<StreamWorkspace>;  // never destroyed, like the handles
  return *w;
}

// The handle set to run on `stream` (with that stream's workspace, if one was given).
void use_stream(DeviceState& s, GpuStream stream) {
  check_cublas(cublasSetStream(s.handle, static_cast<cudaStream_t>(stream)), "cublasSetStream");
  std::lock_guard<std::mutex> lock(workspaces_mutex);
  for (const StreamWorkspace& w : stream_workspaces())
    if (w.stream == stream) {
      check_cublas(cublasSetWorkspace(s.handle, w.data, w.bytes), "cublasSetWorkspace");
      return;
    }
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

// Row-major y[rows, out] (+)= x[rows, in] W[out, in]^T with fp32 compute, for
// W and x of `in_type` (both) and y of `y_type`; beta 0 or 1 (accumulate).
void gemm(cublasHandle_t h, const void* w, int64_t out_rows, int64_t in, const void* x, int64_t ld_x,
          cudaDataType in_type, int64_t rows, void* y, int64_t ld_y, cudaDataType y_type, float beta) {
  const float one = 1.f;
  check_cublas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out_rows), static_cast<int>(rows),
                            static_cast<int>(in), &one, w, in_type, static_cast<int>(in), x, in_type,
                            static_cast<int>(ld_x), &beta, y, y_type, static_cast<int>(ld_y), CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

// The argument checks shared by linear and gemm_bf16; false: nothing to do.
bool check_args(const char* op, int64_t ld_x, int64_t rows, const WeightView& weight, int64_t ld_y) {
  const int64_t in = weight.cols, out = weight.rows;
  if (rows <= 0 || out <= 0) return false;
  if (ld_x < in || ld_y < out)
    throw std::invalid_argument(std::string("cuda::") + op + ": ld_x must be >= in_features and ld_y >= out_features");
  if (rows > INT_MAX || in > INT_MAX || out > INT_MAX || ld_x > INT_MAX || ld_y > INT_MAX)
    throw std::invalid_argument(std::string("cuda::") + op + ": a dimension exceeds cuBLAS's 32-bit int range");
  return true;
}

// linear and linear_accumulate: y = x W^T + beta y.
void linear_exact(const float* x, int64_t ld_x, int64_t rows, const WeightView& weight, float* y, int64_t ld_y,
                  float beta, cudaStream_t stream) {
  const int64_t in = weight.cols, out = weight.rows;
  if (!check_args("linear", ld_x, rows, weight, ld_y)) return;
  if (in == 0) {  // an empty sum: y = 0 (or y unchanged), which cuBLAS with k = 0 would also give
    if (beta == 0.f)
      detail::check_cuda(cudaMemset2DAsync(y, ld_y * sizeof(float), 0, out * sizeof(float), rows, stream), "linear",
                         "cudaMemset2DAsync");
    return;
  }
  DeviceState& s = state_for_current_device();
  use_stream(s, stream);
  if (weight.dtype == DType::F32) {
    gemm(s.handle, weight.data, out, in, x, ld_x, CUDA_R_32F, rows, y, ld_y, CUDA_R_32F, beta);
    return;
  }
  const int64_t panel_rows = std::max<int64_t>(1, std::min<int64_t>(out, kPanelElems / in));
  float* panel = grow(s.scratch, s.scratch_elems, panel_rows * in, "cudaMalloc of the weight panel");
  for (int64_t o0 = 0; o0 < out; o0 += panel_rows) {
    const int64_t nr = std::min(panel_rows, out - o0);
    const WeightView part = weight.row_slice(o0, nr);  // pointer arithmetic only
    to_f32_kernel<<<detail::grid_for(nr * in, 256), 256, 0, stream>>>(part.data, part.dtype, nr * in, panel);
    detail::check_launch("linear");
    gemm(s.handle, panel, nr, in, x, ld_x, CUDA_R_32F, rows, y + o0, ld_y, CUDA_R_32F, beta);
  }
}

}  // namespace

void linear(const float* x, int64_t ld_x, int64_t rows, const WeightView& weight, float* y, int64_t ld_y,
            GpuStream stream) {
  linear_exact(x, ld_x, rows, weight, y, ld_y, 0.f, stream);
}

void linear_accumulate(const float* x, int64_t ld_x, int64_t rows, const WeightView& weight, float* y,
                       int64_t ld_y, GpuStream stream) {
  linear_exact(x, ld_x, rows, weight, y, ld_y, 1.f, stream);
}

size_t gemm_bf16_workspace(DType x_dtype, int64_t rows, int64_t in_features) {
  return x_dtype == DType::BF16 || rows <= 0 || in_features <= 0 ? 0 : size_t(rows) * in_features * 2;
}

void gemm_bf16(const void* x, DType x_dtype, int64_t ld_x, int64_t rows, const WeightView& weight, void* y,
               DType y_dtype, int64_t ld_y, bool accumulate, const Workspace& ws, GpuStream stream) {
  const int64_t in = weight.cols, out = weight.rows;
  if (weight.dtype != DType::BF16)
    throw std::invalid_argument(std::string("cuda::gemm_bf16: the weight must be BF16, not ") + dtype_name(weight.dtype));
  if ((x_dtype != DType::F32 && x_dtype != DType::BF16) || (y_dtype != DType::F32 && y_dtype != DType::BF16))
    throw std::invalid_argument("cuda::gemm_bf16: x and y must be F32 or BF16");
  if (accumulate && y_dtype != DType::F32)
    throw std::invalid_argument("cuda::gemm_bf16: accumulate needs an F32 y");
  if (!check_args("gemm_bf16", ld_x, rows, weight, ld_y)) return;
  const size_t y_elem = y_dtype == DType::F32 ? 4 : 2;
  if (in == 0) {
    if (!accumulate)
      detail::check_cuda(cudaMemset2DAsync(y, ld_y * y_elem, 0, out * y_elem, rows, stream), "gemm_bf16",
                         "cudaMemset2DAsync");
    return;
  }
  // Rows per pass: all at once for a bf16 x; for an fp32 x, as many as the
  // workspace holds rounded.
  int64_t pass_rows = rows;
  if (x_dtype == DType::F32) {
    pass_rows = std::min<int64_t>(rows, static_cast<int64_t>(ws.bytes / (size_t(in) * 2)));
    if (pass_rows < 1 || !ws.data)
      throw std::invalid_argument("cuda::gemm_bf16: an F32 x needs a workspace of at least one bf16 row");
  }
  DeviceState& s = state_for_current_device();
  use_stream(s, stream);
  const float beta = accumulate ? 1.f : 0.f;
  const cudaDataType yt = y_dtype == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
  for (int64_t r0 = 0; r0 < rows; r0 += pass_rows) {
    const int64_t nr = std::min(pass_rows, rows - r0);
    const void* xb = static_cast<const char*>(x) + size_t(r0) * ld_x * (x_dtype == DType::F32 ? 4 : 2);
    int64_t ldb = ld_x;
    if (x_dtype == DType::F32) {
      x_to_bf16_kernel<<<detail::grid_for(nr * in, 256), 256, 0, stream>>>(static_cast<const float*>(xb), ld_x, nr,
                                                                           in, static_cast<__nv_bfloat16*>(ws.data));
      detail::check_launch("gemm_bf16");
      xb = ws.data;
      ldb = in;
    }
    // bf16 x bf16 products are exact in fp32; CUBLAS_COMPUTE_32F accumulates
    // them in fp32 on the tensor cores.
    gemm(s.handle, weight.data, out, in, xb, ldb, CUDA_R_16BF, nr, static_cast<char*>(y) + size_t(r0) * ld_y * y_elem,
         ld_y, yt, beta);
  }
}

void set_gemm_workspace(GpuStream stream, void* data, size_t bytes) {
  std::lock_guard<std::mutex> lock(workspaces_mutex);
  auto& ws = stream_workspaces();
  ws.erase(std::remove_if(ws.begin(), ws.end(), [&](const StreamWorkspace& w) { return w.stream == stream; }),
           ws.end());
  if (data) ws.push_back({stream, data, bytes});
}

}  // namespace ringscan::kernels::cuda
