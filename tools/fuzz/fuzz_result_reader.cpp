// libFuzzer target: the HDF5 result reader behind `ringscan inspect`
// (io/result_reader.h). The input is not the file's bytes: it is a list of edits
// to a well-formed result file (tests/io/result_file_builder.h), each changing a
// dataset's type, shape or values, removing one, or setting a root attribute;
// the file is written with HDF5 and read back. This explores every decision the
// reader makes about what HDF5 hands it. The bytes of the HDF5 format itself are
// libhdf5's to parse: fuzzed raw, libhdf5 1.10 crashes inside its own code within
// a few hundred inputs (docs/fuzzing.md), which no check of ours can prevent.
#include <fuzzer/FuzzedDataProvider.h>

#include "fuzz_util.h"
#include "io/result_reader.h"
#include "result_file_builder.h"

using namespace ringscan;
using io::test::ColumnSpec;
using io::test::ColumnType;
using io::test::ResultFileSpec;

namespace {

constexpr hsize_t kMaxWrittenElements = 1 << 16;  // larger shapes are declared, never written

hsize_t pick_dim(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return 0;
    case 1: return in.ConsumeIntegralInRange<hsize_t>(1, 12);
    case 2: return in.ConsumeIntegralInRange<hsize_t>(13, 400);
    default: return hsize_t(1) << in.ConsumeIntegralInRange<int>(20, 40);
  }
}

double pick_number(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return in.ConsumeIntegralInRange<int>(-2, 20);
    case 1: return double(in.ConsumeIntegral<uint64_t>());
    case 2: return in.ConsumeFloatingPoint<double>();
    default: return double(uint64_t(1) << in.ConsumeIntegralInRange<int>(0, 63));
  }
}

Json pick_attribute(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: return in.ConsumeIntegralInRange<int64_t>(-3, 1000);
    case 1: return in.ConsumeRandomLengthString(40);
    case 2: return in.ConsumeFloatingPoint<double>();
    default: return Json(std::vector<int64_t>(in.ConsumeIntegralInRange<size_t>(0, 300), 1));
  }
}

void edit(ResultFileSpec& spec, FuzzedDataProvider& in) {
  static const char* const kExtra[] = {"/embeddings/mean", "/embeddings/last", "/documents/other", "/tokens/ids/x"};
  static const char* const kAttributes[] = {"format_version", "n_documents", "job", "model_dir", "run_identity"};
  if (spec.columns.empty()) return;
  ColumnSpec& c = spec.columns[in.ConsumeIntegralInRange<size_t>(0, spec.columns.size() - 1)];
  switch (in.ConsumeIntegralInRange<int>(0, 6)) {
    case 0:
      c.type = static_cast<ColumnType>(in.ConsumeIntegralInRange<int>(0, 6));
      break;
    case 1: {
      c.dims.resize(in.ConsumeIntegralInRange<size_t>(0, 2));
      for (hsize_t& d : c.dims) d = pick_dim(in);
      break;
    }
    case 2:
      c.numbers.resize(std::max<size_t>(c.numbers.size(), 1));
      c.numbers[in.ConsumeIntegralInRange<size_t>(0, c.numbers.size() - 1)] = pick_number(in);
      break;
    case 3:
      c.strings.resize(std::max<size_t>(c.strings.size(), 1));
      c.strings[in.ConsumeIntegralInRange<size_t>(0, c.strings.size() - 1)] = in.ConsumeRandomLengthString(64);
      break;
    case 4:
      spec.remove(std::string(c.name));
      break;
    case 5: {
      ColumnSpec e{kExtra[in.ConsumeIntegralInRange<int>(0, 3)], ColumnType::F32, {pick_dim(in), pick_dim(in)}, {}, {},
                   true};
      spec.columns.push_back(e);
      break;
    }
    default:
      spec.attributes[kAttributes[in.ConsumeIntegralInRange<int>(0, 4)]] = pick_attribute(in);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::scratch_dir("result-reader") + "/result.h5";
  FuzzedDataProvider in(data, size);
  // A file without or with the text datasets (issue 16), whose token offsets the report reads.
  const size_t n = in.ConsumeIntegralInRange<size_t>(0, 6);
  ResultFileSpec spec = in.ConsumeBool() ? ResultFileSpec::valid_with_text(n) : ResultFileSpec::valid(n);
  const int edits = in.ConsumeIntegralInRange<int>(0, 8);
  for (int i = 0; i < edits && in.remaining_bytes() > 0; ++i) edit(spec, in);
  for (ColumnSpec& c : spec.columns) {
    hsize_t n = 1;
    for (hsize_t d : c.dims) n = __builtin_mul_overflow(n, d, &n) ? ~hsize_t(0) : n;
    if (n > kMaxWrittenElements) c.write_data = false;
  }
  try {
    spec.write(path);
  } catch (const Error&) {
    return 0;  // HDF5 refused to write it (e.g. a path under a dataset): nothing to read
  }
  fuzz::only_ringscan_errors([&] {
    const io::ResultTables t = io::read_result_tables(path);
    const io::ResultTokenReader reader(path, t);
    for (uint64_t d = 0; d < t.documents.size(); ++d) reader.read(d);
  });
  return 0;
}
