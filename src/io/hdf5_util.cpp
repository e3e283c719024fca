#include "io/hdf5_util.h"

#include <mutex>

#include "util/error.h"

namespace ringscan::io::h5 {

void quiet() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::string last_error() {
  std::string innermost;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        if (e->desc && *e->desc) *static_cast<std::string*>(data) = e->desc;
        return 0;
      },
      &innermost);
  H5Eclear2(H5E_DEFAULT);
  return innermost;
}

void fail(const std::string& what) {
  std::string why = last_error();
  throw Error(what + (why.empty() ? "" : ": " + why));
}

Id utf8_string_type() {
  Id t(H5Tcopy(H5T_C_S1), H5Tclose, "cannot create an HDF5 string type");
  check(H5Tset_size(t, H5T_VARIABLE), "cannot make a variable-length HDF5 string type");
  check(H5Tset_cset(t, H5T_CSET_UTF8), "cannot set the UTF-8 character set on an HDF5 string type");
  return t;
}

}  // namespace ringscan::io::h5
