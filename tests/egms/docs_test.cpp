#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "deforma/ops.hpp"

namespace deforma {
namespace {

// docs/commands/egms-*.md are generated from the operation declarations; this test keeps them in sync
// (run it with DEFORMA_UPDATE_DOCS=1 to rewrite them after changing a declaration).
TEST(EgmsDocs, CommandPagesMatchTheDeclarations) {
  const bool update = std::getenv("DEFORMA_UPDATE_DOCS") != nullptr;
  for (const char* name : {"egms info", "egms fit", "egms reference", "egms calibrate", "egms ortho"}) {
    const OperationDecl* op = builtin_operations().find(name);
    ASSERT_NE(op, nullptr) << name;
    std::string file_name = name;
    std::replace(file_name.begin(), file_name.end(), ' ', '-');
    const auto path = std::filesystem::path(DEFORMA_SOURCE_DIR) / "docs" / "commands" / (file_name + ".md");
    const std::string expected = describe_markdown(*op);
    if (update) std::ofstream(path) << expected;
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_EQ(text.str(), expected) << path << " is out of date: rerun with DEFORMA_UPDATE_DOCS=1";
  }
}

}  // namespace
}  // namespace deforma
