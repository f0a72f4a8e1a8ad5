// Fuzzes the date parsers: Date::parse, the product-name parser, EGMS's YYYYMMDD column names and the
// Landsat MTL reader. Every date a parser accepts must print back to text that parses to the same day.
#include <cstdlib>
#include <string>

#include "deforma/core/error.hpp"
#include "deforma/egms/product.hpp"
#include "deforma/io/dates.hpp"
#include "fuzz_support.hpp"

namespace {

void check_round_trip(const deforma::io::Date& date) {
  if (deforma::io::Date::parse(date.iso()) != date || deforma::io::Date::parse(date.compact()) != date) {
    std::abort();  // a date that does not survive its own printing would corrupt every table written
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  deforma::fuzz::quiet_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(deforma::fuzz::as_text(data, size));
  try {
    check_round_trip(deforma::io::Date::parse(text));
  } catch (const deforma::Error&) {
  }
  try {
    for (const auto& evidence : deforma::io::parse_product_name(text).dates) check_round_trip(evidence.date);
  } catch (const deforma::Error&) {
  }
  if (const auto day = deforma::egms::parse_yyyymmdd(text)) {
    if (deforma::egms::parse_yyyymmdd(deforma::egms::format_yyyymmdd(*day)) != day) std::abort();
  }
  static deforma::fuzz::InputFile file;
  try {
    check_round_trip(deforma::io::read_mtl_date(file.write("scene_MTL.txt", text)));
  } catch (const deforma::Error&) {
  }
  return 0;
}
