// Deliberately failing tests, disabled by default: comm_harness_* in
// CMakeLists.txt run them to prove that a failure on a single rank makes the
// whole mpirun fail (EXPECT) or abort (ASSERT) instead of passing or hanging.
#include "comm_test_env.h"

namespace ringscan::comm::test {
namespace {

TEST(HarnessSelfCheck, DISABLED_ExpectFailsOnLastRank) {
  const bool last = world().rank() == world().size() - 1;
  EXPECT_FALSE(last) << "deliberate failure on the last rank";
  world().barrier();  // the other ranks carry on into a collective
}

TEST(HarnessSelfCheck, DISABLED_AssertFailsOnLastRank) {
  const bool last = world().rank() == world().size() - 1;
  ASSERT_FALSE(last) << "deliberate fatal failure on the last rank";
  world().barrier();  // never reached by the last rank: the others must not wait forever
}

}  // namespace
}  // namespace ringscan::comm::test
