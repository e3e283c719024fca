// ringscan info: architecture, parameter count and the memory plan for a length and rank count.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "model/config.h"
#include "model/memory_plan.h"
#include "model/presets.h"
#include "model/safetensors.h"
#include "runtime/memory_limit.h"
#include "util/error.h"

namespace po = boost::program_options;

namespace ringscan::cli {
namespace {

int run_info(int argc, char** argv) {
  std::string model_dir;
  int64_t tokens = 4096;
  int ranks = 1;
  int64_t block = 2048;
  po::options_description opts("ringscan info: model architecture and the memory a run needs");
  opts.add_options()("help,h", "this help")
      ("model", po::value(&model_dir)->required(), "model folder")
      ("tokens", po::value(&tokens)->default_value(4096), "document length in tokens")
      ("ranks", po::value(&ranks)->default_value(1), "ranks the document is split over (sequence parallel)")
      ("block-tokens", po::value(&block)->default_value(2048), "tokens per prefill block");
  po::variables_map vm;
  if (!parse_options(argc, argv, opts, vm)) return 0;
  if (tokens < 1 || ranks < 1 || block < 1) throw Error("--tokens, --ranks and --block-tokens must be positive");
  ModelConfig c = load_model_config(model_dir);
  Checkpoint ckpt = Checkpoint::open(model_dir);
  const int64_t params = parameter_count(c);

  std::printf("model        %s\n", model_dir.c_str());
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
              human_bytes(ckpt.total_bytes()).c_str());
  std::printf("per token    KV cache %s  (fp32)   per Mamba layer: state %s (fp32)\n",
              human_bytes(kv_bytes_per_token(c)).c_str(), human_bytes(ssm_state_bytes_per_layer(c)).c_str());

  // What a run's default --memory-per-rank is taken from (70% of it, shared by the node's ranks).
  const MemoryLimit limit = node_memory_limit();
  std::printf("memory: %s (%s)\n", human_bytes(limit.bytes).c_str(), limit.source.c_str());

  MemoryPlan p = plan_memory(c, ckpt.total_bytes(), tokens, ranks, block);
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
  return 0;
}

}  // namespace

RINGSCAN_COMMAND("info", "architecture, parameter count and memory plan of a model", run_info);

}  // namespace ringscan::cli
