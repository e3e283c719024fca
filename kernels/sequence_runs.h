#pragma once
// The runs of equal ids in a host sequence index (varlen ops' seq_idx: the
// sequence of each packed row), for the host backends of the varlen ops.
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ringscan::kernels {

// Calls f(first_row, rows) once per sequence, in order. A negative or
// decreasing id throws std::invalid_argument naming `op` and the row.
template <class F>
void for_each_sequence(const int32_t* seq_idx, int64_t rows, const char* op, F&& f) {
  int64_t begin = 0;
  for (int64_t t = 0; t < rows; ++t) {
    if (seq_idx[t] < 0 || (t > 0 && seq_idx[t] < seq_idx[t - 1]))
      throw std::invalid_argument(std::string(op) + ": seq_idx must be non-negative and non-decreasing (row " +
                                  std::to_string(t) + " has " + std::to_string(seq_idx[t]) + ")");
    if (t > 0 && seq_idx[t] != seq_idx[t - 1]) {
      f(begin, t - begin);
      begin = t;
    }
  }
  if (rows > 0) f(begin, rows - begin);
}

}  // namespace ringscan::kernels
