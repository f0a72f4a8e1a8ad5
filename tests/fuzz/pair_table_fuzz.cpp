// Fuzzes the pair-table reader (read_pair_table and the module's CSV reader under it), then the
// functions that consume a table: the network's dates and its connected components.
#include <string>

#include "deforma/core/error.hpp"
#include "deforma/timeseries/pairs.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  deforma::fuzz::quiet_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static deforma::fuzz::InputFile file;
  const std::string path = file.write("pairs.csv", deforma::fuzz::as_text(data, size));
  try {
    const auto pairs = deforma::timeseries::read_pair_table(path);
    std::vector<std::pair<int, int>> edges;
    const auto dates = deforma::timeseries::network_dates(pairs, &edges);
    deforma::timeseries::count_components(static_cast<int>(dates.size()), edges);
  } catch (const deforma::Error&) {
  }
  return 0;
}
