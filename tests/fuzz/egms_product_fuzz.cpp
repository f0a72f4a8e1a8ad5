// Fuzzes the EGMS product reader (ProductReader): a plain CSV, or a zip when the input starts like one
// ("PK"), read to the end in small chunks and read again after a rewind.
#include <cstdlib>
#include <string>

#include "deforma/core/error.hpp"
#include "deforma/egms/product.hpp"
#include "fuzz_support.hpp"

namespace {

// Points read per chunk: small, so that the chunk boundaries are exercised on small inputs too.
constexpr std::size_t kChunkPoints = 3;

std::size_t read_all(deforma::egms::ProductReader& reader) {
  deforma::egms::PointChunk chunk;
  std::size_t points = 0;
  while (reader.read(chunk, kChunkPoints)) {
    const auto& layout = reader.layout();
    if (chunk.size() == 0 || chunk.size() > kChunkPoints || chunk.scalar_count != layout.scalar_count() ||
        chunk.date_count != layout.date_count() ||
        chunk.scalars.size() != chunk.size() * chunk.scalar_count ||
        chunk.series.size() != chunk.size() * chunk.date_count) {
      std::abort();  // the chunk's arrays disagree with its layout: readers of the chunk would overrun
    }
    points += chunk.size();
  }
  return points;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  deforma::fuzz::quiet_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = deforma::fuzz::as_text(data, size);
  const bool zip = bytes.substr(0, 2) == "PK";
  static deforma::fuzz::InputFile file;
  const std::string path =
      file.write(zip ? "EGMS_L2b_001_0001_IW1_VV_2020_2024_1.zip" : "product.csv", bytes);
  try {
    auto reader = deforma::egms::ProductReader::open(path);
    const std::size_t first = read_all(reader);
    reader.rewind();
    if (read_all(reader) != first) std::abort();  // a second pass must see the same points
  } catch (const deforma::Error&) {
  }
  return 0;
}
