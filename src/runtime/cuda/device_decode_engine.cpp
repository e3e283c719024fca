#include <cuda_runtime.h>

#include "model/device_model.h"
#include "runtime/cuda/device_final_hidden.h"
#include "runtime/decode_engine.h"
#include "util/error.h"

namespace ringscan {

namespace {

struct GpuSequence : DecodeEngine::Sequence {
  DeviceSequence seq;
  DeviceBuffer last_hidden;  // [hidden]: the prompt's last final hidden row (the arena is reused)
};

class DeviceDecodeEngine final : public DecodeEngine {
 public:
  explicit DeviceDecodeEngine(DeviceModel& model) : model_(model) {}
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t max_batch() const override { return model_.block_tokens(); }

  std::unique_ptr<Sequence> prefill(const std::vector<int32_t>& prompt,
                                    const LogitsSink* prompt_logits = nullptr) override {
    const int64_t L = prompt.size(), D = model_.config().hidden_size;
    auto s = std::make_unique<GpuSequence>();
    s->seq = model_.new_sequence(L + 256);  // room for the first new tokens; the caches grow past it
    s->last_hidden = DeviceBuffer(uint64_t(D) * 4, "a sequence's last hidden row");
    model_.forward(prompt.data(), L, s->seq, [&](int64_t row0, int64_t rows, const float* d_hidden) {
      if (prompt_logits) prompt_logits->feed(row0, DeviceFinalHidden(model_, d_hidden, rows));
      const cudaError_t e = cudaMemcpyAsync(s->last_hidden.get(), d_hidden + (rows - 1) * D, D * 4,
                                            cudaMemcpyDeviceToDevice, model_.stream());
      if (e != cudaSuccess) throw Error(std::string("CUDA: last hidden row copy failed: ") + cudaGetErrorString(e));
    });
    return s;
  }

  int32_t first_token(Sequence& seq, const kernels::SamplingParams& params, uint64_t stream,
                      uint64_t step) override {
    auto& g = static_cast<GpuSequence&>(seq);
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
  DeviceModel& model_;
};

}  // namespace

std::unique_ptr<DecodeEngine> make_device_decode_engine(DeviceModel& model) {
  return std::make_unique<DeviceDecodeEngine>(model);
}

}  // namespace ringscan
