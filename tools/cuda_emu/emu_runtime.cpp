// cuda_emu runtime: fiber scheduler for kernel launches, device memory with
// guard pages, the runtime API subset and a plain-loop cuBLAS GEMM.
// See README.md for what is and is not modelled.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "cublas_v2.h"
#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cuda_runtime.h"

// ---------------------------------------------------------------------------
// Context switch (x86-64 System V): saves the callee-saved registers on the
// current stack, stores rsp to *from, loads `to`. MXCSR and the x87 control
// word are not switched (kernels do not change rounding modes; saving them
// doubled the cost of a switch).
extern "C" void emu_ctx_switch(void** from, void* to);
asm(R"(
.text
.globl emu_ctx_switch
.type emu_ctx_switch,@function
emu_ctx_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size emu_ctx_switch, .-emu_ctx_switch
.section .note.GNU-stack,"",@progbits
.text
)");

namespace emu {

thread_local Fiber* g_cur = nullptr;
thread_local uint3 g_block_idx{0, 0, 0};
thread_local dim3 g_block_dim, g_grid_dim;

namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr int kMaxThreads = 1024;
constexpr size_t kStaticSmemLimit = 48 * 1024;        // without opt-in
constexpr size_t kSmemOptinLimit = 227 * 1024;        // sm_90 per-block maximum (232448 B)
constexpr size_t kTotalMem = 150'109'732'864ull;      // H200 141 GB as cudaMemGetInfo reports it
constexpr size_t kReservedMem = 600ull << 20;         // context + cuBLAS workspace, roughly

std::mutex g_mu;  // memory bookkeeping and diagnostics (host threads may share them)
int g_errors = 0;
std::map<std::string, int> g_seen;  // diagnostics printed once per text

struct Alloc {
  char* base;
  size_t map_bytes;
  size_t bytes;
};
std::map<uintptr_t, Alloc> g_allocs;  // user pointer -> mapping
size_t g_alloc_bytes = 0;
std::unordered_map<const void*, int> g_max_dyn_smem;  // cudaFuncSetAttribute

thread_local cudaError_t g_last_error = cudaSuccess;
thread_local int g_device = 0;

// Per host thread launch state.
struct LaunchState {
  Fiber fibers[kMaxThreads];
  char* stacks = nullptr;
  void* sched_sp = nullptr;
  FnRef* body = nullptr;
  int nthreads = 0;
  const char* kernel = "";
  uint64_t warp_gen = 0;
  // shared memory
  std::vector<char> smem;
  size_t smem_static_used = 0, smem_dirty = 0;
  uint64_t block_epoch = 0;
  size_t dyn_bytes = 0;
  char* dyn = nullptr;
  std::vector<char> dyn_buf;
  uint64_t pred_acc = 0;
};
thread_local LaunchState* g_ls = nullptr;
thread_local const char* g_in_kernel = nullptr;

struct Site {
  uint64_t epoch = 0;
  size_t offset = 0;
};
std::vector<Site>& sites() {
  thread_local std::vector<Site> s;
  return s;
}
int g_next_site = 0;

void vreport(const char* fmt, va_list ap) {
  char buf[2048];
  vsnprintf(buf, sizeof buf, fmt, ap);
  std::lock_guard<std::mutex> lock(g_mu);
  ++g_errors;
  if (g_seen[buf]++ == 0) std::fprintf(stderr, "[cuda-emu] ERROR: %s\n", buf);
  if (getenv("CUDA_EMU_ABORT") && atoi(getenv("CUDA_EMU_ABORT"))) abort();
}

void segv_handler(int sig, siginfo_t* si, void*) {
  char buf[512];
  int n;
  if (g_in_kernel && g_cur)
    n = snprintf(buf, sizeof buf,
                 "[cuda-emu] FAULT: signal %d at address %p in kernel %s, block (%u,%u,%u), thread (%u,%u,%u): "
                 "an out-of-bounds device or shared access (device arrays end at a guard page, rounded up to 256 B)\n",
                 sig, si->si_addr, g_in_kernel, g_block_idx.x, g_block_idx.y, g_block_idx.z, g_cur->tid.x,
                 g_cur->tid.y, g_cur->tid.z);
  else
    n = snprintf(buf, sizeof buf, "[cuda-emu] FAULT: signal %d at address %p in host code (not in a kernel)\n", sig,
                 si->si_addr);
  if (n > 0) (void)!write(2, buf, static_cast<size_t>(n));
  signal(sig, SIG_DFL);
  raise(sig);
}

struct Init {
  Init() {
    struct sigaction sa {};
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
    // Fibers run on their own stacks: the handler needs an alternate one.
    static char altstack[64 * 1024];
    stack_t ss{};
    ss.ss_sp = altstack;
    ss.ss_size = sizeof altstack;
    sigaltstack(&ss, nullptr);
  }
  ~Init() {
    if (!g_errors) return;
    std::fprintf(stderr, "[cuda-emu] %d error report(s) during this run (see ERROR lines above)\n", g_errors);
    // A test that passed while the emulator saw a fault did not pass: the exit
    // status says so (the self-test, whose faults are deliberate, opts out).
    const char* expected = std::getenv("CUDA_EMU_EXPECT_ERRORS");
    if (!(expected && std::atoi(expected))) {
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
} g_init;

LaunchState& ls() {
  if (!g_ls) {
    g_ls = new LaunchState;
    g_ls->stacks = static_cast<char*>(mmap(nullptr, kStackBytes * kMaxThreads, PROT_READ | PROT_WRITE,
                                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (g_ls->stacks == MAP_FAILED) {
      std::fprintf(stderr, "[cuda-emu] cannot map fiber stacks\n");
      abort();
    }
    g_ls->smem.resize(kSmemOptinLimit + 4096);
  }
  return *g_ls;
}

[[noreturn]] void fiber_entry() {
  LaunchState& s = *g_ls;
  s.body->call(s.body->obj);
  g_cur->state = kDone;
  emu_ctx_switch(&g_cur->sp, s.sched_sp);
  __builtin_unreachable();
}

void yield(int state) {
  Fiber* f = g_cur;
  f->state = state;
  emu_ctx_switch(&f->sp, g_ls->sched_sp);
}

const char* state_name(int s) {
  switch (s) {
    case kRun: return "running";
    case kBar: return "__syncthreads";
    case kWarp: return "warp op";
    default: return "exited";
  }
}

[[noreturn]] void deadlock() {
  LaunchState& s = *g_ls;
  std::fprintf(stderr, "[cuda-emu] DEADLOCK in kernel %s block (%u,%u,%u): threads wait at different barriers:\n",
               s.kernel, g_block_idx.x, g_block_idx.y, g_block_idx.z);
  int shown = 0;
  for (int i = 0; i < s.nthreads && shown < 64; ++i) {
    const Fiber& f = s.fibers[i];
    if (i % 32 == 0 || (i > 0 && f.state != s.fibers[i - 1].state)) {
      std::fprintf(stderr, "  thread %d (warp %d lane %d): %s mask %08x\n", i, f.warp, f.lane, state_name(f.state), f.mask);
      ++shown;
    }
  }
  abort();
}

// cp.async (include/cuda_pipeline.h): each thread's queued copies and the
// end of each committed group in that queue.
struct AsyncQueue {
  struct Copy {
    void* dst;
    const void* src;
    size_t bytes, zfill;
  };
  std::vector<Copy> pending;
  std::vector<size_t> group_end;  // pending.size() at each commit, oldest first
};
thread_local std::vector<AsyncQueue> g_async(kMaxThreads);

AsyncQueue& my_async(const char* what) {
  if (!g_cur) {
    report("%s called outside a kernel", what);
    abort();
  }
  return g_async[g_cur->linear];
}

// Copies left un-waited when a block ends: the GPU gives no guarantee they
// landed (and here they would land in the next block's shared memory).
void async_block_end(const LaunchState& s) {
  for (int i = 0; i < s.nthreads; ++i) {
    AsyncQueue& q = g_async[i];
    if (!q.pending.empty())
      report("kernel %s block (%u,%u,%u) thread %d: %zu cp.async copies never waited for (__pipeline_wait_prior)",
             s.kernel, g_block_idx.x, g_block_idx.y, g_block_idx.z, i, q.pending.size());
    q.pending.clear();
    q.group_end.clear();
  }
}

}  // namespace

void async_copy(void* dst, const void* src, size_t bytes, size_t zfill) {
  AsyncQueue& q = my_async("__pipeline_memcpy_async");
  if ((bytes != 4 && bytes != 8 && bytes != 16) || zfill > bytes ||
      reinterpret_cast<uintptr_t>(dst) % bytes != 0 || reinterpret_cast<uintptr_t>(src) % bytes != 0) {
    report("__pipeline_memcpy_async: size %zu (4, 8 or 16), zfill %zu, dst %p and src %p (aligned to the size)", bytes,
           zfill, dst, src);
    return;
  }
  q.pending.push_back({dst, src, bytes, zfill});
}

void async_commit() {
  AsyncQueue& q = my_async("__pipeline_commit");
  q.group_end.push_back(q.pending.size());
}

// Completes every committed group but the newest `prior` ones, in order.
void async_wait_prior(size_t prior) {
  AsyncQueue& q = my_async("__pipeline_wait_prior");
  if (q.group_end.size() <= prior) return;
  const size_t groups = q.group_end.size() - prior, done = q.group_end[groups - 1];
  for (size_t i = 0; i < done; ++i) {
    const AsyncQueue::Copy& c = q.pending[i];
    std::memcpy(c.dst, c.src, c.bytes - c.zfill);
    std::memset(static_cast<char*>(c.dst) + (c.bytes - c.zfill), 0, c.zfill);
  }
  q.pending.erase(q.pending.begin(), q.pending.begin() + static_cast<std::ptrdiff_t>(done));
  q.group_end.erase(q.group_end.begin(), q.group_end.begin() + static_cast<std::ptrdiff_t>(groups));
  for (size_t& e : q.group_end) e -= done;
}

namespace {

// Runs one block to completion.
void run_block(LaunchState& s) {
  const int n = s.nthreads;
  for (int i = 0; i < n; ++i) {
    Fiber& f = s.fibers[i];
    f.state = kRun;
    f.linear = i;
    f.lane = i & 31;
    f.warp = i >> 5;
    f.tid = uint3{i % g_block_dim.x, (i / g_block_dim.x) % g_block_dim.y, i / (g_block_dim.x * g_block_dim.y)};
    f.mask = 0;
    f.gen = 0;
    // Stack tops staggered by 64 B x (i % 61): equal offsets mod 4 KB would put
    // every fiber's hot frame in the same cache sets.
    char* top = s.stacks + (static_cast<size_t>(i) + 1) * kStackBytes - 64 * (i % 61) - 128;
    uint64_t* sp = reinterpret_cast<uint64_t*>(top);
    *--sp = 0;                                         // alignment slot (as after a call)
    *--sp = reinterpret_cast<uint64_t>(&fiber_entry);  // `ret` target
    for (int r = 0; r < 6; ++r) *--sp = 0;             // rbp rbx r12 r13 r14 r15
    f.sp = sp;
  }
  // Order: ascending, descending, or alternating per block (default), so a
  // missing barrier shows whichever way the race goes.
  static const int order_mode = [] {
    const char* o = getenv("CUDA_EMU_ORDER");
    if (!o) return 2;
    return std::strcmp(o, "forward") == 0 ? 0 : std::strcmp(o, "reverse") == 0 ? 1 : 2;
  }();
  const bool reverse = order_mode == 1 || (order_mode == 2 && (s.block_epoch & 1));
  const int nwarps = (n + 31) / 32;
  for (;;) {
    // Each warp runs alone up to the next block barrier (or its end): its warp
    // ops release as soon as its own lanes arrive. So warps drift apart as far
    // as the GPU allows them to, and a missing __syncthreads between warps
    // shows (a warp reads shared memory another warp has already overwritten).
    for (int wk = 0; wk < nwarps; ++wk) {
      const int w = reverse ? nwarps - 1 - wk : wk;
      const int lo = w * 32, hi = std::min(n, lo + 32);
      const unsigned exists = hi - lo == 32 ? 0xffffffffu : ((1u << (hi - lo)) - 1u);
      for (;;) {
        for (int k = lo; k < hi; ++k) {
          Fiber& f = s.fibers[reverse ? hi - 1 - (k - lo) : k];
          if (f.state != kRun) continue;
          g_cur = &f;
          emu_ctx_switch(&s.sched_sp, f.sp);
        }
        unsigned waiting = 0, done = 0;
        for (int i = lo; i < hi; ++i) {
          const int st = s.fibers[i].state;
          waiting |= unsigned(st == kWarp) << (i - lo);
          done |= unsigned(st == kDone) << (i - lo);
        }
        if (!waiting) break;
        // A waiting lane may go once every lane of its mask waits in a warp op too.
        unsigned go = 0;
        for (int i = lo; i < hi; ++i) {
          if (!(waiting >> (i - lo) & 1u)) continue;
          const unsigned m = s.fibers[i].mask & exists;
          if (m & done)
            report("kernel %s: a warp operation's mask (%08x) names a lane that has exited (undefined on the GPU)",
                   s.kernel, s.fibers[i].mask);
          if ((m & ~waiting & ~done) == 0) go |= 1u << (i - lo);
        }
        if (!go) break;  // its mask names lanes at a block barrier: a deadlock (reported below)
        const uint64_t gen = ++s.warp_gen;
        unsigned first_mask = 0;
        bool first = true;
        for (int i = lo; i < hi; ++i)
          if (go >> (i - lo) & 1u) {
            Fiber& f = s.fibers[i];
            if (first) first_mask = f.mask, first = false;
            else if (f.mask != first_mask)
              report("kernel %s: lanes of one warp op use different masks (%08x vs %08x)", s.kernel, first_mask, f.mask);
            f.state = kRun;
            f.gen = gen;
            f.pub = f.xval;
          }
      }
    }
    bool all_done = true, any_warp = false;
    for (int i = 0; i < n; ++i) {
      all_done = all_done && s.fibers[i].state == kDone;
      any_warp = any_warp || s.fibers[i].state == kWarp;
    }
    if (all_done) return;
    if (any_warp) deadlock();  // a warp op waits for lanes that wait at __syncthreads
    // Every live thread is at a block barrier.
    for (int i = 0; i < n; ++i)
      if (s.fibers[i].state == kBar) s.fibers[i].state = kRun;
  }
}

}  // namespace

void report(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
}
int error_count() { return g_errors; }

void block_barrier() { yield(kBar); }

void warp_op(unsigned mask) {
  Fiber* f = g_cur;
  if (!(mask >> f->lane & 1u))
    report("kernel %s: a warp operation's mask %08x does not include the calling lane %d", g_ls->kernel, mask, f->lane);
  f->mask = mask;
  yield(kWarp);
}

Fiber* warp_lane(int lane) {
  const int i = g_cur->warp * 32 + lane;
  return i < g_ls->nthreads ? &g_ls->fibers[i] : nullptr;
}

void warp_check_source(const Fiber* src, const char* what) {
  if (!src) {
    report("kernel %s: %s reads lane past the end of the block (partial warp): undefined value", g_ls->kernel, what);
    return;
  }
  if (src->gen != g_cur->gen)
    report("kernel %s: %s reads lane %d, which did not take part in this operation: undefined value on the GPU",
           g_ls->kernel, what, src->lane);
}

unsigned vote(unsigned mask, int pred) {
  Fiber* f = g_cur;
  f->xval = pred ? 1 : 0;
  warp_op(mask);
  unsigned r = 0;
  for (int l = 0; l < 32; ++l) {
    if (!(mask >> l & 1u)) continue;
    const Fiber* s = warp_lane(l);
    if (s && s->gen == f->gen && s->pub) r |= 1u << l;
  }
  return r;
}

uint64_t block_reduce_pred(int pred, int kind) {
  LaunchState& s = *g_ls;
  g_cur->xval = pred ? 1 : 0;
  yield(kBar);
  uint64_t cnt = 0;
  int live = 0;
  for (int i = 0; i < s.nthreads; ++i)
    if (s.fibers[i].state != kDone) ++live, cnt += s.fibers[i].xval;
  yield(kBar);
  if (kind == 0) return cnt;
  if (kind == 1) return cnt == static_cast<uint64_t>(live);
  return cnt != 0;
}

int new_shared_site() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_next_site++;
}

void* shared_site(int site, size_t bytes, size_t align) {
  LaunchState& s = *g_ls;
  auto& v = sites();
  if (static_cast<size_t>(site) >= v.size()) v.resize(site + 1);
  Site& st = v[site];
  if (st.epoch != s.block_epoch) {
    size_t off = (s.smem_static_used + align - 1) / align * align;
    if (off + bytes > kStaticSmemLimit) {
      report("kernel %s: static __shared__ memory exceeds 48 KB (%zu B): it would not compile", s.kernel, off + bytes);
    }
    if (off + bytes + s.dyn_bytes > kSmemOptinLimit) {
      report("kernel %s: static (%zu B) + dynamic (%zu B) shared memory exceed 227 KB", s.kernel, off + bytes, s.dyn_bytes);
      abort();
    }
    st.epoch = s.block_epoch;
    st.offset = off;
    s.smem_static_used = off + bytes;
    if (s.smem_static_used > s.smem_dirty) s.smem_dirty = s.smem_static_used;
  }
  return s.smem.data() + st.offset;
}

void* dynamic_smem() { return g_ls->dyn; }

bool launch_ok(const char* name, const void* fn, dim3 grid, dim3 block, size_t smem) {
  if (g_in_kernel) {
    report("kernel %s launched from inside kernel %s (dynamic parallelism is not emulated)", name, g_in_kernel);
    abort();
  }
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  if (nthreads == 0 || nthreads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    report("launch of %s with grid (%u,%u,%u) block (%u,%u,%u): invalid configuration", name, grid.x, grid.y, grid.z,
           block.x, block.y, block.z);
    g_last_error = cudaErrorInvalidConfiguration;
    return false;
  }
  int max_dyn = 48 * 1024;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_max_dyn_smem.find(fn);
    if (it != g_max_dyn_smem.end()) max_dyn = it->second;
  }
  if (smem > static_cast<size_t>(max_dyn) || smem > kSmemOptinLimit) {
    report("launch of %s with %zu B of dynamic shared memory, above the %d B allowed (cudaFuncSetAttribute "
           "MaxDynamicSharedMemorySize): the launch fails",
           name, smem, max_dyn);
    g_last_error = cudaErrorInvalidValue;
    return false;
  }
  return true;
}

void run_grid(const char* name, const void* fn, dim3 grid, dim3 block, size_t smem, FnRef body) {
  if (!launch_ok(name, fn, grid, block, smem)) return;
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  LaunchState& s = ls();
  s.nthreads = static_cast<int>(nthreads);
  s.kernel = name;
  s.body = &body;
  s.dyn_bytes = smem;
  if (s.dyn_buf.size() < smem + 16) s.dyn_buf.resize(smem + 16);
  s.dyn = smem ? reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(s.dyn_buf.data()) + 15) & ~uintptr_t(15)) : nullptr;
  g_grid_dim = grid;
  g_block_dim = block;
  g_in_kernel = name;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        g_block_idx = uint3{x, y, z};
        // Shared memory starts undefined: poison it (NaN for floats, -1 for ints).
        ++s.block_epoch;
        std::memset(s.smem.data(), 0xFF, s.smem_dirty);
        s.smem_static_used = 0;
        if (smem) std::memset(s.dyn, 0xFF, smem);
        run_block(s);
        async_block_end(s);
      }
  g_in_kernel = nullptr;
  g_cur = nullptr;
}

