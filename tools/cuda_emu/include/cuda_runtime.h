// cuda_emu: host emulation of the CUDA runtime and device language subset that
// ringscan's kernels use. NOT the real CUDA: see tools/cuda_emu/README.md.
//
// Kernels run on the host: the blocks of a grid one after another, the threads
// of a block as cooperative fibers (switched at __syncthreads, warp shuffles,
// votes and __syncwarp). Device memory is host memory with guard pages;
// launches are rewritten by rewrite_launches.py into ::emu::Launch(...)(args).
#pragma once
#define RINGSCAN_CUDA_EMU 1
#define CUDART_VERSION 13000
#define __CUDACC_EMU__ 1

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "driver_types_emu.h"

// ---- declaration specifiers ------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) alignas(n)
#define __constant__
#define __managed__
// rewrite_launches.py turns every `__shared__` declaration of a .cu/.cuh into a
// per-block shared-memory slot; this fallback only serves unrewritten code.
#ifndef __shared__
#define __shared__ static
#endif

struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
  constexpr dim3(uint3 u) : x(u.x), y(u.y), z(u.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct int2 { int x, y; };
struct int4 { int x, y, z, w; };
struct uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }

namespace emu {

enum FiberState : int { kRun = 0, kBar = 1, kWarp = 2, kDone = 3 };

struct Fiber {
  void* sp = nullptr;
  int state = kDone;
  uint3 tid{0, 0, 0};
  int linear = 0, lane = 0, warp = 0;
  unsigned mask = 0;        // mask of the warp operation it waits in
  uint64_t xval = 0;        // value it offers to a shuffle / vote
  uint64_t pub = 0;         // xval as it was when its warp op released (what other lanes read)
  uint64_t gen = 0;         // warp release generation it last left a warp op in
  int bar_site = 0;
};

// Current fiber and launch geometry (per host thread).
extern thread_local Fiber* g_cur;
extern thread_local uint3 g_block_idx;
extern thread_local dim3 g_block_dim, g_grid_dim;

void block_barrier();            // __syncthreads
void warp_op(unsigned mask);     // waits until every lane in mask reaches a warp op
Fiber* warp_lane(int lane);      // the fiber of `lane` in the current warp (null past the block's end)
void warp_check_source(const Fiber* src, const char* what);
uint64_t block_reduce_pred(int pred, int kind);  // __syncthreads_count/and/or

// Shared memory: static __shared__ declarations (rewritten) and the dynamic one.
int new_shared_site();
void* shared_site(int site, size_t bytes, size_t align);
void* dynamic_smem();

// Diagnostics: real bugs the emulator saw (printed to stderr, counted).
void report(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int error_count();
// Whether [p, p + n) is device memory (a range past its allocation is reported); for emu_nccl.cpp.
bool device_range(const void* p, size_t n, const char* api, const char* which);

struct FnRef {
  void* obj;
  void (*call)(void*);
  template <class F>
  FnRef(F& f) : obj(&f), call([](void* o) { (*static_cast<F*>(o))(); }) {}
};
void run_grid(const char* name, const void* fn, dim3 grid, dim3 block, size_t smem, FnRef body);
// Whether a launch's configuration is valid (else reported, the launch's error set).
bool launch_ok(const char* name, const void* fn, dim3 grid, dim3 block, size_t smem);
// Stream capture (cuda_runtime_api_emu.h): whether an operation on stream s
// is to be recorded into the active capture instead of run (work on the legacy
// default stream during a capture is reported), and the recording.
bool capturing(cudaStream_t s, const char* what);
void record(std::function<void()> op);
// Deferred streams (README "Streams"): whether an operation on stream s runs
// later (captured, or queued on s), and handing it over; an operation that
// runs now on the legacy stream first completes every queued one.
bool deferred(cudaStream_t s, const char* what);
void defer(cudaStream_t s, std::function<void()> op);
// Runs what is queued on s (all streams for the legacy one); for emu_nccl.cpp,
// whose operations run when called.
void stream_flush(cudaStream_t s);

// `kernel<<<g, b, smem, stream>>>(args)` becomes `::emu::Launch(kernel, "kernel", g, b, smem, stream)(args)`.
template <class... P>
struct Launch {
  void (*k)(P...);
  const char* name;
  dim3 g, b;
  size_t smem;
  cudaStream_t stream;
  Launch(void (*kernel)(P...), const char* n, dim3 grid, dim3 block, size_t s = 0, cudaStream_t st = nullptr)
      : k(kernel), name(n), g(grid), b(block), smem(s), stream(st) {}
  template <class... A>
  void operator()(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    // Arguments are converted to the parameter types once, as a launch does;
    // every thread then gets its own copy (by-value parameters).
    std::tuple<std::decay_t<P>...> params(static_cast<std::decay_t<P>>(std::forward<A>(a))...);
    // A graph's kernel node, or a kernel queued on its stream: run later with
    // these arguments; the configuration is checked now, as a launch does.
    if (deferred(stream, name)) {
      if (!launch_ok(name, reinterpret_cast<const void*>(k), g, b, smem)) return;
      defer(stream, [k = k, name = name, g = g, b = b, smem = smem, params]() mutable {
        auto body = [&] { std::apply(k, params); };
        run_grid(name, reinterpret_cast<const void*>(k), g, b, smem, FnRef(body));
      });
      return;
    }
    auto body = [&] { std::apply(k, params); };
    run_grid(name, reinterpret_cast<const void*>(k), g, b, smem, FnRef(body));
  }
};

template <class T>
T shfl(unsigned mask, T v, int kind, int arg, int width) {
  static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
  Fiber* f = g_cur;
  uint64_t raw = 0;
  std::memcpy(&raw, &v, sizeof(T));
  f->xval = raw;
  warp_op(mask);
  const int lane = f->lane;
  if (width <= 0 || width > 32 || (width & (width - 1))) width = 32;
  const int seg = lane & ~(width - 1);
  int src = lane;
  switch (kind) {
    case 0: src = seg + ((arg % width) + width) % width; break;               // idx
    case 1: src = lane - arg; if (src < seg) src = lane; break;             // up
    case 2: src = lane + arg; if (src >= seg + width) src = lane; break;    // down
    case 3: src = lane ^ arg; if (src >= seg + width) src = lane; break;    // xor
  }
  uint64_t r = raw;
  if (src != lane) {
    const Fiber* s = warp_lane(src);
    warp_check_source(s, "__shfl*_sync");
    if (s) r = s->pub;  // snapshot taken at the release: later offers do not disturb it
  }
  T out;
  std::memcpy(&out, &r, sizeof(T));
  return out;
}
unsigned vote(unsigned mask, int pred);  // ballot over the lanes of mask

}  // namespace emu

#define threadIdx (::emu::g_cur->tid)
#define blockIdx (::emu::g_block_idx)
#define blockDim (::emu::g_block_dim)
#define gridDim (::emu::g_grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { emu::block_barrier(); }
inline int __syncthreads_count(int p) { return static_cast<int>(emu::block_reduce_pred(p, 0)); }
inline int __syncthreads_and(int p) { return static_cast<int>(emu::block_reduce_pred(p, 1)); }
inline int __syncthreads_or(int p) { return static_cast<int>(emu::block_reduce_pred(p, 2)); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::warp_op(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}
template <class T> T __shfl_sync(unsigned m, T v, int src, int w = 32) { return emu::shfl(m, v, 0, src, w); }
template <class T> T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) { return emu::shfl(m, v, 1, int(d), w); }
template <class T> T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) { return emu::shfl(m, v, 2, int(d), w); }
template <class T> T __shfl_xor_sync(unsigned m, T v, int x, int w = 32) { return emu::shfl(m, v, 3, x, w); }
inline unsigned __ballot_sync(unsigned m, int p) { return emu::vote(m, p); }
inline int __any_sync(unsigned m, int p) { return emu::vote(m, p) != 0; }
inline int __all_sync(unsigned m, int p) { return emu::vote(m, !p) == 0; }
unsigned __activemask();
template <class T> T __ldg(const T* p) { return *p; }

