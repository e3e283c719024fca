// cuda_emu self-test: the emulator's own semantics (shuffles, votes,
// barriers, shared memory, launch checks, fault and race detection,
// conversions, cuBLAS GEMM). Written as CUDA; run.sh selftest builds it
// through the same rewrite as the repo's kernels. Exit status 0 = all good.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_pipeline.h>
#include <cuda_runtime.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "mma.cuh"

static int failures = 0;
#define CHECK(c)                                                      \
  do {                                                                \
    if (!(c)) {                                                       \
      std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #c);        \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

__global__ void shfl_kernel(int* out, int width) {
  const int t = threadIdx.x, lane = t & 31;
  out[t * 4 + 0] = __shfl_xor_sync(0xffffffffu, t, 5, width);
  out[t * 4 + 1] = __shfl_down_sync(0xffffffffu, t, 3, width);
  out[t * 4 + 2] = __shfl_up_sync(0xffffffffu, t, 2, width);
  out[t * 4 + 3] = __shfl_sync(0xffffffffu, t, lane + 1, width);
}

__global__ void vote_kernel(unsigned* out) {
  const int t = threadIdx.x;
  const unsigned b = __ballot_sync(0xffffffffu, t % 3 == 0);
  const int any = __any_sync(0xffffffffu, t == 40);
  const int all = __all_sync(0xffffffffu, t < 1000);
  const int cnt = __syncthreads_count(t % 2);
  if (t % 32 == 0) out[t / 32 * 4 + 0] = b, out[t / 32 * 4 + 1] = any, out[t / 32 * 4 + 2] = all, out[t / 32 * 4 + 3] = cnt;
}

// Block sum through static shared memory; 3-D block and grid indices.
__global__ void sum3d_kernel(const float* x, float* out) {
  __shared__ float part[256];
  const int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const int n = blockDim.x * blockDim.y * blockDim.z;
  const int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  part[t] = x[b * n + t];
  __syncthreads();
  for (int s = n / 2; s > 0; s /= 2) {
    if (t < s) part[t] += part[t + s];
    __syncthreads();
  }
  if (t == 0) out[b] = part[0];
}

__global__ void dyn_kernel(float* out, int n) {
  extern __shared__ float buf[];
  for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = float(i);
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0;
    for (int i = 0; i < n; ++i) s += buf[i];
    out[0] = s;
  }
}

// Missing barrier: reads a neighbour's shared slot without __syncthreads.
__global__ void racy_kernel(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = 1.f;
  out[blockIdx.x * 64 + threadIdx.x] = s[(threadIdx.x + 1) % 64];
}

__global__ void exited_lane_kernel(int* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
}

__global__ void oob_kernel(float* x, int n) { x[n + 1024] = 1.f; }

__global__ void deadlock_kernel(int* out) {
  // Lanes 0-15 shuffle with a full-warp mask while lanes 16-31 wait at a barrier.
  if (threadIdx.x < 16) out[0] = __shfl_xor_sync(0xffffffffu, 1, 1);
  else __syncthreads();
}

__global__ void convert_kernel(const float* x, __nv_bfloat16* b, __half* h, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) b[i] = __float2bfloat16_rn(x[i]), h[i] = __float2half_rn(x[i]);
}

template <int K>
__global__ void templ_kernel(int* out) { out[threadIdx.x] = K * threadIdx.x; }

// Runs f in a child process; true if the child died of `sig` (or aborted).
template <class F>
bool dies(F f) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    f();
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFSIGNALED(st);
}

