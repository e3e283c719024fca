#include "runtime/work_progress.h"

#include <utility>

namespace ringscan {

namespace {
thread_local WorkListener current;
}  // namespace

ScopedWorkListener::ScopedWorkListener(WorkListener listener) : previous_(std::move(current)) {
  current = std::move(listener);
}

ScopedWorkListener::~ScopedWorkListener() { current = std::move(previous_); }

void report_work(double positions) {
  if (current) current(positions);
}

}  // namespace ringscan