cudaError_t func_set_attribute(const void* fn, cudaFuncAttribute a, int v) {
  if (a == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (v < 0 || static_cast<size_t>(v) > kSmemOptinLimit) return g_last_error = cudaErrorInvalidValue;
    std::lock_guard<std::mutex> lock(g_mu);
    g_max_dyn_smem[fn] = v;
  }
  return cudaSuccess;
}

// ---- device memory ---------------------------------------------------------
namespace {

// The allocation that holds address p, or null.
const Alloc* find_alloc(const void* p, uintptr_t* user = nullptr) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  if (a >= it->first + std::max<size_t>(it->second.bytes, 1)) return nullptr;
  if (user) *user = it->first;
  return &it->second;
}

bool is_device(const void* p) {
  std::lock_guard<std::mutex> lock(g_mu);
  return find_alloc(p) != nullptr;
}

// Whether p is device memory; reports a range [p, p + n) that runs past its allocation.
bool check_device_range(const void* p, size_t n, const char* api, const char* which) {
  if (n == 0) return true;
  size_t past = 0, bytes = 0;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    uintptr_t base = 0;
    const Alloc* al = find_alloc(p, &base);
    if (!al) return false;
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (a + n > base + al->bytes) past = a + n - (base + al->bytes), bytes = al->bytes;
  }
  if (past)
    report("%s: %s range [%p, +%zu) runs %zu B past the end of its %zu B device allocation", api, which, p, n, past,
           bytes);
  return true;
}

