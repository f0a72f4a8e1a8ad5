#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "deforma/ops.hpp"

namespace deforma {
namespace {

// The command pages are the declarations rendered by describe_markdown; they must not drift apart.
TEST(TimeseriesDocs, CommandPagesMatchTheDeclarations) {
  for (const char* name : {"pairs", "invert", "series-at"}) {
    const auto* op = builtin_operations().find(name);
    ASSERT_NE(op, nullptr) << name;
    std::ifstream in(std::string(DEFORMA_SOURCE_DIR) + "/docs/commands/" + name + ".md");
    ASSERT_TRUE(in) << "docs/commands/" << name << ".md is missing";
    std::stringstream page;
    page << in.rdbuf();
    EXPECT_EQ(page.str(), describe_markdown(*op)) << "regenerate docs/commands/" << name << ".md";
  }
}

}  // namespace
}  // namespace deforma
