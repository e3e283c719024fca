// The final hidden states (after norm_f) of consecutive positions, wherever a
// backend holds them (host memory on the CPU, device memory on a GPU), and
// what is computed from them: logits, the log-prob of given next ids, and the
// rows themselves on the host. Document values (document_values.h), the
// per-position output of `forward` and the gather of a sequence-parallel
// document read them through this one view, whichever backend ran.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/model.h"

namespace ringscan {

class FinalHidden {
 public:
  virtual ~FinalHidden() = default;
  virtual int64_t rows() const = 0;
  // Logits [n, vocab] of rows r0..r0+n, on the host.
  virtual std::vector<float> logits(int64_t r0, int64_t n) const = 0;
  // out[t] = log p(targets[t] | row r0 + t) for t < n (host arrays).
  virtual void target_logprobs(int64_t r0, int64_t n, const int32_t* targets, float* out) const = 0;
  // Rows r0..r0+n, [n, hidden], on the host: where they are, or copied into `storage`.
  virtual const float* host_rows(int64_t r0, int64_t n, std::vector<float>& storage) const = 0;
};

// Rows in host memory, computed from with the CPU Model.
class HostFinalHidden final : public FinalHidden {
 public:
  // hidden: [rows, hidden_size], outliving this view.
  HostFinalHidden(const Model& model, const float* hidden, int64_t rows) : model_(model), hidden_(hidden), rows_(rows) {}
  int64_t rows() const override { return rows_; }
  std::vector<float> logits(int64_t r0, int64_t n) const override;
  void target_logprobs(int64_t r0, int64_t n, const int32_t* targets, float* out) const override;
  const float* host_rows(int64_t r0, int64_t n, std::vector<float>& storage) const override;

 private:
  const Model& model_;
  const float* hidden_;
  int64_t rows_;
};

// Takes a prompt's logits (`ringscan forward` prints them), rows in order, in
// blocks of at most max_rows ([rows, vocab] on the host), so that a long
// prompt never holds all of its logits at once.
struct LogitsSink {
  int64_t max_rows = 1;
  std::function<void(int64_t row0, int64_t rows, std::vector<float> logits)> take;
  // The logits of `block`, whose first row is position row0 of the prompt.
  void feed(int64_t row0, const FinalHidden& block) const;
};

}  // namespace ringscan
