// Every op family (op_case.h) on every backend built in: one gtest test per
// (op, backend), named <op>.<backend>, e.g. `--gtest_filter=ssd_scan.*` or
// `*.cuda`. A backend that cannot run here (no GPU) is reported as skipped
// with the reason (a failure where RINGSCAN_REQUIRE_BACKENDS names it); a case
// a backend does not implement is counted, and the summary at the end lists
// how many cases ran and were not applicable per test.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "backend_ops/op_case.h"
#include "kernels/blas_runtime.h"

namespace ringscan::test::ops {
namespace {

struct Tally {
  int ran = 0, not_applicable = 0;
};
std::map<std::string, Tally>& tallies() {
  static std::map<std::string, Tally> t;
  return t;
}

class BackendOpTest : public ::testing::Test {
 public:
  BackendOpTest(const OpFamily& f, Backend& b) : f_(f), b_(b) {}
  void TestBody() override {
    const std::string why = b_.unavailable();
    if (!why.empty()) {
      // RINGSCAN_REQUIRE_BACKENDS=cuda (scripts/gpu-check.sh): a GPU machine must not skip.
      const char* required = std::getenv("RINGSCAN_REQUIRE_BACKENDS");
      if (required && std::string(required).find(b_.name()) != std::string::npos)
        FAIL() << "backend " << b_.name() << " is required (RINGSCAN_REQUIRE_BACKENDS) but " << why;
      GTEST_SKIP() << "backend " << b_.name() << ": " << why;
    }
    Tally& t = tallies()[f_.op + "." + b_.name()];
    for (const std::unique_ptr<OpCase>& c : f_.cases(nullptr)) {
      if (!c->supports(b_)) {
        ++t.not_applicable;
        continue;
      }
      SCOPED_TRACE(f_.op + " on " + b_.name() + ": " + c->describe());
      Memory m(b_);
      c->setup(m);
      c->run(m);
      EXPECT_TRUE(c->verify(m));
      ++t.ran;
    }
    if (t.ran == 0 && t.not_applicable == 0) ADD_FAILURE() << f_.op << " has no test cases";
    if (t.ran == 0) GTEST_SKIP() << "backend " << b_.name() << " does not implement " << f_.op;
  }

 private:
  const OpFamily& f_;
  Backend& b_;
};

void register_tests() {
  for (const OpFamily& f : op_families())
    for (Backend* b : backends())
      ::testing::RegisterTest(f.op.c_str(), b->name(), nullptr, nullptr, __FILE__, __LINE__,
                              [&f, b]() -> ::testing::Test* { return new BackendOpTest(f, *b); });
}

}  // namespace
}  // namespace ringscan::test::ops

int main(int argc, char** argv) {
  ringscan::reexec_with_fast_blas_if_needed(argv);
  ::testing::InitGoogleTest(&argc, argv);
  ringscan::test::ops::register_tests();
  const int rc = RUN_ALL_TESTS();
  for (const auto& [name, t] : ringscan::test::ops::tallies())
    std::printf("%-32s %4d cases ran, %4d not applicable to this backend\n", name.c_str(), t.ran, t.not_applicable);
  return rc;
}
