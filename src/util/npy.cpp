#include "util/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>

#include "util/error.h"

namespace ringscan {

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path + " for reading");
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw Error(path + " is not a .npy file (bad magic)");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint16_t h;
    in.read(reinterpret_cast<char*>(&h), 2);
    header_len = h;
  } else {
    in.read(reinterpret_cast<char*>(&header_len), 4);
  }
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) throw Error(path + ": truncated .npy header");

  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([<|=]?)([fi])(\\d)'")))
    throw Error(path + ": unsupported .npy dtype in header " + header);
  char kind = m[2].str()[0];
  int size = std::stoi(m[3]);
  if (std::regex_search(header, std::regex("'fortran_order':\\s*True")))
    throw Error(path + ": Fortran-order .npy arrays are not supported");
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    throw Error(path + ": .npy header has no shape");
  NpyArray a;
  std::string dims = m[1];
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it)
    a.shape.push_back(std::stoll(it->str()));
  int64_t n = a.numel();
  std::vector<char> raw(n * size);
  if (!in.read(raw.data(), raw.size())) throw Error(path + ": truncated .npy data");
  a.data.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const char* p = raw.data() + i * size;
    if (kind == 'f' && size == 4) { float v; std::memcpy(&v, p, 4); a.data[i] = v; }
    else if (kind == 'f' && size == 8) { double v; std::memcpy(&v, p, 8); a.data[i] = static_cast<float>(v); }
    else if (kind == 'i' && size == 4) { int32_t v; std::memcpy(&v, p, 4); a.data[i] = static_cast<float>(v); }
    else if (kind == 'i' && size == 8) { int64_t v; std::memcpy(&v, p, 8); a.data[i] = static_cast<float>(v); }
    else throw Error(path + ": unsupported .npy element type");
  }
  return a;
}

namespace {
std::string npy_header(const std::vector<int64_t>& shape) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i)
    dims += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Pad so that magic(6)+version(2)+len(2)+header is a multiple of 64, ending in '\n'.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  uint16_t hl = static_cast<uint16_t>(header.size());
  return std::string("\x93NUMPY\x01\x00", 8) + std::string(reinterpret_cast<const char*>(&hl), 2) + header;
}
}  // namespace

void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  NpyWriter w(path, shape);
  int64_t n = 1;
  for (auto d : shape) n *= d;
  w.append(data, n);
  w.close();
}

NpyWriter::NpyWriter(const std::string& path, const std::vector<int64_t>& shape) : path_(path) {
  expected_ = 1;
  for (auto d : shape) expected_ *= d;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error("cannot open " + path + " for writing");
  file_ = f;
  std::string h = npy_header(shape);
  if (std::fwrite(h.data(), 1, h.size(), f) != h.size()) throw Error("cannot write " + path);
}

NpyWriter::~NpyWriter() {
  if (file_) std::fclose(static_cast<FILE*>(file_));
}

void NpyWriter::append(const float* data, int64_t n) {
  if (written_ + n > expected_) throw Error(path_ + ": more elements written than its shape holds");
  if (std::fwrite(data, sizeof(float), n, static_cast<FILE*>(file_)) != static_cast<size_t>(n))
    throw Error("cannot write " + path_ + " (disk full?)");
  written_ += n;
}

void NpyWriter::close() {
  if (!file_) return;
  FILE* f = static_cast<FILE*>(file_);
  file_ = nullptr;
  bool ok = std::fclose(f) == 0;
  if (!ok) throw Error("cannot write " + path_);
  if (written_ != expected_)
    throw Error(path_ + ": wrote " + std::to_string(written_) + " elements, shape needs " + std::to_string(expected_));
}

}  // namespace ringscan