// Atomics: fibers never preempt each other, so a plain read-modify-write is atomic.
template <class T> T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <class T> T atomicSub(T* p, T v) { T o = *p; *p = o - v; return o; }
template <class T> T atomicMax(T* p, T v) { T o = *p; *p = o < v ? v : o; return o; }
template <class T> T atomicMin(T* p, T v) { T o = *p; *p = v < o ? v : o; return o; }
template <class T> T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <class T> T atomicCAS(T* p, T c, T v) { T o = *p; if (o == c) *p = v; return o; }
template <class T> T atomicOr(T* p, T v) { T o = *p; *p = o | v; return o; }
template <class T> T atomicAnd(T* p, T v) { T o = *p; *p = o & v; return o; }
template <class T> T atomicXor(T* p, T v) { T o = *p; *p = o ^ v; return o; }
inline unsigned atomicInc(unsigned* p, unsigned v) { unsigned o = *p; *p = o >= v ? 0 : o + 1; return o; }

// ---- device math (host libm; the intrinsics' reduced accuracy is not modelled) ----
using std::isfinite;
using std::isinf;
using std::isnan;
using std::signbit;
template <class A, class B>
constexpr std::common_type_t<A, B> min(A a, B b) { return b < a ? b : a; }
template <class A, class B>
constexpr std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.f / sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : (x != x ? 0.f : x)); }
inline float exp10f_emu(float x) { return powf(10.f, x); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; std::memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int u; std::memcpy(&u, &f, 4); return u; }
inline double __longlong_as_double(long long u) { double f; std::memcpy(&f, &u, 8); return f; }
inline long long __double_as_longlong(double f) { long long u; std::memcpy(&u, &f, 8); return u; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }
inline int __clzll(unsigned long long x) { return x ? __builtin_clzll(x) : 64; }
inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned __umulhi(unsigned a, unsigned b) { return static_cast<unsigned>((uint64_t(a) * b) >> 32); }

#include "cuda_runtime_api_emu.h"
