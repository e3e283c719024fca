// ringscan info: architecture, parameter count and the memory plan for a length and rank count.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "model/config.h"
#include "model/memory_plan.h"
#include "model/presets.h"
#include "model/safetensors.h"
#include "runtime/layout.h"
#include "runtime/memory_limit.h"
#include "runtime/perf_model.h"
#include "runtime/saved_state.h"
#include "util/error.h"

namespace po = boost::program_options;

namespace ringscan::cli {
namespace {

// The performance model's prediction for one document (runtime/perf_model.h).
void print_prediction(const ModelConfig& c, const PerfQuery& q, const DeviceRates& dev, const LinkRates& link) {
  const PerfPrediction p = predict_prefill(c, q, dev, link);
  std::printf("\nperformance model: prefill of %lld tokens over %d rank(s), %d rank(s) per device, %s layout, "
              "K/V on the ring in %s\n",
              (long long)q.tokens, q.ranks, q.ranks_per_device, layout_name(q.layout),
              q.kv_bytes_per_elem == 2 ? "bf16" : "fp32");
  std::printf("  device %s: GEMM %.0f TFLOP/s, attention %.0f, SSD %.0f, memory %.0f GB/s (%s)\n", dev.name.c_str(),
              dev.gemm_flops / 1e12, dev.attention_flops / 1e12, dev.ssd_flops / 1e12, dev.memory_bytes / 1e9,
              dev.source.c_str());
  std::printf("  link %s: %.0f GB/s each way, %.1f us per message (%s)\n", link.name.c_str(), link.bytes_per_s / 1e9,
              link.latency_s * 1e6, link.source.c_str());
  std::printf("  %-50s %10s %10s %10s %12s\n", "phase (all layers)", "compute s", "comm s", "exposed s", "sent/rank");
  for (const auto& ph : p.phases)
    std::printf("  %-50s %10.4f %10.4f %10.4f %12s\n", ph.phase.c_str(), ph.compute_s, ph.comm_s, ph.exposed_comm_s,
                human_bytes(static_cast<uint64_t>(ph.bytes_per_rank)).c_str());
  std::printf("  total %.3f s (%.0f tokens/s), exposed communication %.4f s; one device alone %.3f s; "
              "parallel efficiency %.1f%%\n",
              p.total_s, static_cast<double>(q.tokens) / p.total_s, p.exposed_comm_s, p.single_device_s,
              100 * p.parallel_efficiency);
}

// info --state: what a saved prefill state holds and what it costs per rank.
int print_state_info(const std::string& dir) {
  const Json m = read_state_manifest(dir);
  const Json& about = m.at("about");
  const StateSizes sz = state_sizes(m);
  std::printf("state        %s  (format %d)\n", dir.c_str(), m.at("format_version").get<int>());
  std::printf("document     %s  %lld tokens, %zu file(s)%s\n", about.value("document", "").c_str(),
              (long long)m.at("n_tokens").get<int64_t>(), about.at("files").size(),
              about.value("truncated", false) ? ", truncated" : "");
  std::printf("model        %s  weights sha256 %s\n", about.value("model_dir", "").c_str(),
              about.value("weights_sha256", "").substr(0, 16).c_str());
  std::printf("saved on     %d rank(s), %s layout; driver rank %d\n", m.at("ranks").get<int>(),
              m.at("layout").get<std::string>().c_str(), m.at("driver").get<int>());
  // ask uses the rows where they lie in the mapped file, in its dtype: a rank's K/V
  // memory is its part of the files (page cache), bf16 or fp32 alike.
  const DType kv = state_kv_dtype(m);
  std::printf("K/V rows     %s in the file; ask maps them read-only%s\n", kv == DType::BF16 ? "bfloat16" : "float32",
              kv == DType::BF16 ? " (its attention widens them to float32 tile by tile)" : "");
  uint64_t total = sz.driver + sz.ids;
  for (size_t r = 0; r < sz.kv_per_rank.size(); ++r) {
    const uint64_t own = sz.kv_per_rank[r] + (static_cast<int>(r) == m.at("driver").get<int>() ? sz.driver : 0);
    std::printf("  rank %-4zu  %s  (K/V %s%s)\n", r, human_bytes(own).c_str(), human_bytes(sz.kv_per_rank[r]).c_str(),
                static_cast<int>(r) == m.at("driver").get<int>() ? (", Mamba/conv states " + human_bytes(sz.driver)).c_str()
                                                                 : "");
    total += sz.kv_per_rank[r];
  }
  std::printf("total        %s (ids %s)\n", human_bytes(total).c_str(), human_bytes(sz.ids).c_str());
  return 0;
}

int run_info(int argc, char** argv) {
  std::string model_dir, preset, state, device, link_name = "nvlink", calibration, layout = "zigzag";
  int64_t tokens = 4096;
  int ranks = 1, ranks_per_device = 1, kv_bytes = 4;
  int64_t block = 2048;
  double link_gbs = 0, link_us = -1;
  po::options_description opts("ringscan info: model architecture, the memory a run needs and its predicted time");
  opts.add_options()("help,h", "this help")
      ("model", po::value(&model_dir), "model folder")
      ("state", po::value(&state), "a saved state (ringscan prefill --out): its size per rank, prefix and files")
      ("preset", po::value(&preset), "a built-in shape instead of a folder (tiny, demo, nano-4b; bf16 weights)")
      ("tokens", po::value(&tokens)->default_value(4096), "document length in tokens")
      ("ranks", po::value(&ranks)->default_value(1), "ranks the document is split over (sequence parallel)")
      ("block-tokens", po::value(&block)->default_value(2048), "tokens per prefill block")
      ("gpu", po::value(&device), "predict the prefill's time on this device: h200 (engine v2, assumed rates) or "
                                  "h200-v1 (the first H200 run's rates)")
      ("calibration", po::value(&calibration), "predict from rates measured by bench_ops (its JSON lines)")
      ("link", po::value(&link_name)->default_value("nvlink"), "link between ranks for the prediction: nvlink or ib")
      ("link-gbs", po::value(&link_gbs), "the link's rate instead (GB/s each way per rank; e.g. as bench_comm measures it)")
      ("link-us", po::value(&link_us), "the link's latency per message instead (microseconds)")
      ("ranks-per-device", po::value(&ranks_per_device)->default_value(1), "ranks sharing one device (prediction)")
      ("layout", po::value(&layout)->default_value("zigzag"), "sequence layout for the prediction")
      ("kv-bytes", po::value(&kv_bytes)->default_value(4), "bytes per K/V element on the ring: 4 (fp32) or 2 (bf16)");
  po::variables_map vm;
  if (!parse_options(argc, argv, opts, vm)) return 0;
  if (!state.empty()) return print_state_info(state);
  if (tokens < 1 || ranks < 1 || block < 1 || ranks_per_device < 1)
    throw Error("--tokens, --ranks, --block-tokens and --ranks-per-device must be positive");
  if (model_dir.empty() == preset.empty()) throw Error("info needs exactly one of --model FOLDER, --preset NAME and --state DIR");
  if (kv_bytes != 2 && kv_bytes != 4) throw Error("--kv-bytes must be 2 (bf16) or 4 (fp32)");
  if (!device.empty() && !calibration.empty()) throw Error("give --gpu or --calibration, not both");
  ModelConfig c = preset.empty() ? load_model_config(model_dir) : preset_config(preset);
  const int64_t params = parameter_count(c);
  const uint64_t checkpoint_bytes =
      preset.empty() ? Checkpoint::open(model_dir).total_bytes() : static_cast<uint64_t>(params) * 2;

  const std::string model_name = preset.empty() ? model_dir : "preset " + preset;
  std::printf("model        %s\n", model_name.c_str());
  std::printf("layers       %zu  pattern %s  (%lld Mamba-2, %lld attention, %lld MLP)\n", c.layers.size(),
              c.pattern().c_str(), (long long)c.count(LayerKind::Mamba), (long long)c.count(LayerKind::Attention),
              (long long)c.count(LayerKind::Mlp));
  std::printf("hidden       %lld  vocab %lld  tied lm_head %s  norm eps %g\n", (long long)c.hidden_size,
              (long long)c.vocab_size, c.tie_word_embeddings ? "yes" : "no", c.norm_eps);
  std::printf("attention    %lld heads / %lld KV heads x %lld  position %s\n", (long long)c.num_heads,
              (long long)c.num_kv_heads, (long long)c.head_dim, c.rope ? "rope" : "none");
  std::printf("mamba-2      %lld heads x %lld  state %lld  groups %lld  conv %lld  chunk %lld\n",
              (long long)c.mamba_heads, (long long)c.mamba_head_dim, (long long)c.ssm_state, (long long)c.n_groups,
              (long long)c.conv_kernel, (long long)c.chunk_size);
  std::printf("mlp          %lld  %s\n", (long long)c.intermediate_size, c.mlp == MlpKind::Relu2 ? "relu^2" : "SwiGLU");
  std::printf("parameters   %lld (%.3g)  checkpoint %s\n", (long long)params, (double)params,
              human_bytes(checkpoint_bytes).c_str());
  std::printf("per token    KV cache %s  (fp32)   per Mamba layer: state %s (fp32)\n",
              human_bytes(kv_bytes_per_token(c)).c_str(), human_bytes(ssm_state_bytes_per_layer(c)).c_str());

  // What a run's default --memory-per-rank is taken from (70% of it, shared by the node's ranks).
  const MemoryLimit limit = node_memory_limit();
  std::printf("memory: %s (%s)\n", human_bytes(limit.bytes).c_str(), limit.source.c_str());

  MemoryPlan p = plan_memory(c, checkpoint_bytes, tokens, ranks, block);
  std::printf("\nmemory plan: %lld tokens over %d rank(s) = %lld tokens per rank\n", (long long)tokens, ranks,
              (long long)p.tokens_per_rank);
  std::printf("  weights (mmapped, shared per node)  %s\n", human_bytes(p.weight_bytes).c_str());
  std::printf("  residual stream                     %s\n", human_bytes(p.residual_bytes).c_str());
  std::printf("  KV cache                            %s\n", human_bytes(p.kv_cache_bytes).c_str());
  std::printf("  Mamba/conv states                   %s\n", human_bytes(p.ssm_state_bytes).c_str());
  std::printf("  block workspace                     %s\n", human_bytes(p.workspace_bytes).c_str());
  std::printf("  sequence-parallel buffers           %s\n", human_bytes(p.sequence_parallel_bytes).c_str());
  std::printf("  per rank, besides weights           %s\n", human_bytes(p.total_private()).c_str());

  const DeviceMemoryPlan g = plan_device_memory(c, tokens, ranks, block);
  std::printf("\nGPU engine (--device cuda), per rank:\n");
  std::printf("  weights (bf16, one copy per rank)   %s\n", human_bytes(g.weight_bytes).c_str());
  std::printf("  activation arena (%lld-token blocks) %s\n", (long long)block, human_bytes(g.arena_bytes).c_str());
  std::printf("  KV cache                            %s\n", human_bytes(g.kv_cache_bytes).c_str());
  std::printf("  Mamba/conv states                   %s\n", human_bytes(g.ssm_state_bytes).c_str());
  std::printf("  sequence-parallel buffers           %s\n", human_bytes(g.sequence_parallel_bytes).c_str());
  std::printf("  kernel scratch                      %s\n", human_bytes(g.scratch_bytes).c_str());
  std::printf("  total                               %s\n", human_bytes(g.total()).c_str());

  if (!device.empty() || !calibration.empty()) {
    PerfQuery q;
    q.tokens = tokens;
    q.ranks = ranks;
    q.ranks_per_device = ranks_per_device;
    q.layout = parse_layout(layout);
    q.kv_bytes_per_elem = kv_bytes;
    LinkRates link = builtin_link(link_name);
    if (link_gbs > 0 || link_us >= 0) {
      link.name += " (overridden)";
      link.source = "given on the command line";
      if (link_gbs > 0) link.bytes_per_s = link_gbs * 1e9;
      if (link_us >= 0) link.latency_s = link_us * 1e-6;
    }
    print_prediction(c, q, device.empty() ? device_rates_from_bench_ops(calibration) : builtin_device(device), link);
  }
  return 0;
}

}  // namespace

RINGSCAN_COMMAND("info", "architecture, parameter count and memory plan of a model", run_info);

}  // namespace ringscan::cli