cudaError_t copy_check(void* dst, const void* src, size_t n, cudaMemcpyKind k, const char* api) {
  {  // cudaMemcpy has memcpy's contract: the ranges must not overlap (here it would be a memmove)
    const uintptr_t d = reinterpret_cast<uintptr_t>(dst), s = reinterpret_cast<uintptr_t>(src);
    if (n && d < s + n && s < d + n)
      report("%s: source [%p, +%zu) and destination [%p, +%zu) overlap (undefined in CUDA)", api, src, n, dst, n);
  }
  const bool dd = check_device_range(dst, n, api, "destination");
  const bool sd = check_device_range(src, n, api, "source");
  if (n == 0) return cudaSuccess;
  bool want_dd = false, want_sd = false;
  switch (k) {
    case cudaMemcpyHostToHost: break;
    case cudaMemcpyHostToDevice: want_dd = true; break;
    case cudaMemcpyDeviceToHost: want_sd = true; break;
    case cudaMemcpyDeviceToDevice: want_dd = want_sd = true; break;
    case cudaMemcpyDefault: return cudaSuccess;
    default: return g_last_error = cudaErrorInvalidMemcpyDirection;
  }
  if (dd != want_dd || sd != want_sd)
    report("%s: kind %d but the destination is %s memory and the source %s memory", api, int(k),
           dd ? "device" : "host", sd ? "device" : "host");
  return cudaSuccess;
}

