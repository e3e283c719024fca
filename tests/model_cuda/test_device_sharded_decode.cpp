// GPU sharded decode (runtime/sharded_decode_engine.h's GPU engine) under
// mpirun -np P, over both communicators: MPI (queries, K/V rows and partials
// staged through host memory: ranks may share one GPU, as CI runs it with
// one emulated GPU for 2 ranks) and NCCL (device buffers only, a GPU per
// rank). With fp32 GEMM inputs and cache, greedy tokens after a GPU
// sequence-parallel prefill of either layout equal the single-rank GPU
// decode (Decoder on the GPU engine) and the CPU sharded decoder, token for
// token: prompts shorter than P, a chunk, and longer; continuous batching
// with documents joining and leaving. With the bf16 engine (bf16 cache) the
// sequence-parallel prefill itself differs from the single-rank one by bf16
// round-off (~1e-2 on these tiny random models, enough to flip their
// near-tied logits), so there the decode is compared from the same prefill:
// the sharded decode of kept states equals the single-rank GPU decode of the
// same states gathered on one rank. Each step's bytes equal decode.h's
// formulas, nothing else sent. Linked into test_device_sp (its main).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/decode_test_util.h"
#include "comm/mpi_communicator.h"
#include "model/device_model.h"
#include "model/model.h"
#include "model_cuda/device_sp_test.h"
#include "runtime/decode.h"
#include "runtime/decode_engine.h"
#include "runtime/device_sequence_parallel.h"

using namespace ringscan;

namespace {
using test::prompt_of;
using test::request;

using test::fixture;
using test::Tokens;
using Case = test::CommCase;
Tokens run(auto& decoder, const std::vector<GenerationRequest>& reqs) { return test::run_requests(decoder, reqs); }

// Each document alone on this rank's GPU.
Tokens single_gpu(DeviceModel& dev, const std::vector<GenerationRequest>& reqs) {
  auto engine = make_device_decode_engine(dev);
  Tokens out;
  for (const auto& r : reqs) {
    Decoder d(*engine, 1);
    out.merge(run(d, {r}));
  }
  return out;
}

// Fp32: fp32 KV cache, compared with the CPU too; Bf16: the bf16 cache.
class DeviceShardedDecode : public test::CommCaseTest {
 protected:
  std::unique_ptr<ShardedDecodeEngine> engine(DeviceModel& dev) {
    comm::Communicator& x = exchange_for(dev);
    return make_device_sharded_decode_engine(dev, [&x](comm::Communicator&) -> comm::Communicator& { return x; });
  }
};

// fp32 only (see the top): against the single-rank GPU decode and the CPU.
class DeviceShardedDecodeExact : public DeviceShardedDecode {};

// One document at a time, every prompt length, both layouts; GQA with
// groups, RoPE, and MLP first with MHA.
TEST_P(DeviceShardedDecodeExact, GreedyEqualsSingleRankGpuAndCpu) {
  const int P = world_->size();
  for (const char* name : {"groups_gqa", "rope", "mlp_first_g4"}) {
    auto model = Model::load(fixture(name), true);
    const ModelConfig& c = model->config();
    DeviceModel dev(*model, DeviceModelOptions{GetParam().gemm, 0});
    auto sharded = engine(dev);
    std::set<int64_t> lens = {1, static_cast<int64_t>(P) + 1, 2 * static_cast<int64_t>(P) + 1, 2 * c.chunk_size + 3};
    if (P > 1) lens.insert(P - 1);  // a prompt shorter than P: some ranks hold no K/V row at first
    std::vector<GenerationRequest> reqs;
    for (int64_t L : lens) reqs.push_back(request(L, prompt_of(L, c.vocab_size, L), 5));
    const Tokens want = single_gpu(dev, reqs);
    for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
      const std::string where = std::string(name) + " P=" + std::to_string(P) + " " + layout_name(kind);
      ShardedDecoder gpu(*sharded, *world_, kind, 1);
      const Tokens got = run(gpu, reqs);
      for (const auto& r : reqs) EXPECT_EQ(got.at(r.id), want.at(r.id)) << where << " L=" << r.prompt.size();
      ShardedDecoder cpu(*model, *world_, kind, 1);
      const Tokens on_cpu = run(cpu, reqs);
      for (const auto& r : reqs) EXPECT_EQ(got.at(r.id), on_cpu.at(r.id)) << where << " (CPU) L=" << r.prompt.size();
    }
  }
}

