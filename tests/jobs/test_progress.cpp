// The progress line (jobs/progress.h): ETAs from a minute on as h:mm:ss, and a total
// that loses what generation did not use.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <thread>

#include "jobs/progress.h"

namespace ringscan {
namespace {

TEST(Progress, DurationsFromAMinuteOnAreHoursMinutesSeconds) {
  EXPECT_EQ(duration_text(0), "0s");
  EXPECT_EQ(duration_text(42.4), "42s");
  EXPECT_EQ(duration_text(59.4), "59s");
  EXPECT_EQ(duration_text(59.6), "0:01:00");
  EXPECT_EQ(duration_text(65), "0:01:05");
  EXPECT_EQ(duration_text(3725), "1:02:05");
  EXPECT_EQ(duration_text(100000), "27:46:40");
}

std::string printed(const std::function<void(Progress&)>& f, int64_t total) {
  Progress p("score", 2, total, true, 0.0);
  testing::internal::CaptureStderr();
  f(p);
  return testing::internal::GetCapturedStderr();
}

TEST(Progress, LongEtaIsPrintedAsHoursMinutesSeconds) {
  const std::string line = printed(
      [](Progress& p) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        p.update({0, 10, 0}, true);
      },
      int64_t(1) << 40);
  EXPECT_TRUE(std::regex_search(line, std::regex("ETA [0-9]+:[0-9]{2}:[0-9]{2}\n"))) << line;
}

TEST(Progress, UnusedGenerationLeavesTheTotal) {
  const std::string line = printed([](Progress& p) { p.finish({2, 600, 400}); }, 1000);
  EXPECT_NE(line.find("2/2 documents, 600/600 tokens (100%)"), std::string::npos) << line;
}

}  // namespace
}  // namespace ringscan
