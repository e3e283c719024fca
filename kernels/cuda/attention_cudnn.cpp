// Attention through cuDNN's fused flash attention (SDPA forward), built with
// cudnn-frontend's graph API: the measured alternative to our own tensor-core
// kernel (attention_mma.cu). Semantics, masks and the plan cache: attention.h.
//
// How it maps our layout onto cuDNN's: SDPA tensors are 4-d [batch, heads,
// seq, head_dim] with free strides, so q [lq, q_heads, head_dim] with row
// stride ld_q is dims {1, H, lq, D}, strides {lq * ld_q, D, ld_q, 1} (cuDNN's
// "BSHD" layout); k, v and the output alike. GQA is cuDNN's own: K and V
// declare kv_heads heads, and query head h reads KV head h / (H / KVH), as
// ours. The statistics ("Stats", fp32 [1, H, lq, 1]) are cuDNN's log-sum-exp
// of the scaled scores in natural log, which is our m + log(l). cuDNN >= 9.12
// writes Stats with any declared strides, so we declare ours ([lq, H]: strides
// {lq * H, 1, H, 1}); an older one (or if cuDNN refuses that layout) writes
// the packed [H, lq] layout into the workspace and a small kernel transposes
// it (attention_cudnn_state.cu). RINGSCAN_CUDNN_PACKED_STATS=1 forces the latter.
//
// Debugging a refusal: CUDNN_FRONTEND_LOG_INFO=1 CUDNN_FRONTEND_LOG_FILE=stderr
// (the frontend's log), CUDNN_LOGERR_DBG=1 CUDNN_LOGDEST_DBG=stderr (cuDNN's).
//
// Masks: cuDNN's diagonal band with right bound 0, aligned TOP_LEFT (key j
// seen by query i when j <= i) or BOTTOM_RIGHT (j <= i + lk - lq).
//
// Host code only (g++, not nvcc): the frontend is a header-only C++17 library;
// its JSON serialisation is compiled out (CUDNN_FRONTEND_SKIP_JSON_LIB, set
// by kernels/CMakeLists.txt), so its bundled nlohmann::json never meets ours.
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cudnn_frontend.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "attention.h"

