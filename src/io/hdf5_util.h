// Thin RAII and error handling over the HDF5 C API. HDF5 failures become one
// ringscan::Error sentence: what we were doing, on which file, and HDF5's own reason.
#pragma once
#include <hdf5.h>

#include <string>
#include <utility>
#include <vector>

namespace ringscan::io::h5 {

// Turns off HDF5's printing of its error stack (we report errors ourselves). Idempotent.
void quiet();

// HDF5's innermost error description for the last failed call ("" when none).
std::string last_error();

// Throws Error("<what>: <HDF5's reason>").
[[noreturn]] void fail(const std::string& what);

inline void check(herr_t status, const std::string& what) {
  if (status < 0) fail(what);
}

// An owned HDF5 identifier, closed with the function given.
class Id {
 public:
  Id() = default;
  Id(hid_t id, herr_t (*closer)(hid_t), const std::string& what) : id_(id), close_(closer) {
    if (id < 0) fail(what);
  }
  Id(Id&& o) noexcept : id_(std::exchange(o.id_, -1)), close_(o.close_) {}
  Id& operator=(Id&& o) noexcept {
    reset();
    id_ = std::exchange(o.id_, -1);
    close_ = o.close_;
    return *this;
  }
  ~Id() { reset(); }
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  // Closes now and reports a failure (closing a file flushes it).
  void close(const std::string& what) {
    hid_t id = std::exchange(id_, -1);
    if (id >= 0) check(close_(id), what);
  }

 private:
  void reset() {
    if (id_ >= 0) close_(id_);
    id_ = -1;
  }
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// Variable-length UTF-8 string type.
Id utf8_string_type();

// Reading datasets of a file opened for reading; `where` names the file in errors.
// The dimensions of dataset `name` (an Error when it is absent).
std::vector<hsize_t> dataset_dims(hid_t file, const std::string& name, const std::string& where);
// `count` rows of a 1-D dataset, or of a 2-D one (width columns), from row `first`,
// converted to mem_type; the dataset must have exactly that width.
void read_rows(hid_t file, const std::string& name, hid_t mem_type, hsize_t first, hsize_t count, hsize_t width,
               void* out, const std::string& where);
// A whole 1-D variable-length string dataset.
std::vector<std::string> read_string_column(hid_t file, const std::string& name, const std::string& where);

}  // namespace ringscan::io::h5