// C = A (16x32) B (32x16) with the tensor-core wrappers of kernels/cuda/mma.cuh,
// B fed two ways as the attention kernel does: from an [n][k] tile (ldmatrix)
// and from a [k][n] tile (ldmatrix.trans). swap_a exchanges two A registers:
// a wrong fragment must give a wrong product.
__global__ void mma_kernel(const __nv_bfloat16* A, const __nv_bfloat16* Bnk, const __nv_bfloat16* Bkn,
                           float* out_nk, float* out_kn, int swap_a) {
  namespace mma = ringscan::kernels::cuda::mma;
  __shared__ __align__(16) __nv_bfloat16 sa[16 * 32];
  __shared__ __align__(16) __nv_bfloat16 snk[16 * 32];
  __shared__ __align__(16) __nv_bfloat16 skn[32 * 16];
  const int lane = threadIdx.x, j = lane / 8, r = lane % 8, g = lane / 4, t = lane % 4;
  for (int i = lane; i < 512; i += 32) sa[i] = A[i], snk[i] = Bnk[i], skn[i] = Bkn[i];
  __syncthreads();
  float c1[2][4] = {}, c2[2][4] = {};
  for (int kk = 0; kk < 2; ++kk) {
    uint32_t a[4];
    mma::ldmatrix_x4(a, &sa[(r + (j & 1) * 8) * 32 + kk * 16 + (j >> 1) * 8]);
    if (swap_a) std::swap(a[1], a[2]);
    for (int nt = 0; nt < 2; ++nt) {
      uint32_t b[4], bt[4];
      mma::ldmatrix_x4(b, &snk[(8 * nt + r) * 32 + kk * 16 + (j & 1) * 8]);
      mma::ldmatrix_x4_trans(bt, &skn[(kk * 16 + (j & 1) * 8 + r) * 16 + 8 * nt]);
      const uint32_t b01[2] = {b[0], b[1]}, bt01[2] = {bt[0], bt[1]};
      mma::mma_bf16_16816(c1[nt], a, b01);
      mma::mma_bf16_16816(c2[nt], a, bt01);
    }
  }
  for (int nt = 0; nt < 2; ++nt)
    for (int i = 0; i < 4; ++i) {
      const int o = (g + (i >> 1) * 8) * 16 + 8 * nt + 2 * t + (i & 1);
      out_nk[o] = c1[nt][i];
      out_kn[o] = c2[nt][i];
    }
}

__global__ void fill_kernel(float* x, int n, float v) {
  if (int(threadIdx.x) < n) x[threadIdx.x] = v;
}
__global__ void copy_kernel(const float* x, float* y, int n) {
  if (int(threadIdx.x) < n) y[threadIdx.x] = x[threadIdx.x];
}
__global__ void graph_scale_kernel(float* x, int n, float a) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] *= a;
}

// cp.async: two commit groups of 16-byte copies into shared memory (the
// second zero-filling its last 4 bytes); after wait_prior(1) only the first
// has landed, after wait_prior(0) both. wait_stage: 0 = read before any wait,
// 1 = after wait_prior(1), 2 = after wait_prior(0); 3 = never wait (an error
// at the block's end).
__global__ void cp_async_kernel(const float* src, float* out, int wait_stage) {
  __shared__ __align__(16) float tile[64];
  const int t = threadIdx.x;  // 8 threads: t < 4 copy group 0, t >= 4 group 1
  if (t < 4) __pipeline_memcpy_async(tile + 4 * t, src + 4 * t, 16);
  __pipeline_commit();
  if (t >= 4) __pipeline_memcpy_async(tile + 4 * t, src + 4 * t, 16, 4);
  __pipeline_commit();
  if (wait_stage >= 1 && wait_stage <= 2) __pipeline_wait_prior(wait_stage == 1 ? 1 : 0);
  __syncthreads();
  for (int i = 0; i < 4; ++i) out[4 * t + i] = tile[4 * t + i];
  if (wait_stage != 3) __pipeline_wait_prior(0);  // nothing left in flight at the end
}

