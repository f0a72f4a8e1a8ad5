// The docs pages of the commands come from the operations' declarations: they must stay in step.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "deforma/ops.hpp"
#include "ops/registration.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

TEST(Docs, EveryOperationHasAnUpToDatePage) {
  const std::filesystem::path dir = std::filesystem::path(DEFORMA_SOURCE_DIR) / "docs" / "commands";
  for (const auto* op : builtin_operations().list()) {
    const auto path = dir / ops::command_page_file_name(op->name);
    std::ifstream in(path);
    ASSERT_TRUE(in) << path << " is missing: run `deforma describe --write-docs docs/commands`";
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), describe_markdown(*op))
        << path << " is out of date: run `deforma describe --write-docs docs/commands`";
  }
}

TEST(Docs, DescribeCommandPrintsJsonProcessDescriptions) {
  const auto r = test::run_cli("describe correlate --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["id"], "correlate");
  EXPECT_EQ(j["inputs"]["chip"]["schema"]["type"], "integer");
  EXPECT_EQ(test::run_cli("describe nosuchthing").exit_code, 3);
}

}  // namespace
}  // namespace deforma