cudaError_t do_malloc(void** p, size_t n, const char* api) {
  if (!p) return g_last_error = cudaErrorInvalidValue;
  if (n == 0) {
    *p = nullptr;
    return cudaSuccess;
  }
  const size_t page = 4096;
  const size_t rounded = (n + 255) / 256 * 256;
  const size_t body = (rounded + page - 1) / page * page;
  size_t free_b = kTotalMem - kReservedMem;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    free_b -= std::min(free_b, g_alloc_bytes);
  }
  if (n > free_b) return g_last_error = cudaErrorMemoryAllocation;
  char* base = static_cast<char*>(mmap(nullptr, body + page, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (base == MAP_FAILED) return g_last_error = cudaErrorMemoryAllocation;
  mprotect(base + body, page, PROT_NONE);  // guard page after the (256 B rounded) end
  char* user = base + (body - rounded);
  std::memset(user, 0xFF, rounded);  // uninitialised device memory reads as NaN / -1
  std::lock_guard<std::mutex> lock(g_mu);
  g_allocs[reinterpret_cast<uintptr_t>(user)] = Alloc{base, body + page, n};
  g_alloc_bytes += n;
  *p = user;
  (void)api;
  return cudaSuccess;
}

cudaError_t do_free(void* p, const char* api) {
  if (!p) return cudaSuccess;
  std::unique_lock<std::mutex> lock(g_mu);
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end()) {
    lock.unlock();
    report("%s(%p): not a pointer returned by cudaMalloc (or freed twice)", api, p);
    return g_last_error = cudaErrorInvalidValue;
  }
  munmap(it->second.base, it->second.map_bytes);
  g_alloc_bytes -= it->second.bytes;
  g_allocs.erase(it);
  return cudaSuccess;
}

}  // namespace
bool device_range(const void* p, size_t n, const char* api, const char* which) {
  return is_device(p) && check_device_range(p, n, api, which);
}

}  // namespace emu

using namespace emu;

unsigned __activemask() {
  unsigned m = 0;
  for (int l = 0; l < 32; ++l) {
    const Fiber* f = warp_lane(l);
    if (f && f->state != kDone) m |= 1u << l;
  }
  return m;
}

static cudaError_t emu_memcpy2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                                cudaMemcpyKind k);
static cudaError_t emu_memset(void* p, int v, size_t n);
static cudaError_t emu_memset2d(void* p, size_t pitch, int v, size_t width, size_t height);

// ---- stream capture ---------------------------------------------------------
struct CUgraph_st {
  std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> ops;
};

