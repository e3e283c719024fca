#include <gtest/gtest.h>

#include "io/gitignore.h"

namespace ringscan::io {
namespace {

TEST(Gitignore, PatternWithoutSlashMatchesAtAnyDepth) {
  GitignoreRules r;
  r.add_file("", "*.log\n# comment\n\nbuild\n");
  EXPECT_TRUE(r.ignored("x.log", false));
  EXPECT_TRUE(r.ignored("a/b/x.log", false));
  EXPECT_TRUE(r.ignored("build", true));
  EXPECT_TRUE(r.ignored("src/build", false));
  EXPECT_FALSE(r.ignored("x.txt", false));
  EXPECT_FALSE(r.ignored("# comment", false));
}

TEST(Gitignore, AnchoredAndDirectoryOnly) {
  GitignoreRules r;
  r.add_file("", "/top.txt\ndocs/*.md\nout/\n");
  EXPECT_TRUE(r.ignored("top.txt", false));
  EXPECT_FALSE(r.ignored("sub/top.txt", false));
  EXPECT_TRUE(r.ignored("docs/a.md", false));
  EXPECT_FALSE(r.ignored("x/docs/a.md", false));  // a middle slash anchors too
  EXPECT_TRUE(r.ignored("out", true));
  EXPECT_TRUE(r.ignored("deep/out", true));
  EXPECT_FALSE(r.ignored("out", false));  // a file named out is kept
}

TEST(Gitignore, NegationLastRuleWins) {
  GitignoreRules r;
  r.add_file("", "*.txt\n!keep.txt\n");
  EXPECT_TRUE(r.ignored("a.txt", false));
  EXPECT_FALSE(r.ignored("keep.txt", false));
  EXPECT_FALSE(r.ignored("d/keep.txt", false));
  GitignoreRules r2;
  r2.add_file("", "!keep.txt\n*.txt\n");
  EXPECT_TRUE(r2.ignored("keep.txt", false));
}

TEST(Gitignore, DoubleStar) {
  GitignoreRules r;
  r.add_file("", "**/gen/**\nlogs/**/*.tmp\n");
  EXPECT_TRUE(r.ignored("gen/a.c", false));
  EXPECT_TRUE(r.ignored("x/gen/y/a.c", false));
  EXPECT_TRUE(r.ignored("logs/a.tmp", false));
  EXPECT_TRUE(r.ignored("logs/1/2/a.tmp", false));
  EXPECT_FALSE(r.ignored("logs/a.txt", false));
}

TEST(Gitignore, NestedFileAppliesBelowItsFolderAndOverridesParent) {
  GitignoreRules r;
  r.add_file("", "*.dat\n");
  const size_t mark = r.size();
  r.add_file("sub", "!important.dat\n/local.txt\n");
  EXPECT_TRUE(r.ignored("x.dat", false));
  EXPECT_TRUE(r.ignored("sub/x.dat", false));
  EXPECT_FALSE(r.ignored("sub/important.dat", false));
  EXPECT_FALSE(r.ignored("sub/deeper/important.dat", false));
  EXPECT_TRUE(r.ignored("sub/local.txt", false));         // anchored to sub/
  EXPECT_FALSE(r.ignored("sub/deeper/local.txt", false));
  EXPECT_FALSE(r.ignored("local.txt", false));             // not below sub/
  EXPECT_FALSE(r.ignored("subway/local.txt", false));      // sub is a whole component
  r.truncate(mark);
  EXPECT_TRUE(r.ignored("sub/important.dat", false));
}

TEST(Gitignore, EscapesAndTrailingSpaces) {
  GitignoreRules r;
  r.add_file("", "\\#hash\n\\!bang\nspace\\ \ntrail   \r\n");
  EXPECT_TRUE(r.ignored("#hash", false));
  EXPECT_TRUE(r.ignored("!bang", false));
  EXPECT_TRUE(r.ignored("space ", false));
  EXPECT_TRUE(r.ignored("trail", false));
  EXPECT_FALSE(r.ignored("trail   ", false));
}

}  // namespace
}  // namespace ringscan::io
