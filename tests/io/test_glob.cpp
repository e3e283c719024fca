#include <gtest/gtest.h>

#include "io/glob.h"

namespace ringscan::io {
namespace {

TEST(Glob, StarAndQuestionStayInsideOneComponent) {
  EXPECT_TRUE(glob_match("*.py", "main.py"));
  EXPECT_FALSE(glob_match("*.py", "src/main.py"));
  EXPECT_TRUE(glob_match("src/*.py", "src/main.py"));
  EXPECT_FALSE(glob_match("src/*.py", "src/a/main.py"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "a/c"));
  EXPECT_FALSE(glob_match("*.py", "main.pyc"));
  EXPECT_TRUE(glob_match("*", "anything"));
  EXPECT_FALSE(glob_match("*", "two/parts"));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "x"));
}

TEST(Glob, DoubleStarSpansComponents) {
  EXPECT_TRUE(glob_match("**/x.c", "x.c"));
  EXPECT_TRUE(glob_match("**/x.c", "a/b/x.c"));
  EXPECT_FALSE(glob_match("**/x.c", "a/bx.c"));
  EXPECT_TRUE(glob_match("a/**/b", "a/b"));
  EXPECT_TRUE(glob_match("a/**/b", "a/x/y/b"));
  EXPECT_FALSE(glob_match("a/**/b", "a/x/yb"));
  EXPECT_TRUE(glob_match("a/**", "a/x"));
  EXPECT_TRUE(glob_match("a/**", "a/x/y"));
  EXPECT_FALSE(glob_match("a/**", "a"));
  EXPECT_TRUE(glob_match("**", "a/b/c"));
  EXPECT_TRUE(glob_match("src/**/*.py", "src/pkg/sub/m.py"));
  EXPECT_TRUE(glob_match("src/**/*.py", "src/m.py"));
  EXPECT_FALSE(glob_match("src/**/*.py", "lib/m.py"));
  // `**` inside a component is a plain `*`.
  EXPECT_TRUE(glob_match("a**b", "axxb"));
  EXPECT_FALSE(glob_match("a**b", "a/b"));
}

TEST(Glob, ClassesAndEscapes) {
  EXPECT_TRUE(glob_match("[abc].txt", "b.txt"));
  EXPECT_FALSE(glob_match("[abc].txt", "d.txt"));
  EXPECT_TRUE(glob_match("[a-c]x", "cx"));
  EXPECT_TRUE(glob_match("[!a-c]x", "dx"));
  EXPECT_FALSE(glob_match("[!a-c]x", "ax"));
  EXPECT_TRUE(glob_match("[^a-c]x", "dx"));
  EXPECT_TRUE(glob_match("[]]", "]"));
  EXPECT_FALSE(glob_match("x[/]y", "x/y"));
  EXPECT_TRUE(glob_match("\\*.txt", "*.txt"));
  EXPECT_FALSE(glob_match("\\*.txt", "a.txt"));
  EXPECT_TRUE(glob_match("[ab", "[ab"));  // unterminated class: literal '['
}

TEST(Glob, NamesAreComparedAsBytes) {
  EXPECT_TRUE(glob_match("*.txt", "\xc3\xbc.txt"));
  EXPECT_TRUE(glob_match("?.txt", "u.txt"));
  EXPECT_FALSE(glob_match("?.txt", "\xc3\xbc.txt"));  // two bytes, one '?'
}

}  // namespace
}  // namespace ringscan::io
