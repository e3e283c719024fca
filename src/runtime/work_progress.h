// Work done inside one long engine call, for progress lines while a document runs:
// a prefill block or layer, a layer of a sequence-parallel forward, a decode step.
// The runtime reports it here and a listener (a batch job's progress) counts it; the
// calls that do the work are many layers below the job, and a log line does not
// justify a callback argument on each of them.
//
// Unit: token positions through the whole model. A prefilled token is 1 (a layer of
// n tokens is n / layers), a generated token is 1. A sequence-parallel forward
// reports its whole document's positions on every rank of the group (the layers
// advance in step on every rank), so one rank of the group can count it alone.
#pragma once
#include <functional>

namespace ringscan {

using WorkListener = std::function<void(double positions)>;

// Installs a listener for this thread while it lives (the previous one comes back after).
class ScopedWorkListener {
 public:
  explicit ScopedWorkListener(WorkListener listener);
  ~ScopedWorkListener();
  ScopedWorkListener(const ScopedWorkListener&) = delete;
  ScopedWorkListener& operator=(const ScopedWorkListener&) = delete;

 private:
  WorkListener previous_;
};

// Tells this thread's listener, if any, that `positions` more are done.
void report_work(double positions);

}  // namespace ringscan