// Continuous batching: 6 documents of different lengths and budgets through 3
// slots (documents join as others leave) equal each alone on one GPU.
TEST_P(DeviceShardedDecodeExact, ContinuousBatchingEqualsEachAlone) {
  const int P = world_->size();
  auto model = Model::load(fixture("groups_gqa"), true);
  const ModelConfig& c = model->config();
  DeviceModel dev(*model, DeviceModelOptions{GetParam().gemm, 0});
  auto sharded = engine(dev);
  const std::vector<int64_t> lens = {23, 1, static_cast<int64_t>(P) + 2, 2 * c.chunk_size + 1, 3, 11};
  std::vector<GenerationRequest> reqs;
  for (size_t i = 0; i < lens.size(); ++i)
    reqs.push_back(request(10 + i, prompt_of(lens[i], c.vocab_size, 50 + i), 2 + (i * 3) % 6));
  const Tokens want = single_gpu(dev, reqs);
  for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
    ShardedDecoder d(*sharded, *world_, kind, 3);
    const Tokens got = run(d, reqs);
    ASSERT_EQ(got.size(), reqs.size());
    for (const auto& r : reqs)
      EXPECT_EQ(got.at(r.id), want.at(r.id)) << layout_name(kind) << " document " << r.id << " (L=" << r.prompt.size()
                                             << ")";
  }
}

// This rank's kept state gathered on the driver as one single-rank sequence:
// every rank's K/V shard of each attention layer, in rank order (the order of
// keys changes attention only by round-off), and the driver's Mamba states.
DeviceSequence gather_on_driver(DeviceModel& dev, comm::Communicator& world, const DeviceSequenceParallelDecodeState& st) {
  const ModelConfig& c = dev.config();
  const int me = world.rank(), drv = st.driver;
  const uint64_t row_bytes = uint64_t(c.num_kv_heads) * c.head_dim * dtype_size(dev.kv_cache_dtype());
  DeviceSequence seq;
  if (me == drv) {
    seq.layers.resize(c.layers.size());
    seq.position = st.length;
  }
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const DeviceLayerCache& mine = st.seq.layers[i];
    if (c.layers[i] == LayerKind::Mamba) {
      if (me != drv) continue;
      DeviceLayerCache& l = seq.layers[i];
      l.conv_history = DeviceBuffer(mine.conv_history.bytes(), "test conv history");
      l.ssm_state = DeviceBuffer(mine.ssm_state.bytes(), "test SSM state");
      cudaMemcpy(l.conv_history.get(), mine.conv_history.get(), mine.conv_history.bytes(), cudaMemcpyDeviceToDevice);
      cudaMemcpy(l.ssm_state.get(), mine.ssm_state.get(), mine.ssm_state.bytes(), cudaMemcpyDeviceToDevice);
      continue;
    }
    if (c.layers[i] != LayerKind::Attention) continue;
    std::vector<char> k(mine.kv_rows * row_bytes), v(k.size());
    cudaMemcpy(k.data(), mine.k.get(), k.size(), cudaMemcpyDeviceToHost);
    cudaMemcpy(v.data(), mine.v.get(), v.size(), cudaMemcpyDeviceToHost);
    std::vector<std::size_t> counts = world.all_gather_counts(k.size());
    std::vector<char> all_k, all_v;
    std::size_t total = 0;
    for (auto n : counts) total += n;
    all_k.resize(total), all_v.resize(total);
    world.all_gather_v(k.data(), all_k.data(), counts);
    world.all_gather_v(v.data(), all_v.data(), counts);
    if (me != drv) continue;
    DeviceLayerCache& l = seq.layers[i];
    l.kv_dtype = dev.kv_cache_dtype();
    dev.reserve_kv(l, st.length + 16);
    cudaMemcpy(l.k.get(), all_k.data(), total, cudaMemcpyHostToDevice);
    cudaMemcpy(l.v.get(), all_v.data(), total, cudaMemcpyHostToDevice);
    l.kv_rows = st.length;
    l.kv_pos0 = 0;
  }
  return seq;
}

