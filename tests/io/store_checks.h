// Checks a result file, as h5py read it (tools/h5check/h5_to_json.py), against the
// fixture results it should hold (store_fixture.h), value by value.
#pragma once
#include <cstdint>

#include "util/json_util.h"

namespace ringscan::io::test {

// `dump` is h5_to_json's output for a file finalized with every fixture_result(i),
// i < n, fixture_identity(), fixture_attributes() plus {"ranks": ranks}, and
// fixture_discovery_skips().
void expect_dump_matches_fixture(const Json& dump, uint64_t n, int64_t ranks);

}  // namespace ringscan::io::test
