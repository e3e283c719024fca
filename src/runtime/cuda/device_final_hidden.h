// Final hidden rows in GPU memory (CUDA builds), computed from with the GPU
// engine: logits and log-probs on the device, results copied to the host.
#pragma once
#include "model/device_model.h"
#include "runtime/final_hidden.h"

namespace ringscan {

class DeviceFinalHidden final : public FinalHidden {
 public:
  // d_hidden: [rows, hidden_size] on the device, outliving this view.
  DeviceFinalHidden(DeviceModel& model, const float* d_hidden, int64_t rows)
      : model_(model), d_hidden_(d_hidden), rows_(rows) {}
  int64_t rows() const override { return rows_; }
  std::vector<float> logits(int64_t r0, int64_t n) const override {
    return model_.logits_to_host(row(r0), n);
  }
  void target_logprobs(int64_t r0, int64_t n, const int32_t* targets, float* out) const override {
    model_.target_logprobs(row(r0), n, targets, out);
  }
  const float* host_rows(int64_t r0, int64_t n, std::vector<float>& storage) const override {
    storage.resize(n * model_.config().hidden_size);
    device_to_host(storage.data(), row(r0), static_cast<int64_t>(storage.size()));
    return storage.data();
  }

 private:
  const float* row(int64_t r) const { return d_hidden_ + r * model_.config().hidden_size; }
  DeviceModel& model_;
  const float* d_hidden_;
  int64_t rows_;
};

}  // namespace ringscan
