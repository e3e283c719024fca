#include <cuda_runtime.h>

#include "model/cuda/cuda_check.h"
#include "model/device_model.h"
#include "runtime/cuda/device_final_hidden.h"
#include "runtime/decode_engine.h"
#include "util/error.h"

namespace ringscan {

namespace {

struct GpuSequence : DecodeEngine::Sequence {
  DeviceSequence seq;
  DeviceBuffer last_hidden;  // [hidden]: the prompt's last final hidden row (the arena is reused)
  // Set when its last prefill chunk ran on the sibling's stream: the engine's
  // stream waits for it before the first token (no host wait).
  cudaEvent_t chunk_done = nullptr;
  bool chunk_pending = false;
  ~GpuSequence() override {
    if (chunk_done) cudaEventDestroy(chunk_done);
  }
};


// The prefill overlap's second engine takes at most this share of the free
// device memory, so that the rest stays for the batch's KV caches and states.
constexpr double kSiblingShareOfFree = 0.5;

class DeviceDecodeEngine final : public DecodeEngine {
 public:
  explicit DeviceDecodeEngine(DeviceModel& model) : model_(model) {}
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t max_batch() const override { return model_.block_tokens(); }

  std::unique_ptr<Sequence> prefill(const std::vector<int32_t>& prompt,
                                    const LogitsSink* prompt_logits = nullptr) override {
    auto s = start_prefill(static_cast<int64_t>(prompt.size()));
    run(model_, static_cast<GpuSequence&>(*s), prompt.data(), static_cast<int64_t>(prompt.size()), prompt_logits);
    return s;
  }

  std::unique_ptr<Sequence> start_prefill(int64_t prompt_tokens) override {
    auto s = std::make_unique<GpuSequence>();
    s->seq = model_.new_sequence(prompt_tokens + 256);  // room for the first new tokens; the caches grow past it
    s->last_hidden = DeviceBuffer(uint64_t(model_.config().hidden_size) * 4, "a sequence's last hidden row");
    return s;
  }

  // Overlapped, the chunk runs on the sibling's stream and is followed by the
  // sequence's event; the decode step queued next on the engine's stream does
  // not touch this sequence (it is not in the batch until its first token),
  // and the KV caches were sized for the whole prompt at start_prefill, so
  // nothing here waits on the host.
  void prefill_chunk(Sequence& seq, const int32_t* ids, int64_t n, bool overlap) override {
    auto& g = static_cast<GpuSequence&>(seq);
    if (overlap && !sibling_)
      throw Error("internal: an overlapped prefill chunk before enable_prefill_overlap() succeeded");
    DeviceModel& m = overlap ? *sibling_ : model_;
    if (g.chunk_pending && !overlap) wait_for_chunk(g);
    run(m, g, ids, n, nullptr);
    if (overlap) {
      if (!g.chunk_done) cuda_check(cudaEventCreateWithFlags(&g.chunk_done, cudaEventDisableTiming), "creating an event");
      cuda_check(cudaEventRecord(g.chunk_done, m.stream()), "recording a prefill chunk's end");
      g.chunk_pending = true;
    }
  }

  // What it checks: the fp32 engine's GEMMs widen bf16 weights into one
  // per-thread buffer (kernels/linear.h), so two of its streams must not run
  // GEMMs at once; and the second arena (and its cuBLAS workspace) must fit in
  // kSiblingShareOfFree of the device's free memory now.
  bool enable_prefill_overlap(std::string* why) override {
    if (sibling_) return true;
    if (model_.act_dtype() != DType::BF16) {
      *why = "the fp32 GPU engine (--gemm-inputs fp32) shares one GEMM buffer between streams, so prefill chunks "
             "run between decode steps instead of beside them";
      return false;
    }
    size_t free_b = 0, total_b = 0;
    cuda_check(cudaMemGetInfo(&free_b, &total_b), "reading the free device memory");
    const uint64_t need = model_.sibling_bytes();
    if (static_cast<double>(need) > kSiblingShareOfFree * static_cast<double>(free_b)) {
      *why = "the second activation arena for overlapped prefill needs " + std::to_string(need >> 20) +
             " MiB, more than half of the GPU's free " + std::to_string(free_b >> 20) +
             " MiB, so prefill chunks run between decode steps instead of beside them";
      return false;
    }
    sibling_ = model_.make_sibling();
    return true;
  }

  int32_t first_token(Sequence& seq, const kernels::SamplingParams& params, uint64_t stream,
                      uint64_t step) override {
    auto& g = static_cast<GpuSequence&>(seq);
    if (g.chunk_pending) wait_for_chunk(g);
    int32_t token = 0;
    model_.sample(g.last_hidden.as<float>(), 1, &params, &stream, &step, &token);
    g.last_hidden = DeviceBuffer();
    return token;
  }

  void step(const int32_t* ids, int64_t n, Sequence* const* seqs, const kernels::SamplingParams* params,
            const uint64_t* stream, const uint64_t* step, int32_t* out) override {
    std::vector<DeviceSequence*> s(n);
    for (int64_t i = 0; i < n; ++i) s[i] = &static_cast<GpuSequence*>(seqs[i])->seq;
    model_.decode_and_sample(ids, n, s.data(), params, stream, step, out);
  }

 private:
  // ids on `m` after what g holds; the last row's final hidden state into g.last_hidden.
  void run(DeviceModel& m, GpuSequence& g, const int32_t* ids, int64_t n, const LogitsSink* logits) {
    const int64_t D = m.config().hidden_size;
    m.forward(ids, n, g.seq, [&](int64_t row0, int64_t rows, const float* d_hidden) {
      if (logits) logits->feed(row0, DeviceFinalHidden(m, d_hidden, rows));
      cuda_check(cudaMemcpyAsync(g.last_hidden.get(), d_hidden + (rows - 1) * D, D * 4, cudaMemcpyDeviceToDevice,
                            m.stream()),
            "last hidden row copy");
    });
  }
  // The engine's stream waits (on the device) for the sibling's chunk of g.
  void wait_for_chunk(GpuSequence& g) {
    cuda_check(cudaStreamWaitEvent(model_.stream(), g.chunk_done, 0), "waiting for a prefill chunk");
    g.chunk_pending = false;
  }

  DeviceModel& model_;
  std::unique_ptr<DeviceModel> sibling_;  // overlapped prefill chunks (enable_prefill_overlap)
};

}  // namespace

std::unique_ptr<DecodeEngine> make_device_decode_engine(DeviceModel& model) {
  return std::make_unique<DeviceDecodeEngine>(model);
}

}  // namespace ringscan