int main() {
  std::printf("cuda_emu selftest (its deliberate faults show as [cuda-emu] ERROR lines: expected)\n");
  int* d_i;
  cudaMalloc(&d_i, 4096 * sizeof(int));
  std::vector<int> hi(4096);

  // Shuffles at widths 32, 16 and 8, as documented.
  for (int width : {32, 16, 8}) {
    shfl_kernel<<<1, 64>>>(d_i, width);
    cudaMemcpy(hi.data(), d_i, 64 * 4 * sizeof(int), cudaMemcpyDeviceToHost);
    for (int t = 0; t < 64; ++t) {
      const int lane = t & 31, seg = lane & ~(width - 1), base = t - lane;
      const int x = lane ^ 5, d = lane + 3, u = lane - 2, s = seg + (lane + 1) % width;
      CHECK(hi[t * 4 + 0] == (x >= seg + width ? t : base + x));
      CHECK(hi[t * 4 + 1] == (d >= seg + width ? t : base + d));
      CHECK(hi[t * 4 + 2] == (u < seg ? t : base + u));
      CHECK(hi[t * 4 + 3] == base + s);
    }
  }
  // Votes and __syncthreads_count.
  vote_kernel<<<1, 96>>>(reinterpret_cast<unsigned*>(d_i));
  cudaMemcpy(hi.data(), d_i, 12 * sizeof(int), cudaMemcpyDeviceToHost);
  for (int w = 0; w < 3; ++w) {
    unsigned b = 0;
    for (int l = 0; l < 32; ++l) b |= unsigned((w * 32 + l) % 3 == 0) << l;
    CHECK(unsigned(hi[w * 4]) == b);
    CHECK(hi[w * 4 + 1] == (w == 1));
    CHECK(hi[w * 4 + 2] == 1);
    CHECK(hi[w * 4 + 3] == 48);
  }
  // 3-D geometry and static shared memory.
  {
    const dim3 grid(3, 2, 2), block(8, 4, 2);
    const int nb = 12, nt = 64;
    std::vector<float> x(nb * nt);
    for (int i = 0; i < nb * nt; ++i) x[i] = float(i % 97);
    float *dx, *dout;
    cudaMalloc(&dx, x.size() * 4);
    cudaMalloc(&dout, nb * 4);
    cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
    sum3d_kernel<<<grid, block>>>(dx, dout);
    std::vector<float> out(nb);
    cudaMemcpy(out.data(), dout, nb * 4, cudaMemcpyDeviceToHost);
    for (int b = 0; b < nb; ++b) {
      float s = 0;
      for (int t = 0; t < nt; ++t) s += x[b * nt + t];
      CHECK(out[b] == s);
    }
    // Dynamic shared memory: > 48 KB needs the attribute.
    const int n = 20000;  // 80 KB
    dyn_kernel<<<1, 128, n * 4>>>(dout, n);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(cudaFuncSetAttribute(dyn_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, n * 4) == cudaSuccess);
    dyn_kernel<<<1, 128, n * 4>>>(dout, n);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(out.data(), dout, 4, cudaMemcpyDeviceToHost);
    float want = 0;
    for (int i = 0; i < n; ++i) want += float(i);
    CHECK(out[0] == want);
    // Bad configuration.
    dyn_kernel<<<1, 2048>>>(dout, 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    // The race shows in one of two blocks (ascending / descending thread order).
    float* dr;
    cudaMalloc(&dr, 128 * 4);
    racy_kernel<<<2, 64>>>(dr);
    std::vector<float> r(128);
    cudaMemcpy(r.data(), dr, 128 * 4, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (float v : r) bad += !(v == 1.f);
    CHECK(bad > 0);
    cudaFree(dr);
    cudaFree(dx);
    cudaFree(dout);
  }
  // A shuffle whose mask names an exited lane is reported.
  {
    const int before = emu::error_count();
    exited_lane_kernel<<<1, 32>>>(d_i);
    CHECK(emu::error_count() > before);
  }
  // Out-of-bounds device write faults; a barrier deadlock aborts.
  CHECK(dies([] {
    float* p;
    cudaMalloc(&p, 100 * 4);
    oob_kernel<<<1, 1>>>(p, 100);
  }));
  CHECK(dies([] {
    int* p;
    cudaMalloc(&p, 4);
    deadlock_kernel<<<1, 64>>>(p);
  }));
  // Templated kernel names.
  templ_kernel<3><<<1, 32>>>(d_i);
  cudaMemcpy(hi.data(), d_i, 32 * 4, cudaMemcpyDeviceToHost);
  CHECK(hi[7] == 21);
  // bf16 / fp16 round to nearest even.
  {
    const std::vector<float> x = {1.f, 1.00390625f, 1.01171875f, 1.005859375f, -2.5f, 65504.f, 65520.f, 1e-8f, NAN};
    const int n = static_cast<int>(x.size());
    float* dx;
    __nv_bfloat16* db;
    __half* dh;
    cudaMalloc(&dx, n * 4), cudaMalloc(&db, n * 2), cudaMalloc(&dh, n * 2);
    cudaMemcpy(dx, x.data(), n * 4, cudaMemcpyHostToDevice);
    convert_kernel<<<1, 32>>>(dx, db, dh, n);
    std::vector<uint16_t> b(n), h(n);
    cudaMemcpy(b.data(), db, n * 2, cudaMemcpyDeviceToHost);
    cudaMemcpy(h.data(), dh, n * 2, cudaMemcpyDeviceToHost);
    CHECK(b[0] == 0x3f80 && b[1] == 0x3f80 && b[2] == 0x3f82 && b[3] == 0x3f81 && b[4] == 0xc020);
    CHECK((b[8] & 0x7fc0) == 0x7fc0);
    CHECK(h[0] == 0x3c00 && h[4] == 0xc100 && h[5] == 0x7bff && h[6] == 0x7c00 && h[7] == 0x0000);
    CHECK(__half2float(__ushort_as_half(0x0001)) == std::ldexp(1.f, -24));
    cudaFree(dx), cudaFree(db), cudaFree(dh);
  }
  // cuBLAS GemmEx, column-major, every op combination, padded leading dims.
  {
    cublasHandle_t hdl;
    cublasCreate(&hdl);
    const int m = 5, n = 4, k = 3;
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int bf = 0; bf < 2; ++bf) {
          const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
          const int lda = ar + 2, ldb = br + 1, ldc = m + 3;
          std::vector<float> A(lda * ac), B(ldb * bc), C(ldc * n, 7.f);
          for (size_t i = 0; i < A.size(); ++i) A[i] = float(int(i * 7 % 11) - 5) / 4;
          for (size_t i = 0; i < B.size(); ++i) B[i] = float(int(i * 5 % 13) - 6) / 8;
          float *dA, *dB, *dC;
          cudaMalloc(&dA, A.size() * 4), cudaMalloc(&dB, B.size() * 4), cudaMalloc(&dC, C.size() * 4);
          std::vector<uint16_t> Ab(A.size()), Bb(B.size());
          for (size_t i = 0; i < A.size(); ++i) Ab[i] = __bfloat16_as_ushort(__float2bfloat16_rn(A[i]));
          for (size_t i = 0; i < B.size(); ++i) Bb[i] = __bfloat16_as_ushort(__float2bfloat16_rn(B[i]));
          if (bf) {
            cudaMemcpy(dA, Ab.data(), Ab.size() * 2, cudaMemcpyHostToDevice);
            cudaMemcpy(dB, Bb.data(), Bb.size() * 2, cudaMemcpyHostToDevice);
          } else {
            cudaMemcpy(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice);
          }
          cudaMemcpy(dC, C.data(), C.size() * 4, cudaMemcpyHostToDevice);
          const float alpha = 2.f, beta = 0.5f;
          const cudaDataType t = bf ? CUDA_R_16BF : CUDA_R_32F;
          CHECK(cublasGemmEx(hdl, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, dA, t,
                             lda, dB, t, ldb, &beta, dC, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
          std::vector<float> got(C.size());
          cudaMemcpy(got.data(), dC, C.size() * 4, cudaMemcpyDeviceToHost);
          for (int j = 0; j < n; ++j)
            for (int i = 0; i < ldc; ++i) {
              if (i >= m) {
                CHECK(got[i + j * ldc] == 7.f);
                continue;
              }
              double s = 0;
              for (int p = 0; p < k; ++p)
                s += double(ta ? A[p + i * lda] : A[i + p * lda]) * (tb ? B[j + p * ldb] : B[p + j * ldb]);
              CHECK(std::fabs(got[i + j * ldc] - (alpha * s + beta * 7.0)) < 1e-5);
            }
          CHECK(cublasGemmEx(hdl, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, t, m - 1, dB, t, ldb, &beta, dC,
                             CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE);
          cudaFree(dA), cudaFree(dB), cudaFree(dC);
        }
  }
  // Tensor-core MMA and ldmatrix (kernels/cuda/mma.cuh) against plain loops.
  {
    std::vector<__nv_bfloat16> A(512), Bnk(512), Bkn(512);
    for (int i = 0; i < 16; ++i)
      for (int k = 0; k < 32; ++k) A[i * 32 + k] = __float2bfloat16(float((i * 7 + k * 3) % 11) - 5.f);
    for (int n = 0; n < 16; ++n)
      for (int k = 0; k < 32; ++k) {
        const __nv_bfloat16 v = __float2bfloat16(float((n * 5 + k * 13) % 9) * 0.25f - 1.f);
        Bnk[n * 32 + k] = v;
        Bkn[k * 16 + n] = v;
      }
    __nv_bfloat16 *dA, *dBnk, *dBkn;
    float *d1, *d2;
    cudaMalloc(&dA, 1024), cudaMalloc(&dBnk, 1024), cudaMalloc(&dBkn, 1024);
    cudaMalloc(&d1, 1024), cudaMalloc(&d2, 1024);
    cudaMemcpy(dA, A.data(), 1024, cudaMemcpyHostToDevice);
    cudaMemcpy(dBnk, Bnk.data(), 1024, cudaMemcpyHostToDevice);
    cudaMemcpy(dBkn, Bkn.data(), 1024, cudaMemcpyHostToDevice);
    for (int swap_a : {0, 1}) {
      mma_kernel<<<1, 32>>>(dA, dBnk, dBkn, d1, d2, swap_a);
      std::vector<float> g1(256), g2(256);
      cudaMemcpy(g1.data(), d1, 1024, cudaMemcpyDeviceToHost);
      cudaMemcpy(g2.data(), d2, 1024, cudaMemcpyDeviceToHost);
      int wrong = 0;
      for (int i = 0; i < 16; ++i)
        for (int n = 0; n < 16; ++n) {
          float s = 0.f;  // small integers and quarters: exact in fp32
          for (int k = 0; k < 32; ++k) s += float(A[i * 32 + k]) * float(Bnk[n * 32 + k]);
          wrong += g1[i * 16 + n] != s;
          if (!swap_a) CHECK(g1[i * 16 + n] == s && g2[i * 16 + n] == s);
        }
      if (swap_a) CHECK(wrong > 0);
    }
    cudaFree(dA), cudaFree(dBnk), cudaFree(dBkn), cudaFree(d1), cudaFree(d2);
  }
  int count = 0;
  CHECK(cudaGetDeviceCount(&count) == cudaSuccess && count == 1);
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0) == cudaSuccess && prop.multiProcessorCount == 132 && prop.major == 9);
  cudaFree(d_i);
  // Stream capture: nothing runs while capturing; each replay reads the
  // pinned input as it is then; refused calls and unpinned copies are reported.
  {
    cudaStream_t st;
    cudaStreamCreate(&st);
    float *h_in, *h_out, *d_x;
    cudaMallocHost(&h_in, 32 * 4);
    cudaMallocHost(&h_out, 32 * 4);
    cudaMalloc(&d_x, 32 * 4);
    for (int i = 0; i < 32; ++i) h_in[i] = float(i), h_out[i] = -1.f;
    cudaGraph_t g = nullptr;
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaSuccess);
    cudaStreamCaptureStatus cs;
    CHECK(cudaStreamIsCapturing(st, &cs) == cudaSuccess && cs == cudaStreamCaptureStatusActive);
    cudaMemcpyAsync(d_x, h_in, 32 * 4, cudaMemcpyHostToDevice, st);
    graph_scale_kernel<<<1, 32, 0, st>>>(d_x, 32, 2.f);
    cudaMemcpyAsync(h_out, d_x, 32 * 4, cudaMemcpyDeviceToHost, st);
    CHECK(cudaStreamEndCapture(st, &g) == cudaSuccess && g);
    CHECK(h_out[5] == -1.f);  // recorded, not run
    size_t nodes = 0;
    CHECK(cudaGraphGetNodes(g, nullptr, &nodes) == cudaSuccess && nodes == 3);
    cudaGraphExec_t ex = nullptr;
    CHECK(cudaGraphInstantiate(&ex, g, 0) == cudaSuccess);
    for (int rep = 1; rep <= 2; ++rep) {
      for (int i = 0; i < 32; ++i) h_in[i] = float(i * rep);
      CHECK(cudaGraphLaunch(ex, st) == cudaSuccess);
      cudaStreamSynchronize(st);
      bool ok = true;
      for (int i = 0; i < 32; ++i) ok = ok && h_out[i] == 2.f * i * rep;
      CHECK(ok);
    }
    cudaGraphExecDestroy(ex);
    cudaGraphDestroy(g);
    // A synchronous copy inside a capture: reported, the capture invalidated.
    int before = emu::error_count();
    cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal);
    CHECK(cudaMemcpy(d_x, h_in, 4, cudaMemcpyHostToDevice) == cudaErrorStreamCaptureUnsupported);
    CHECK(cudaStreamEndCapture(st, &g) == cudaErrorStreamCaptureInvalidated && !g);
    CHECK(emu::error_count() > before);
    // A kernel on the legacy default stream while another stream captures.
    before = emu::error_count();
    cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal);
    graph_scale_kernel<<<1, 32>>>(d_x, 32, 2.f);
    CHECK(cudaStreamEndCapture(st, &g) == cudaErrorStreamCaptureInvalidated);
    CHECK(emu::error_count() > before);
    // A captured copy from pageable host memory.
    before = emu::error_count();
    std::vector<float> pageable(32, 1.f);
    cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal);
    cudaMemcpyAsync(d_x, pageable.data(), 32 * 4, cudaMemcpyHostToDevice, st);
    CHECK(cudaStreamEndCapture(st, &g) == cudaSuccess);
    CHECK(emu::error_count() > before);
    cudaGraphDestroy(g);
    cudaFree(d_x);
    cudaFreeHost(h_in);
    cudaFreeHost(h_out);
    cudaStreamDestroy(st);
  }
  // Deferred streams: a stream's work runs when something needs it, so a
  // consumer on another stream that is not ordered after its producer reads
  // what was there before (as it may on a GPU); waiting on the producer's
  // event gives the product.
  {
    cudaStream_t a, b;
    cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking);
    cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking);
    cudaEvent_t ev;
    cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
    float *d_x, *d_y, *h;
    cudaMalloc(&d_x, 32 * 4);
    cudaMalloc(&d_y, 32 * 4);
    cudaMallocHost(&h, 32 * 4);
    cudaMemset(d_x, 0, 32 * 4);
    auto read_on_b = [&] {  // d_x as b's copy sees it, through d_y
      copy_kernel<<<1, 32, 0, b>>>(d_x, d_y, 32);
      cudaMemcpyAsync(h, d_y, 32 * 4, cudaMemcpyDeviceToHost, b);
      cudaStreamSynchronize(b);
      return h[0];
    };
    fill_kernel<<<1, 32, 0, a>>>(d_x, 32, 3.f);
    cudaEventRecord(ev, a);
    CHECK(read_on_b() == 0.f);  // no wait: b ran before a's fill
    cudaStreamWaitEvent(b, ev, 0);
    CHECK(read_on_b() == 3.f);  // ordered after the event: a ran up to it
    // A pinned copy waits for its stream's synchronisation.
    fill_kernel<<<1, 32, 0, a>>>(d_x, 32, 5.f);
    cudaMemcpyAsync(h, d_x, 32 * 4, cudaMemcpyDeviceToHost, a);
    CHECK(h[0] == 3.f);
    cudaEventRecord(ev, a);
    cudaEventSynchronize(ev);
    CHECK(h[0] == 5.f);
    // An event recorded before the producer does not order after it.
    cudaEventRecord(ev, a);
    fill_kernel<<<1, 32, 0, a>>>(d_x, 32, 7.f);
    cudaStreamWaitEvent(b, ev, 0);
    CHECK(read_on_b() == 5.f);
    cudaDeviceSynchronize();  // runs a's fill
    CHECK(read_on_b() == 7.f);
    cudaEventDestroy(ev);
    cudaFree(d_x);
    cudaFree(d_y);
    cudaFreeHost(h);
    cudaStreamDestroy(a);
    cudaStreamDestroy(b);
  }
  // cp.async (cuda_pipeline.h): copies land at the wait that covers their group.
  {
    std::vector<float> src(32);
    for (int i = 0; i < 32; ++i) src[i] = float(i + 1);
    float *d_src, *d_out;
    cudaMalloc(&d_src, 32 * 4);
    cudaMalloc(&d_out, 32 * 4);
    cudaMemcpy(d_src, src.data(), 32 * 4, cudaMemcpyHostToDevice);
    std::vector<float> out(32);
    for (int stage : {0, 1, 2}) {
      const int before = emu::error_count();
      cp_async_kernel<<<1, 8>>>(d_src, d_out, stage);
      cudaMemcpy(out.data(), d_out, 32 * 4, cudaMemcpyDeviceToHost);
      CHECK(emu::error_count() == before);
      for (int i = 0; i < 32; ++i) {
        const bool landed = stage == 2 || (stage == 1 && i < 16);
        const float want = i >= 16 && i % 4 == 3 ? 0.f : src[i];  // group 1 zero-fills each copy's last float
        CHECK(landed ? out[i] == want : std::isnan(out[i]));       // not landed: the poisoned shared memory
      }
    }
    const int before = emu::error_count();
    cp_async_kernel<<<1, 8>>>(d_src, d_out, 3);
    CHECK(emu::error_count() > before);
    cudaFree(d_src);
    cudaFree(d_out);
  }
  std::printf("cuda_emu selftest: %s (%d failure(s))\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
