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

std::vector<hsize_t> dataset_dims(hid_t file, const std::string& name, const std::string& where) {
  Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, where + " has no dataset " + name);
  Id space(H5Dget_space(ds), H5Sclose, "cannot read the shape of " + name + " in " + where);
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) fail("cannot read the shape of " + name + " in " + where);
  std::vector<hsize_t> dims(size_t(rank), 0);
  if (rank > 0) check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), "cannot read the shape of " + name + " in " + where);
  return dims;
}

void read_rows(hid_t file, const std::string& name, hid_t mem_type, hsize_t first, hsize_t count, hsize_t width,
               void* out, const std::string& where) {
  if (count == 0 || width == 0) return;
  const std::vector<hsize_t> dims = dataset_dims(file, name, where);
  const bool two_d = dims.size() == 2;
  if (!(dims.size() == 1 && width == 1) && !(two_d && dims[1] == width))
    throw Error(where + ": dataset " + name + " does not have the expected shape");
  if (first > dims[0] || count > dims[0] - first)
    throw Error(where + ": dataset " + name + " has " + std::to_string(dims[0]) + " rows; rows " + std::to_string(first) +
                ".." + std::to_string(first + count) + " were expected");
  Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, where + " has no dataset " + name);
  Id fspace(H5Dget_space(ds), H5Sclose, "cannot read the shape of " + name + " in " + where);
  hsize_t start[2] = {first, 0}, cnt[2] = {count, width};
  check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, cnt, nullptr), "cannot select rows of " + name);
  Id mspace(H5Screate_simple(int(dims.size()), cnt, nullptr), H5Sclose, "cannot create an HDF5 dataspace");
  check(H5Dread(ds, mem_type, mspace, fspace, H5P_DEFAULT, out), "cannot read " + name + " of " + where);
}

std::vector<std::string> read_string_column(hid_t file, const std::string& name, const std::string& where) {
  const std::vector<hsize_t> dims = dataset_dims(file, name, where);
  if (dims.size() != 1) throw Error(where + ": dataset " + name + " is not a list of strings");
  Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, where + " has no dataset " + name);
  Id ftype(H5Dget_type(ds), H5Tclose, "cannot read the type of " + name + " in " + where);
  if (H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) <= 0)
    throw Error(where + ": dataset " + name + " is not a list of variable-length strings");
  std::vector<char*> raw(dims[0], nullptr);
  std::vector<std::string> out(dims[0]);
  if (dims[0] == 0) return out;
  Id type = utf8_string_type();
  check(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), "cannot read " + name + " of " + where);
  for (size_t i = 0; i < raw.size(); ++i) out[i] = raw[i] ? raw[i] : "";
  Id space(H5Dget_space(ds), H5Sclose, "cannot read the shape of " + name + " in " + where);
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, raw.data());
  return out;
}

}  // namespace ringscan::io::h5
