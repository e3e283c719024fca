// Reading safetensors checkpoints: one `model.safetensors`, or shards listed in
// `model.safetensors.index.json`. Files are mmapped read-only; tensors are
// views into the mapping (a bf16 checkpoint stays bf16 in memory, shared by the
// page cache between ranks on one node). Every header is validated up front so
// a bad checkpoint fails with one sentence naming the file and tensor.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/weight_view.h"

namespace ringscan {

struct TensorEntry {
  std::string name;
  std::string file;  // path, for messages
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class Checkpoint {
 public:
  // model_dir holds model.safetensors or model.safetensors.index.json + shards.
  static Checkpoint open(const std::string& model_dir);

  const std::map<std::string, TensorEntry>& tensors() const { return tensors_; }
  const TensorEntry* find(const std::string& name) const;
  const std::string& dir() const { return dir_; }
  uint64_t total_bytes() const;
  // The safetensors files read, as opened (a run's identity hashes them).
  std::vector<std::string> file_paths() const;

  // Tensors held in memory rather than in files (benchmarks of random models
  // too large to write, e.g. nano-4b on a short GPU lease). `label` stands in
  // for the folder in messages. Each entry's data points into its buffer.
  static Checkpoint in_memory(const std::string& label, std::vector<TensorEntry> entries,
                              std::vector<std::vector<uint8_t>> buffers);

 private:
  void add_file(const std::string& path);
  std::string dir_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<std::vector<uint8_t>> buffers_;  // in_memory only
  std::map<std::string, TensorEntry> tensors_;
};

std::string shape_str(const std::vector<int64_t>& shape);

// Throws Error naming `model_dir` when it is missing or not a folder.
void require_model_folder(const std::string& model_dir);

// Writes a safetensors file (used by make-model), one tensor at a time: `fill`
// writes numel elements of dtype into dst, so a multi-GB checkpoint never sits
// in memory whole.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::function<void(void* dst, int64_t numel)> fill;
};
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

}  // namespace ringscan
