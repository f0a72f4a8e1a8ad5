#include "deforma/core/text.hpp"

#include <gtest/gtest.h>

namespace deforma {
namespace {

TEST(Text, TrimRemovesWhitespaceOrTheGivenCharactersAtBothEnds) {
  EXPECT_EQ(trim("  a b\t\r\n"), "a b");
  EXPECT_EQ(trim("\v\f x"), "x");
  EXPECT_EQ(trim(" \t "), "");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim("\"20200101\"\r", " \t\r\""), "20200101");
  // Characters inside are kept.
  EXPECT_EQ(trim("\" a \"b\" ", " \""), "a \"b");
}

}  // namespace
}  // namespace deforma