namespace emu {
namespace {
struct Capture {
  cudaStream_t stream = nullptr;
  bool invalid = false;
  std::vector<std::function<void()>> ops;
};
Capture* g_capture = nullptr;  // one capture at a time (one emulated device, one host thread captures)
std::map<uintptr_t, size_t> g_pinned;  // cudaMallocHost / cudaHostAlloc: base -> bytes

bool is_legacy(cudaStream_t s) { return s == nullptr || s == cudaStreamLegacy; }

// A call CUDA refuses during a (global mode) capture: reported, the capture invalidated.
cudaError_t refuse_in_capture(const char* api) {
  if (!g_capture) return cudaSuccess;
  report("%s during a stream capture: not permitted (cudaErrorStreamCaptureUnsupported); the capture is invalidated",
         api);
  g_capture->invalid = true;
  return g_last_error = cudaErrorStreamCaptureUnsupported;
}

bool is_pinned(const void* p, size_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_pinned.upper_bound(a);
  if (it == g_pinned.begin()) return false;
  --it;
  return a + n <= it->first + it->second;
}
}  // namespace

bool capturing(cudaStream_t s, const char* what) {
  if (!g_capture) return false;
  if (s == g_capture->stream) return true;
  if (is_legacy(s)) {
    report("%s on the legacy default stream while stream %p captures: the capture is invalidated "
           "(cudaErrorStreamCaptureImplicit; pass the op its stream)",
           what, static_cast<void*>(g_capture->stream));
    g_capture->invalid = true;
  }
  return false;
}
void record(std::function<void()> op) { g_capture->ops.push_back(std::move(op)); }
}  // namespace emu

// ---- deferred streams ----------------------------------------------------------
// A GPU runs a stream's work after the call that queued it, and two streams'
// work in any order their events allow. Run eagerly, a missing
// cudaStreamWaitEvent or synchronisation can never show. So (unless
// CUDA_EMU_STREAMS=eager) each created stream keeps a queue, and its work runs
// only when something needs it: a synchronisation of that stream, an event on
// it or the device; a stream that reaches a cudaStreamWaitEvent (then the
// event's stream runs up to the event, no further); an operation on the legacy
// stream, a synchronous API, cudaFree or an NCCL call on it. A consumer that
// is not ordered after its producer therefore runs first and reads stale or
// poisoned memory, as it may on a GPU.
struct CUstream_st {
  std::deque<std::function<void()>> queue;
  uint64_t queued = 0, done = 0;  // operations ever queued / ever run
};
struct CUevent_st {
  CUstream_st* stream = nullptr;  // the stream of the last record (null: never recorded, or legacy)
  uint64_t position = 0;          // complete once stream->done reaches it
};

namespace emu {
namespace {
std::recursive_mutex g_streams_mu;  // every queue; held while queued work runs
std::set<CUstream_st*> g_streams;
thread_local int g_running_queued = 0;  // > 0 while queued work runs: its own calls run at once

bool deferring() {
  static const bool on = [] {
    const char* e = std::getenv("CUDA_EMU_STREAMS");
    return !(e && std::string(e) == "eager");
  }();
  return on;
}
bool is_special(cudaStream_t s) { return is_legacy(s) || s == cudaStreamPerThread; }

void run_until(CUstream_st* s, uint64_t position) {
  std::lock_guard<std::recursive_mutex> lock(g_streams_mu);
  while (s->done < position) {
    std::function<void()> op = std::move(s->queue.front());
    s->queue.pop_front();
    ++s->done;
    ++g_running_queued;
    op();
    --g_running_queued;
  }
}
void flush_all() {
  std::lock_guard<std::recursive_mutex> lock(g_streams_mu);
  for (bool again = true; again;) {  // queued work may wait on other streams: repeat until all are empty
    again = false;
    for (CUstream_st* s : g_streams)
      if (s->done < s->queued) {
        run_until(s, s->queued);
        again = true;
      }
  }
}
}  // namespace

bool deferred(cudaStream_t s, const char* what) {
  if (g_running_queued) return false;  // queued work (or a graph's node) running now
  if (capturing(s, what)) return true;
  if (!deferring()) return false;
  if (is_special(s)) {  // the legacy stream waits for the others (all of them, here)
    flush_all();
    return false;
  }
  return true;
}
void defer(cudaStream_t s, std::function<void()> op) {
  if (g_capture && s == g_capture->stream) return record(std::move(op));
  std::lock_guard<std::recursive_mutex> lock(g_streams_mu);
  s->queue.push_back(std::move(op));
  ++s->queued;
}
void stream_flush(cudaStream_t s) {
  if (g_running_queued || !deferring()) return;
  if (is_special(s)) return flush_all();
  run_until(s, s->queued);
}
void device_flush() {
  if (!g_running_queued && deferring()) flush_all();
}

// A captured host<->device copy must use pinned host memory (a pageable
// buffer would be read or written at capture time, not replay time).
void check_captured_copy(const void* dst, const void* src, size_t n, cudaMemcpyKind k, const char* api) {
  const bool src_host = k == cudaMemcpyHostToDevice || (k == cudaMemcpyDefault && !is_device(src));
  const bool dst_host = k == cudaMemcpyDeviceToHost || (k == cudaMemcpyDefault && !is_device(dst));
  if (src_host && n && !is_pinned(src, n)) report("%s captured from pageable host memory %p (not cudaMallocHost)", api, src);
  if (dst_host && n && !is_pinned(dst, n)) report("%s captured to pageable host memory %p (not cudaMallocHost)", api, dst);
}
}  // namespace emu

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (emu::is_legacy(s)) {
    report("cudaStreamBeginCapture on the legacy default stream: not permitted");
    return g_last_error = cudaErrorStreamCaptureUnsupported;
  }
  if (emu::g_capture) {
    report("cudaStreamBeginCapture while another capture is active (not emulated)");
    return g_last_error = cudaErrorStreamCaptureUnsupported;
  }
  emu::g_capture = new emu::Capture{s, false, {}};
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  if (!emu::g_capture || emu::g_capture->stream != s) {
    report("cudaStreamEndCapture on a stream that is not capturing");
    return g_last_error = cudaErrorInvalidValue;
  }
  emu::Capture* c = emu::g_capture;
  emu::g_capture = nullptr;
  const bool invalid = c->invalid;
  *g = invalid ? nullptr : new CUgraph_st{std::move(c->ops)};
  delete c;
  return invalid ? (g_last_error = cudaErrorStreamCaptureInvalidated) : cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  *status = emu::g_capture && emu::g_capture->stream == s
                ? (emu::g_capture->invalid ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive)
                : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
  if (!g) return g_last_error = cudaErrorInvalidValue;
  *e = new CUgraphExec_st{g->ops};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
  if (!e) return g_last_error = cudaErrorInvalidValue;
  if (emu::g_capture) return emu::refuse_in_capture("cudaGraphLaunch (a graph inside a capture is not emulated)");
  auto replay = [ops = e->ops] {  // the nodes as instantiated, even if e is destroyed before it runs
    for (auto& op : ops) op();
  };
  if (emu::deferred(s, "cudaGraphLaunch")) emu::defer(s, std::move(replay));
  else replay();
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphGetNodes(cudaGraph_t g, cudaGraphNode_t* nodes, size_t* count) {
  if (!g || !count) return g_last_error = cudaErrorInvalidValue;
  if (nodes) return g_last_error = cudaErrorInvalidValue;  // only the count is emulated
  *count = g->ops.size();
  return cudaSuccess;
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    default: return "cudaError (emulated)";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    default: return "unknown error (cuda_emu)";
  }
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = g_last_error;
  g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return g_last_error; }

