#include <gtest/gtest.h>

#include "egms/egms_test_helpers.hpp"

namespace deforma::egms {
namespace {

TEST(EgmsCli, InfoFitAndErrors) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  deforma::test::TempDir tmp;
  const std::string zip = (dir / test::kDescending).string();
  auto r = deforma::test::run_cli("egms info '" + zip + "'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("11590 points x 210 dates"), std::string::npos) << r.out;
  r = deforma::test::run_cli("--summary-json egms reference '" + zip +
                             "' --method pid --pid 166ax5Ofja -o '" + tmp.file("ref.zip") + "'");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("reference_points"), std::string::npos) << r.out;
  r = deforma::test::run_cli("egms reference '" + zip + "' --method pid --pid NOPE -o '" + tmp.file("x.zip") +
                             "'");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp.file("x.zip")));
  r = deforma::test::run_cli("egms info '" + tmp.file("missing.zip") + "'");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("missing.zip"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace deforma::egms
