#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "util/error.h"
#include "util/json_util.h"

namespace ringscan {

namespace fs = std::filesystem;

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error("cannot open checkpoint file " + path + " (" + std::strerror(errno) + ")");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error("cannot stat checkpoint file " + path);
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw Error("cannot mmap checkpoint file " + path + " (" + std::strerror(errno) + ")");
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

namespace {

bool parse_dtype(const std::string& s, DType& out) {
  if (s == "F32") out = DType::F32;
  else if (s == "F16") out = DType::F16;
  else if (s == "BF16") out = DType::BF16;
  else return false;
  return true;
}

const char* to_safetensors_dtype(DType d) { return dtype_name(d); }

// Bytes of a tensor of `shape` and `dtype`; false when that does not fit in 64 bits.
bool tensor_bytes(const std::vector<int64_t>& shape, DType dtype, uint64_t& bytes) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  bytes = n;
  return true;
}

}  // namespace

void require_model_folder(const std::string& model_dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(model_dir, ec);
  if (!fs::exists(st)) throw Error("model folder " + model_dir + " does not exist");
  if (!fs::is_directory(st)) {
    // A checkpoint's own file (config.json, a safetensors file) names the folder meant.
    const fs::path file(model_dir);
    const std::string folder = file.has_parent_path() ? file.parent_path().string() : ".";
    const bool in_checkpoint = fs::is_regular_file(fs::path(folder) / "config.json", ec);
    throw Error("model folder " + model_dir + " is a file, not a folder; --model takes the checkpoint folder that "
                "holds config.json and model.safetensors" +
                (in_checkpoint ? std::string(": --model ") + folder : std::string()));
  }
}

void Checkpoint::add_file(const std::string& path) {
  auto file = std::make_unique<MappedFile>(path);
  const size_t size = file->size();
  if (size < 8) throw Error(path + " is truncated: " + std::to_string(size) + " bytes, a safetensors file starts with an 8-byte header length");
  uint64_t header_len;
  std::memcpy(&header_len, file->data(), 8);
  if (header_len > size - 8)
    throw Error(path + " is truncated or corrupt: header length " + std::to_string(header_len) +
                " exceeds the file size " + std::to_string(size));
  std::string header(reinterpret_cast<const char*>(file->data()) + 8, header_len);
  Json h = parse_json_relaxed(header, path + " (safetensors header)");
  if (!h.is_object()) throw Error(path + ": safetensors header is not a JSON object");
  const uint8_t* base = file->data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& name = it.key();
    const Json& e = it.value();
    std::string where = path + ": tensor " + name;
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      throw Error(where + " lacks dtype, shape or data_offsets in the header");
    TensorEntry t;
    t.name = name;
    t.file = path;
    if (!e["dtype"].is_string() || !parse_dtype(e["dtype"].get<std::string>(), t.dtype))
      throw Error(where + " has dtype " + e["dtype"].dump() + "; ringscan reads BF16, F16 and F32");
    if (!e["shape"].is_array()) throw Error(where + " has a malformed shape " + e["shape"].dump());
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) throw Error(where + " has a malformed shape " + e["shape"].dump());
      t.shape.push_back(d.get<int64_t>());
    }
    const Json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw Error(where + " has malformed data_offsets " + off.dump());
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      throw Error(where + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                  "] outside the file's " + std::to_string(data_size) + " data bytes (truncated file?)");
    uint64_t bytes = 0;
    if (!tensor_bytes(t.shape, t.dtype, bytes))
      throw Error(where + " has shape " + shape_str(t.shape) + ", whose size in bytes does not fit in 64 bits");
    if (end - begin != bytes)
      throw Error(where + " has " + std::to_string(end - begin) + " bytes but shape " + shape_str(t.shape) +
                  " of " + dtype_name(t.dtype) + " needs " + std::to_string(bytes));
    if (begin % dtype_size(t.dtype) != 0) throw Error(where + " is not aligned to its element size");
    t.data = base + begin;
    if (tensors_.count(name)) throw Error(where + " also appears in " + tensors_[name].file);
    ranges.push_back({begin, end, name});
    tensors_.emplace(name, std::move(t));
  }
  // The format: tensors tile the data section, no overlaps (two names for the same
  // bytes, a way to smuggle one tensor's change into another) and no gaps.
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t covered = 0;
  const std::string* last = nullptr;
  for (const Range& r : ranges) {
    if (r.begin < covered)
      throw Error(path + ": tensors " + *last + " and " + r.name + " overlap in the file (bytes " +
                  std::to_string(r.begin) + " to " + std::to_string(std::min(covered, r.end)) +
                  " of the data); each tensor must have bytes of its own");
    if (r.begin > covered)
      throw Error(path + ": bytes " + std::to_string(covered) + " to " + std::to_string(r.begin) +
                  " of the data belong to no tensor; safetensors tensors must cover the data without gaps");
    if (r.end > covered || !last) covered = r.end, last = &r.name;
  }
  if (covered != data_size)
    throw Error(path + ": the last " + std::to_string(data_size - covered) +
                " bytes of the file belong to no tensor; safetensors tensors must cover the data without gaps");
  files_.push_back(std::move(file));
}