static int emu_device_count() {
  static const int n = getenv("CUDA_EMU_DEVICES") ? atoi(getenv("CUDA_EMU_DEVICES")) : 1;
  return n;
}
cudaError_t cudaGetDeviceCount(int* n) {
  *n = emu_device_count();
  return *n > 0 ? cudaSuccess : (g_last_error = cudaErrorNoDevice);
}
cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= emu_device_count()) return g_last_error = cudaErrorInvalidDevice;
  g_device = d;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
  *d = g_device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d < 0 || d >= emu_device_count()) return g_last_error = cudaErrorInvalidDevice;
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "NVIDIA H200 (cuda_emu host emulation)");
  p->totalGlobalMem = kTotalMem;
  p->sharedMemPerBlock = 48 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->memPitch = 2147483647;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024, p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647, p->maxGridSize[1] = 65535, p->maxGridSize[2] = 65535;
  p->clockRate = 1980000;
  p->totalConstMem = 65536;
  p->major = 9, p->minor = 0;
  p->textureAlignment = 512;
  p->deviceOverlap = 1;
  p->multiProcessorCount = 132;
  p->concurrentKernels = 1;
  p->ECCEnabled = 1;
  p->asyncEngineCount = 3;
  p->unifiedAddressing = 1;
  p->memoryClockRate = 3201000;
  p->memoryBusWidth = 6144;
  p->l2CacheSize = 50 * 1024 * 1024;
  p->persistingL2CacheMaxSize = 32 * 1024 * 1024;
  p->maxThreadsPerMultiProcessor = 2048;
  p->managedMemory = 1;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->regsPerMultiprocessor = 65536;
  p->sharedMemPerBlockOptin = kSmemOptinLimit;
  p->reservedSharedMemPerBlock = 1024;
  p->cooperativeLaunch = 1;
  p->canMapHostMemory = 1;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d) {
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, d) != cudaSuccess) return cudaErrorInvalidDevice;
  switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxBlockDimX: *v = 1024; break;
    case cudaDevAttrMaxBlockDimY: *v = 1024; break;
    case cudaDevAttrMaxBlockDimZ: *v = 64; break;
    case cudaDevAttrMaxGridDimX: *v = p.maxGridSize[0]; break;
    case cudaDevAttrMaxGridDimY: *v = 65535; break;
    case cudaDevAttrMaxGridDimZ: *v = 65535; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = static_cast<int>(p.sharedMemPerBlock); break;
    case cudaDevAttrTotalConstantMemory: *v = 65536; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMaxRegistersPerBlock: *v = 65536; break;
    case cudaDevAttrClockRate: *v = p.clockRate; break;
    case cudaDevAttrMultiProcessorCount: *v = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *v = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *v = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *v = static_cast<int>(p.sharedMemPerMultiprocessor); break;
    case cudaDevAttrMaxRegistersPerMultiprocessor: *v = 65536; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = static_cast<int>(p.sharedMemPerBlockOptin); break;
    case cudaDevAttrL2CacheSize: *v = p.l2CacheSize; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *v = 2048; break;
    case cudaDevAttrMemoryBusWidth: *v = p.memoryBusWidth; break;
    default: return g_last_error = cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  if (emu::g_capture) return emu::refuse_in_capture("cudaDeviceSynchronize");
  emu::device_flush();
  return cudaSuccess;
}
cudaError_t cudaDeviceReset() { return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int* v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  *total_bytes = kTotalMem;
  *free_bytes = kTotalMem - kReservedMem - std::min(kTotalMem - kReservedMem, g_alloc_bytes);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t n) {
  if (emu::g_capture) return emu::refuse_in_capture("cudaMalloc");
  return do_malloc(p, n, "cudaMalloc");
}
cudaError_t cudaFree(void* p) {
  if (emu::g_capture) return emu::refuse_in_capture("cudaFree");
  emu::device_flush();  // cudaFree synchronises the device
  return do_free(p, "cudaFree");
}
cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) {
  // Graph memory nodes are not emulated (and the GPU op contract has no allocation in a step).
  if (emu::g_capture) return emu::refuse_in_capture("cudaMallocAsync");
  return do_malloc(p, n, "cudaMallocAsync");
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  if (emu::g_capture) return emu::refuse_in_capture("cudaFreeAsync");
  if (emu::deferred(s, "cudaFreeAsync")) {  // stream-ordered: after the work queued before it
    emu::defer(s, [p] { do_free(p, "cudaFreeAsync"); });
    return cudaSuccess;
  }
  return do_free(p, "cudaFreeAsync");
}
cudaError_t cudaMallocHost(void** p, size_t n) {
  if (emu::g_capture) return emu::refuse_in_capture("cudaMallocHost");
  *p = std::malloc(n ? n : 1);
  std::lock_guard<std::mutex> lock(g_mu);
  emu::g_pinned[reinterpret_cast<uintptr_t>(*p)] = n;
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t n, unsigned) { return cudaMallocHost(p, n); }
cudaError_t cudaFreeHost(void* p) {
  if (emu::g_capture) return emu::refuse_in_capture("cudaFreeHost");
  emu::device_flush();  // as cudaFree: queued copies may still use it
  {
    std::lock_guard<std::mutex> lock(g_mu);
    emu::g_pinned.erase(reinterpret_cast<uintptr_t>(p));
  }
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  const bool d = is_device(p);
  a->type = d ? cudaMemoryTypeDevice : cudaMemoryTypeUnregistered;
  a->device = d ? 0 : -1;
  a->devicePointer = d ? const_cast<void*>(p) : nullptr;
  a->hostPointer = d ? nullptr : const_cast<void*>(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind k) {
  if (emu::g_capture) return emu::refuse_in_capture("cudaMemcpy (synchronous)");
  emu::device_flush();
  const cudaError_t e = copy_check(dst, src, n, k, "cudaMemcpy");
  if (e != cudaSuccess) return e;
  if (n) std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind k, cudaStream_t s) {
  if (emu::capturing(s, "cudaMemcpyAsync")) {
    emu::check_captured_copy(dst, src, n, k, "cudaMemcpyAsync");
    emu::record([=] { cudaMemcpyAsync(dst, src, n, k, nullptr); });
    return cudaSuccess;
  }
  const cudaError_t e = copy_check(dst, src, n, k, "cudaMemcpyAsync");
  if (e != cudaSuccess) return e;
  if (emu::deferred(s, "cudaMemcpyAsync")) {
    // With pageable host memory the copy is synchronous in CUDA: it runs now, after the stream's queued work.
    if ((!is_device(dst) || !is_device(src)) && !(emu::is_pinned(dst, n) || emu::is_pinned(src, n))) {
      emu::stream_flush(s);
    } else {
      emu::defer(s, [=] { std::memmove(dst, src, n); });
      return cudaSuccess;
    }
  }
  if (n) std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind k) {
  if (emu::g_capture) return emu::refuse_in_capture("cudaMemcpy2D (synchronous)");
  emu::device_flush();
  return emu_memcpy2d(dst, dpitch, src, spitch, width, height, k);
}
static cudaError_t emu_memcpy2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                                cudaMemcpyKind k) {
  if (width > dpitch || width > spitch) return g_last_error = cudaErrorInvalidPitchValue;
  if (height == 0 || width == 0) return cudaSuccess;
  const cudaError_t e = copy_check(dst, src, 1, k, "cudaMemcpy2D");  // kinds (1 byte: ranges are checked below)
  if (e != cudaSuccess) return e;
  {
    const uintptr_t d = reinterpret_cast<uintptr_t>(dst), s = reinterpret_cast<uintptr_t>(src);
    const size_t dn = dpitch * (height - 1) + width, sn = spitch * (height - 1) + width;
    if (d < s + sn && s < d + dn) report("cudaMemcpy2D: source and destination extents overlap (undefined in CUDA)");
  }
  check_device_range(dst, dpitch * (height - 1) + width, "cudaMemcpy2D", "destination");
  check_device_range(src, spitch * (height - 1) + width, "cudaMemcpy2D", "source");
  for (size_t r = 0; r < height; ++r)
    std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind k, cudaStream_t s) {
  if (emu::capturing(s, "cudaMemcpy2DAsync")) {
    if (height) emu::check_captured_copy(dst, src, dpitch * (height - 1) + width, k, "cudaMemcpy2DAsync");
    emu::record([=] { emu_memcpy2d(dst, dpitch, src, spitch, width, height, k); });
    return cudaSuccess;
  }
  if (emu::deferred(s, "cudaMemcpy2DAsync")) {
    if (is_device(dst) && is_device(src)) {
      emu::defer(s, [=] { emu_memcpy2d(dst, dpitch, src, spitch, width, height, k); });
      return cudaSuccess;
    }
    emu::stream_flush(s);  // host memory: copied now, after the stream's queued work
  }
  return emu_memcpy2d(dst, dpitch, src, spitch, width, height, k);
}
cudaError_t cudaMemset(void* p, int v, size_t n) {
  if (emu::g_capture) return emu::refuse_in_capture("cudaMemset (synchronous)");
  emu::device_flush();
  return emu_memset(p, v, n);
}
static cudaError_t emu_memset(void* p, int v, size_t n) {
  if (n && !check_device_range(p, n, "cudaMemset", "destination")) {
    report("cudaMemset(%p, %zu B): not device memory", p, n);
    return g_last_error = cudaErrorInvalidValue;
  }
  if (n) std::memset(p, v, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t s) {
  if (emu::deferred(s, "cudaMemsetAsync")) {
    emu::defer(s, [=] { emu_memset(p, v, n); });
    return cudaSuccess;
  }
  return emu_memset(p, v, n);
}
cudaError_t cudaMemset2D(void* p, size_t pitch, int v, size_t width, size_t height) {
  if (emu::g_capture) return emu::refuse_in_capture("cudaMemset2D (synchronous)");
  emu::device_flush();
  return emu_memset2d(p, pitch, v, width, height);
}
static cudaError_t emu_memset2d(void* p, size_t pitch, int v, size_t width, size_t height) {
  if (width > pitch) return g_last_error = cudaErrorInvalidPitchValue;
  if (!width || !height) return cudaSuccess;
  if (!check_device_range(p, pitch * (height - 1) + width, "cudaMemset2D", "destination")) {
    report("cudaMemset2D(%p): not device memory", p);
    return g_last_error = cudaErrorInvalidValue;
  }
  for (size_t r = 0; r < height; ++r) std::memset(static_cast<char*>(p) + r * pitch, v, width);
  return cudaSuccess;
}
cudaError_t cudaMemset2DAsync(void* p, size_t pitch, int v, size_t width, size_t height, cudaStream_t s) {
  if (emu::deferred(s, "cudaMemset2DAsync")) {
    emu::defer(s, [=] { emu_memset2d(p, pitch, v, width, height); });
    return cudaSuccess;
  }
  return emu_memset2d(p, pitch, v, width, height);
}

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  std::lock_guard<std::recursive_mutex> lock(emu::g_streams_mu);
  *s = new CUstream_st;
  emu::g_streams.insert(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (emu::is_special(s)) return g_last_error = cudaErrorInvalidValue;
  emu::stream_flush(s);  // CUDA completes a destroyed stream's work
  std::lock_guard<std::recursive_mutex> lock(emu::g_streams_mu);
  emu::g_streams.erase(s);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (emu::g_capture && (s == emu::g_capture->stream || emu::is_legacy(s)))
    return emu::refuse_in_capture("cudaStreamSynchronize");
  emu::stream_flush(s);
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  emu::stream_flush(s);  // "not ready" would only make the caller poll: run it
  return cudaSuccess;
}
namespace {
void event_complete(cudaEvent_t e) {
  if (e->stream) emu::run_until(e->stream, e->position);
}
}  // namespace
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  if (!e) return g_last_error = cudaErrorInvalidResourceHandle;
  if (!e->stream || emu::g_running_queued || !emu::deferring()) return cudaSuccess;  // complete already
  // The event as recorded now: a later record does not change what s waits for.
  CUstream_st* es = e->stream;
  const uint64_t pos = e->position;
  if (emu::is_special(s) || (emu::g_capture && s == emu::g_capture->stream)) {
    emu::run_until(es, pos);  // cross-stream capture dependencies are not emulated: order it now
    return cudaSuccess;
  }
  emu::defer(s, [es, pos] { emu::run_until(es, pos); });
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new CUevent_st; return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return g_last_error = cudaErrorInvalidResourceHandle;
  std::lock_guard<std::recursive_mutex> lock(emu::g_streams_mu);
  if (emu::g_running_queued || !emu::deferring() || emu::is_special(s) ||
      (emu::g_capture && s == emu::g_capture->stream)) {
    if (emu::is_special(s)) emu::device_flush();
    e->stream = nullptr;  // complete once what came before it is (here: now)
    return cudaSuccess;
  }
  e->stream = s;
  e->position = s->queued;
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  event_complete(e);  // "not ready" would only make the caller poll: run it
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  event_complete(e);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  event_complete(a);
  event_complete(b);
  *ms = 0.f;
  return cudaSuccess;
}