namespace ringscan::kernels::cuda {

// Small kernels of cuda/attention_cudnn_state.cu.
namespace cudnn_detail {
void widen_bf16_rows(const void* src, int64_t ld_src, int64_t rows, int64_t cols, float* dst, int64_t ld_dst,
                     GpuStream stream);
void transpose_stats(const float* src, int64_t heads, int64_t lq, float* dst, GpuStream stream);
void fill_state_stats(const float* lse, int64_t n, float* m, float* l, GpuStream stream);
}  // namespace cudnn_detail

namespace {

namespace fe = cudnn_frontend;

constexpr int64_t kQ = 1, kK = 2, kV = 3, kO = 4, kStats = 5;
constexpr size_t kAlign = 256;

size_t align_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

const char* mask_name(CudnnMask m) {
  switch (m) {
    case CudnnMask::none: return "no mask";
    case CudnnMask::top_left: return "top_left causal";
    case CudnnMask::bottom_right: return "bottom_right causal";
  }
  return "?";
}

std::string describe(const CudnnAttention& a) {
  std::ostringstream os;
  os << "heads " << a.s.q_heads << "/" << a.s.kv_heads << ", head_dim " << a.s.head_dim << ", lq " << a.lq << ", lk "
     << a.lk << ", " << mask_name(a.mask) << ", ld_q/k/v/out " << a.ld_q << "/" << a.ld_k << "/" << a.ld_v << "/"
     << a.ld_out << ", out " << dtype_name(a.out_dtype);
  return os.str();
}

const char* fe_code_name(fe::error_code_t c) {
  switch (c) {
    case fe::error_code_t::OK: return "OK";
    case fe::error_code_t::ATTRIBUTE_NOT_SET: return "ATTRIBUTE_NOT_SET";
    case fe::error_code_t::SHAPE_DEDUCTION_FAILED: return "SHAPE_DEDUCTION_FAILED";
    case fe::error_code_t::INVALID_TENSOR_NAME: return "INVALID_TENSOR_NAME";
    case fe::error_code_t::INVALID_VARIANT_PACK: return "INVALID_VARIANT_PACK";
    case fe::error_code_t::GRAPH_NOT_SUPPORTED: return "GRAPH_NOT_SUPPORTED";
    case fe::error_code_t::GRAPH_EXECUTION_PLAN_CREATION_FAILED: return "GRAPH_EXECUTION_PLAN_CREATION_FAILED";
    case fe::error_code_t::GRAPH_EXECUTION_FAILED: return "GRAPH_EXECUTION_FAILED";
    case fe::error_code_t::HEURISTIC_QUERY_FAILED: return "HEURISTIC_QUERY_FAILED";
    case fe::error_code_t::UNSUPPORTED_GRAPH_FORMAT: return "UNSUPPORTED_GRAPH_FORMAT";
    case fe::error_code_t::CUDA_API_FAILED: return "CUDA_API_FAILED";
    case fe::error_code_t::CUDNN_BACKEND_API_FAILED: return "CUDNN_BACKEND_API_FAILED";
    case fe::error_code_t::INVALID_CUDA_DEVICE: return "INVALID_CUDA_DEVICE";
    case fe::error_code_t::HANDLE_ERROR: return "HANDLE_ERROR";
    case fe::error_code_t::INVALID_VALUE: return "INVALID_VALUE";
    default: return "error";
  }
}

std::string versions() {
  std::ostringstream os;
  os << "cuDNN " << cudnnGetVersion() << " (compiled against " << CUDNN_VERSION << "), cudnn-frontend "
     << CUDNN_FRONTEND_VERSION;
  return os.str();
}

[[noreturn]] void fail(const char* op, const CudnnAttention& a, const std::string& what) {
  throw std::runtime_error(std::string("cuda::") + op + " (" + describe(a) + "): " + what + " [" + versions() + "]");
}

void check_cuda(cudaError_t e, const char* op, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("cuda::") + op + ": " + what + " failed: " + cudaGetErrorString(e));
}

// Everything a plan depends on (pointers aside): the cache key.
using Key = std::array<int64_t, 13>;

Key key_of(int device, const CudnnAttention& a) {
  uint32_t scale_bits = 0;
  std::memcpy(&scale_bits, &a.scale, sizeof scale_bits);
  return {device,      a.s.q_heads, a.s.kv_heads, a.s.head_dim, a.lq, a.lk, a.ld_q, a.ld_k, a.ld_v, a.ld_out,
          int64_t(a.mask), int64_t(scale_bits), int64_t(a.out_dtype)};
}

struct Plan {
  std::shared_ptr<fe::graph::Graph> graph;
  size_t cudnn_ws = 0;      // cuDNN's workspace, at offset 0 of ours
  bool stats_direct = false;  // Stats written straight into lse ([lq, H]); else packed [H, lq] at stats_off
  bool out_staged = false;    // O written as packed bf16 at o_off, then widened into the F32 out
  size_t o_off = 0, stats_off = 0, total_ws = 0;
};

// The process's cuDNN state: one handle per device, the plans. Intentionally
// never destroyed (as cudnn-frontend does with its own statics): destroying
// cuDNN descriptors after the CUDA runtime has shut down at exit can crash.
struct CudnnState {
  std::mutex mu;
  std::map<int, cudnnHandle_t> handles;
  std::map<Key, Plan> plans;
  std::atomic<int64_t> built{0};
};
CudnnState& state() {
  static CudnnState* s = new CudnnState;
  return *s;
}

cudnnHandle_t handle_for(CudnnState& st, int device, const char* op, const CudnnAttention& a) {
  auto it = st.handles.find(device);
  if (it != st.handles.end()) return it->second;
  const size_t v = cudnnGetVersion();
  if (v < 90000) fail(op, a, "cuDNN 9 or newer is required, the library loaded is " + std::to_string(v));
  cudnnHandle_t h = nullptr;
  const cudnnStatus_t status = cudnnCreate(&h);
  if (status != CUDNN_STATUS_SUCCESS)
    fail(op, a, std::string("cudnnCreate failed: ") + cudnnGetErrorString(status));
  st.handles.emplace(device, h);
  return h;
}

void validate(const CudnnAttention& a, const char* op) {
  const AttentionShape& s = a.s;
  auto bad = [&](const std::string& why) {
    throw std::invalid_argument(std::string("cuda::") + op + " (" + describe(a) + "): " + why);
  };
  if (s.q_heads < 1 || s.kv_heads < 1 || s.q_heads % s.kv_heads != 0)
    bad("q_heads must be a positive multiple of kv_heads");
  if (s.head_dim < 8 || s.head_dim > 256 || s.head_dim % 8 != 0)
    bad("head_dim must be a multiple of 8 in [8, 256] (cuDNN's SDPA)");
  if (a.lq < 1 || a.lk < 1) bad("lq and lk must be at least 1");
  if (a.mask == CudnnMask::bottom_right && a.lq > a.lk)
    bad("a bottom_right mask needs lq <= lk (the first rows would see no key)");
  if (a.out_dtype != DType::BF16 && a.out_dtype != DType::F32) bad("out_dtype must be BF16 or F32");
  const int64_t qw = s.q_heads * s.head_dim, kw = s.kv_heads * s.head_dim;
  if (a.ld_q < qw || a.ld_k < kw || a.ld_v < kw || a.ld_out < qw)
    bad("a row stride is narrower than its heads * head_dim");
  if (a.ld_q % 8 || a.ld_k % 8 || a.ld_v % 8 || (a.out_dtype == DType::BF16 && a.ld_out % 8))
    bad("bf16 row strides must be multiples of 8 elements (16 bytes, cuDNN's alignment)");
  if (!std::isfinite(a.scale)) bad("scale must be finite");
}

// Packed strides filled in (ld 0: heads * head_dim).
CudnnAttention normalised(CudnnAttention a) {
  const int64_t qw = a.s.q_heads * a.s.head_dim, kw = a.s.kv_heads * a.s.head_dim;
  if (a.ld_q == 0) a.ld_q = qw;
  if (a.ld_k == 0) a.ld_k = kw;
  if (a.ld_v == 0) a.ld_v = kw;
  if (a.ld_out == 0) a.ld_out = qw;
  return a;
}

// One graph: Q, K, V -> O, Stats. stats_direct: Stats in our [lq, H] layout.
std::shared_ptr<fe::graph::Graph> make_graph(const CudnnAttention& a, bool stats_direct, int64_t ld_o) {
  const int64_t H = a.s.q_heads, KVH = a.s.kv_heads, D = a.s.head_dim, lq = a.lq, lk = a.lk;
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  // [1, heads, rows, D] views of our [rows, heads, D] layout with row stride ld.
  auto input = [&](const char* name, int64_t uid, int64_t heads, int64_t rows, int64_t ld) {
    return g->tensor(fe::graph::Tensor_attributes()
                         .set_name(name)
                         .set_uid(uid)
                         .set_data_type(fe::DataType_t::BFLOAT16)
                         .set_dim({1, heads, rows, D})
                         .set_stride({rows * ld, D, ld, 1}));
  };
  auto Q = input("Q", kQ, H, lq, a.ld_q), K = input("K", kK, KVH, lk, a.ld_k), V = input("V", kV, KVH, lk, a.ld_v);
  auto opts = fe::graph::SDPA_attributes().set_name("ringscan_attention").set_generate_stats(true).set_attn_scale(a.scale);
  if (a.mask == CudnnMask::top_left)
    opts.set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT).set_diagonal_band_right_bound(0);
  else if (a.mask == CudnnMask::bottom_right)
    opts.set_diagonal_alignment(fe::DiagonalAlignment_t::BOTTOM_RIGHT).set_diagonal_band_right_bound(0);
  auto [O, Stats] = g->sdpa(Q, K, V, opts);
  O->set_output(true)
      .set_uid(kO)
      .set_data_type(fe::DataType_t::BFLOAT16)
      .set_dim({1, H, lq, D})
      .set_stride({lq * ld_o, D, ld_o, 1});
  Stats->set_output(true).set_uid(kStats).set_data_type(fe::DataType_t::FLOAT).set_dim({1, H, lq, 1});
  if (stats_direct)
    Stats->set_stride({lq * H, 1, H, 1});
  else
    Stats->set_stride({H * lq, lq, 1, 1});
  return g;
}

