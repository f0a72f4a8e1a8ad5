#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/egms/pid.hpp"
#include "egms/egms_test_helpers.hpp"

namespace deforma::egms {
namespace {

TEST(EgmsPid, Base62RoundTripAndPadding) {
  EXPECT_EQ(encode_base62(0), "0");
  EXPECT_EQ(encode_base62(61), "z");
  EXPECT_EQ(encode_base62(62), "10");
  EXPECT_EQ(encode_base62(42, 4), "000g");
  for (const std::uint64_t v : {1ULL, 3843ULL, 123456789012345ULL, 18446744073709551615ULL}) {
    EXPECT_EQ(decode_base62(encode_base62(v)), v);
  }
  EXPECT_THROW(decode_base62("ab-c"), InvalidArgument);
  EXPECT_THROW(decode_base62(""), InvalidArgument);
  EXPECT_THROW(decode_base62("zzzzzzzzzzzzzzzzzzzz"), InvalidArgument);  // > 64 bits
}

TEST(EgmsPid, L2EncodeDecodeRoundTrip) {
  const L2PointId id{117, 227, 11, 1043, 11607};
  const std::string pid = encode_l2_pid(id);
  EXPECT_EQ(pid, "1WBfX4cr1r");  // a real pid of the ascending Ustica burst
  EXPECT_EQ(decode_l2_pid(pid), id);
  EXPECT_THROW(encode_l2_pid(L2PointId{117, 227, 11, 70000, 1}), InvalidArgument);
  EXPECT_THROW(decode_l2_pid("123"), InvalidArgument);
}

TEST(EgmsPid, L3CellRoundTrip) {
  const std::string pid = l3_pid_at(4597550, 1739750);
  EXPECT_EQ(pid.size(), 10u);
  EXPECT_EQ(pid.front(), '1');
  const auto cell = decode_l3_pid(pid);
  EXPECT_EQ(cell.column, 45975);
  EXPECT_EQ(cell.row, 17397);
  EXPECT_EQ(encode_l3_pid(cell), pid);
  // Neighbouring cells differ by one in the last digit (column in the low 32 bits).
  EXPECT_EQ(decode_l3_pid(l3_pid_at(4597650, 1739750)).column, 45976);
}

TEST(EgmsPid, DecodesEveryRealPidToItsBurstLineAndPixel) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  for (const char* name : {test::kAscending, test::kDescending}) {
    const auto product = test::load((dir / name).string());
    const int line = product.layout.require(column::kLine, "test");
    const int pixel = product.layout.require(column::kPixel, "test");
    ASSERT_GT(product.points.size(), 10000u);
    std::size_t mismatches = 0;
    for (std::size_t p = 0; p < product.points.size(); ++p) {
      const auto id = decode_l2_pid(product.points.pid[p]);
      const bool ok = id.track == product.metadata.track && id.burst == product.metadata.burst_id &&
                      id.line == static_cast<int>(product.points.scalar(p, line)) &&
                      id.pixel == static_cast<int>(product.points.scalar(p, pixel)) &&
                      encode_l2_pid(id) == product.points.pid[p];
      mismatches += ok ? 0 : 1;
    }
    EXPECT_EQ(mismatches, 0u) << name;
  }
}

}  // namespace
}  // namespace deforma::egms