// ---- cuBLAS ----------------------------------------------------------------
struct cublasContext {
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  cudaStream_t stream = nullptr;
};
cublasStatus_t cublasCreate(cublasHandle_t* h) { *h = new cublasContext; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
// The emulator's GEMMs need no workspace; a real one must be device memory of the size given.
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void* workspace, size_t bytes) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (bytes > 0 && !workspace) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->math = m;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t* m) { *m = h->math; return CUBLAS_STATUS_SUCCESS; }
const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "cuBLAS error (cuda_emu)";
  }
}
const char* cublasGetStatusName(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_ERROR"; }

namespace {
float load_elem(const void* p, cudaDataType t, size_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_16BF: return emu::bf16_bits_to_float(static_cast<const uint16_t*>(p)[i]);
    case CUDA_R_16F: return emu::half_bits_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return 0.f;
  }
}
size_t elem_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }
float tf32(float x) {  // round to a 10-bit mantissa (nearest, ties away), as TF32 tensor cores take fp32 inputs
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&x, &u, 4);
  return x;
}
}  // namespace

// C (m x n, ldc) = alpha op(A) op(B) + beta C, column-major. op(A) is m x k: A is
// m x k (lda >= m) for N, k x m (lda >= k) for T. Sums in double, rounded once:
// more accurate than the GPU (whose fp32 summation order is unspecified).
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (emu::deferred(h->stream, "cublasGemmEx")) {
    // Host-pointer mode: alpha and beta are read now, the operands when it runs.
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    cublasContext* hc = h;
    const cublasMath_t math = h->math;
    emu::defer(h->stream, [=] {
      cublasContext replay{math, nullptr};
      (void)hc;
      cublasGemmEx(&replay, ta, tb, m, n, k, &al, A, Atype, lda, B, Btype, ldb, &be, C, Ctype, ldc, compute, algo);
    });
    return CUBLAS_STATUS_SUCCESS;
  }
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T)) return CUBLAS_STATUS_NOT_SUPPORTED;
  const int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) {
    report("cublasGemmEx: leading dimension too small (lda %d for %d rows, ldb %d for %d rows, ldc %d for %d rows)", lda,
           a_rows, ldb, b_rows, ldc, m);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const bool f32_compute = compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_PEDANTIC ||
                           compute == CUBLAS_COMPUTE_32F_FAST_TF32 || compute == CUBLAS_COMPUTE_32F_FAST_16BF;
  // C in fp32, or in bf16 for bf16 inputs (as cuBLAS's table of GemmEx types).
  const bool types_ok = Atype == Btype && (Atype == CUDA_R_32F || Atype == CUDA_R_16BF || Atype == CUDA_R_16F) &&
                        (Ctype == CUDA_R_32F || (Ctype == CUDA_R_16BF && Atype == CUDA_R_16BF));
  if (!f32_compute || !types_ok) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const bool use_tf32 = Atype == CUDA_R_32F && (compute == CUBLAS_COMPUTE_32F_FAST_TF32 ||
                                                (h->math == CUBLAS_TF32_TENSOR_OP_MATH && compute == CUBLAS_COMPUTE_32F));
  // Every operand must be device memory, in range.
  const size_t a_cols = ta == CUBLAS_OP_N ? k : m, b_cols = tb == CUBLAS_OP_N ? n : k;
  const size_t es_a = elem_size(Atype), es_b = elem_size(Btype);
  if (k > 0) {
    if (!check_device_range(A, (size_t(lda) * (a_cols - 1) + a_rows) * es_a, "cublasGemmEx", "A"))
      report("cublasGemmEx: A (%p) is not device memory", A);
    if (!check_device_range(B, (size_t(ldb) * (b_cols - 1) + b_rows) * es_b, "cublasGemmEx", "B"))
      report("cublasGemmEx: B (%p) is not device memory", B);
  }
  if (!check_device_range(C, (size_t(ldc) * (n - 1) + m) * elem_size(Ctype), "cublasGemmEx", "C"))
    report("cublasGemmEx: C (%p) is not device memory", C);
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  // Gather op(A) as m x k row-major and op(B) as n x k row-major (contiguous dots).
  std::vector<float> a(size_t(m) * k), b(size_t(n) * k);
  for (int i = 0; i < m; ++i)
    for (int p = 0; p < k; ++p) {
      float v = load_elem(A, Atype, ta == CUBLAS_OP_N ? size_t(i) + size_t(p) * lda : size_t(p) + size_t(i) * lda);
      a[size_t(i) * k + p] = use_tf32 ? tf32(v) : v;
    }
  for (int j = 0; j < n; ++j)
    for (int p = 0; p < k; ++p) {
      float v = load_elem(B, Btype, tb == CUBLAS_OP_N ? size_t(p) + size_t(j) * ldb : size_t(j) + size_t(p) * ldb);
      b[size_t(j) * k + p] = use_tf32 ? tf32(v) : v;
    }
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      const float* ai = &a[size_t(i) * k];
      const float* bj = &b[size_t(j) * k];
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int p = 0;
      for (; p + 4 <= k; p += 4) {
        s0 += double(ai[p]) * bj[p];
        s1 += double(ai[p + 1]) * bj[p + 1];
        s2 += double(ai[p + 2]) * bj[p + 2];
        s3 += double(ai[p + 3]) * bj[p + 3];
      }
      for (; p < k; ++p) s0 += double(ai[p]) * bj[p];
      const float dot = static_cast<float>((s0 + s1) + (s2 + s3));
      const size_t e = size_t(i) + size_t(j) * ldc;
      // beta == 0: C is not read (it may hold NaN); a bf16 C is rounded once.
      const float v = be == 0.f ? al * dot : al * dot + be * load_elem(C, Ctype, e);
      if (Ctype == CUDA_R_32F)
        static_cast<float*>(C)[e] = v;
      else
        static_cast<uint16_t*>(C)[e] = float_to_bf16_bits(v);
    }
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                           float* C, int ldc) {
  return cublasGemmEx(h, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta, C, CUDA_R_32F, ldc,
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