// The decode alone, in either precision: three documents prefilled
// sequence-parallel (kept states handed to submit_prefilled), decoded sharded
// through 2 slots, equal on the driver the single-rank GPU decode of the same
// states gathered there.
TEST_P(DeviceShardedDecode, DecodeOfKeptStatesEqualsSingleRankGpu) {
  const int P = world_->size(), me = world_->rank();
  for (const char* name : {"groups_gqa", "rope"}) {
    auto model = Model::load(fixture(name), true);
    const ModelConfig& c = model->config();
    DeviceModel dev(*model, DeviceModelOptions{GetParam().gemm, 0});
    auto sharded = engine(dev);
    for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
      const std::string where = std::string(name) + " P=" + std::to_string(P) + " " + layout_name(kind);
      ShardedDecoder d(*sharded, *world_, kind, 2);
      Tokens want;
      const std::vector<int64_t> lens = {1, static_cast<int64_t>(P) + 2, 2 * c.chunk_size + 3};
      for (size_t i = 0; i < lens.size(); ++i) {
        const int64_t L = lens[i], max_new = 3 + static_cast<int64_t>(i);
        const auto prompt = prompt_of(L, c.vocab_size, 7 + i);
        DeviceSequenceParallelForward sp(dev, exchange(), make_layout(L, P, kind));
        sp.set_keep_decode_state(true);
        sp.run([&](const Segment& s) { return std::vector<int32_t>(prompt.begin() + s.begin, prompt.begin() + s.end()); });
        DeviceSequenceParallelDecodeState st = sp.take_decode_state();
        DeviceSequence ref = gather_on_driver(dev, *world_, st);
        if (me == st.driver) {  // the reference: greedy on one GPU from the same state
          const kernels::SamplingParams greedy;
          std::vector<int32_t> toks(1);
          uint64_t stream = i, step = 0;
          dev.sample(st.last_hidden.as<float>(), 1, &greedy, &stream, &step, toks.data());
          DeviceSequence* seqs[] = {&ref};
          while (static_cast<int64_t>(toks.size()) < max_new) {
            int32_t next = 0;
            step = toks.size();
            dev.decode_and_sample(&toks.back(), 1, seqs, &greedy, &stream, &step, &next);
            toks.push_back(next);
          }
          want[i] = toks;
        }
        d.submit_prefilled(request(i, prompt, max_new), adopt_device_decode_state(std::move(st)));
      }
      Tokens got;
      for (auto& r : d.run()) got[r.id] = std::move(r.tokens);
      ASSERT_EQ(got.size(), lens.size()) << where;
      if (me == d.driver()) {
        for (size_t i = 0; i < lens.size(); ++i) EXPECT_EQ(got.at(i), want.at(i)) << where << " L=" << lens[i];
      }
    }
  }
}

uint64_t sum_over_ranks(comm::Communicator& world, uint64_t v) {
  int64_t x = static_cast<int64_t>(v);
  world.all_reduce(&x, 1, comm::ReduceOp::sum);
  return static_cast<uint64_t>(x);
}