Checkpoint Checkpoint::open(const std::string& model_dir) {
  require_model_folder(model_dir);
  Checkpoint c;
  c.dir_ = model_dir;
  std::string single = model_dir + "/model.safetensors";
  std::string index = model_dir + "/model.safetensors.index.json";
  if (fs::exists(index)) {
    Json j = read_json_file(index);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index + " has no \"weight_map\" object");
    std::set<std::string> shards;
    std::map<std::string, std::string> expected;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw Error(index + ": weight_map entry for " + it.key() + " is not a file name");
      const std::string& shard = it.value().get_ref<const std::string&>();
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos)
        throw Error(index + ": weight_map entry for " + it.key() + " is \"" + shard +
                    "\"; expected the name of a file in the model folder");
      shards.insert(it.value().get<std::string>());
      expected[it.key()] = it.value().get<std::string>();
    }
    for (const auto& s : shards) c.add_file(model_dir + "/" + s);
    for (const auto& [name, shard] : expected) {
      auto t = c.tensors_.find(name);
      if (t == c.tensors_.end() || t->second.file != model_dir + "/" + shard)
        throw Error(index + " maps tensor " + name + " to " + shard + ", which does not contain it");
    }
  } else if (fs::exists(single)) {
    c.add_file(single);
  } else {
    throw Error("model folder " + model_dir + " has neither model.safetensors nor model.safetensors.index.json");
  }
  return c;
}

const TensorEntry* Checkpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files_) n += f->size();
  for (const auto& b : buffers_) n += b.size();
  return n;
}

std::vector<std::string> Checkpoint::file_paths() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

Checkpoint Checkpoint::in_memory(const std::string& label, std::vector<TensorEntry> entries,
                                 std::vector<std::vector<uint8_t>> buffers) {
  Checkpoint c;
  c.dir_ = label;
  // Moving a vector keeps its heap block, so the entries' data pointers stay valid.
  c.buffers_ = std::move(buffers);
  for (auto& e : entries) c.tensors_.emplace(e.name, std::move(e));
  return c;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  Json h = Json::object();
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    uint64_t bytes = static_cast<uint64_t>(numel) * dtype_size(t.dtype);
    h[t.name] = {{"dtype", to_safetensors_dtype(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  h["__metadata__"] = {{"format", "pt"}};
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // keep tensor data 8-byte aligned
  std::string tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot open " + tmp + " for writing");
  uint64_t hl = header.size();
  out.write(reinterpret_cast<const char*>(&hl), 8);
  out.write(header.data(), header.size());
  std::vector<char> buf;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (auto d : t.shape) numel *= d;
    buf.resize(numel * dtype_size(t.dtype));
    t.fill(buf.data(), numel);
    out.write(buf.data(), buf.size());
  }
  if (!out.flush()) throw Error("cannot write " + tmp + " (disk full?)");
  out.close();
  fs::rename(tmp, path);
}

}  // namespace ringscan
