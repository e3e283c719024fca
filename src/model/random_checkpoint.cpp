#include "model/random_checkpoint.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "model/safetensors.h"
#include "model/weights.h"
#include "util/error.h"
#include "util/json_util.h"

namespace ringscan {

namespace fs = std::filesystem;

namespace {

// Counter-based: element i of tensor t depends only on (seed, t, i).
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
inline double uniform01(uint64_t seed, uint64_t tensor, uint64_t i) {
  return (mix(mix(seed * 0x100000001b3ull + tensor) + i) >> 11) * 0x1.0p-53;
}

enum class Init { Uniform, Ones, ALog, DtBias, Constant1 };
struct Spec {
  Init init;
  double scale;  // half-width for Uniform (std = scale / sqrt(3)); noise for Ones
};

Spec spec_for(const ModelConfig& c, const std::string& name, const std::vector<int64_t>& shape) {
  auto ends = [&](const char* s) { return name.size() >= std::strlen(s) && name.compare(name.size() - std::strlen(s), std::string::npos, s) == 0; };
  if (ends("norm.weight") || ends("norm_f.weight")) return {Init::Ones, 0.1};
  if (ends("A_log")) return {Init::ALog, 0};
  if (ends("dt_bias")) return {Init::DtBias, 0};
  if (ends(".D")) return {Init::Constant1, 0};
  if (ends("embeddings.weight")) return {Init::Uniform, 1.0};
  if (ends("conv1d.weight")) return {Init::Uniform, std::sqrt(3.0 / c.conv_kernel)};
  if (ends("conv1d.bias")) return {Init::Uniform, 0.1};
  // Projections [out, in]: std ~ 1/sqrt(in) keeps each layer's output O(1).
  double fan_in = static_cast<double>(shape.back());
  return {Init::Uniform, std::sqrt(3.0 / fan_in)};
}

float sample(const Spec& s, uint64_t seed, uint64_t t, uint64_t i) {
  double u = uniform01(seed, t, i);
  switch (s.init) {
    case Init::Uniform: return static_cast<float>((2 * u - 1) * s.scale);
    case Init::Ones: return static_cast<float>(1.0 + (2 * u - 1) * s.scale);
    case Init::ALog: return static_cast<float>(std::log(1.0 + 15.0 * u));  // A in [-16, -1]
    case Init::DtBias: {  // softplus(dt_bias) log-uniform in [1e-3, 1e-1], as Mamba-2 initialises
      double dt = std::exp(std::log(1e-3) + u * (std::log(1e-1) - std::log(1e-3)));
      return static_cast<float>(dt + std::log(-std::expm1(-dt)));  // inverse softplus
    }
    case Init::Constant1: return 1.0f;
  }
  return 0.f;
}

// Element values of tensor t (index into expected_tensors) in dtype.
void fill_tensor(const ModelConfig& c, const ExpectedTensor& e, uint64_t t, const RandomCheckpointOptions& opt,
                 void* dst, int64_t numel) {
  const Spec spec = spec_for(c, e.name, e.shape);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < numel; ++i) {
    float v = sample(spec, opt.seed, t, static_cast<uint64_t>(i));
    if (opt.dtype == DType::F32) static_cast<float*>(dst)[i] = v;
    else if (opt.dtype == DType::BF16) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(v);
    else static_cast<uint16_t*>(dst)[i] = f32_to_f16(v);
  }
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

}  // namespace

Checkpoint random_checkpoint_in_memory(const ModelConfig& c, const RandomCheckpointOptions& opt) {
  const auto tensors = expected_tensors(c);
  std::vector<TensorEntry> entries;
  std::vector<std::vector<uint8_t>> buffers;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const auto& e = tensors[t];
    const int64_t numel = numel_of(e.shape);
    buffers.emplace_back(static_cast<size_t>(numel) * dtype_size(opt.dtype));
    fill_tensor(c, e, t, opt, buffers.back().data(), numel);
    entries.push_back({e.name, "(in memory)", opt.dtype, e.shape, buffers.back().data()});
  }
  return Checkpoint::in_memory("random " + c.pattern() + " model (in memory)", std::move(entries), std::move(buffers));
}

void write_random_checkpoint(const ModelConfig& c, const std::string& dir, const RandomCheckpointOptions& opt) {
  fs::create_directories(dir);
  write_json_file(dir + "/config.json", model_config_to_json(c));
  for (const char* stale : {"/model.safetensors", "/model.safetensors.index.json"}) fs::remove(dir + stale);

  const auto tensors = expected_tensors(c);
  // Group tensors into shards of at most max_shard_bytes (a tensor never splits).
  std::vector<std::vector<size_t>> shards(1);
  uint64_t in_shard = 0;
  for (size_t t = 0; t < tensors.size(); ++t) {
    uint64_t bytes = dtype_size(opt.dtype);
    for (auto d : tensors[t].shape) bytes *= d;
    if (in_shard > 0 && in_shard + bytes > opt.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(t);
    in_shard += bytes;
  }

  Json weight_map = Json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    char fname[64];
    if (shards.size() == 1) std::snprintf(fname, sizeof fname, "model.safetensors");
    else std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::vector<TensorToWrite> out;
    for (size_t t : shards[s]) {
      const auto& e = tensors[t];
      out.push_back({e.name, opt.dtype, e.shape,
                     [&, t](void* dst, int64_t numel) { fill_tensor(c, e, t, opt, dst, numel); }});
      weight_map[e.name] = fname;
    }
    write_safetensors(dir + "/" + fname, out);
  }
  if (shards.size() > 1) {
    uint64_t total = 0;
    for (const auto& e : tensors) total += static_cast<uint64_t>(numel_of(e.shape)) * dtype_size(opt.dtype);
    write_json_file(dir + "/model.safetensors.index.json",
                    Json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}});
  }
}

}  // namespace ringscan