// Bytes of decode, summed over the group, against decode.h's formulas (the
// tokens over the group, the rest over the exchange communicator); new K/V
// rows land where the balance rule says; nothing else is sent.
TEST_P(DeviceShardedDecode, BytesMatchFormulas) {
  const int P = world_->size();
  auto model = Model::load(fixture("groups_gqa"), true);
  const ModelConfig& c = model->config();
  DeviceModel dev(*model, DeviceModelOptions{GetParam().gemm, 0});
  auto sharded = engine(dev);
  const uint64_t A = c.count(LayerKind::Attention), qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim,
                 Hq = c.num_heads, B = 2;
  for (auto kind : {LayoutKind::Contiguous, LayoutKind::Zigzag}) {
    for (int64_t L : {int64_t{1}, int64_t{2 * P + 3}}) {
      const int64_t n_new = 5, steps = n_new - 1;  // the first token comes from the prefill
      world_->reset_counters();
      exchange().reset_counters();
      ShardedDecoder d(*sharded, *world_, kind, static_cast<int>(B));
      for (uint64_t i = 0; i < B; ++i) d.submit(request(i, prompt_of(L, c.vocab_size, 1 + i), n_new));
      const auto res = d.run();
      auto traffic = exchange().traffic_by_label();
      if (nccl_)  // the tokens go over the group
        for (const auto& [label, t] : world_->traffic_by_label()) traffic[label].bytes_sent += t.bytes_sent;
      ASSERT_EQ(res.size(), B);
      // Both documents in every step; the balance rule per document.
      const SequenceLayout l = make_layout(L, P, kind);
      const int drv = d.driver();
      std::vector<int64_t> rows(P);
      for (int r = 0; r < P; ++r) rows[r] = l.tokens_of(r);
      uint64_t off_driver = 0;
      for (int64_t s = 0; s < steps; ++s) {
        const int t = static_cast<int>(std::min_element(rows.begin(), rows.end()) - rows.begin());
        off_driver += t != drv;
        rows[t] += 1;
      }
      const std::string where = std::string(layout_name(kind)) + " L=" + std::to_string(L) + " P=" + std::to_string(P);
      auto sent = [&](const char* label) {
        auto it = traffic.find(label);
        return sum_over_ranks(*world_, it == traffic.end() ? 0 : it->second.bytes_sent);
      };
      EXPECT_EQ(sent(ShardedDecoder::kQueryLabel), steps * A * (P - 1) * B * qd * 4) << where;
      EXPECT_EQ(sent(ShardedDecoder::kPartialLabel), steps * A * (P - 1) * B * Hq * (c.head_dim + 2) * 4) << where;
      EXPECT_EQ(sent(ShardedDecoder::kKvLabel), B * off_driver * A * 2 * kvd * 4) << where;
      EXPECT_EQ(sent(ShardedDecoder::kTokenLabel), B * (P - 1) * 4 + steps * (P - 1) * B * 4) << where;
      int holder = -1;
      for (const auto& s : l.segments)
        if (s.len > 0 && s.end() == L) holder = s.owner;
      EXPECT_EQ(sent("decode.handoff"), holder == drv ? 0u : B * c.hidden_size * 4) << where;
      uint64_t other = 0;
      for (const auto& [label, t] : traffic)
        if (label.rfind("layer", 0) != 0 && label.rfind("decode.", 0) != 0) other += t.bytes_sent;
      EXPECT_EQ(sum_over_ranks(*world_, other), 0u) << where;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fp32, DeviceShardedDecodeExact,
                         ::testing::Values(Case{"mpi", GemmInputs::Fp32}, Case{"nccl", GemmInputs::Fp32}), test::comm_case_name);
INSTANTIATE_TEST_SUITE_P(Comms, DeviceShardedDecode,
                         ::testing::Values(Case{"mpi", GemmInputs::Fp32}, Case{"mpi", GemmInputs::Bf16},
                                           Case{"nccl", GemmInputs::Fp32}, Case{"nccl", GemmInputs::Bf16}),
                         test::comm_case_name);

}  // namespace
