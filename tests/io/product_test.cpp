#include "deforma/io/product.hpp"

#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/filter/filter.hpp"

namespace deforma::io::product {
namespace {

TEST(ProductSchema, OneDefinitionForCorrelateAndFilter) {
  // The correlation writes what the filter reads: the same flag type, the same nodata.
  static_assert(std::is_same_v<correlate::NodeFlag, filter::NodeFlag>);
  static_assert(correlate::kResultNodata == filter::kNodata);
  EXPECT_EQ(correlate::result_band_names(),
            (std::vector<std::string>{"dx_px", "dy_px", "east_m", "north_m", "corr", "snr", "flag"}));
  EXPECT_EQ(velocity_bands(true).front().unit, "m/yr");
  EXPECT_EQ(velocity_bands(false).front().name, "vx_px_per_yr");
  EXPECT_TRUE(is_measured(0.0f));
  EXPECT_TRUE(is_measured(16.0f));
  EXPECT_FALSE(is_measured(static_cast<float>(NodeFlag::kMedianTest)));
  EXPECT_NE(flags_description().find("7 median_test"), std::string::npos);
}

TEST(ProductSchema, CheckNamesEveryMissingBandAndWhatTheFileHas) {
  RasterInfo info;
  info.path = "velocity.tif";
  BandInfo dx;
  dx.index = 1;
  dx.description = "dx_px";
  BandInfo other;
  other.index = 2;
  other.description = "speed";
  info.bands = {dx, other};
  EXPECT_NO_THROW(check_bands(info, {"dx_px"}));
  try {
    check_bands(info, {"dx_px", "dy_px", "flag"});
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("velocity.tif"), std::string::npos) << what;
    EXPECT_NE(what.find("'dy_px', 'flag'"), std::string::npos) << what;
    EXPECT_NE(what.find("speed"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace deforma::io::product
