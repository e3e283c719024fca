// Minimal NumPy .npy reader/writer (version 1.0, little-endian, C order):
// float32 arrays for logits and fixtures, int32/int64 for ids.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ringscan {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;  // converted to float32 whatever the stored dtype
  int64_t numel() const;
};

// Reads <f4, <f8, <i4, <i8 arrays; errors name the file and what was wrong.
NpyArray read_npy(const std::string& path);

// Writes a float32 array of the given shape.
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape);

// Streams a float32 array whose shape is known up front, rows appended in order
// (for logits of long inputs that never sit in memory at once).
class NpyWriter {
 public:
  NpyWriter(const std::string& path, const std::vector<int64_t>& shape);
  ~NpyWriter();
  void append(const float* data, int64_t n);  // n elements
  void close();                               // checks the element count

 private:
  std::string path_;
  void* file_ = nullptr;
  int64_t expected_ = 0, written_ = 0;
};

}  // namespace ringscan