std::string fe_error(const char* stage, fe::error_t e) {
  return std::string(stage) + " failed with " + fe_code_name(e.get_code()) + ": " + e.get_message();
}

// Builds the plan for a (normalised, validated), trying our Stats layout
// first where cuDNN can write it, else the packed one. Throws with what cuDNN
// said for every layout tried.
Plan build_plan(cudnnHandle_t handle, const CudnnAttention& a, const char* op) {
  Plan p;
  p.out_staged = a.out_dtype == DType::F32;
  const int64_t ld_o = p.out_staged ? a.s.q_heads * a.s.head_dim : a.ld_out;
  std::string errors;
  // RINGSCAN_CUDNN_PACKED_STATS=1 forces the packed layout and the transpose (a
  // switch for a first run on a new cuDNN, should the strided Stats be wrong).
  const char* packed_env = std::getenv("RINGSCAN_CUDNN_PACKED_STATS");
  const bool force_packed = packed_env && *packed_env && std::string(packed_env) != "0";
  const bool direct_possible = cudnnGetVersion() >= 91200 && !force_packed;
  for (const bool direct : {true, false}) {
    if (direct && !direct_possible) continue;
    try {
      auto g = make_graph(a, direct, ld_o);
      fe::error_t e = g->build(handle, {fe::HeurMode_t::A});
      if (e.is_bad()) {
        errors += std::string(errors.empty() ? "" : "; then ") + "with Stats " + (direct ? "[lq, heads]" : "[heads, lq]") +
                  ": " + fe_error("graph build", e);
        continue;
      }
      int64_t ws = 0;
      e = g->get_workspace_size(ws);
      if (e.is_bad()) fail(op, a, fe_error("get_workspace_size", e));
      p.graph = std::move(g);
      p.stats_direct = direct;
      p.cudnn_ws = static_cast<size_t>(ws);
      break;
    } catch (const std::exception& ex) {  // the frontend throws for some refusals
      if (std::string(ex.what()).rfind("cuda::", 0) == 0) throw;  // ours (fail above)
      errors += std::string(errors.empty() ? "" : "; then ") + "with Stats " + (direct ? "[lq, heads]" : "[heads, lq]") +
                ": cudnn-frontend threw: " + ex.what();
    }
  }
  if (!p.graph) fail(op, a, "cuDNN refused the SDPA graph: " + errors);
  size_t off = align_up(p.cudnn_ws);
  if (p.out_staged) {
    p.o_off = off;
    off = align_up(off + size_t(a.lq) * a.s.q_heads * a.s.head_dim * 2);
  }
  if (!p.stats_direct) {
    p.stats_off = off;
    off = align_up(off + size_t(a.lq) * a.s.q_heads * sizeof(float));
  }
  p.total_ws = (p.out_staged || !p.stats_direct) ? off : p.cudnn_ws;
  return p;
}

