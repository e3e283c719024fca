// Writing ask's answers (jobs/ask_output.h).
#include "jobs/ask_output.h"

#include <hdf5.h>

#include <filesystem>

#include "io/hdf5_util.h"
#include "util/error.h"

namespace ringscan {

namespace {

using io::h5::Id;
namespace h5 = io::h5;

Id make_dataset(hid_t loc, const std::string& name, hid_t type, hsize_t n, const std::string& path) {
  Id space(H5Screate_simple(1, &n, nullptr), H5Sclose, "cannot create an HDF5 dataspace");
  return Id(H5Dcreate2(loc, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose,
            "cannot create dataset " + name + " in " + path);
}

template <class T>
void column(hid_t g, const std::string& name, hid_t file_type, hid_t mem_type, const std::vector<T>& v,
            const std::string& path) {
  Id ds = make_dataset(g, name, file_type, v.size(), path);
  if (!v.empty()) h5::check(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "cannot write " + name);
}

void strings(hid_t g, const std::string& name, const std::vector<std::string>& v, const std::string& path) {
  Id type = h5::utf8_string_type();
  Id ds = make_dataset(g, name, type, v.size(), path);
  std::vector<const char*> p;
  for (const auto& s : v) p.push_back(s.c_str());
  if (!v.empty()) h5::check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()), "cannot write " + name);
}

void attribute(hid_t loc, const std::string& name, const Json& v, const std::string& path) {
  Id space(H5Screate(H5S_SCALAR), H5Sclose, "cannot create an HDF5 dataspace");
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    Id a(H5Acreate2(loc, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
         "cannot create attribute " + name + " in " + path);
    h5::check(H5Awrite(a, H5T_NATIVE_INT64, &x), "cannot write attribute " + name);
  } else if (v.is_number()) {
    const double x = v.get<double>();
    Id a(H5Acreate2(loc, name.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
         "cannot create attribute " + name + " in " + path);
    h5::check(H5Awrite(a, H5T_NATIVE_DOUBLE, &x), "cannot write attribute " + name);
  } else {
    const std::string s = v.is_string() ? v.get<std::string>() : v.dump();
    Id type = h5::utf8_string_type();
    Id a(H5Acreate2(loc, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
         "cannot create attribute " + name + " in " + path);
    const char* p = s.c_str();
    h5::check(H5Awrite(a, type, &p), "cannot write attribute " + name);
  }
}

}  // namespace

void write_answers_file(const std::string& path, const std::vector<AnswerRow>& rows, const Json& attributes,
                        bool overwrite) {
  namespace fs = std::filesystem;
  if (fs::exists(path) && !overwrite) throw Error(path + " already exists: give --overwrite to replace it");
  h5::quiet();
  const std::string partial = path + ".partial";
  {
    Id file(H5Fcreate(partial.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose, "cannot create " + partial);
    for (const auto& [k, v] : attributes.items()) attribute(file, k, v, partial);
    Id g(H5Gcreate2(file, "answers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, "cannot create /answers");
    std::vector<std::string> id, question, text, reason;
    std::vector<uint64_t> q_off, q_n, a_off, a_n;
    std::vector<double> first, decode;
    std::vector<int32_t> q_ids, a_ids;
    for (const AnswerRow& r : rows) {
      id.push_back(r.id), question.push_back(r.question), text.push_back(r.text), reason.push_back(r.finish_reason);
      q_off.push_back(q_ids.size()), q_n.push_back(r.question_ids.size());
      a_off.push_back(a_ids.size()), a_n.push_back(r.answer_ids.size());
      q_ids.insert(q_ids.end(), r.question_ids.begin(), r.question_ids.end());
      a_ids.insert(a_ids.end(), r.answer_ids.begin(), r.answer_ids.end());
      first.push_back(r.first_token_seconds), decode.push_back(r.decode_seconds);
    }
    strings(g, "id", id, partial);
    strings(g, "question", question, partial);
    strings(g, "text", text, partial);
    strings(g, "finish_reason", reason, partial);
    column(g, "question_token_offset", H5T_STD_U64LE, H5T_NATIVE_UINT64, q_off, partial);
    column(g, "question_n_tokens", H5T_STD_U64LE, H5T_NATIVE_UINT64, q_n, partial);
    column(g, "token_offset", H5T_STD_U64LE, H5T_NATIVE_UINT64, a_off, partial);
    column(g, "n_tokens", H5T_STD_U64LE, H5T_NATIVE_UINT64, a_n, partial);
    column(g, "first_token_seconds", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, first, partial);
    column(g, "decode_seconds", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, decode, partial);
    Id t(H5Gcreate2(file, "tokens", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, "cannot create /tokens");
    column(t, "question_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, q_ids, partial);
    column(t, "answer_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, a_ids, partial);
    t.close("cannot close /tokens of " + partial);
    g.close("cannot close /answers of " + partial);
    file.close("cannot close " + partial);
  }
  fs::rename(partial, path);
}

}  // namespace ringscan