// The plan for a (built on a miss). Caller holds st.mu.
const Plan& plan_for(CudnnState& st, const CudnnAttention& a, const char* op, cudnnHandle_t& handle) {
  int device = 0;
  check_cuda(cudaGetDevice(&device), op, "cudaGetDevice");
  handle = handle_for(st, device, op, a);
  const Key key = key_of(device, a);
  auto it = st.plans.find(key);
  if (it != st.plans.end()) return it->second;
  Plan p = build_plan(handle, a, op);
  st.built.fetch_add(1);
  return st.plans.emplace(key, std::move(p)).first->second;
}

void check_aligned(const void* p, const char* name, const char* op, const CudnnAttention& a) {
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0)
    throw std::invalid_argument(std::string("cuda::") + op + " (" + describe(a) + "): " + name +
                                " must be 16-byte aligned (cuDNN's vector loads)");
}

}  // namespace

size_t attention_cudnn_workspace(const CudnnAttention& a_in) {
  const char* op = "attention_cudnn_workspace";
  const CudnnAttention a = normalised(a_in);
  validate(a, op);
  CudnnState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  cudnnHandle_t handle = nullptr;
  return plan_for(st, a, op, handle).total_ws;
}

void attention_cudnn_fwd(const CudnnAttention& a_in, const void* q, const void* k, const void* v, void* out,
                         float* lse, const Workspace& ws, GpuStream stream) {
  const char* op = "attention_cudnn_fwd";
  const CudnnAttention a = normalised(a_in);
  validate(a, op);
  if (!q || !k || !v || !out || !lse)
    throw std::invalid_argument(std::string("cuda::") + op + " (" + describe(a) + "): q, k, v, out and lse are required");
  check_aligned(q, "q", op, a);
  check_aligned(k, "k", op, a);
  check_aligned(v, "v", op, a);
  if (a.out_dtype == DType::BF16) check_aligned(out, "out", op, a);
  CudnnState& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  cudnnHandle_t handle = nullptr;
  const Plan& p = plan_for(st, a, op, handle);
  if (ws.bytes < p.total_ws || (p.total_ws > 0 && ws.data == nullptr))
    throw std::invalid_argument(std::string("cuda::") + op + " (" + describe(a) + "): the workspace holds " +
                                std::to_string(ws.bytes) + " bytes, the plan needs " + std::to_string(p.total_ws) +
                                " (attention_cudnn_workspace)");
  if (p.total_ws > 0) check_aligned(ws.data, "the workspace", op, a);
  char* wsb = static_cast<char*>(ws.data);
  void* o_ptr = p.out_staged ? static_cast<void*>(wsb + p.o_off) : out;
  float* stats_ptr = p.stats_direct ? lse : reinterpret_cast<float*>(wsb + p.stats_off);

  const cudnnStatus_t ss = cudnnSetStream(handle, reinterpret_cast<cudaStream_t>(stream));
  if (ss != CUDNN_STATUS_SUCCESS) fail(op, a, std::string("cudnnSetStream failed: ") + cudnnGetErrorString(ss));
  std::unordered_map<int64_t, void*> pack{{kQ, const_cast<void*>(q)},
                                          {kK, const_cast<void*>(k)},
                                          {kV, const_cast<void*>(v)},
                                          {kO, o_ptr},
                                          {kStats, stats_ptr}};
  fe::error_t e;
  try {
    e = p.graph->execute(handle, pack, p.cudnn_ws > 0 ? ws.data : nullptr);
  } catch (const std::exception& ex) {
    fail(op, a, std::string("cuDNN execute threw: ") + ex.what());
  }
  if (e.is_bad()) fail(op, a, fe_error("cuDNN execute", e));
  if (p.out_staged)
    cudnn_detail::widen_bf16_rows(o_ptr, a.s.q_heads * a.s.head_dim, a.lq, a.s.q_heads * a.s.head_dim,
                                  static_cast<float*>(out), a.ld_out, stream);
  if (!p.stats_direct) cudnn_detail::transpose_stats(stats_ptr, a.s.q_heads, a.lq, lse, stream);
}

void attention_cudnn_to_state(const AttentionShape& s, int64_t lq, const void* out_bf16, int64_t ld_out,
                              const float* lse, float* acc, float* m, float* l, GpuStream stream) {
  if (lq < 0 || s.q_heads < 1 || s.head_dim < 1 || ld_out < s.q_heads * s.head_dim)
    throw std::invalid_argument("cuda::attention_cudnn_to_state: bad shape or ld_out");
  if (lq == 0) return;
  cudnn_detail::widen_bf16_rows(out_bf16, ld_out, lq, s.q_heads * s.head_dim, acc, s.q_heads * s.head_dim, stream);
  cudnn_detail::fill_state_stats(lse, lq * s.q_heads, m, l, stream);
}

int64_t attention_cudnn_plans_built() { return state().built.load(); }
int64_t attention_cudnn_version() { return static_cast<int64_t>(cudnnGetVersion()); }
int64_t attention_cudnn_compiled_version() { return CUDNN_VERSION; }

}  // namespace ringscan::kernels::cuda
